//! Network partitions as Maelstrom/Jepsen grudges.
//!
//! Owns: computing a grudge (for each node, the set of nodes whose messages it drops) for the
//! partition shapes Maelstrom uses: one node isolated, majority/minority, minority third, and
//! majorities ring.
//! Must never: touch processes or the network; it is pure (node indexes in, sets out).

use crate::rng::Rng;
use std::collections::BTreeSet;

/// `grudge[dst]` = the nodes whose messages `dst` drops. Empty sets everywhere = healed.
pub type Grudge = Vec<BTreeSet<usize>>;

/// The partition shapes of Jepsen's combined nemesis, as Maelstrom runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One node cut off from all others.
    One,
    /// A random split into a majority and a minority.
    Majority,
    /// A minority of fewer than a third of the nodes cut off.
    MinorityThird,
    /// Every node sees a majority, but no two nodes see the same majority.
    MajoritiesRing,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::One,
        Shape::Majority,
        Shape::MinorityThird,
        Shape::MajoritiesRing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::Majority => "majority",
            Shape::MinorityThird => "minority-third",
            Shape::MajoritiesRing => "majorities-ring",
        }
    }
}

/// No partition.
pub fn healed(n: usize) -> Grudge {
    vec![BTreeSet::new(); n]
}

/// Each component only hears its own members.
pub fn complete(components: &[Vec<usize>], n: usize) -> Grudge {
    let mut g = healed(n);
    for comp in components {
        for &dst in comp {
            for other in components.iter().filter(|c| *c != comp) {
                g[dst].extend(other.iter().copied());
            }
        }
    }
    g
}

/// The grudge for `shape` over `n` nodes, and the components (or ring) it describes, for logs.
pub fn grudge(shape: Shape, n: usize, rng: &mut Rng) -> (Grudge, Vec<Vec<usize>>) {
    let mut nodes: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut nodes);
    match shape {
        Shape::One => split_at(&nodes, 1.min(n)),
        // Jepsen's bisect: the first half (rounded down) is the minority.
        Shape::Majority => split_at(&nodes, n / 2),
        // Jepsen's util/minority-third: the largest count strictly below a third, at least one.
        Shape::MinorityThird => split_at(&nodes, (n.saturating_sub(1) / 3).max(1).min(n)),
        Shape::MajoritiesRing => ring(&nodes),
    }
}

fn split_at(shuffled: &[usize], k: usize) -> (Grudge, Vec<Vec<usize>>) {
    let (a, b) = shuffled.split_at(k);
    let comps = vec![sorted(a), sorted(b)];
    (complete(&comps, shuffled.len()), comps)
}

fn sorted(v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// Jepsen's majorities-ring (perfect form): on a shuffled ring, each node sees the window of a
/// majority of consecutive nodes centred on itself and drops everyone else. Returns each node's
/// visible set (sorted) as its "component".
fn ring(shuffled: &[usize]) -> (Grudge, Vec<Vec<usize>>) {
    let n = shuffled.len();
    let m = n / 2 + 1;
    let mut g = healed(n);
    let mut views = vec![Vec::new(); n];
    for start in 0..n {
        let window: Vec<usize> = (0..m).map(|j| shuffled[(start + j) % n]).collect();
        let centre = window[m / 2];
        let seen: BTreeSet<usize> = window.iter().copied().collect();
        g[centre] = (0..n).filter(|x| !seen.contains(x)).collect();
        views[centre] = seen.into_iter().collect();
    }
    (g, views)
}

/// Can `dst` hear `src` under `g`?
pub fn hears(g: &Grudge, dst: usize, src: usize) -> bool {
    g.get(dst).is_none_or(|s| !s.contains(&src))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(g: &Grudge, dst: usize) -> BTreeSet<usize> {
        (0..g.len()).filter(|&s| hears(g, dst, s)).collect()
    }

    #[test]
    fn splits_have_maelstrom_sizes_and_are_symmetric() {
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            for (shape, n, small) in [
                (Shape::One, 5, 1),
                (Shape::Majority, 5, 2),
                (Shape::Majority, 6, 3),
                (Shape::MinorityThird, 5, 1),
                (Shape::MinorityThird, 7, 2),
            ] {
                let (g, comps) = grudge(shape, n, &mut rng);
                assert_eq!(comps.len(), 2);
                assert_eq!(comps[0].len(), small, "{shape:?} n={n}");
                assert_eq!(comps[0].len() + comps[1].len(), n);
                for a in 0..n {
                    for b in 0..n {
                        let same = comps.iter().any(|c| c.contains(&a) && c.contains(&b));
                        assert_eq!(hears(&g, a, b), same, "{shape:?} {a}<-{b}");
                        assert_eq!(hears(&g, a, b), hears(&g, b, a), "symmetric");
                    }
                }
            }
        }
    }

    #[test]
    fn majorities_ring_gives_every_node_a_different_majority() {
        for n in [3usize, 5, 7] {
            let mut rng = Rng::new(n as u64);
            let (g, _) = grudge(Shape::MajoritiesRing, n, &mut rng);
            let views: Vec<BTreeSet<usize>> = (0..n).map(|d| visible(&g, d)).collect();
            for (d, v) in views.iter().enumerate() {
                assert_eq!(v.len(), n / 2 + 1, "node {d} sees a bare majority");
                assert!(v.contains(&d), "a node always hears itself");
            }
            let distinct: BTreeSet<&BTreeSet<usize>> = views.iter().collect();
            assert_eq!(distinct.len(), n, "no two nodes share a majority");
            if n == 5 {
                for a in 0..n {
                    for b in 0..n {
                        assert_eq!(hears(&g, a, b), hears(&g, b, a));
                    }
                }
            }
        }
    }

    #[test]
    fn healed_drops_nothing() {
        let g = healed(5);
        assert!((0..5).all(|a| (0..5).all(|b| hears(&g, a, b))));
    }
}
