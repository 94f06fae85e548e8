//! Where a node keeps its data.
//!
//! Owns: the rule that maps a node id (and the environment) to a data directory.
//! Must never: create, open or delete anything; it only computes a path.
//!
//! The rule:
//! - `$RAFTKV_DATA_DIR/<node_id>` when `RAFTKV_DATA_DIR` is set and not empty;
//! - otherwise `<temp dir>/raftkv-<ppid>-<start>/<node_id>`, where `<ppid>` is the parent process
//!   (the test harness that spawned the node) and `<start>` that process's start time in clock
//!   ticks since boot (field 22 of `/proc/<ppid>/stat`). A node restarted by the same harness finds
//!   its directory again; a new harness run (a new process, or the same pid reused later) does not.
//!   Where `/proc` cannot be read, `<start>` is `unknown` and the key is the parent pid alone.

use std::path::{Path, PathBuf};

/// The environment variable that overrides the data root.
pub const ENV_DATA_DIR: &str = "RAFTKV_DATA_DIR";

/// When the data directory is keyed by the parent process and that parent is a shell (a wrapper
/// script that does not `exec` the node), every start has a new parent, so a restarted node
/// would silently start empty. Returns a warning to print in that case.
pub fn shell_parent_warning() -> Option<String> {
    if std::env::var_os(ENV_DATA_DIR).is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let ppid = std::os::unix::process::parent_id();
    let comm = std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok()?;
    let comm = comm.trim();
    is_shell(comm).then(|| {
        format!(
            "the parent process ({comm}, pid {ppid}) is a shell, so a restart through it finds a \
             new data directory and starts empty; `exec` the node in the wrapper, or set \
             {ENV_DATA_DIR}"
        )
    })
}

fn is_shell(comm: &str) -> bool {
    matches!(
        comm,
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "busybox"
    )
}

/// The data directory of `node_id` under the current environment.
pub fn data_dir(node_id: &str) -> Result<PathBuf, String> {
    check_node_id(node_id)?;
    match std::env::var_os(ENV_DATA_DIR) {
        Some(root) if !root.is_empty() => Ok(Path::new(&root).join(node_id)),
        _ => {
            let ppid = std::os::unix::process::parent_id();
            let start = std::fs::read_to_string(format!("/proc/{ppid}/stat"))
                .ok()
                .and_then(|stat| start_time(&stat))
                .map(|t| t.to_string())
                .unwrap_or_else(|| "unknown".to_string());
            Ok(std::env::temp_dir()
                .join(format!("raftkv-{ppid}-{start}"))
                .join(node_id))
        }
    }
}

/// A node id becomes a path component: it must not escape the data root.
pub fn check_node_id(node_id: &str) -> Result<(), String> {
    if node_id.is_empty()
        || node_id == "."
        || node_id == ".."
        || node_id.contains('/')
        || node_id.contains('\0')
    {
        return Err(format!(
            "node id {node_id:?} cannot name a data directory (empty, `.`, `..`, or contains `/`)"
        ));
    }
    Ok(())
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. The command name (field 2) may itself
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first; starttime is field 22, the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_read_after_the_command_name() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("garbage"), None);
        assert_eq!(start_time("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_parent_has_a_start_time() {
        let ppid = std::os::unix::process::parent_id();
        let stat = std::fs::read_to_string(format!("/proc/{ppid}/stat")).expect("proc readable");
        assert!(start_time(&stat).is_some(), "{stat}");
    }

    #[test]
    fn node_ids_that_escape_the_root_are_refused() {
        for bad in ["", ".", "..", "a/b", "../n1"] {
            assert!(check_node_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_node_id("n1").is_ok());
    }
}
