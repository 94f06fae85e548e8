//! raftkv: one binary. No subcommand runs the Maelstrom node; `inspect`, `check`, `sim`, `test`
//! and `model`
//! are the tools around it. Each subcommand module parses its own flags (`cli(args) -> exit code`).

use raftkv::node;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        None => node::run_stdio(),
        Some("inspect") => raftkv::inspect::cli(&args[2..]),
        Some("sim") => raftkv::sim::cli(&args[2..]),
        Some("check") => raftkv::check::cli(&args[2..]),
        Some("test") => raftkv::bench::cli(&args[2..]),
        Some("model") => raftkv::model::cli(&args[2..]),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("raftkv: unknown subcommand `{other}`\n\n{USAGE}");
            2
        }
    };
    std::process::exit(code);
}

const USAGE: &str = "usage: raftkv                  run a Maelstrom lin-kv node on stdin/stdout
       raftkv inspect DIR...    show and verify node data directories
       raftkv check FILE        check a history for linearizability
       raftkv sim               run the deterministic cluster simulator
       raftkv test              run the 5-node lin-kv bench with partitions and kills
       raftkv model             model-check the consensus core exhaustively to a bounded depth";
