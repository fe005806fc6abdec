//! Many producer threads append to one `SharedLog` while readers follow the durable end: every
//! LSN is handed out once and densely, each producer's records keep their order, every record
//! acknowledged as durable is durable, readers see exactly the durable records in order, and a
//! failed sync reaches every waiting producer. The tests assert outcomes, never timings.

mod common;

use ballast_log::storage::MemStorage;
use ballast_log::{Config, Durability, Error, Log, Lsn, SharedLog, SharedOptions};
use common::Rng;
use std::collections::HashMap;
use std::time::Duration;

const PRODUCERS: u64 = 8;
const RECORDS_PER_PRODUCER: u64 = 400;

fn config() -> Config {
    Config {
        segment_size_bytes: 256 * 1024,
        segment_count_max: 64,
        ..common::config_small()
    }
}

/// Small staging batches, so that producers often wait for room (backpressure).
fn options() -> SharedOptions {
    SharedOptions {
        staging_size_bytes: 24 * 1024,
        staging_record_count_max: 16,
        // Smaller than what the readers read, so that they cross from the log to the ring.
        tail_cache_size_bytes: 8 * 1024,
        tail_cache_record_count_max: 32,
    }
}

/// A record names its producer and its sequence number; its size varies with both.
fn record(producer: u64, sequence: u64, out: &mut Vec<u8>) {
    let size = 16 + ((producer * 7919 + sequence * 104_729) % 1500) as usize;
    out.clear();
    out.extend_from_slice(&producer.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend((16..size).map(|index| (index as u64 ^ producer ^ sequence) as u8));
}

fn parse(data: &[u8]) -> (u64, u64) {
    let producer = u64::from_le_bytes(data[..8].try_into().unwrap());
    let sequence = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let mut expected = Vec::new();
    record(producer, sequence, &mut expected);
    assert_eq!(
        data,
        &expected[..],
        "record ({producer}, {sequence}) differs"
    );
    (producer, sequence)
}

/// One producer: mixes waiting appends, staged appends with a later `wait_durable`, and
/// batches; returns the LSN of every record it appended, in its own order.
fn produce(shared: &SharedLog<MemStorage>, producer: u64) -> Vec<Lsn> {
    let mut rng = Rng(producer + 1);
    let mut lsns = Vec::new();
    let mut bytes = Vec::new();
    let mut sequence = 0;
    while sequence < RECORDS_PER_PRODUCER {
        match rng.below(3) {
            0 => {
                record(producer, sequence, &mut bytes);
                let lsn = shared.append(&bytes, Durability::Wait).unwrap();
                assert!(shared.durable_lsn() > lsn, "acknowledged before durable");
                lsns.push(lsn);
                sequence += 1;
            }
            1 => {
                record(producer, sequence, &mut bytes);
                let lsn = shared.append(&bytes, Durability::Staged).unwrap();
                lsns.push(lsn);
                sequence += 1;
                if rng.below(4) == 0 {
                    shared.wait_durable(lsn).unwrap();
                    assert!(shared.durable_lsn() > lsn);
                }
            }
            _ => {
                let count = (1 + rng.below(5)).min(RECORDS_PER_PRODUCER - sequence);
                let batch: Vec<Vec<u8>> = (sequence..sequence + count)
                    .map(|sequence| {
                        let mut bytes = Vec::new();
                        record(producer, sequence, &mut bytes);
                        bytes
                    })
                    .collect();
                let lsn = shared.append_batch(&batch, Durability::Wait).unwrap();
                assert!(shared.durable_lsn() >= lsn + count);
                lsns.extend(lsn..lsn + count);
                sequence += count;
            }
        }
    }
    lsns
}

/// Follows the log from LSN 0 until it is shut down; returns (producer, sequence) by LSN.
fn follow(shared: &SharedLog<MemStorage>) -> Vec<(u64, u64)> {
    let mut reader = shared.reader(0).unwrap();
    let mut buffer = vec![0u8; 20_000];
    let mut seen = Vec::new();
    loop {
        match reader.next_wait(&mut buffer, None) {
            Ok(Some((lsn, size))) => {
                assert_eq!(lsn, seen.len() as Lsn, "a reader skipped or repeated");
                assert!(
                    lsn < shared.durable_lsn(),
                    "a reader saw a record not durable"
                );
                seen.push(parse(&buffer[..size]));
            }
            Ok(None) => panic!("no timeout was given"),
            Err(Error::Closed) => return seen,
            Err(error) => panic!("reader: {error}"),
        }
    }
}

#[test]
fn producers_get_dense_lsns_in_their_order_and_readers_follow() {
    let shared = SharedLog::open(
        Log::open(config(), MemStorage::new(4096)).unwrap(),
        options(),
    )
    .unwrap();
    let (per_producer, followed) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..3).map(|_| scope.spawn(|| follow(&shared))).collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let shared = &shared;
                scope.spawn(move || produce(shared, producer))
            })
            .collect();
        let per_producer: Vec<Vec<Lsn>> = producers
            .into_iter()
            .map(|producer| producer.join().unwrap())
            .collect();
        shared.shutdown().unwrap();
        let followed: Vec<_> = readers
            .into_iter()
            .map(|reader| reader.join().unwrap())
            .collect();
        (per_producer, followed)
    });
    let total = PRODUCERS * RECORDS_PER_PRODUCER;
    let mut owner: HashMap<Lsn, (u64, u64)> = HashMap::new();
    for (producer, lsns) in per_producer.iter().enumerate() {
        assert_eq!(lsns.len() as u64, RECORDS_PER_PRODUCER);
        assert!(lsns.windows(2).all(|pair| pair[0] < pair[1]), "order kept");
        for (sequence, &lsn) in lsns.iter().enumerate() {
            let previous = owner.insert(lsn, (producer as u64, sequence as u64));
            assert!(previous.is_none(), "lsn {lsn} handed out twice");
        }
    }
    assert!(
        (0..total).all(|lsn| owner.contains_key(&lsn)),
        "lsns are dense"
    );
    for seen in &followed {
        assert_eq!(seen.len() as u64, total, "a reader reads to the end");
        for (lsn, found) in seen.iter().enumerate() {
            assert_eq!(
                owner[&(lsn as Lsn)],
                *found,
                "a reader saw the wrong record"
            );
        }
    }
    // Everything is on storage after close: reopen and read it all back.
    let storage = shared.close().unwrap();
    let mut log = Log::open(config(), storage).unwrap();
    assert_eq!((log.next_lsn(), log.durable_lsn()), (total, total));
    let mut cursor = log.cursor(0).unwrap();
    while let Some(found) = log.cursor_next(&mut cursor).unwrap() {
        assert_eq!(owner[&found.lsn], parse(found.data));
    }
    assert_eq!(cursor.lsn_next(), total);
}

