//! The replicated-log scenario of `examples/cluster.rs` and `tests/cluster_failover.rs`:
//! three nodes on Ballast, writes through the leader, the leader killed, more writes through
//! the new leader, the old leader restarted from its files, and every acknowledged write
//! checked on every node, byte for byte.

use super::{BallastFactory, Cluster, ClusterError, Entry, NodeId, Record};
use openraft::EntryPayload;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How the scenario runs.
#[derive(Clone, Debug)]
pub struct ScenarioOptions {
    /// Writes before the kill, and again after it.
    pub writes_per_phase: u64,
    /// The largest record written (sizes vary up to it).
    pub record_size_bytes_max: usize,
    /// The deadline of every wait: elections, writes, catching up.
    pub wait_timeout: Duration,
}

impl Default for ScenarioOptions {
    fn default() -> ScenarioOptions {
        ScenarioOptions {
            writes_per_phase: 100,
            record_size_bytes_max: 4096,
            wait_timeout: Duration::from_secs(30),
        }
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct ScenarioReport {
    /// The leader that was killed.
    pub leader_killed: NodeId,
    /// The leader elected without it.
    pub leader_new: NodeId,
    /// Acknowledged writes, both phases.
    pub writes_acknowledged: u64,
    /// The last index the killed leader held when it restarted from its files.
    pub restarted_last_index: Option<u64>,
    /// Every node holds every acknowledged write, in its log store and its state machine.
    pub nodes_checked: Vec<NodeId>,
    /// How long the whole scenario took.
    pub elapsed: Duration,
}

/// The record written as write `number`: its size and bytes follow from the number, so that
/// a check can tell any two records apart.
pub fn record(number: u64, size_bytes_max: usize) -> Vec<u8> {
    let mut state = number.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xB5AD_4ECE_DA1C_E2A9;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let size_bytes = (next() % size_bytes_max as u64) as usize + 1;
    (0..size_bytes).map(|_| next() as u8).collect()
}

/// Runs the scenario with one Ballast log per node under `dir`.
pub async fn run(dir: &Path, options: &ScenarioOptions) -> Result<ScenarioReport, ClusterError> {
    let started = Instant::now();
    let timeout = options.wait_timeout;
    let factory = BallastFactory::new(dir);
    let mut cluster = Cluster::start(factory, 3, timeout).await?;
    let mut acknowledged = BTreeMap::new();
    writes(&cluster, options, 0, &mut acknowledged).await?;

    let leader_killed = cluster.leader_wait(timeout).await?;
    cluster.node_kill(leader_killed).await?;
    let leader_new = cluster.leader_wait(timeout).await?;
    assert_ne!(leader_new, leader_killed, "a killed node does not lead");
    writes(
        &cluster,
        options,
        options.writes_per_phase,
        &mut acknowledged,
    )
    .await?;

    let restarted_last_index = cluster.node_start(leader_killed).await?;
    let index_last = *acknowledged.keys().next_back().expect("a write");
    cluster.caught_up_wait(index_last, timeout).await?;
    let mut nodes_checked = Vec::new();
    for node in cluster.nodes() {
        check(&mut cluster, node, &acknowledged).await?;
        nodes_checked.push(node);
    }
    cluster.shutdown().await?;
    Ok(ScenarioReport {
        leader_killed,
        leader_new,
        writes_acknowledged: acknowledged.len() as u64,
        restarted_last_index,
        nodes_checked,
        elapsed: started.elapsed(),
    })
}

/// Writes one phase of records, keeping each acknowledged one by its index.
async fn writes(
    cluster: &Cluster<BallastFactory>,
    options: &ScenarioOptions,
    number_first: u64,
    acknowledged: &mut BTreeMap<u64, Vec<u8>>,
) -> Result<(), ClusterError> {
    for number in number_first..number_first + options.writes_per_phase {
        let bytes = record(number, options.record_size_bytes_max);
        let index = cluster.write(bytes.clone(), options.wait_timeout).await?;
        let previous = acknowledged.insert(index, bytes);
        assert!(previous.is_none(), "index {index} acknowledged twice");
    }
    Ok(())
}

/// Checks that `node` holds every acknowledged write, byte for byte, in its log store and in
/// its state machine.
async fn check(
    cluster: &mut Cluster<BallastFactory>,
    node: NodeId,
    acknowledged: &BTreeMap<u64, Vec<u8>>,
) -> Result<(), ClusterError> {
    let entries: BTreeMap<u64, Entry> = cluster
        .entries(node)
        .await?
        .into_iter()
        .map(|entry| (entry.log_id.index, entry))
        .collect();
    let applied = cluster.applied(node);
    for (&index, bytes) in acknowledged {
        let in_log = match entries.get(&index).map(|entry| &entry.payload) {
            Some(EntryPayload::Normal(Record(found))) => found == bytes,
            _ => false,
        };
        if !in_log {
            let place = "log store";
            return Err(ClusterError::WriteMissing { node, index, place });
        }
        if applied.records.get(&index) != Some(bytes) {
            let place = "state machine";
            return Err(ClusterError::WriteMissing { node, index, place });
        }
    }
    Ok(())
}
