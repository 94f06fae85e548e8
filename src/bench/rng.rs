//! The bench's own seeded random source (splitmix64).
//!
//! Owns: every random choice the bench makes (workload ops, keys, nemesis targets, grudges), so a
//! `--seed` reproduces the bench's side of a run.
//! Must never: read a clock or global randomness; it is a pure function of its seed.

/// splitmix64: small, fast, and good enough for test-generation choices.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A new generator whose stream is independent of this one's (for per-thread sources).
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng(self.next_u64() ^ salt.wrapping_mul(0xA24B_AED4_963E_E407))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; returns 0 for `n` == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_below_stays_in_range() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..100).map(|_| a.below(5)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.below(5)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|&x| x < 5));
        for v in 0..5 {
            assert!(xs.contains(&v), "value {v} never drawn in 100 draws");
        }
        let mut c = Rng::new(43);
        let zs: Vec<u64> = (0..100).map(|_| c.below(5)).collect();
        assert_ne!(xs, zs);
    }
}
