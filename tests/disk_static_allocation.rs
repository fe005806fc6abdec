//! `DirectStorage` allocates nothing per operation: after open, appending, flushing (writes
//! and syncs on the IO threads), reading, rolling segments (file creation) and dropping them
//! allocate nothing, in any thread. A counting global allocator proves it.
#![cfg(target_os = "linux")]

mod disk_common;

use ballast_log::storage::{DirectOptions, DirectStorage, Storage};
use ballast_log::{Config, Log};
use disk_common::ScratchDir;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;

// Counted in every thread, the IO threads included: this file holds one test, so the
// harness's main thread only waits while it runs.
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        count();
        unsafe { System.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(pointer, layout, size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Appends until the log rolls, flushing often, reads back, and drops the oldest segment.
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

#[test]
fn no_allocation_after_open_on_disk() {
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
