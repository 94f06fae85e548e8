//! Ctrl-C and SIGTERM during `raftkv test`.
//!
//! Owns: the SIGINT / SIGTERM handlers of a bench run. The first signal only records itself; the
//! run sees it at its next look, stops its clients and nemesis, stops the node processes, and
//! keeps the store directory marked incomplete. A second signal ends the process at once.
//! Must never: do anything in the handler beyond what is async-signal-safe (an atomic store,
//! `_exit`).

use std::sync::atomic::{AtomicI32, Ordering};

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if RECEIVED
        .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handlers for SIGINT and SIGTERM. Returns an error naming the signal it could not
/// handle.
pub fn install() -> Result<(), String> {
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        // SAFETY: a zeroed sigaction is a valid value to fill in; the handler only does
        // async-signal-safe work.
        let ok = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut()) == 0
        };
        if !ok {
            return Err(format!(
                "cannot handle {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The signal that asked the run to stop, if one did.
pub fn requested() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// `SIGINT` or `SIGTERM`, for the record.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
