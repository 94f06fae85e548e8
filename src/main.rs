//! raftkv: one binary, one command tree. No subcommand runs the Maelstrom node on stdin/stdout;
//! `test`, `sim`, `check`, `inspect` and `model` are the tools around it, and `completions` prints a shell
//! completion script.
//!
//! Owns: the command tree (each subcommand's flags are a clap `Args` in its own module), the
//! version string and the exit status of a bad command line: 2 with clap's message (3 for
//! `check`, whose 2 means "unknown").
//! Must never: change what a subcommand's flags mean; it only dispatches.

use clap::{CommandFactory, Parser, Subcommand};
use raftkv::{bench, check, inspect, model, node, sim};

/// The crate version, with the git revision when built from a checkout.
const VERSION: &str = if env!("RAFTKV_GIT_REV").is_empty() {
    env!("CARGO_PKG_VERSION")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("RAFTKV_GIT_REV"), ")")
};

/// A persistent Raft key-value node for Maelstrom's lin-kv workload, with its test bench,
/// simulator, checker and inspector.
#[derive(Parser, Debug)]
#[command(
    name = "raftkv",
    version = VERSION,
    after_help = "With no subcommand, raftkv runs a Maelstrom lin-kv node on stdin/stdout."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// The subcommands; each one's help text is on its `Args` struct, next to its flags.
#[derive(Subcommand, Debug)]
enum Command {
    Test(bench::Opts),
    Sim(sim::SimArgs),
    Check(check::CheckArgs),
    Inspect(inspect::InspectArgs),
    Model(model::ModelArgs),
    // Further tools are mounted here, one variant each, with their `Args` in their own module.
    /// Print a shell completion script for raftkv.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(usage_error_status(&e));
        }
    };
    raftkv::logs::init();
    if matches!(
        cli.command,
        Some(
            Command::Sim(_)
                | Command::Check(_)
                | Command::Inspect(_)
                | Command::Model(_)
                | Command::Completions { .. }
        )
    ) {
        end_quietly_when_the_reader_leaves();
    }
    let code = match cli.command {
        None => node::run_stdio(),
        Some(Command::Test(opts)) => bench::run_cli(&opts),
        Some(Command::Sim(args)) => sim::cli(args),
        Some(Command::Check(args)) => check::cli(args),
        Some(Command::Inspect(args)) => inspect::cli(args),
        Some(Command::Model(args)) => model::cli(args),
        Some(Command::Completions { shell }) => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "raftkv", &mut std::io::stdout());
            0
        }
    };
    std::process::exit(code);
}

/// A report tool piped into `head` or a pager ends as Unix tools do when the reader goes away
/// (killed by SIGPIPE), instead of panicking in `println!`. Only for the tools that just print:
/// the node and the bench keep SIGPIPE ignored, since the bench writes into nodes that may die
/// and must see that as an error on the write.
fn end_quietly_when_the_reader_leaves() {
    // SAFETY: signal(2) with SIG_DFL for SIGPIPE, before any thread is started; it changes no
    // memory of this program.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// 0 for `--help`/`--version`; for a bad command line 2, or 3 under `check` (its 2 is a verdict).
fn usage_error_status(e: &clap::Error) -> i32 {
    if !e.use_stderr() {
        return 0;
    }
    let subcommand = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if subcommand.as_deref() == Some("check") {
        3
    } else {
        2
    }
}
