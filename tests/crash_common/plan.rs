//! Which crash points of a trace the explorer checks, and how many states at each, within a
//! budget of states.
//!
//! The points that matter most come first: right after each acknowledgement (the most
//! promised, the least made durable since) and at the end, each with both extremes (every
//! pending operation kept, every one lost). Then points just before each sync and just after
//! each rename (the most pending), with both extremes, for up to half of what is left. The
//! rest goes to seeded random points, one random state each.

use super::Rng;
use ballast_log::storage::trace::{Call, Event};
use std::collections::BTreeMap;

/// The states to check at one crash point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// Both extremes: everything pending kept, everything lost.
    pub extremes: bool,
    /// Seeded random states.
    pub samples: u64,
}

impl Quota {
    pub fn states(&self) -> u64 {
        2 * u64::from(self.extremes) + self.samples
    }
}

/// Crash points (event indices: the power is cut after that event) with their quotas.
pub fn plan(trace: &[Event], budget_states: u64, seed: u64) -> BTreeMap<usize, Quota> {
    let mut rng = Rng::new(seed ^ 0x91A7);
    let mut plan: BTreeMap<usize, Quota> = BTreeMap::new();
    if trace.is_empty() {
        return plan;
    }
    let mut budget = budget_states;
    let mut key: Vec<usize> = indices(trace, |call| matches!(call, Call::Acknowledged { .. }));
    key.push(trace.len() - 1);
    key.dedup();
    shuffle_keeping_last(&mut key, &mut rng);
    extremes_add(&mut plan, &key, &mut budget, budget_states);
    let mut edges: Vec<usize> = indices(trace, |call| matches!(call, Call::Sync { .. }))
        .into_iter()
        .filter_map(|index| index.checked_sub(1))
        .chain(indices(trace, |call| matches!(call, Call::Rename { .. })))
        .collect();
    edges.sort_unstable();
    edges.dedup();
    shuffle(&mut edges, &mut rng);
    let half = budget / 2;
    extremes_add(&mut plan, &edges, &mut budget, half);
    let changes = indices(trace, changes_disk);
    for _ in 0..budget {
        if changes.is_empty() {
            break;
        }
        let point = changes[rng.below(changes.len() as u64) as usize];
        plan.entry(point).or_default().samples += 1;
    }
    plan
}

/// Gives both extremes to each point in order, while `budget` holds two more states and at
/// most `spend` states have been given.
fn extremes_add(plan: &mut BTreeMap<usize, Quota>, points: &[usize], budget: &mut u64, spend: u64) {
    let mut spent = 0;
    for &point in points {
        let quota = plan.entry(point).or_default();
        if quota.extremes {
            continue;
        }
        if *budget < 2 || spent + 2 > spend {
            break;
        }
        quota.extremes = true;
        *budget -= 2;
        spent += 2;
    }
    plan.retain(|_, quota| quota.states() > 0);
}

fn indices(trace: &[Event], wanted: impl Fn(&Call) -> bool) -> Vec<usize> {
    (0..trace.len())
        .filter(|&index| wanted(&trace[index].call) && trace[index].result.is_ok())
        .collect()
}

/// Whether a call can change what a power cut leaves.
fn changes_disk(call: &Call) -> bool {
    match call {
        Call::Open { created, flags, .. } => *created || flags & libc::O_TRUNC != 0,
        Call::Write { .. }
        | Call::SetSize { .. }
        | Call::Sync { .. }
        | Call::Rename { .. }
        | Call::Unlink { .. }
        | Call::Acknowledged { .. }
        | Call::Truncating { .. } => true,
        Call::OpenDir { .. } | Call::Flock { .. } => false,
    }
}

fn shuffle(points: &mut [usize], rng: &mut Rng) {
    for index in (1..points.len()).rev() {
        points.swap(index, rng.below(index as u64 + 1) as usize);
    }
}

/// Shuffles the points but puts the last one (the trace's end) first, so that a small budget
/// still checks the end.
fn shuffle_keeping_last(points: &mut Vec<usize>, rng: &mut Rng) {
    let last = points.pop();
    shuffle(points, rng);
    if let Some(last) = last {
        points.insert(0, last);
    }
}
