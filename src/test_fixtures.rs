//! Test-only access to the project's fixtures, shared by the unit tests of several modules.
//!
//! Owns: reading `fixtures/` for tests.
//! Must never: be compiled outside tests.

use serde_json::{Map, Value};
use std::path::PathBuf;

/// Every `partition_test` request body in the seed cases (`fixtures/seed/*.in.jsonl`), with the
/// file it came from.
pub fn seed_partition_requests() -> Vec<(PathBuf, Map<String, Value>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/seed");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".in.jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let body = v["body"].as_object().unwrap();
            if body["type"] == "partition_test" {
                out.push((path.clone(), body.clone()));
            }
        }
    }
    out
}
