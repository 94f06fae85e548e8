//! The checker's verdict on a simulated history.
//!
//! Owns: handing the run's history (the checker's own event type) to `crate::check` and turning its
//! report into a verdict the simulator prints.
//! Must never: judge a history itself; the checker is the only judge of linearizability.

use crate::check::{self, Event, Options};

/// What the checker said about one history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// Not linearizable: the checker's explanation, and the history index of the first
    /// operation it could not place (its completion, else its invoke).
    Violation {
        text: String,
        event: Option<u64>,
    },
    /// The checker gave up (time or memory bound) or could not read the history.
    Unknown(String),
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        *self == Verdict::Linearizable
    }
}

/// Checks a history of canonical events (one thread: the simulator runs seeds in parallel).
pub fn check_history(events: &[Event]) -> Verdict {
    let opts = Options {
        threads: 1,
        ..Options::default()
    };
    let report = check::check(events, &opts);
    match report.verdict {
        check::Verdict::Linearizable => Verdict::Linearizable,
        check::Verdict::NotLinearizable => {
            let event = report
                .violations
                .first()
                .map(|v| v.op.complete_index.unwrap_or(v.op.invoke_index));
            let mut text = report.violations_json().to_string();
            if text.len() > 2000 {
                let mut cut = 2000;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str("...");
            }
            Verdict::Violation { text, event }
        }
        check::Verdict::Unknown { reason } => Verdict::Unknown(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{History, Op};
    use serde_json::Value;

    #[test]
    fn stale_read_is_a_violation_and_a_fresh_one_is_not() {
        let mut h = History::new();
        h.invoke(0, 0, Op::Write, 1, 3).ok(1, 0, Op::Write, 1, 3);
        h.invoke(2, 1, Op::Read, 1, Value::Null)
            .ok(3, 1, Op::Read, 1, 3);
        assert_eq!(check_history(&h.events), Verdict::Linearizable);
        h.events[3].value = Value::Null;
        assert!(matches!(
            check_history(&h.events),
            Verdict::Violation { event: Some(3), .. }
        ));
    }
}
