//! The process's log: `tracing` events written to stderr, filtered by `RAFTKV_LOG`.
//!
//! Owns: installing the one subscriber and reading `RAFTKV_LOG` (tracing's filter syntax: `debug`,
//! `raftkv::node=debug`, `raftkv::shell=trace,info`). Without it the level is `info`: role
//! changes, recovery, snapshot installs, bad input, errors and the periodic stats line
//! (target `raftkv::stats`). At `debug` every message a node sends and receives is logged with
//! its type, term and indexes; at `trace` every `Ready` the core hands the shell.
//! Must never: write to stdout (the node's protocol channel), or fail the process: a bad
//! `RAFTKV_LOG` is reported and the default used.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the filter.
pub const ENV_VAR: &str = "RAFTKV_LOG";

/// The filter when `RAFTKV_LOG` is unset or empty.
const DEFAULT_FILTER: &str = "info";

/// Installs the stderr subscriber; a second call does nothing.
pub fn init() {
    let (filter, complaint) = match std::env::var(ENV_VAR) {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (
                EnvFilter::new(DEFAULT_FILTER),
                Some(format!(
                    "{ENV_VAR}={spec:?} is not a log filter ({e}); using `{DEFAULT_FILTER}`"
                )),
            ),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    if let (Ok(()), Some(complaint)) = (installed, complaint) {
        tracing::warn!("{complaint}");
    }
}
