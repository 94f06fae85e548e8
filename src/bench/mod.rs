//! Maelstrom-compatible test bench (DESIGN §7): processes, network, nemeses, workload, reports.
