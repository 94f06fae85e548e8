//! The simulated network's rules, apart from its threads: how long a message is delayed, in
//! which order delayed messages come out, and whether a node-to-node message is delivered under
//! the current network fault.
//!
//! Owns: the latency distributions (`--latency-dist`), the delay queue (messages leave in order
//! of their due time, so a constant delay keeps each link first-in first-out and a random delay
//! reorders), and the fate of one message under a grudge and a loss rate.
//! Must never: touch processes, pipes or clocks other than the instants it is given; it is pure
//! but for the random draws it is handed.

use super::grudge::{self, NetFault};
use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// How message delays are drawn around the mean `--latency`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyDist {
    /// Every message takes exactly the mean: no reordering.
    Constant,
    /// Uniform in [0, 2 × mean): messages on one link overtake each other.
    Uniform,
    /// Exponential with the mean: mostly short, a long tail, reordering.
    Exponential,
}

impl LatencyDist {
    pub fn parse(name: &str) -> Option<LatencyDist> {
        match name {
            "constant" => Some(LatencyDist::Constant),
            "uniform" => Some(LatencyDist::Uniform),
            "exponential" => Some(LatencyDist::Exponential),
            _ => None,
        }
    }

    /// One message's delay.
    pub fn delay(self, mean: Duration, rng: &mut Rng) -> Duration {
        match self {
            LatencyDist::Constant => mean,
            LatencyDist::Uniform => mean.mul_f64(2.0 * rng.unit()),
            // Inverse transform; 1 - unit() is in (0, 1], so the log is finite. Capped at 20
            // means so one draw cannot hold a message for the rest of the run.
            LatencyDist::Exponential => mean.mul_f64((-(1.0 - rng.unit()).ln()).min(20.0)),
        }
    }
}

/// What happens to one node-to-node message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    /// The grudge says the destination does not hear the source.
    Partitioned,
    /// The link let it through, but it was lost (`flaky`).
    Lost,
}

/// The fate of a message from `src` to `dst` under `fault`; `roll` is a uniform draw in [0, 1).
pub fn fate(fault: &NetFault, dst: usize, src: usize, roll: f64) -> Fate {
    if !grudge::hears(&fault.grudge, dst, src) {
        Fate::Partitioned
    } else if roll < fault.loss {
        Fate::Lost
    } else {
        Fate::Deliver
    }
}

/// Messages held until their due time. Ties leave in the order they came in.
pub struct DelayQueue<T> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    held: std::collections::HashMap<u64, T>,
    seq: u64,
}

impl<T> Default for DelayQueue<T> {
    fn default() -> Self {
        DelayQueue {
            heap: BinaryHeap::new(),
            held: std::collections::HashMap::new(),
            seq: 0,
        }
    }
}

impl<T> DelayQueue<T> {
    pub fn push(&mut self, due: Instant, item: T) {
        self.seq += 1;
        self.held.insert(self.seq, item);
        self.heap.push(Reverse((due, self.seq)));
    }

    /// The earliest due time held, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest item due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        let Reverse((at, seq)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.held.remove(&seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::grudge::{healed, partition, Shape};

    /// Sends 200 messages 1 ms apart with a mean delay of 10 ms; returns the send order in which
    /// they come out of the queue.
    fn arrival_order(dist: LatencyDist, seed: u64) -> Vec<usize> {
        let mut rng = Rng::new(seed);
        let t0 = Instant::now();
        let mut q = DelayQueue::default();
        for i in 0..200usize {
            let sent = t0 + Duration::from_millis(i as u64);
            q.push(sent + dist.delay(Duration::from_millis(10), &mut rng), i);
        }
        let end = t0 + Duration::from_secs(10);
        std::iter::from_fn(|| q.pop_due(end)).collect()
    }

    fn inversions(order: &[usize]) -> usize {
        order.windows(2).filter(|w| w[0] > w[1]).count()
    }

    #[test]
    fn constant_delay_keeps_order_and_random_delays_reorder() {
        let constant = arrival_order(LatencyDist::Constant, 1);
        assert_eq!(
            constant,
            (0..200).collect::<Vec<_>>(),
            "first in, first out"
        );
        for dist in [LatencyDist::Uniform, LatencyDist::Exponential] {
            let order = arrival_order(dist, 1);
            assert_eq!(order.len(), 200, "nothing lost");
            assert!(
                inversions(&order) > 20,
                "{dist:?} reorders: {}",
                inversions(&order)
            );
        }
    }

    #[test]
    fn delays_have_the_mean_and_the_range_of_their_distribution() {
        let mean = Duration::from_millis(10);
        let mut rng = Rng::new(5);
        for dist in [
            LatencyDist::Constant,
            LatencyDist::Uniform,
            LatencyDist::Exponential,
        ] {
            let draws: Vec<f64> = (0..20_000)
                .map(|_| dist.delay(mean, &mut rng).as_secs_f64() * 1e3)
                .collect();
            let avg = draws.iter().sum::<f64>() / draws.len() as f64;
            assert!((avg - 10.0).abs() < 0.3, "{dist:?} mean {avg}");
            let max = draws.iter().copied().fold(0.0, f64::max);
            match dist {
                LatencyDist::Constant => assert_eq!(max, 10.0),
                LatencyDist::Uniform => assert!(max < 20.0 && max > 19.0, "{max}"),
                LatencyDist::Exponential => assert!(max > 50.0, "a long tail: {max}"),
            }
        }
        assert_eq!(LatencyDist::parse("uniform"), Some(LatencyDist::Uniform));
        assert_eq!(LatencyDist::parse("gamma"), None);
    }

    #[test]
    fn a_queue_holds_items_until_they_are_due() {
        let t0 = Instant::now();
        let mut q = DelayQueue::default();
        q.push(t0 + Duration::from_millis(5), "late");
        q.push(t0 + Duration::from_millis(1), "early");
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.next_due(), Some(t0 + Duration::from_millis(1)));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(2)), Some("early"));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(2)), None);
        assert_eq!(q.pop_due(t0 + Duration::from_millis(5)), Some("late"));
    }

    /// Which (dst, src) pairs get a message through, over many rolls.
    fn delivered_fraction(f: &NetFault, dst: usize, src: usize) -> f64 {
        let mut rng = Rng::new(9);
        let ok = (0..10_000)
            .filter(|_| fate(f, dst, src, rng.unit()) == Fate::Deliver)
            .count();
        ok as f64 / 10_000.0
    }

    #[test]
    fn flaky_loses_the_loss_fraction_and_other_shapes_lose_nothing_they_let_through() {
        let flaky = partition(Shape::Flaky, 5, 0, 0.2, &mut Rng::new(1));
        for (dst, src) in [(0, 1), (3, 4), (4, 0)] {
            let got = delivered_fraction(&flaky, dst, src);
            assert!((got - 0.8).abs() < 0.02, "{dst}<-{src}: {got}");
        }
        let deaf = partition(Shape::Deaf, 5, 2, 0.2, &mut Rng::new(1));
        let d = deaf.nodes[0];
        let other = (d + 1) % 5;
        assert_eq!(
            fate(&deaf, d, other, 0.99),
            Fate::Partitioned,
            "nothing reaches {d}"
        );
        assert_eq!(
            delivered_fraction(&deaf, other, d),
            1.0,
            "{d}'s messages all arrive"
        );
        let healthy = NetFault {
            grudge: healed(3),
            loss: 0.0,
            components: Vec::new(),
            nodes: Vec::new(),
        };
        assert_eq!(delivered_fraction(&healthy, 0, 1), 1.0);
    }
}
