//! `raftkv check FILE [--json] [--html FILE] [--init VALUE] [--failed-cas observed]
//! [--time-limit SECS] [--memory-limit MIB] [--threads N]`.
//!
//! Owns: the flags (a clap `Args` the binary's command tree mounts), reading the file, printing
//! the report, the exit status (0 linearizable, 1 not linearizable, 2 unknown, 3 bad input or
//! bad flags).
//! Must never: print a verdict the report does not hold.

use super::{check, parse_auto, validate, Options, Verdict};
use std::time::Duration;

/// `raftkv check`: the checker's flags.
#[derive(clap::Args, Debug, Clone)]
#[command(
    about = "Check a lin-kv history for linearizability",
    long_about = "Checks a lin-kv history for linearizability. FILE is canonical JSON Lines \
(.jsonl), a JSON array of the same events (.json), or Jepsen/Knossos EDN (.edn); `-` reads \
standard input.",
    after_help = "Exit status: 0 linearizable, 1 not linearizable, 2 unknown, 3 bad input or bad flags."
)]
pub struct CheckArgs {
    /// The history: .jsonl, .json or .edn; `-` reads standard input.
    #[arg(value_name = "FILE")]
    file: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as an HTML page to OUT.html.
    #[arg(long, value_name = "OUT.html")]
    html: Option<String>,
    /// Initial value of every key, as JSON (default: absent; `null` is absent too).
    #[arg(long, value_name = "VALUE", value_parser = parse_json_value)]
    init: Option<serde_json::Value>,
    /// `observed`: a failed cas observed a value different from `from`; `ignored`: a failed cas
    /// did not happen.
    #[arg(long, value_name = "observed|ignored", default_value = "ignored",
          value_parser = ["observed", "ignored"])]
    failed_cas: String,
    /// Per-key search bound in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = positive_seconds,
          allow_negative_numbers = true)]
    time_limit: f64,
    /// Per-key memory bound in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..))]
    memory_limit: u64,
    /// Worker threads; 0 = the machine's available parallelism.
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

fn parse_json_value(v: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(v).map_err(|e| format!("not a JSON value: {e}"))
}

fn positive_seconds(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .ok_or_else(|| "not a positive number of seconds".to_string())
}

impl CheckArgs {
    fn options(&self) -> Options {
        Options {
            initial: self.init.clone().filter(|v| !v.is_null()),
            failed_cas_observed: self.failed_cas == "observed",
            max_time_per_key: Duration::from_secs_f64(self.time_limit),
            max_memory_per_key: usize::try_from(self.memory_limit)
                .ok()
                .and_then(|m| m.checked_mul(1 << 20))
                .unwrap_or(usize::MAX),
            threads: self.threads,
        }
    }
}

/// Runs `raftkv check`; returns the exit status.
pub fn cli(a: CheckArgs) -> i32 {
    let opts = a.options();
    let text = if a.file == "-" {
        let mut s = String::new();
        match std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            Ok(_) => s,
            Err(e) => {
                eprintln!("raftkv check: cannot read standard input: {e}");
                return 3;
            }
        }
    } else {
        match std::fs::read_to_string(&a.file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("raftkv check: cannot read {}: {e}", a.file);
                return 3;
            }
        }
    };
    let events = match parse_auto(&text, &a.file) {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("raftkv check: {}: {e}", a.file);
            return 3;
        }
    };
    if let Err(e) = validate(&events) {
        eprintln!("raftkv check: {}: {e}", a.file);
        return 3;
    }
    let report = check(&events, &opts);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_text());
    }
    if let Some(path) = &a.html {
        if let Err(e) = std::fs::write(path, report.to_html()) {
            eprintln!("raftkv check: cannot write {path}: {e}");
            return 3;
        }
        if !a.json {
            println!("report written to {path}");
        }
    }
    match report.verdict {
        Verdict::Linearizable => 0,
        Verdict::NotLinearizable => 1,
        Verdict::Unknown { .. } => 2,
    }
}
