//! Network faults as Maelstrom/Jepsen grudges, plus a loss rate.
//!
//! Owns: computing a network fault for each partition shape: who drops whose messages (a
//! grudge: for each node, the set of nodes whose messages it drops; one-way cuts are allowed),
//! and what fraction of the remaining node-to-node messages is lost. Maelstrom's shapes (one node
//! isolated, majority/minority, minority third, majorities ring) and the primary cut off, plus
//! Jepsen's bridge, one cut link, a core with spokes, a deaf node, a mute node and flaky links.
//! Also which nodes a fault leaves on the majority side.
//! Must never: touch processes or the network; it is pure (node indexes in, sets out).

use crate::rng::Rng;
use std::collections::BTreeSet;

/// `grudge[dst]` = the nodes whose messages `dst` drops. Empty sets everywhere = healed.
pub type Grudge = Vec<BTreeSet<usize>>;

/// The partition shapes the nemesis can choose from (`--partition-shapes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One random node cut off from all others.
    One,
    /// A random split into a majority and a minority.
    Majority,
    /// A minority of fewer than a third of the nodes cut off.
    MinorityThird,
    /// Every node sees a majority, but no two nodes see the same majority.
    MajoritiesRing,
    /// The primary (the busiest sender: for Raft, the leader) cut off alone.
    Primary,
    /// Jepsen's bridge: two halves that share one node, which hears everyone.
    Bridge,
    /// Only the link between the primary and one other node is cut (both ways).
    Link,
    /// A fully connected core of three; every other node hears only one core node.
    Spokes,
    /// One node (the primary or a random one) hears nothing; its own messages still arrive.
    Deaf,
    /// One node (the primary or a random one) hears everyone; nothing it sends arrives.
    Mute,
    /// Every node-to-node message is lost with the probability `--loss`.
    Flaky,
}

impl Shape {
    /// Every shape, in the order `--help` lists them.
    pub const ALL: [Shape; 11] = [
        Shape::One,
        Shape::Majority,
        Shape::MinorityThird,
        Shape::MajoritiesRing,
        Shape::Primary,
        Shape::Bridge,
        Shape::Link,
        Shape::Spokes,
        Shape::Deaf,
        Shape::Mute,
        Shape::Flaky,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::One => "one",
            Shape::Majority => "majority",
            Shape::MinorityThird => "minority-third",
            Shape::MajoritiesRing => "majorities-ring",
            Shape::Primary => "primary",
            Shape::Bridge => "bridge",
            Shape::Link => "link",
            Shape::Spokes => "spokes",
            Shape::Deaf => "deaf",
            Shape::Mute => "mute",
            Shape::Flaky => "flaky",
        }
    }

    /// The fewest nodes the shape means something on.
    pub fn min_nodes(self) -> usize {
        match self {
            Shape::Spokes => 4,
            Shape::Bridge => 3,
            Shape::One | Shape::Majority | Shape::MinorityThird | Shape::MajoritiesRing => 2,
            Shape::Primary | Shape::Link | Shape::Deaf | Shape::Mute => 2,
            Shape::Flaky => 2,
        }
    }
}

