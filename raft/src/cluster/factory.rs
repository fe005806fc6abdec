//! How a cluster gets each node's log store.

use super::error::ClusterError;
use super::memory_store::MemoryLogStore;
use super::types::{NodeId, TypeConfig};
use crate::{BallastLogStore, StoreOptions};
use ballast_log::storage::{DirectOptions, DirectStorage};
use ballast_log::{Config, Log};
use openraft::storage::RaftLogStorage;
use std::path::PathBuf;

/// Opens the log store of a node: fresh the first time, from what it left after a kill.
pub trait StoreFactory: Send + Sync + 'static {
    /// The log store.
    type Store: RaftLogStorage<TypeConfig>;

    /// Opens `node`'s log store.
    fn open(&self, node: NodeId) -> Result<Self::Store, ClusterError>;
}

/// Ballast log stores on real files: node `n` in `dir/node-n`.
#[derive(Clone, Debug)]
pub struct BallastFactory {
    /// The directory of every node's directory.
    pub dir: PathBuf,
    /// The log's limits.
    pub config: Config,
    /// The files' options.
    pub direct: DirectOptions,
    /// The store's options.
    pub store: StoreOptions,
}

impl BallastFactory {
    /// The default limits and options, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> BallastFactory {
        BallastFactory {
            dir: dir.into(),
            config: Config::default(),
            direct: DirectOptions::default(),
            store: StoreOptions::default(),
        }
    }

    /// The directory of `node`'s log.
    pub fn node_dir(&self, node: NodeId) -> PathBuf {
        self.dir.join(format!("node-{node}"))
    }
}

impl StoreFactory for BallastFactory {
    type Store = BallastLogStore<TypeConfig, DirectStorage>;

    fn open(&self, node: NodeId) -> Result<Self::Store, ClusterError> {
        let open_error = |source: crate::Error| ClusterError::Open { node, source };
        let storage = DirectStorage::open(self.node_dir(node), &self.direct)
            .map_err(|error| open_error(error.into()))?;
        let log =
            Log::open(self.config.clone(), storage).map_err(|error| open_error(error.into()))?;
        BallastLogStore::open(log, self.store.clone()).map_err(open_error)
    }
}

/// In-memory log stores: a restarted node starts empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFactory;

impl StoreFactory for MemoryFactory {
    type Store = MemoryLogStore;

    fn open(&self, _node: NodeId) -> Result<MemoryLogStore, ClusterError> {
        Ok(MemoryLogStore::default())
    }
}
