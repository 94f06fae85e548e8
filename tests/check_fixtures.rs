//! Every reference history in fixtures/histories gets the verdict its manifest gives, under the
//! semantics the manifest names (Knossos: initial 0, EDN; etcd: initial absent, a failed cas
//! observed a different value).

use raftkv::check::{check, parse_auto, Options, Verdict};
use serde_json::Value;
use std::path::Path;
use std::time::Instant;

fn manifest(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest readable");
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn options_for(m: &Value) -> Options {
    let sem = &m["semantics"];
    let mut opts = Options::default();
    let init = &sem["initial_value"];
    opts.initial = if init.is_null() {
        None
    } else {
        Some(init.clone())
    };
    opts.failed_cas_observed = sem["failed_cas"]
        .as_str()
        .is_some_and(|s| s.starts_with("observed"));
    opts
}

fn run_set(name: &str) -> (usize, f64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/histories")
        .join(name);
    let m = manifest(&dir);
    let opts = options_for(&m);
    let list = m["histories"].as_array().expect("histories listed");
    assert!(!list.is_empty());
    let mut total = 0.0;
    for h in list {
        let file = h["file"].as_str().expect("file name");
        let want = h["linearizable"].as_bool().expect("verdict");
        let text = std::fs::read_to_string(dir.join(file)).expect("history readable");
        let events = parse_auto(&text, file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let t = Instant::now();
        let report = check(&events, &opts);
        total += t.elapsed().as_secs_f64();
        let expected = if want {
            Verdict::Linearizable
        } else {
            Verdict::NotLinearizable
        };
        assert_eq!(
            report.verdict,
            expected,
            "{name}/{file}\n{}",
            report.to_text()
        );
        if !want {
            let v = &report.violations[0];
            assert!(!v.window.is_empty(), "{file}: a violation names a window");
        }
    }
    (list.len(), total)
}

#[test]
fn knossos_histories_get_their_manifest_verdicts() {
    let (n, secs) = run_set("knossos");
    assert_eq!(n, 44);
    eprintln!("knossos: {n} histories checked in {:.3} s", secs);
}

#[test]
fn etcd_histories_get_their_manifest_verdicts() {
    let (n, secs) = run_set("etcd");
    assert_eq!(n, 50);
    eprintln!("etcd: {n} histories checked in {:.3} s", secs);
}

#[test]
fn etcd_linearizable_histories_stay_accepted_without_failed_cas_semantics() {
    // Under the default semantics (a failed cas did not happen) the checker must still accept
    // every history the manifest calls linearizable: dropping constraints never rejects more.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/histories/etcd");
    let m = manifest(&dir);
    let mut opts = options_for(&m);
    opts.failed_cas_observed = false;
    for h in m["histories"].as_array().expect("list") {
        if h["linearizable"] == Value::Bool(true) {
            let file = h["file"].as_str().expect("file");
            let text = std::fs::read_to_string(dir.join(file)).expect("readable");
            let events = parse_auto(&text, file).expect("parses");
            assert_eq!(
                check(&events, &opts).verdict,
                Verdict::Linearizable,
                "{file}"
            );
        }
    }
}