/// One network fault, ready to apply.
#[derive(Clone, Debug, PartialEq)]
pub struct NetFault {
    pub grudge: Grudge,
    /// Fraction of the node-to-node messages the grudge lets through that are lost anyway.
    pub loss: f64,
    /// For logs: the components (each node's view, for the ring and spokes).
    pub components: Vec<Vec<usize>>,
    /// For logs: the nodes the fault centres on (the cut-off side, the bridge, the link's ends,
    /// the spokes, the deaf or mute node); empty when it centres on none.
    pub nodes: Vec<usize>,
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

/// The fault `shape` makes over `n` nodes. `primary` is the busiest sender; `loss` is used by
/// `flaky` only.
pub fn partition(shape: Shape, n: usize, primary: usize, loss: f64, rng: &mut Rng) -> NetFault {
    debug_assert!(primary < n.max(1), "primary {primary} is a node of {n}");
    let mut nodes: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut nodes);
    let (grudge, components, centre) = match shape {
        Shape::One => split_at(&nodes, 1.min(n)),
        // Jepsen's bisect: the first half (rounded down) is the minority.
        Shape::Majority => split_at(&nodes, n / 2),
        // Jepsen's util/minority-third: the largest count strictly below a third, at least one.
        Shape::MinorityThird => split_at(&nodes, (n.saturating_sub(1) / 3).max(1).min(n)),
        Shape::MajoritiesRing => ring(&nodes),
        Shape::Primary => {
            let others: Vec<usize> = (0..n).filter(|&i| i != primary).collect();
            let comps = vec![vec![primary], others];
            (complete(&comps, n), comps, vec![primary])
        }
        Shape::Bridge => bridge(&nodes),
        Shape::Link => link(&nodes, primary),
        Shape::Spokes => spokes(&nodes),
        Shape::Deaf | Shape::Mute => {
            let target = if rng.below(2) == 0 { primary } else { nodes[0] };
            one_way(shape == Shape::Deaf, target, n)
        }
        Shape::Flaky => (healed(n), vec![(0..n).collect()], Vec::new()),
    };
    NetFault {
        grudge,
        loss: if shape == Shape::Flaky { loss } else { 0.0 },
        components,
        nodes: centre,
    }
}

type Made = (Grudge, Vec<Vec<usize>>, Vec<usize>);

fn split_at(shuffled: &[usize], k: usize) -> Made {
    let (a, b) = shuffled.split_at(k);
    let comps = vec![sorted(a), sorted(b)];
    let small = comps[0].clone();
    (complete(&comps, shuffled.len()), comps, small)
}

