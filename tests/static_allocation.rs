//! Everything is allocated in `open`: in steady state, appending, batching, flushing, reading,
//! iterating and rolling segments allocate nothing. A counting global allocator proves it.

mod common;
mod counting_global;

use ballast_log::storage::MemStorage;
use ballast_log::{Config, Log};
use counting_global::{ALLOCATIONS, COUNTING};
use std::sync::atomic::Ordering;

/// Counts allocations and frees made by `work`, in any thread.
fn allocations_in(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    work();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

fn main() {
    no_allocation_after_open();
    println!("test no_allocation_after_open ... ok");
    println!("1 passed, 0 failed");
}

/// One steady-state round: every operation the log offers after open, including at least one
/// segment roll and a retention drop that frees a segment for the next roll.
fn round(log: &mut Log<MemStorage>, records: &[Vec<u8>], out: &mut [u8]) {
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
    // Twice: the second pass finds what the first loaded in the sector cache.
    for _ in 0..2 {
        for lsn in (lsn_start..lsn_end).step_by(7) {
            log.read(lsn, out).unwrap();
        }
    }
    let mut cursor = log.cursor(lsn_start).unwrap();
    let mut count = 0;
    while let Some(record) = log.cursor_next(&mut cursor).unwrap() {
        assert!(record.data.len() <= out.len());
        count += 1;
    }
    assert_eq!(count, lsn_end - lsn_start);
    log.append(&records[0]).unwrap();
    log.read(lsn_end, out).unwrap();
    log.truncate_prefix(lsn_start).unwrap();
}

fn no_allocation_after_open() {
    let config = Config {
        segment_size_bytes: 128 * 1024,
        block_size_bytes: 8192,
        write_buffer_size_bytes: 16 * 1024,
        write_buffer_count: 2,
        read_buffer_size_bytes: 16 * 1024,
        record_size_bytes_max: 20_000,
        segment_count_max: 8,
        ..Config::default()
    };
    let mut storage = MemStorage::new(config.sector_size_bytes);
    storage.reserve(config.segment_count_max as usize, config.segment_size_bytes);
    let mut log = Log::open(config, storage).unwrap();
    let records: Vec<Vec<u8>> = [0usize, 1, 100, 5000, 12_000, 20_000, 128]
        .iter()
        .map(|&size| vec![0xA7; size])
        .collect();
    let mut out = vec![0u8; 20_000];
    // Warm up: reach the steady state of retention (segments freed and reused).
    for _ in 0..4 {
        round(&mut log, &records, &mut out);
    }
    let lsn_before = log.next_lsn();
    let allocations = allocations_in(|| {
        for _ in 0..5 {
            round(&mut log, &records, &mut out);
        }
    });
    assert!(log.next_lsn() > lsn_before);
    assert_eq!(allocations, 0, "allocations after open");
    let (hits, misses) = log.cache_hits_and_misses();
    assert!(
        hits > 0 && misses > 0,
        "point reads went through the sector cache"
    );
}
