//! Truncations and the vote through `SharedLog`: staged records become durable before a
//! truncation, producers that wait across one are answered, and appends continue at the
//! truncation's LSN.

mod common;

use ballast_log::storage::MemStorage;
use ballast_log::{Durability, Error, Log, SharedLog, SharedOptions};
use std::sync::{mpsc, Arc};
use std::time::Duration;

fn shared_new() -> SharedLog<MemStorage> {
    let config = common::config_small();
    let log = Log::open(config.clone(), MemStorage::new(config.sector_size_bytes)).unwrap();
    let options = SharedOptions {
        staging_size_bytes: 64 * 1024,
        staging_record_count_max: 64,
        // Small, so that truncations cut a ring that has wrapped and evicted.
        tail_cache_size_bytes: 4096,
        tail_cache_record_count_max: 16,
    };
    SharedLog::open(log, options).unwrap()
}

/// A producer waiting for a record a truncation then drops is answered (the record was made
/// durable before the truncation, as every staged record is): it does not sleep until the log
/// grows back past it. The deadline only turns a hang into a failure. A waiter that comes
/// only after the truncation finds its LSN gone.
#[test]
fn a_durability_wait_across_a_truncation_is_answered() {
    for round in 0..100u64 {
        let shared = Arc::new(shared_new());
        let base = shared.next_lsn();
        for index in 0..10u64 {
            let lsn = shared
                .append(&index.to_le_bytes(), Durability::Staged)
                .unwrap();
            assert_eq!(lsn, base + index);
        }
        let (sender, receiver) = mpsc::channel();
        let waiting = Arc::clone(&shared);
        // Not scoped: a waiter that hangs must not hang the test too.
        std::thread::spawn(move || sender.send(waiting.wait_durable(base + 9)));
        {
            shared.truncate_suffix(base + 5).unwrap();
            let answer = receiver
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("round {round}: the waiter was never answered"));
            // Asked after the truncation, the record is no longer there to wait for.
            let after = matches!(answer, Err(Error::LsnOutOfRange { lsn_next, .. })
                if lsn_next == base + 5);
            assert!(answer.is_ok() || after, "round {round}: {answer:?}");
        }
        assert_eq!(shared.next_lsn(), base + 5);
        assert_eq!(shared.durable_lsn(), base + 5);
        assert_eq!(shared.append(b"after", Durability::Wait).unwrap(), base + 5);
        let mut buffer = [0u8; 8];
        assert_eq!(shared.read(base + 4, &mut buffer).unwrap(), 8);
        assert_eq!(buffer, 4u64.to_le_bytes());
        assert_eq!(shared.read(base + 5, &mut buffer).unwrap(), 5);
        assert_eq!(&buffer[..5], b"after");
    }
}

#[test]
fn truncations_and_the_vote_through_the_shared_log() {
    let shared = shared_new();
    for index in 0..40u64 {
        shared
            .append(&index.to_le_bytes(), Durability::Staged)
            .unwrap();
    }
    shared.vote_save(b"term 7").unwrap();
    shared.truncate_suffix(30).unwrap();
    assert_eq!(shared.append(b"x", Durability::Staged).unwrap(), 30);
    // Past the end: the log starts again, empty, at 100.
    shared.truncate_prefix(100).unwrap();
    assert_eq!((shared.first_lsn().unwrap(), shared.next_lsn()), (100, 100));
    assert_eq!(shared.append(b"y", Durability::Wait).unwrap(), 100);
    assert_eq!(shared.vote().unwrap(), b"term 7");
    let storage = shared.close().unwrap();
    let log = Log::open(common::config_small(), storage).unwrap();
    assert_eq!((log.first_lsn(), log.next_lsn()), (100, 101));
    assert_eq!(log.vote(), b"term 7");
}
