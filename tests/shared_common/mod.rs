//! A steady-state workload for a `SharedLog`, for the counting-allocator tests: producer
//! threads and a tail reader, started and warmed up before counting begins, so that what is
//! counted is only the hot path (staging, group commits with segment rolls, durable waits,
//! tail reads, retention).
#![allow(dead_code)]

use ballast_log::storage::Storage;
use ballast_log::{Durability, Lsn, SharedLog};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::Barrier;

pub const PRODUCERS: usize = 4;
const RECORD_SIZE_BYTES: usize = 1024;

/// Runs `rounds_warm` rounds, turns `counting` on, runs `rounds_counted` rounds, turns it off.
/// Every thread is started before counting and ends after it. Returns the LSN the reader
/// reached, which is every record appended.
pub fn shared_workload<S: Storage + Send + 'static>(
    shared: &SharedLog<S>,
    counting: &AtomicBool,
    rounds_warm: usize,
    rounds_counted: usize,
) -> Lsn {
    // Producers and this thread pass four barriers: warmed up, counting on, done, counting
    // off. The reader waits only for the last.
    let barrier = Barrier::new(PRODUCERS + 1);
    let counting_off = Barrier::new(2);
    let records_per_round = 24;
    let total =
        shared.next_lsn() + ((rounds_warm + rounds_counted) * PRODUCERS * records_per_round) as Lsn;
    std::thread::scope(|scope| {
        for producer in 0..PRODUCERS {
            let (shared, barrier) = (shared, &barrier);
            scope.spawn(move || {
                let record = [producer as u8; RECORD_SIZE_BYTES];
                let batch = [record.as_slice(); 4];
                let round = || {
                    for _ in 0..4 {
                        shared.append(&record, Durability::Wait).unwrap();
                        let lsn = shared.append(&record, Durability::Staged).unwrap();
                        shared.wait_durable(lsn).unwrap();
                        shared.append_batch(&batch, Durability::Wait).unwrap();
                    }
                };
                (0..rounds_warm).for_each(|_| round());
                barrier.wait();
                barrier.wait();
                (0..rounds_counted).for_each(|_| round());
                barrier.wait();
                barrier.wait();
            });
        }
        let reader = {
            let (shared, counting_off) = (shared, &counting_off);
            scope.spawn(move || {
                let mut reader = shared.reader(shared.first_lsn().unwrap()).unwrap();
                let mut buffer = [0u8; RECORD_SIZE_BYTES];
                while reader.lsn_next() < total {
                    let (lsn, size) = reader.next_wait(&mut buffer, None).unwrap().unwrap();
                    assert_eq!(size, RECORD_SIZE_BYTES);
                    if lsn % 256 == 0 {
                        shared.truncate_prefix(lsn).unwrap();
                    }
                }
                counting_off.wait();
                reader.lsn_next()
            })
        };
        barrier.wait();
        counting.store(true, Ordering::SeqCst);
        barrier.wait();
        barrier.wait();
        counting.store(false, Ordering::SeqCst);
        barrier.wait();
        counting_off.wait();
        reader.join().unwrap()
    })
}
