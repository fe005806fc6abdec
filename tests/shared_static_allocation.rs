//! A `SharedLog` allocates nothing per record: after open, producers staging records (waiting
//! for durability or not), the committer's group commits (with segment rolls), durable waits,
//! tail readers and retention allocate nothing, in any thread. A counting global allocator
//! proves it. The disk variant is in `tests/disk_static_allocation.rs`.

mod counting_global;
mod shared_common;

use ballast_log::storage::MemStorage;
use ballast_log::{Config, Log, SharedLog, SharedOptions};
use counting_global::{ALLOCATIONS, COUNTING};
use std::sync::atomic::Ordering;

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
        tail_cache_size_bytes: 64 * 1024,
        tail_cache_record_count_max: 256,
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
    let (hits, _) = shared.tail_cache_hits_and_misses();
    assert!(hits > 0, "the reader read the tail cache");
    shared.close().unwrap();
}
