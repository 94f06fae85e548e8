//! Property tests with the checker's own seeded generator: histories of a simulated linearizable
//! store are always accepted; the same histories with one read altered to a value it cannot have
//! (a value first produced only after the read returned) are always rejected, on that key.
//! `RAFTKV_CHECK_PROP_CASES=N` runs N seeds instead of the default 300.

use raftkv::check::gen::{
    corrupt_read, corrupt_read_to_absent, drop_info_completions, generate, GenConfig,
};
use raftkv::check::{check, parse_jsonl, Options, Verdict};
use raftkv::rng::Rng;

fn cases() -> u64 {
    std::env::var("RAFTKV_CHECK_PROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

fn config(seed: u64) -> GenConfig {
    let mut r = Rng::new(seed ^ 0xc0ffee);
    GenConfig {
        seed,
        keys: 1 + r.below(3),
        clients: 2 + r.below(8),
        ops: 20 + r.below(200) as usize,
        reads: 0.3 + r.below(5) as f64 / 10.0,
        indeterminate: r.below(4) as f64 / 10.0,
        values: 2 + r.below(5),
    }
}

#[test]
fn generated_linearizable_histories_are_accepted_and_corrupted_ones_rejected() {
    let n = cases();
    let mut corrupted = 0;
    let mut lost_writes = 0;
    for seed in 0..n {
        let cfg = config(seed);
        let mut events = generate(&cfg);
        drop_info_completions(&mut events, (seed % 3) as usize);
        let opts = Options::default();
        let r = check(&events, &opts);
        assert_eq!(
            r.verdict,
            Verdict::Linearizable,
            "seed {seed} {cfg:?}\n{}",
            r.to_text()
        );
        // The generator's failed cas really saw another value.
        let observed = Options {
            failed_cas_observed: true,
            ..Options::default()
        };
        assert_eq!(check(&events, &observed).verdict, Verdict::Linearizable);

        let mut bad = events.clone();
        let mut rng = Rng::new(seed);
        if let Some(pos) = corrupt_read(&mut bad, &mut rng) {
            corrupted += 1;
            let r = check(&bad, &opts);
            assert_eq!(
                r.verdict,
                Verdict::NotLinearizable,
                "seed {seed}: read at {pos} altered to {}",
                bad[pos].value
            );
            assert_eq!(r.violations.len(), 1, "seed {seed}");
            assert_eq!(r.violations[0].key, bad[pos].key, "seed {seed}");
        }
        // A lost write late in the history.
        let mut lost = events.clone();
        if let Some(pos) = corrupt_read_to_absent(&mut lost, events.len() * 3 / 4) {
            let r = check(&lost, &opts);
            assert_eq!(
                r.verdict,
                Verdict::NotLinearizable,
                "seed {seed}: read at {pos} altered to absent"
            );
            assert_eq!(r.violations[0].key, lost[pos].key, "seed {seed}");
            lost_writes += 1;
        }
    }
    assert!(
        corrupted * 2 > n,
        "only {corrupted} of {n} histories had a read to corrupt"
    );
    assert!(lost_writes * 2 > n, "only {lost_writes} of {n} lost writes");
}

#[test]
fn canonical_lines_round_trip() {
    for seed in 0..20 {
        let events = generate(&config(seed));
        let text: String = events.iter().map(|e| e.to_json_line() + "\n").collect();
        assert_eq!(parse_jsonl(&text).expect("parses"), events);
    }
}

#[test]
fn random_text_never_panics_the_parsers() {
    use raftkv::check::{parse_auto, parse_edn};
    let alphabet: Vec<char> =
        "[](){}#_:;\"\\ ,\n-0123456789.eNMabc:process:type:invoke:ok:f:read:value nil"
            .chars()
            .collect();
    let mut rng = Rng::new(7);
    let seed_text = "[{:process 0, :type :invoke, :f :cas, :value [1 [2 3]]}\n \
                     {:process 0, :type :ok, :f :cas, :value [1 [2 3]]}]";
    for i in 0..3000 {
        let text: String = if i % 2 == 0 {
            (0..rng.below(80))
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect()
        } else {
            // Mutate a valid history: delete or replace a few characters.
            let mut chars: Vec<char> = seed_text.chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(chars.len() as u64) as usize;
                if rng.chance(0.5) {
                    chars.remove(at);
                } else {
                    chars[at] = alphabet[rng.below(alphabet.len() as u64) as usize];
                }
            }
            chars.into_iter().collect()
        };
        let parsed = parse_edn(&text);
        if let Ok(events) = parsed {
            // Whatever parses can be checked without panicking.
            let _ = check(&events, &Options::default());
        }
        let _ = parse_auto(&text, "x");
    }
}

#[test]
fn verdicts_do_not_depend_on_the_thread_count() {
    for seed in 0..30 {
        let cfg = GenConfig {
            seed,
            keys: 6,
            clients: 8,
            ops: 400,
            indeterminate: 0.1,
            ..GenConfig::default()
        };
        let mut events = generate(&cfg);
        corrupt_read(&mut events, &mut Rng::new(seed));
        let one = check(
            &events,
            &Options {
                threads: 1,
                ..Options::default()
            },
        );
        let four = check(
            &events,
            &Options {
                threads: 4,
                ..Options::default()
            },
        );
        assert_eq!(one.verdict, four.verdict, "seed {seed}");
        assert_eq!(one.violations, four.violations, "seed {seed}");
        assert_eq!(one.keys.len(), four.keys.len(), "seed {seed}");
    }
}

#[test]
fn pinned_seed_that_needs_dominance_the_right_way_round() {
    // Found by a 3000-seed run against a variant that pruned a configuration when an explored
    // one had used *more* unknown operations (unsound): this linearizable history was rejected.
    let mut events = generate(&config(699));
    drop_info_completions(&mut events, 0);
    let r = check(&events, &Options::default());
    assert_eq!(r.verdict, Verdict::Linearizable, "{}", r.to_text());
}
