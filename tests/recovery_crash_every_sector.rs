//! A crash at every sector boundary of a write sequence: every acknowledged record survives,
//! nothing that was never appended appears, and appends continue from the recovered end.
//!
//! The workload appends in rounds that end with a flush. In the crashing round the flush's sync
//! fails, so every sector it wrote is on "disk" but unsynced; the crash then keeps the first
//! `k` of those sectors in write order, tears or loses sector `k`, and loses the rest. Every
//! `k` of every round is tried. A second test keeps random subsets, as out-of-order
//! completion would.

mod common;

use ballast_log::storage::{MemStorage, SectorFate, SegmentId};
use ballast_log::{Error, Log, Lsn};
use common::{check_by_cursor, check_by_lsn, config_tiny, record, Rng};

const SEED: u64 = 77;
const ROUNDS: u64 = 6;

/// Runs the workload up to round `crash_round`, whose flush fails; returns the storage, the
/// acknowledged LSN, and the next LSN before the crash.
fn run_until_crash(crash_round: u64) -> (MemStorage, Lsn, Lsn) {
    let config = config_tiny();
    let size_max = config.record_size_bytes_max as usize;
    let mut log = common::log_new(&config);
    let mut bytes = Vec::new();
    for round in 0..=crash_round {
        let count = 1 + round % 4 * 3;
        for _ in 0..count {
            let lsn = log.next_lsn();
            record(SEED, lsn, size_max, &mut bytes);
            log.append(&bytes).unwrap();
        }
        if round == crash_round {
            let acknowledged = log.durable_lsn();
            log.storage_mut().fail_syncs(1);
            assert!(matches!(log.flush(), Err(Error::Failed { .. })));
            let lsn_next = log.next_lsn();
            return (log.into_storage(), acknowledged, lsn_next);
        }
        log.flush().unwrap();
    }
    unreachable!()
}

/// Counts the sectors written since the last sync, in write order (segment, then offset).
fn dirty_sectors(storage: &MemStorage) -> Vec<(SegmentId, u64)> {
    let mut dirty = Vec::new();
    storage.snapshot().crash(|segment, offset| {
        dirty.push((segment, offset));
        SectorFate::Kept
    });
    dirty.sort_unstable();
    dirty
}

/// Reopens after the crash and checks the oracle's rules, then appends and checks again.
fn check_recovery(storage: MemStorage, acknowledged: Lsn, lsn_next_before: Lsn) {
    let config = config_tiny();
    let size_max = config.record_size_bytes_max as usize;
    let mut log = Log::open(config.clone(), storage).expect("recovery must succeed");
    let recovered = log.next_lsn();
    assert!(
        recovered >= acknowledged,
        "lost acknowledged records: {recovered} < {acknowledged}"
    );
    assert!(
        recovered <= lsn_next_before,
        "records that were never appended"
    );
    check_by_lsn(&mut log, SEED, 0..recovered, size_max);
    check_by_cursor(&mut log, SEED, 0, size_max);
    let mut bytes = Vec::new();
    for _ in 0..5 {
        let lsn = log.next_lsn();
        record(SEED ^ 1, lsn, size_max, &mut bytes);
        assert_eq!(log.append(&bytes).unwrap(), lsn);
    }
    log.flush().unwrap();
    let storage = log.close().unwrap();
    let mut log = Log::open(config, storage).expect("second recovery");
    assert_eq!(log.next_lsn(), recovered + 5);
    check_by_lsn(&mut log, SEED, 0..recovered, size_max);
    check_by_lsn(&mut log, SEED ^ 1, recovered..recovered + 5, size_max);
}

#[test]
fn crash_at_every_sector_boundary() {
    let mut cases = 0;
    for crash_round in 0..ROUNDS {
        let (storage, acknowledged, lsn_next) = run_until_crash(crash_round);
        let dirty = dirty_sectors(&storage);
        assert!(!dirty.is_empty());
        for cut in 0..=dirty.len() {
            for torn in [false, true] {
                let mut crashed = storage.snapshot();
                crashed.crash(|segment, offset| {
                    let rank = dirty.binary_search(&(segment, offset)).unwrap();
                    match rank.cmp(&cut) {
                        std::cmp::Ordering::Less => SectorFate::Kept,
                        std::cmp::Ordering::Equal if torn => SectorFate::Torn {
                            prefix_bytes: 100,
                            fill: 0x5A,
                        },
                        _ => SectorFate::Lost,
                    }
                });
                check_recovery(crashed, acknowledged, lsn_next);
                cases += 1;
            }
        }
    }
    assert!(cases > 40, "too few crash points: {cases}");
}

#[test]
fn crash_keeping_random_subsets_of_sectors() {
    let mut rng = Rng(SEED);
    for crash_round in 0..ROUNDS {
        let (storage, acknowledged, lsn_next) = run_until_crash(crash_round);
        for _ in 0..60 {
            let mut crashed = storage.snapshot();
            crashed.crash(|_, _| match rng.below(4) {
                0 => SectorFate::Lost,
                1 => SectorFate::Torn {
                    prefix_bytes: rng.below(512) as u32,
                    fill: rng.next_u64() as u8,
                },
                _ => SectorFate::Kept,
            });
            check_recovery(crashed, acknowledged, lsn_next);
        }
    }
}
