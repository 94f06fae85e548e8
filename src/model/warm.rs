//! Warm starts (`--from`): the state a search starts from, reached by driving the real cluster
//! through a fixed, fault-free schedule of the model's own actions.
//!
//! Owns: the schedules (`WarmStart`), playing one from the empty cluster, and naming its actions for
//! the trace.
//! Must never: make a state by hand (every step is an action the empty cluster's successors
//! offer, taken through `super::step` with every property checked), or spend the search's
//! budgets (the warm-up is not part of any path the search counts: its actions are fault-free
//! and the budgets are those of the settings when the search starts).

use super::actions::Action;
use super::cluster::Cluster;
use super::{step, Settings};
use crate::raft::{NodeId, Role};

/// Where a search starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WarmStart {
    /// The empty cluster: every node empty, in term 0.
    #[default]
    Empty,
    /// n1's timer fires, then every message in flight is delivered (the first in the network's
    /// order each time) until none is left: n1 leads term 1 and its no-op is committed and
    /// applied on every node.
    Elected,
    /// `Elected`, then a client writes at n1 and every message is delivered until none is left:
    /// the write is committed, applied and answered on every node.
    Committed,
}

impl WarmStart {
    pub const NAMES: [(WarmStart, &'static str); 3] = [
        (WarmStart::Empty, "empty"),
        (WarmStart::Elected, "elected"),
        (WarmStart::Committed, "committed"),
    ];

    pub fn name(self) -> &'static str {
        WarmStart::NAMES
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("empty", |(_, n)| n)
    }

    pub fn parse(text: &str) -> Result<WarmStart, String> {
        WarmStart::NAMES
            .iter()
            .find(|(_, n)| *n == text)
            .map(|(f, _)| *f)
            .ok_or_else(|| {
                let known: Vec<&str> = WarmStart::NAMES.iter().map(|(_, n)| *n).collect();
                format!("unknown start `{text}` (known: {})", known.join(", "))
            })
    }
}

/// The first leader of a warm start.
const FIRST_LEADER: NodeId = 1;
/// More deliveries than any fault-free round of three to five nodes needs.
const MAX_WARM_STEPS: usize = 200;

/// The state the search starts from, and the warm-up actions that led there from the empty
/// cluster (none for `WarmStart::Empty`).
pub fn start(settings: &Settings) -> Result<(Cluster, Vec<Action>), String> {
    let mut warm = Warm {
        cluster: Cluster::new(settings)?,
        played: Vec::new(),
        settings,
    };
    if settings.from == WarmStart::Empty {
        return Ok((warm.cluster, warm.played));
    }
    warm.take(Action::Timer(FIRST_LEADER))?;
    warm.deliver_all()?;
    if settings.from == WarmStart::Committed {
        warm.take(Action::Write(FIRST_LEADER))?;
        warm.deliver_all()?;
    }
    warm.check_settled()?;
    let mut cluster = warm.cluster;
    cluster.budgets = settings.budgets;
    if settings.merge {
        super::merge::merge(&mut cluster, settings);
    }
    Ok((cluster, warm.played))
}

struct Warm<'a> {
    cluster: Cluster,
    played: Vec<Action>,
    settings: &'a Settings,
}

impl Warm<'_> {
    /// Takes `action`, which must be one the state offers, through the model's own step (with
    /// the warm-up's budgets unbounded: it spends none of the search's).
    fn take(&mut self, action: Action) -> Result<(), String> {
        let mut unbounded = self.settings.clone();
        for b in super::Budget::ALL {
            unbounded.budgets.set(b, None);
        }
        self.cluster.budgets = unbounded.budgets;
        let mut offered = Vec::new();
        self.cluster.actions(&unbounded, &mut offered);
        if !offered.contains(&action) {
            return Err(format!(
                "warm start {}: {} is not offered after {} actions",
                self.settings.from.name(),
                action.describe(),
                self.played.len()
            ));
        }
        self.cluster = step(&self.cluster, &action, &unbounded);
        self.played.push(action);
        if let Some(v) = &self.cluster.violation {
            return Err(format!(
                "warm start {} broke `{}`: {}",
                self.settings.from.name(),
                v.property,
                v.detail
            ));
        }
        Ok(())
    }

    /// Delivers the first message in flight until none is left.
    fn deliver_all(&mut self) -> Result<(), String> {
        while let Some(m) = self.cluster.network.first().cloned() {
            if self.played.len() >= MAX_WARM_STEPS {
                return Err(format!(
                    "warm start {}: messages still in flight after {MAX_WARM_STEPS} actions",
                    self.settings.from.name()
                ));
            }
            self.take(Action::Deliver(m))?;
        }
        Ok(())
    }

    /// The schedule ended where its doc says: n1 leads, nothing is in flight, and every node
    /// holds, has committed and has applied n1's whole log.
    fn check_settled(&self) -> Result<(), String> {
        let c = &self.cluster;
        let leader = c.node(FIRST_LEADER).raft().status();
        let settled = leader.role == Role::Leader
            && c.network.is_empty()
            && c.nodes.iter().all(|n| {
                let st = n.raft().status();
                st.commit == leader.last_index
                    && st.applied == leader.last_index
                    && n.raft().log() == c.node(FIRST_LEADER).raft().log()
            });
        if settled {
            Ok(())
        } else {
            Err(format!(
                "warm start {} did not settle:\n{}",
                self.settings.from.name(),
                super::cli::describe_state(c)
            ))
        }
    }
}
