//! The crate's one seeded random source: splitmix64.
//!
//! Owns: turning one `u64` seed into a reproducible stream of numbers, and the few ways the
//! crate draws from it (a bounded integer, a probability, a pick, a shuffle, an independent
//! fork). The consensus core's election jitter, the simulator's faults and workload, the bench's
//! workload and nemeses, and the checker's history generator all draw from this type, so one
//! seed replays a run exactly.
//! Must never: read the clock, the OS entropy pool or any global state; the stream is a pure
//! function of the seed.
//!
//! splitmix64 (Steele, Lea and Flood, 2014) keeps one word of state, passes BigCrush, and is
//! plenty for test generation and timeout jitter; it is not a cryptographic generator.

/// Added to the state on every draw (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Multiplier that spreads a salt over the state of a forked generator.
const SALT_SPREAD: u64 = 0xA24B_AED4_963E_E407;

/// A small, fast, reproducible PRNG (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The generator whose stream is a pure function of `seed`.
    pub const fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in `0..n` (0 when `n == 0`), by multiply-shift (no modulo bias worth measuring).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..=hi` (`lo` when `hi <= lo`).
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (never for `p <= 0`, always for `p >= 1`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One of `items`, uniformly; `None` when it is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        items.get(self.below(items.len() as u64) as usize)
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A new generator whose stream is independent of this one's, distinguished by `salt`
    /// (for per-thread or per-node sources drawn from one seed).
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng::new(self.next_u64() ^ salt.wrapping_mul(SALT_SPREAD))
    }
}

/// splitmix64's output function: a bijection of `u64` that scatters nearby inputs (also a good
/// hash of one word).
pub const fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_splitmix64_outputs() {
        // Reference values of splitmix64 seeded with 1234567 (from the published C code).
        let mut r = Rng::new(1234567);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(
            first,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423
            ]
        );
    }

    #[test]
    fn same_seed_same_stream_and_different_seeds_differ() {
        let draw = |seed| {
            let mut r = Rng::new(seed);
            (0..100).map(|_| r.next_u64()).collect::<Vec<u64>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(7);
        let mut seen = [0u32; 6];
        for _ in 0..6000 {
            let x = r.below(6);
            assert!(x < 6);
            seen[x as usize] += 1;
        }
        // Every bucket near 1000 (loose bound: a broken generator lands far outside it).
        for n in seen {
            assert!((800..1200).contains(&n), "bucket counts {seen:?}");
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.between(5, 5), 5);
        assert_eq!(r.between(9, 3), 9);
        assert!((0..100).all(|_| (3..=9).contains(&r.between(3, 9))));
    }

    #[test]
    fn chance_matches_probability_roughly() {
        let mut r = Rng::new(1);
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2200..2800).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
    }

    #[test]
    fn shuffle_permutes_and_forks_differ() {
        let mut r = Rng::new(3);
        let mut v: Vec<u32> = (0..20).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..20).collect::<Vec<u32>>());
        v.sort_unstable();
        assert_eq!(v, (0..20).collect::<Vec<u32>>());
        let mut base = Rng::new(9);
        let (mut a, mut b) = (base.clone().fork(1), base.fork(2));
        assert_ne!(a.next_u64(), b.next_u64());
        assert_eq!(r.pick::<u8>(&[]), None);
        assert_eq!(r.pick(&[5]), Some(&5));
    }
}
