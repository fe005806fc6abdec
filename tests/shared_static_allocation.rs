//! A `SharedLog` allocates nothing per record: after open, producers staging records (waiting
//! for durability or not), the committer's group commits (with segment rolls), durable waits,
//! tail readers and retention allocate nothing, in any thread. A counting global allocator
//! proves it. The disk variant is in `tests/disk_static_allocation.rs`.

mod shared_common;

use ballast_log::storage::MemStorage;
use ballast_log::{Config, Log, SharedLog, SharedOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;

// Counted in every thread, the committer included: this file runs without libtest (see
// Cargo.toml), so no other thread allocates while it counts.
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

fn main() {
    no_allocation_after_open_with_producers_and_readers();
    println!("test no_allocation_after_open_with_producers_and_readers ... ok");
    println!("1 passed, 0 failed");
}

fn no_allocation_after_open_with_producers_and_readers() {
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
    let mut storage = MemStorage::new(4096);
    // Segment files come from a pool reserved up front, so that rolls allocate nothing.
    storage.reserve(64, config.segment_size_bytes);
    let log = Log::open(config, storage).unwrap();
    let options = SharedOptions {
        staging_size_bytes: 32 * 1024,
        staging_record_count_max: 32,
    };
    let shared = SharedLog::open(log, options).unwrap();
    let lsn_end = shared_common::shared_workload(&shared, &COUNTING, 2, 6);
    assert_eq!(shared.durable_lsn(), lsn_end);
    assert_eq!(lsn_end, 8 * 4 * 24);
    assert!(
        shared.first_lsn().unwrap() > lsn_end / 2,
        "segments rolled and were dropped"
    );
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations after open"
    );
    shared.close().unwrap();
}
