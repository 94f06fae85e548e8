//! Offline inspection of a node's data directory (DESIGN §8).
//!
//! Must never: change a byte of the directory it inspects.