fn sorted(v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// Jepsen's majorities-ring (perfect form): on a shuffled ring, each node sees the window of a
/// majority of consecutive nodes centred on itself and drops everyone else. Returns each node's
/// visible set (sorted) as its "component".
fn ring(shuffled: &[usize]) -> Made {
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
    (g, views, Vec::new())
}

/// Jepsen's bridge: the shuffled nodes split in two halves that share the middle node; each
/// half hears only itself, the middle node hears both.
fn bridge(shuffled: &[usize]) -> Made {
    let n = shuffled.len();
    let mid = n / 2;
    let left = sorted(&shuffled[..=mid]);
    let right = sorted(&shuffled[mid..]);
    let mut g = healed(n);
    for &a in &left {
        for &b in &right {
            if a != b && a != shuffled[mid] && b != shuffled[mid] {
                g[a].insert(b);
                g[b].insert(a);
            }
        }
    }
    (g, vec![left, right], vec![shuffled[mid]])
}

/// The link between `primary` and one other node is cut both ways; every other link works.
fn link(shuffled: &[usize], primary: usize) -> Made {
    let n = shuffled.len();
    let mut g = healed(n);
    let Some(&other) = shuffled.iter().find(|&&x| x != primary) else {
        return (g, Vec::new(), Vec::new());
    };
    g[primary].insert(other);
    g[other].insert(primary);
    let ends = sorted(&[primary, other]);
    (g, vec![ends.clone()], ends)
}

/// A core of the first three shuffled nodes, fully connected; each other node is a spoke that
/// hears, and is heard by, only its core node (spokes are dealt to the core in turn).
fn spokes(shuffled: &[usize]) -> Made {
    let n = shuffled.len();
    let core = &shuffled[..3.min(n)];
    let mut g = healed(n);
    let mut views: Vec<Vec<usize>> = vec![core.to_vec(); core.len()];
    for (k, &spoke) in shuffled.iter().enumerate().skip(core.len()) {
        let hub_index = (k - core.len()) % core.len();
        let hub = core[hub_index];
        for x in (0..n).filter(|&x| x != spoke && x != hub) {
            g[spoke].insert(x);
            g[x].insert(spoke);
        }
        views[hub_index].push(spoke);
    }
    let views = views.iter().map(|v| sorted(v)).collect();
    (g, views, sorted(&shuffled[core.len()..]))
}

/// `deaf`: `target` drops every message; `mute`: everyone drops `target`'s messages.
fn one_way(deaf: bool, target: usize, n: usize) -> Made {
    let mut g = healed(n);
    for x in (0..n).filter(|&x| x != target) {
        if deaf {
            g[target].insert(x);
        } else {
            g[x].insert(target);
        }
    }
    let others: Vec<usize> = (0..n).filter(|&x| x != target).collect();
    (g, vec![vec![target], others], vec![target])
}

/// Can `dst` hear `src` under `g`?
pub fn hears(g: &Grudge, dst: usize, src: usize) -> bool {
    g.get(dst).is_none_or(|s| !s.contains(&src))
}

/// The nodes on the majority side of `g`: those with a two-way link (counting themselves) to
/// more than half the cluster. These are the nodes that can still form a Raft quorum with the
/// nodes they talk to, so a working cluster should serve through them.
pub fn majority_side(g: &Grudge) -> Vec<usize> {
    let n = g.len();
    (0..n)
        .filter(|&a| (0..n).filter(|&b| hears(g, a, b) && hears(g, b, a)).count() > n / 2)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(g: &Grudge, dst: usize) -> BTreeSet<usize> {
        (0..g.len()).filter(|&s| hears(g, dst, s)).collect()
    }

    /// Every ordered pair (dst, src) of distinct nodes where `dst` does not hear `src`.
    fn cut_pairs(g: &Grudge) -> BTreeSet<(usize, usize)> {
        let n = g.len();
        (0..n)
            .flat_map(|d| (0..n).map(move |s| (d, s)))
            .filter(|&(d, s)| d != s && !hears(g, d, s))
            .collect()
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
                (Shape::Primary, 5, 1),
            ] {
                let f = partition(shape, n, 2, 0.5, &mut rng);
                let (g, comps) = (&f.grudge, &f.components);
                assert_eq!(comps.len(), 2);
                assert_eq!(comps[0].len(), small, "{shape:?} n={n}");
                assert_eq!(comps[0].len() + comps[1].len(), n);
                assert_eq!(f.nodes, comps[0], "the cut-off side is named");
                assert_eq!(f.loss, 0.0, "only flaky loses messages");
                for a in 0..n {
                    for b in 0..n {
                        let same = comps.iter().any(|c| c.contains(&a) && c.contains(&b));
                        assert_eq!(hears(g, a, b), same, "{shape:?} {a}<-{b}");
                        assert_eq!(hears(g, a, b), hears(g, b, a), "symmetric");
                    }
                }
            }
            let f = partition(Shape::Primary, 5, 2, 0.0, &mut rng);
            assert_eq!(f.nodes, vec![2], "the primary is the one cut off");
        }
    }

    #[test]
    fn majorities_ring_gives_every_node_a_different_majority() {
        for n in [3usize, 5, 7] {
            let mut rng = Rng::new(n as u64);
            let g = partition(Shape::MajoritiesRing, n, 0, 0.0, &mut rng).grudge;
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
                assert_eq!(majority_side(&g), vec![0, 1, 2, 3, 4]);
            }
        }
    }

    #[test]
    fn healed_drops_nothing() {
        let g = healed(5);
        assert!((0..5).all(|a| (0..5).all(|b| hears(&g, a, b))));
        assert_eq!(majority_side(&g), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn bridge_halves_share_one_node_that_hears_everyone() {
        for (n, seed) in [(3, 1), (5, 2), (5, 3), (7, 4)] {
            let f = partition(Shape::Bridge, n, 0, 0.0, &mut Rng::new(seed));
            let g = &f.grudge;
            let [left, right] = [&f.components[0], &f.components[1]];
            let shared: Vec<usize> = left.iter().filter(|x| right.contains(x)).copied().collect();
            assert_eq!(shared, f.nodes, "one node in both halves, named");
            assert_eq!(left.len() + right.len(), n + 1);
            let bridge = shared[0];
            assert_eq!(visible(g, bridge).len(), n, "the bridge hears everyone");
            assert!(
                (0..n).all(|x| hears(g, x, bridge)),
                "everyone hears the bridge"
            );
            for &a in left.iter().filter(|&&a| a != bridge) {
                for &b in right.iter().filter(|&&b| b != bridge) {
                    assert!(!hears(g, a, b) && !hears(g, b, a), "{a} and {b} are cut");
                }
                assert!(left.iter().all(|&x| hears(g, a, x)), "a half hears itself");
            }
            assert_eq!(majority_side(g).len(), n, "both halves are majorities");
        }
    }

    #[test]
    fn link_cuts_only_the_link_between_the_primary_and_one_other() {
        for seed in 0..10 {
            let primary = (seed % 5) as usize;
            let f = partition(Shape::Link, 5, primary, 0.0, &mut Rng::new(seed));
            let cut = cut_pairs(&f.grudge);
            assert_eq!(cut.len(), 2, "one link, both ways: {cut:?}");
            let other = f
                .nodes
                .iter()
                .copied()
                .find(|&x| x != primary)
                .expect("other end");
            assert!(cut.contains(&(primary, other)) && cut.contains(&(other, primary)));
            assert_eq!(majority_side(&f.grudge).len(), 5);
        }
    }

    #[test]
    fn spokes_hear_only_their_core_node() {
        for (n, seed) in [(4, 1), (5, 2), (7, 3)] {
            let f = partition(Shape::Spokes, n, 0, 0.0, &mut Rng::new(seed));
            let g = &f.grudge;
            let spokes = &f.nodes;
            assert_eq!(spokes.len(), n - 3);
            let core: Vec<usize> = (0..n).filter(|x| !spokes.contains(x)).collect();
            for &a in &core {
                assert!(
                    core.iter().all(|&b| hears(g, a, b)),
                    "the core is connected"
                );
            }
            for &s in spokes {
                let heard = visible(g, s);
                assert_eq!(heard.len(), 2, "spoke {s} hears itself and one node");
                let hub = *heard.iter().find(|&&x| x != s).expect("a hub");
                assert!(core.contains(&hub), "its hub is a core node");
                let heard_by: Vec<usize> = (0..n).filter(|&x| x != s && hears(g, x, s)).collect();
                assert_eq!(heard_by, vec![hub], "only its hub hears spoke {s}");
            }
            let side = majority_side(g);
            assert!(
                spokes.iter().all(|s| !side.contains(s)),
                "spokes are cut off"
            );
        }
    }

    #[test]
    fn deaf_hears_nothing_and_mute_is_heard_by_no_one() {
        let mut targets = BTreeSet::new();
        for seed in 0..20 {
            let deaf = partition(Shape::Deaf, 5, 3, 0.0, &mut Rng::new(seed));
            let d = deaf.nodes[0];
            targets.insert(d);
            assert_eq!(
                visible(&deaf.grudge, d),
                BTreeSet::from([d]),
                "deaf {d} hears only itself"
            );
            assert!(
                (0..5).all(|x| hears(&deaf.grudge, x, d)),
                "everyone hears {d}"
            );
            assert_eq!(cut_pairs(&deaf.grudge).len(), 4);
            assert_eq!(majority_side(&deaf.grudge).len(), 4);
            let mute = partition(Shape::Mute, 5, 3, 0.0, &mut Rng::new(seed));
            let m = mute.nodes[0];
            assert_eq!(visible(&mute.grudge, m).len(), 5, "mute {m} hears everyone");
            assert!((0..5)
                .filter(|&x| x != m)
                .all(|x| !hears(&mute.grudge, x, m)));
            assert_eq!(cut_pairs(&mute.grudge).len(), 4);
        }
        assert!(targets.contains(&3), "the primary is a target");
        assert!(
            targets.len() > 1,
            "random nodes are targets too: {targets:?}"
        );
    }

    #[test]
    fn flaky_cuts_nothing_and_carries_the_loss_rate() {
        let f = partition(Shape::Flaky, 5, 0, 0.2, &mut Rng::new(1));
        assert_eq!(f.grudge, healed(5));
        assert_eq!(f.loss, 0.2);
        assert!(f.nodes.is_empty());
    }
}
