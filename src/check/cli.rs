//! `raftkv check FILE [--json] [--html FILE] [--init VALUE] [--failed-cas observed]
//! [--time-limit SECS] [--memory-limit MIB]`.
//!
//! Owns: flags, reading the file, printing the report, the exit status (0 linearizable, 1 not
//! linearizable, 2 unknown, 3 bad input or usage).
//! Must never: print a verdict the report does not hold.

use super::{check, parse_auto, validate, Options, Verdict};
use std::time::Duration;

const USAGE: &str = "usage: raftkv check FILE [--json] [--html OUT.html] [--init VALUE]
                    [--failed-cas observed|ignored] [--time-limit SECS] [--memory-limit MIB]
                    [--threads N]

Checks a lin-kv history for linearizability. FILE is canonical JSON Lines (.jsonl), a JSON array
of the same events (.json), or Jepsen/Knossos EDN (.edn); `-` reads standard input.
  --init VALUE        initial value of every key, as JSON (default: absent)
  --failed-cas observed  a failed cas observed a value different from `from`
                      (default: ignored, a failed cas did not happen)
  --time-limit SECS   per-key search bound (default 10)
  --memory-limit MIB  per-key memory bound (default 512)
Exit status: 0 linearizable, 1 not linearizable, 2 unknown, 3 bad input.";

struct Args {
    file: String,
    json: bool,
    html: Option<String>,
    opts: Options,
}

fn parse_args(args: &[String]) -> Result<Option<Args>, String> {
    let mut file = None;
    let mut json = false;
    let mut html = None;
    let mut opts = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--json" => json = true,
            "--html" => html = Some(value("--html")?),
            "--init" => {
                let v = value("--init")?;
                let parsed: serde_json::Value = serde_json::from_str(&v)
                    .map_err(|e| format!("--init {v:?} is not a JSON value: {e}"))?;
                opts.initial = if parsed.is_null() { None } else { Some(parsed) };
            }
            "--failed-cas" => match value("--failed-cas")?.as_str() {
                "observed" => opts.failed_cas_observed = true,
                "ignored" => opts.failed_cas_observed = false,
                other => {
                    return Err(format!(
                        "--failed-cas takes `observed` or `ignored`, not {other:?}"
                    ))
                }
            },
            "--time-limit" => {
                let v = value("--time-limit")?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or(format!(
                        "--time-limit {v:?} is not a positive number of seconds"
                    ))?;
                opts.max_time_per_key = Duration::from_secs_f64(secs);
            }
            "--memory-limit" => {
                let v = value("--memory-limit")?;
                let mib: usize = v.parse().ok().filter(|m| *m > 0).ok_or(format!(
                    "--memory-limit {v:?} is not a positive number of MiB"
                ))?;
                opts.max_memory_per_key = mib << 20;
            }
            "--threads" => {
                let v = value("--threads")?;
                opts.threads = v
                    .parse()
                    .map_err(|_| format!("--threads {v:?} is not a number"))?;
            }
            s if s.starts_with("--") => return Err(format!("unknown flag {s}")),
            s => {
                if file.replace(s.to_string()).is_some() {
                    return Err("give one history FILE".into());
                }
            }
        }
    }
    let file = file.ok_or("missing history FILE")?;
    Ok(Some(Args {
        file,
        json,
        html,
        opts,
    }))
}

/// Runs `raftkv check`; returns the exit status.
pub fn cli(args: &[String]) -> i32 {
    let a = match parse_args(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("raftkv check: {e}\n\n{USAGE}");
            return 3;
        }
    };
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
    let report = check(&events, &a.opts);
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