#[test]
fn a_failed_sync_reaches_every_waiting_producer() {
    let shared = SharedLog::open(
        Log::open(config(), MemStorage::new(4096)).unwrap(),
        options(),
    )
    .unwrap();
    shared.append(b"before", Durability::Wait).unwrap();
    shared
        .with_storage(|storage| storage.fail_syncs(1))
        .unwrap();
    let results: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..6u8)
            .map(|producer| {
                let shared = &shared;
                scope.spawn(move || {
                    let mut results = Vec::new();
                    for _ in 0..3 {
                        results.push(shared.append(&[producer; 100], Durability::Wait));
                    }
                    results
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    });
    assert!(results.iter().all(|result| match result {
        Err(Error::Failed { .. }) => true,
        Err(other) => panic!("expected Failed, got {other}"),
        Ok(_) => false,
    }));
    assert!(matches!(
        shared.append(b"after", Durability::Staged),
        Err(Error::Failed { .. })
    ));
    assert_eq!(
        shared.durable_lsn(),
        1,
        "a failed sync acknowledges nothing"
    );
    let mut reader = shared.reader(0).unwrap();
    assert!(matches!(
        reader.next_wait(&mut [0u8; 64], Some(Duration::from_secs(60))),
        Err(Error::Failed { .. })
    ));
    assert!(matches!(shared.close(), Err(Error::Failed { .. })));
}

#[test]
fn staged_records_wait_for_a_durable_request_or_a_policy() {
    let shared = SharedLog::open(
        Log::open(config(), MemStorage::new(4096)).unwrap(),
        options(),
    )
    .unwrap();
    let first = shared.append(b"one", Durability::Staged).unwrap();
    let second = shared.append(b"two", Durability::Staged).unwrap();
    assert_eq!((first, second), (0, 1));
    assert!(matches!(
        shared.wait_durable(2),
        Err(Error::LsnOutOfRange { lsn: 2, .. })
    ));
    shared.wait_durable(second).unwrap();
    assert_eq!(shared.durable_lsn(), 2);
    let mut reader = shared.reader(0).unwrap();
    let mut buffer = [0u8; 2];
    assert!(matches!(
        reader.next(&mut buffer),
        Err(Error::BufferTooSmall { size_bytes: 3 })
    ));
    let mut buffer = [0u8; 8];
    assert_eq!(reader.next(&mut buffer).unwrap(), Some((0, 3)));
    assert_eq!(reader.next(&mut buffer).unwrap(), Some((1, 3)));
    assert_eq!(reader.next(&mut buffer).unwrap(), None, "nothing yet");
    assert_eq!(
        reader
            .next_wait(&mut buffer, Some(Duration::from_millis(1)))
            .unwrap(),
        None
    );
    // Flush-on-size keeps working behind the shared log: 4 KiB records, flush every 8 KiB.
    let config = Config {
        flush_size_bytes: Some(8192),
        ..config()
    };
    let storage = shared.close().unwrap();
    let shared = SharedLog::open(Log::open(config, storage).unwrap(), options()).unwrap();
    let mut lsn = 0;
    for _ in 0..2 {
        lsn = shared.append(&[7u8; 4096], Durability::Staged).unwrap();
    }
    let mut reader = shared.reader(2).unwrap();
    let found = reader
        .next_wait(&mut [0u8; 4096], Some(Duration::from_secs(600)))
        .unwrap();
    assert_eq!(found, Some((2, 4096)), "the size policy made them durable");
    assert!(shared.durable_lsn() > lsn);
}

#[test]
fn shutdown_drains_staged_records_and_refuses_new_ones() {
    let shared = SharedLog::open(
        Log::open(config(), MemStorage::new(4096)).unwrap(),
        options(),
    )
    .unwrap();
    for index in 0..50u8 {
        shared.append(&[index; 300], Durability::Staged).unwrap();
    }
    shared.shutdown().unwrap();
    assert_eq!(shared.durable_lsn(), 50);
    assert!(matches!(
        shared.append(b"late", Durability::Wait),
        Err(Error::Closed)
    ));
    let too_many = vec![b"x".as_slice(); 17];
    let storage = shared.close().unwrap();
    let log = Log::open(config(), storage).unwrap();
    assert_eq!(log.next_lsn(), 50);
    let shared = SharedLog::open(log, options()).unwrap();
    assert!(matches!(
        shared.append_batch(&too_many, Durability::Wait),
        Err(Error::BatchTooLarge {
            record_count: 17,
            ..
        })
    ));
    assert_eq!(shared.append(b"next", Durability::Wait).unwrap(), 50);
}

/// An idle shared log attests by itself: the committer, idle for `attest_idle_ns` after a
/// commit, ticks the log, which writes an attestation, so that damage to the last commit is
/// reported rather than read as a torn tail. Waits on the log's own progress, with a deadline.
#[test]
fn the_committer_attests_an_idle_log() {
    const IDLE_NS: u64 = 1_000_000;
    let config = Config {
        attest_idle_ns: Some(IDLE_NS),
        ..config()
    };
    let log = Log::open(config.clone(), MemStorage::new(4096)).unwrap();
    let shared = SharedLog::open(log, options()).unwrap();
    for index in 0..20u8 {
        shared.append(&[index; 100], Durability::Wait).unwrap();
    }
    assert_eq!(shared.durable_lsn(), 20);
    // The log reads time from its storage: the idle period passes on the storage's clock.
    shared
        .with_storage(|storage| {
            let now = ballast_log::storage::Clock::now_ns(storage);
            storage.set_now_ns(now + IDLE_NS);
        })
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while shared.attested_lsn().unwrap() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the committer never attested the idle log"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    shared.close().unwrap();
}

/// Readers copy the records the tail cache holds without the log's lock: they read while
/// another thread holds it (as a commit does across its write and sync), and a record the
/// cache evicted is read from the log once the lock is free.
#[test]
fn tail_readers_read_while_the_log_is_held() {
    let shared = SharedLog::open(
        Log::open(config(), MemStorage::new(4096)).unwrap(),
        options(),
    )
    .unwrap();
    // The ring holds 32 records: the last 32 of these 40.
    for index in 0..40u8 {
        shared.append(&[index; 100], Durability::Wait).unwrap();
    }
    let (ring_reader, log_reader) = (shared.reader(8).unwrap(), shared.reader(0).unwrap());
    let (held, read) = (std::sync::mpsc::channel(), std::sync::mpsc::channel());
    std::thread::scope(|scope| {
        let (held_receiver, read_sender) = (held.1, read.0);
        scope.spawn(move || {
            let mut reader = ring_reader;
            held_receiver.recv().unwrap();
            let mut buffer = [0u8; 100];
            for lsn in 8..40 {
                let found = reader.next(&mut buffer).unwrap();
                assert_eq!(found, Some((lsn, 100)));
                assert_eq!(buffer, [lsn as u8; 100]);
            }
            read_sender.send(()).unwrap();
        });
        shared
            .with_storage(|_| {
                held.0.send(()).unwrap();
                // A failure detector, not a timing: a reader that needs the lock never sends.
                read.1
                    .recv_timeout(Duration::from_secs(300))
                    .expect("a reader of the tail cache waited for the log's lock");
            })
            .unwrap();
    });
    let mut reader = log_reader;
    let mut buffer = [0u8; 100];
    for lsn in 0..40 {
        assert_eq!(reader.next(&mut buffer).unwrap(), Some((lsn, 100)));
        assert_eq!(buffer, [lsn as u8; 100]);
    }
    assert_eq!(reader.next(&mut buffer).unwrap(), None);
    let (hits, misses) = shared.tail_cache_hits_and_misses();
    assert_eq!(hits, 32 + 32, "each reader read 8..40 from the ring");
    assert!(misses >= 8, "0..8 were evicted: {misses} misses");
    shared.close().unwrap();
}
