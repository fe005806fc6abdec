//! An in-process Raft cluster for the examples, the tests and the benchmark: nodes in one
//! process, an in-memory network ([`Router`]), an in-memory state machine
//! ([`StateMachine`]), and a log store per node made by a [`StoreFactory`]: Ballast
//! ([`BallastFactory`]) or memory ([`MemoryFactory`]).
//!
//! Every wait has a deadline and waits on the cluster's own progress (openraft's metrics),
//! never on a sleep.

mod error;
mod factory;
mod memory_store;
mod network;
pub mod scenario;
mod state_machine;
mod types;

pub use error::ClusterError;
pub use factory::{BallastFactory, MemoryFactory, StoreFactory};
pub use memory_store::MemoryLogStore;
pub use network::{Connection, Router};
pub use state_machine::{Applied, StateMachine};
pub use types::{Entry, NodeId, Raft, Record, TypeConfig};

use openraft::error::{ClientWriteError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, RaftLogReader, ServerState, SnapshotPolicy};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The log reader of a factory's stores.
type ReaderOf<F> = <<F as StoreFactory>::Store as RaftLogStorage<TypeConfig>>::LogReader;

/// A running node: its Raft, its state machine, and a reader of its log store.
struct Running<F: StoreFactory> {
    raft: Raft,
    state_machine: StateMachine,
    reader: ReaderOf<F>,
}

/// Nodes of one cluster in this process.
pub struct Cluster<F: StoreFactory> {
    factory: F,
    router: Router,
    config: Arc<openraft::Config>,
    nodes: BTreeMap<NodeId, Running<F>>,
}

/// Timings for a cluster in one process: elections in a few hundred milliseconds, no
/// snapshots (the state machine is in memory, so a purged log could not be rebuilt after a
/// restart).
pub fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "ballast".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::Never,
        ..openraft::Config::default()
    }
}

impl<F: StoreFactory> Cluster<F> {
    /// Starts nodes `1..=node_count`, makes them one cluster, and waits for a leader.
    pub async fn start(
        factory: F,
        node_count: u64,
        timeout: Duration,
    ) -> Result<Self, ClusterError> {
        let config = raft_config().validate().map_err(ClusterError::config)?;
        let mut cluster = Cluster {
            factory,
            router: Router::default(),
            config: Arc::new(config),
            nodes: BTreeMap::new(),
        };
        for node in 1..=node_count {
            cluster.node_start(node).await?;
        }
        let members: BTreeMap<NodeId, BasicNode> = (1..=node_count)
            .map(|node| (node, BasicNode::default()))
            .collect();
        let first = &cluster.nodes[&1].raft;
        first
            .initialize(members)
            .await
            .map_err(|error| ClusterError::raft(1, error))?;
        cluster.leader_wait(timeout).await?;
        Ok(cluster)
    }

    /// Starts `node` over the log store its factory opens: fresh the first time, from what
    /// the node left after a kill. Returns the index of the last entry the store held.
    pub async fn node_start(&mut self, node: NodeId) -> Result<Option<u64>, ClusterError> {
        assert!(!self.nodes.contains_key(&node), "node {node} is running");
        let mut store = self.factory.open(node)?;
        let state = store.get_log_state().await;
        let state = state.map_err(|error| ClusterError::raft(node, error))?;
        let reader = store.get_log_reader().await;
        let state_machine = StateMachine::default();
        let raft = Raft::new(
            node,
            Arc::clone(&self.config),
            self.router.clone(),
            store,
            state_machine.clone(),
        )
        .await
        .map_err(|error| ClusterError::raft(node, error))?;
        self.router.add(node, raft.clone());
        let running = Running {
            raft,
            state_machine,
            reader,
        };
        self.nodes.insert(node, running);
        Ok(state.last_log_id.map(|log_id| log_id.index))
    }

    /// Kills `node`: cuts it from the network, stops its Raft and drops its log store
    /// without closing it.
    pub async fn node_kill(&mut self, node: NodeId) -> Result<(), ClusterError> {
        self.router.remove(node);
        let running = self.nodes.remove(&node).expect("a running node");
        running
            .raft
            .shutdown()
            .await
            .map_err(|error| ClusterError::raft(node, error))?;
        drop(running);
        Ok(())
    }

    /// The running nodes.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The Raft of a running node.
    pub fn raft(&self, node: NodeId) -> &Raft {
        &self.nodes[&node].raft
    }

    /// What a running node's state machine holds.
    pub fn applied(&self, node: NodeId) -> Applied {
        self.nodes[&node].state_machine.applied()
    }

    /// Every entry a running node's log store holds.
    pub async fn entries(&mut self, node: NodeId) -> Result<Vec<Entry>, ClusterError> {
        let running = self.nodes.get_mut(&node).expect("a running node");
        let entries = running.reader.try_get_log_entries(..).await;
        entries.map_err(|error| ClusterError::raft(node, error))
    }

    /// Waits until a running node leads the running nodes, and returns it.
    pub async fn leader_wait(&self, timeout: Duration) -> Result<NodeId, ClusterError> {
        let deadline = Instant::now() + timeout;
        let nodes = self.nodes();
        let observer = *nodes.first().expect("a running node");
        let metrics = self.nodes[&observer]
            .raft
            .wait(Some(remaining(deadline)))
            .metrics(
                |metrics| {
                    metrics
                        .current_leader
                        .is_some_and(|leader| nodes.contains(&leader))
                },
                "a running leader",
            )
            .await
            .map_err(|_| ClusterError::timeout("a running leader"))?;
        let leader = metrics.current_leader.expect("a leader");
        self.nodes[&leader]
            .raft
            .wait(Some(remaining(deadline)))
            .state(ServerState::Leader, "the leader leads")
            .await
            .map_err(|_| ClusterError::timeout("the leader to lead"))?;
        Ok(leader)
    }

    /// Writes `record` through the leader, again after a leader change, and returns its
    /// index once the cluster acknowledged it (committed).
    pub async fn write(&self, record: Vec<u8>, timeout: Duration) -> Result<u64, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.leader_wait(remaining(deadline)).await?;
            let write = self.nodes[&leader]
                .raft
                .client_write(Record(record.clone()));
            let written = tokio::time::timeout(remaining(deadline), write)
                .await
                .map_err(|_| ClusterError::timeout("a write"))?;
            match written {
                Ok(response) => return Ok(response.log_id.index),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => continue,
                Err(error) => return Err(ClusterError::raft(leader, error)),
            }
        }
    }

    /// Waits until every running node holds and has applied every entry up to `index`.
    pub async fn caught_up_wait(&self, index: u64, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        for running in self.nodes.values() {
            running
                .raft
                .wait(Some(remaining(deadline)))
                .metrics(
                    |metrics| {
                        let applied = metrics.last_applied.map(|log_id| log_id.index);
                        metrics.last_log_index >= Some(index) && applied >= Some(index)
                    },
                    "every node caught up",
                )
                .await
                .map_err(|_| ClusterError::timeout("every node to catch up"))?;
        }
        Ok(())
    }

    /// Stops every node; their log stores are dropped (Ballast's are not closed).
    pub async fn shutdown(mut self) -> Result<(), ClusterError> {
        for node in self.nodes() {
            self.node_kill(node).await?;
        }
        Ok(())
    }
}

/// What is left until `deadline` (zero once it passed).
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
