//! `DirectStorage` allocates nothing per operation: after open, appending, flushing (writes
//! and syncs on the IO threads), reading, rolling segments (file creation) and dropping them
//! allocate nothing, in any thread. A counting global allocator proves it.
#![cfg_attr(not(target_os = "linux"), allow(dead_code, unused_imports))]

mod counting_global;
#[cfg(target_os = "linux")]
mod disk_common;
mod shared_common;

#[cfg(target_os = "linux")]
use ballast_log::storage::{DirectOptions, DirectStorage, Storage};
use ballast_log::{Config, Log, SharedLog, SharedOptions};
use counting_global::{ALLOCATIONS, COUNTING};
#[cfg(target_os = "linux")]
use disk_common::ScratchDir;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

// The tests of this file run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn main() {
    #[cfg(target_os = "linux")]
    let tests: &[(&str, fn())] = &[
        (
            "no_allocation_after_open_on_disk",
            no_allocation_after_open_on_disk,
        ),
        (
            "no_allocation_after_open_with_producers_on_disk",
            no_allocation_after_open_with_producers_on_disk,
        ),
    ];
    #[cfg(not(target_os = "linux"))]
    let tests: &[(&str, fn())] = &[];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
    println!("{} passed, 0 failed", tests.len());
}

/// Appends until the log rolls, flushing often, reads back, and drops the oldest segment.
#[cfg(target_os = "linux")]
fn round(log: &mut Log<DirectStorage>, records: &[Vec<u8>], out: &mut [u8]) {
    let segments_before = log.segment_count();
    let lsn_start = log.next_lsn();
    while log.segment_count() == segments_before {
        for record in records {
            log.append(record).unwrap();
        }
        log.append_batch(records).unwrap();
        log.flush().unwrap();
    }
    let lsn_end = log.next_lsn();
    for lsn in (lsn_start..lsn_end).step_by(5) {
        log.read(lsn, out).unwrap();
    }
    let mut cursor = log.cursor(lsn_start).unwrap();
    while log.cursor_next(&mut cursor).unwrap().is_some() {}
    log.truncate_prefix(lsn_start).unwrap();
}

#[cfg(target_os = "linux")]
fn no_allocation_after_open_on_disk() {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let dir = ScratchDir::new("static-allocation");
    let config = Config {
        segment_size_bytes: 256 * 1024,
        block_size_bytes: 16 * 1024,
        write_buffer_size_bytes: 32 * 1024,
        write_buffer_count: 4,
        read_buffer_size_bytes: 32 * 1024,
        record_size_bytes_max: 20_000,
        segment_count_max: 8,
        ..Config::default()
    };
    let options = DirectOptions {
        segment_count_max: config.segment_count_max,
        ..DirectOptions::default()
    };
    let storage = DirectStorage::open(dir.path(), &options).unwrap();
    assert!(storage.sector_size_bytes() <= config.sector_size_bytes);
    let mut log = Log::open(config, storage).unwrap();
    let records: Vec<Vec<u8>> = [0usize, 1, 100, 5000, 12_000, 20_000, 128]
        .iter()
        .map(|&size| vec![0x5C; size])
        .collect();
    let mut out = vec![0u8; 20_000];
    for _ in 0..3 {
        round(&mut log, &records, &mut out);
    }
    let lsn_before = log.next_lsn();
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        round(&mut log, &records, &mut out);
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(log.next_lsn() > lsn_before);
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations after open"
    );
}

/// The same with several producer threads, the committer thread and a tail reader on one
/// `SharedLog`: staging, group commits, durable waits, tail reads and retention.
#[cfg(target_os = "linux")]
fn no_allocation_after_open_with_producers_on_disk() {
    let _serial = SERIAL.lock().unwrap_or_else(|poison| poison.into_inner());
    let dir = ScratchDir::new("static-allocation-shared");
    let config = Config {
        segment_size_bytes: 128 * 1024,
        block_size_bytes: 16 * 1024,
        write_buffer_size_bytes: 32 * 1024,
        write_buffer_count: 4,
        read_buffer_size_bytes: 32 * 1024,
        record_size_bytes_max: 4096,
        segment_count_max: 64,
        ..Config::default()
    };
    let options = DirectOptions {
        segment_count_max: config.segment_count_max,
        ..DirectOptions::default()
    };
    let log = Log::open(config, DirectStorage::open(dir.path(), &options).unwrap()).unwrap();
    let options = SharedOptions {
        staging_size_bytes: 32 * 1024,
        staging_record_count_max: 32,
        tail_cache_size_bytes: 64 * 1024,
        tail_cache_record_count_max: 256,
    };
    let shared = SharedLog::open(log, options).unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let lsn_end = shared_common::shared_workload(&shared, &COUNTING, 2, 6);
    assert_eq!(shared.durable_lsn(), lsn_end);
    assert!(
        shared.first_lsn().unwrap() > lsn_end / 2,
        "segments rolled and were dropped"
    );
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst) - before,
        0,
        "allocations after open"
    );
    shared.close().unwrap();
}
