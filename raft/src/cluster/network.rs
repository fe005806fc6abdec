//! The in-process network: a router from node ids to their Raft handles. A node missing from
//! it (killed) is unreachable.

use super::types::{NodeId, Raft, TypeConfig};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Routes every message to the target's Raft, in this process.
#[derive(Clone, Default)]
pub struct Router {
    targets: Arc<Mutex<BTreeMap<NodeId, Raft>>>,
}

impl Router {
    /// Makes `node` reachable through `raft`.
    pub fn add(&self, node: NodeId, raft: Raft) {
        self.targets().insert(node, raft);
    }

    /// Makes `node` unreachable; returns its Raft.
    pub fn remove(&self, node: NodeId) -> Option<Raft> {
        self.targets().remove(&node)
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Raft>> {
        self.targets.lock().expect("router lock")
    }

    fn target(&self, node: NodeId) -> Result<Raft, Unreachable> {
        self.targets().get(&node).cloned().ok_or_else(|| {
            let error = std::io::Error::new(std::io::ErrorKind::NotConnected, "node is down");
            Unreachable::new(&error)
        })
    }
}

/// A connection from one node to `target`.
pub struct Connection {
    router: Router,
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let raft = self.router.target(self.target)?;
        let response = raft.append_entries(request).await;
        response.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let raft = self.router.target(self.target)?;
        let response = raft.install_snapshot(request).await;
        response.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let raft = self.router.target(self.target)?;
        let response = raft.vote(request).await;
        response.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}
