//! openraft's own storage test suite (`openraft::testing::Suite::test_all`) over a Ballast log
//! store on real files, with the cluster's in-memory state machine. Each of the suite's cases
//! builds a store in a fresh directory.

mod common;

use ballast_log::storage::{DirectStorage, Storage};
use ballast_log::Log;
use ballast_openraft::cluster::{StateMachine, TypeConfig};
use ballast_openraft::{BallastLogStore, StoreOptions};
use common::ScratchDir;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb, StorageError};

type Store = BallastLogStore<TypeConfig, DirectStorage>;

struct Builder;

impl StoreBuilder<TypeConfig, Store, StateMachine, ScratchDir> for Builder {
    async fn build(&self) -> Result<(ScratchDir, Store, StateMachine), StorageError<u64>> {
        let dir = ScratchDir::new("suite");
        let store = store_open(&dir)
            .map_err(|error| error.into_storage(ErrorSubject::Store, ErrorVerb::Write))?;
        Ok((dir, store, StateMachine::default()))
    }
}

fn store_open(dir: &ScratchDir) -> Result<Store, ballast_openraft::Error> {
    let storage = DirectStorage::open(dir.path(), &common::direct_small())?;
    assert!(storage.sector_size_bytes() > 0);
    let log = Log::open(common::config_small(), storage)?;
    BallastLogStore::open(log, StoreOptions::default())
}

#[test]
fn openraft_suite_passes_on_ballast() {
    Suite::test_all(Builder).expect("openraft's storage suite");
}
