//! Build script: records the git revision the binary is built from (for `raftkv --version`).
//!
//! Owns: the `RAFTKV_GIT_REV` compile-time variable. Must never fail the build: outside a git
//! checkout, or without git, the variable is left empty and the version is the crate's alone.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Re-run when HEAD moves (a commit, a checkout); only paths that exist, or cargo would
    // re-run this script on every build.
    for name in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    let rev = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    println!("cargo:rustc-env=RAFTKV_GIT_REV={rev}");
}
