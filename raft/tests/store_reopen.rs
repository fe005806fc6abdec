//! What a Ballast log store keeps across a drop without close (as a crash of the process
//! leaves it, less what was never staged) and a reopen from its files: entries, the vote, the
//! last purged log id, truncations, and the index = LSN mapping after a purge past the end.

mod common;

use ballast_log::storage::DirectStorage;
use ballast_log::Log;
use ballast_openraft::cluster::{Record, TypeConfig};
use ballast_openraft::{BallastLogStore, StoreOptions};
use common::ScratchDir;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, LogId, RaftLogReader, Vote};

type Store = BallastLogStore<TypeConfig, DirectStorage>;

fn open(dir: &ScratchDir) -> Store {
    let storage = DirectStorage::open(dir.path(), &common::direct_small()).expect("storage");
    let log = Log::open(common::config_small(), storage).expect("log");
    BallastLogStore::open(log, StoreOptions::default()).expect("store")
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    let bytes = vec![index as u8; (index * 7 % 1000) as usize];
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Record(bytes)),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

async fn indexes(store: &mut Store) -> Vec<u64> {
    let entries = store.try_get_log_entries(..).await.expect("entries");
    entries.iter().map(|entry| entry.log_id.index).collect()
}

async fn last_ids(store: &mut Store) -> (Option<LogId<u64>>, Option<LogId<u64>>) {
    let state = store.get_log_state().await.expect("state");
    (state.last_purged_log_id, state.last_log_id)
}

#[test]
fn entries_vote_and_truncation_survive_a_reopen() {
    let dir = ScratchDir::new("reopen");
    block_on(async {
        let mut store = open(&dir);
        // Enough entries to roll several 256 KiB segments.
        for first in (0..2000).step_by(100) {
            store
                .blocking_append((first..first + 100).map(|index| entry(1, index)))
                .await
                .unwrap();
        }
        store.save_vote(&Vote::new_committed(3, 2)).await.unwrap();
        store.truncate(log_id(1, 1, 1500)).await.unwrap();
        store
            .blocking_append((1500..1510).map(|index| entry(2, index)))
            .await
            .unwrap();
        drop(store);

        let mut store = open(&dir);
        assert_eq!(
            store.read_vote().await.unwrap(),
            Some(Vote::new_committed(3, 2))
        );
        assert_eq!(last_ids(&mut store).await, (None, Some(log_id(2, 1, 1509))));
        let entries = store.try_get_log_entries(1495..1510).await.unwrap();
        let terms: Vec<u64> = entries
            .iter()
            .map(|entry| entry.log_id.leader_id.term)
            .collect();
        assert_eq!(terms, [vec![1; 5], vec![2; 10]].concat());
        assert_eq!(entries[7], entry(2, 1502), "byte for byte");
    });
}

#[test]
fn a_purge_hides_entries_and_drops_whole_segments() {
    let dir = ScratchDir::new("purge");
    block_on(async {
        let mut store = open(&dir);
        store
            .blocking_append((0..2000).map(|index| entry(1, index)))
            .await
            .unwrap();
        let segments_before = std::fs::read_dir(dir.path()).unwrap().count();
        store.purge(log_id(1, 1, 1200)).await.unwrap();
        let segments_after = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(
            segments_after < segments_before,
            "whole segments are dropped"
        );
        assert_eq!(indexes(&mut store).await, (1201..2000).collect::<Vec<_>>());
        drop(store);

        let mut store = open(&dir);
        assert_eq!(
            last_ids(&mut store).await,
            (Some(log_id(1, 1, 1200)), Some(log_id(1, 1, 1999)))
        );
        assert_eq!(indexes(&mut store).await, (1201..2000).collect::<Vec<_>>());
    });
}

#[test]
fn a_purge_past_the_end_restarts_the_log_at_the_next_index() {
    let dir = ScratchDir::new("restart");
    block_on(async {
        let mut store = open(&dir);
        store
            .blocking_append((0..50).map(|index| entry(1, index)))
            .await
            .unwrap();
        // A snapshot up to index 5000 installed beyond the log.
        store.purge(log_id(4, 2, 5000)).await.unwrap();
        assert_eq!(
            last_ids(&mut store).await,
            (Some(log_id(4, 2, 5000)), Some(log_id(4, 2, 5000)))
        );
        store
            .blocking_append((5001..5011).map(|index| entry(5, index)))
            .await
            .unwrap();
        drop(store);

        let mut store = open(&dir);
        assert_eq!(indexes(&mut store).await, (5001..5011).collect::<Vec<_>>());
        assert_eq!(
            store.try_get_log_entries(5003..5004).await.unwrap(),
            [entry(5, 5003)]
        );
        store.blocking_append([entry(5, 5011)]).await.unwrap();
        assert_eq!(last_ids(&mut store).await.1, Some(log_id(5, 1, 5011)));
        // A hole is refused.
        assert!(store.blocking_append([entry(5, 5013)]).await.is_err());
    });
}

#[test]
fn the_committed_log_id_is_saved_once_durable() {
    let dir = ScratchDir::new("committed");
    block_on(async {
        let mut store = open(&dir);
        store
            .blocking_append((0..10).map(|index| entry(1, index)))
            .await
            .unwrap();
        store.save_committed(Some(log_id(1, 1, 7))).await.unwrap();
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 7)));
        // Saved with the next vote: entry 7 is durable.
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        store.save_committed(Some(log_id(1, 1, 9))).await.unwrap();
        drop(store);

        let mut store = open(&dir);
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 7)));
        store.save_committed(Some(log_id(1, 1, 9))).await.unwrap();
        store.close().expect("a clean close saves it");

        let mut store = open(&dir);
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 1, 9)));
    });
}
