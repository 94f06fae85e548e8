//! Linearizability checker (DESIGN §5).
//!
//! Owns: history parsing (canonical JSON Lines, JSON array, Jepsen/Knossos EDN), the per-key
//! search, verdicts and reports (text, JSON, HTML).
//! Must never: depend on the node, the core or the simulator; hang (every key's search is bounded
//! in time and memory and answers `unknown` with the reason).
//!
//! API other modules rely on (to be filled in by the checker work):
//! - `Event` (canonical event), `Options` (initial value, failed-cas semantics, bounds),
//! - `check(&[Event], &Options) -> Report`, with `Report::verdict()` and a JSON rendering of the
//!   violations for the `verify_linearizability` reply.
