//! The type configuration of the cluster: opaque records in, nothing out.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Cursor;

/// The application data of an entry: one opaque record, kept byte for byte.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record(pub Vec<u8>);

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Record({} bytes)", self.0.len())
    }
}

/// A node's id.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The cluster's types: records as data, no response, snapshots in memory.
    pub TypeConfig:
        D = Record,
        R = (),
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A Raft node of the cluster.
pub type Raft = openraft::Raft<TypeConfig>;
/// An entry of the cluster's log.
pub type Entry = openraft::Entry<TypeConfig>;
