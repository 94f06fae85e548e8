//! The Maelstrom node driver (DESIGN §4): event loop, storage glue, client requests, forwarding,
//! restart recovery.

/// Runs the node on stdin/stdout until end of input. Returns the process exit code.
pub fn run_stdio() -> i32 {
    eprintln!("raftkv: the node is not built yet");
    1
}
