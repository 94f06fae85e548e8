//! Deterministic cluster simulator (DESIGN §6): the real core and state machine on virtual time.
//!
//! Must never: read the wall clock or any randomness other than the run's seeded source.
