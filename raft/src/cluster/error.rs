//! What can go wrong while running a cluster.

use super::types::NodeId;
use std::fmt;

/// Why a cluster operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// A node's log store did not open.
    Open {
        /// The node.
        node: NodeId,
        /// Why.
        source: crate::Error,
    },
    /// openraft refused or failed.
    Raft {
        /// The node that answered.
        node: NodeId,
        /// openraft's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The openraft configuration is invalid.
    Config {
        /// openraft's error.
        source: Box<openraft::ConfigError>,
    },
    /// A wait passed its deadline.
    Timeout {
        /// What was awaited.
        waiting_for: &'static str,
    },
    /// A node does not hold an acknowledged write as it was written.
    WriteMissing {
        /// The node.
        node: NodeId,
        /// The write's index.
        index: u64,
        /// Where it is missing: the log store or the state machine.
        place: &'static str,
    },
}

impl ClusterError {
    pub(crate) fn raft(
        node: NodeId,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ClusterError::Raft {
            node,
            source: Box::new(error),
        }
    }

    pub(crate) fn config(source: openraft::ConfigError) -> Self {
        ClusterError::Config {
            source: Box::new(source),
        }
    }

    pub(crate) fn timeout(waiting_for: &'static str) -> Self {
        ClusterError::Timeout { waiting_for }
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Open { node, source } => write!(f, "node {node}: log store: {source}"),
            ClusterError::Raft { node, source } => write!(f, "node {node}: raft: {source}"),
            ClusterError::Config { source } => write!(f, "raft config: {source}"),
            ClusterError::Timeout { waiting_for } => {
                write!(f, "timed out waiting for {waiting_for}")
            }
            ClusterError::WriteMissing { node, index, place } => {
                write!(
                    f,
                    "node {node}: acknowledged write {index} missing from its {place}"
                )
            }
        }
    }
}

impl std::error::Error for ClusterError {}
