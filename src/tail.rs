//! The tail cache: a write-behind ring of the newest records, so that readers following the
//! durable end of a [`SharedLog`](crate::SharedLog) copy them from memory, under a lock of
//! their own, and never wait for the writer's IO.
//!
//! The committer copies every record it commits into the ring before the group's write, and
//! raises the ring's durable watermark after the group's sync; readers see only records below
//! it. The ring is bounded by bytes and by records, allocated once: a new record evicts the
//! oldest ones. Truncations cut it as they cut the log: `cut` at a suffix truncation,
//! `first_set` at a prefix truncation, `restart` when the log starts again elsewhere. A reader
//! that asks for a record the ring no longer holds (evicted, or never in it) gets
//! [`TailRead::Miss`] and reads the log instead.
//!
//! A record in the ring is the copy the writer appended: the bytes a read of the log would
//! return once their checksums pass. The ring holds no checksums of its own; it never reads
//! storage.

use crate::staging::Batch;
use crate::Lsn;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a record's bytes are in the ring.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// Where the record starts, in bytes appended to the ring since it was made.
    position_bytes: u64,
    size_bytes: u32,
}

/// The answer to a read of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailRead {
    /// The record was copied into the buffer; its size.
    Hit(usize),
    /// The ring holds the record, but it does not fit the buffer; its size.
    TooSmall(usize),
    /// The record is not durable yet (or not appended): nothing to read now.
    NotYet,
    /// The ring does not hold the record: read the log.
    Miss,
}

/// A bounded ring of the newest records, with the watermarks that say which of them readers
/// may see.
pub struct TailCache {
    bytes: Box<[u8]>,
    /// One slot per record, at `lsn % entries.len()`.
    entries: Box<[Entry]>,
    /// The first record held; `lsn_oldest == lsn_end` when it holds none.
    lsn_oldest: Lsn,
    /// One past the last record held: the LSN the next appended record must have.
    lsn_end: Lsn,
    /// Records below it are durable.
    lsn_durable: Lsn,
    /// The log's first LSN: records below it were truncated and are never served.
    lsn_first: Lsn,
    /// Where the next record goes, in bytes appended since the ring was made.
    position_end_bytes: u64,
    /// The log stopped (fail-stop): every read misses, and goes to the log for its error.
    stopped: bool,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TailCache {
    /// A ring of `size_bytes` and `record_count_max` records (both 0: disabled, every read
    /// of a durable record misses), empty, whose first record will be `lsn_next`, over a log
    /// durable up to `lsn_durable`.
    ///
    /// # Panics
    ///
    /// If exactly one of the limits is 0, or `lsn_durable` is past `lsn_next`.
    pub fn new(
        size_bytes: u32,
        record_count_max: u32,
        lsn_next: Lsn,
        lsn_durable: Lsn,
    ) -> TailCache {
        assert!(lsn_durable <= lsn_next);
        assert_eq!(size_bytes == 0, record_count_max == 0);
        TailCache {
            bytes: vec![0; size_bytes as usize].into_boxed_slice(),
            entries: vec![Entry::default(); record_count_max as usize].into_boxed_slice(),
            lsn_oldest: lsn_next,
            lsn_end: lsn_next,
            lsn_durable,
            lsn_first: 0,
            position_end_bytes: 0,
            stopped: false,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The LSN the next appended record must have.
    pub fn lsn_end(&self) -> Lsn {
        self.lsn_end
    }

    /// Reads served from the ring and reads that missed it, since it was made.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Appends the record at `lsn`, evicting the oldest to make room. A record larger than the
    /// ring empties it.
    ///
    /// # Panics
    ///
    /// If `lsn` is not [`lsn_end`](TailCache::lsn_end): the ring follows the log exactly.
    pub fn append(&mut self, lsn: Lsn, data: &[u8]) {
        assert_eq!(lsn, self.lsn_end, "the ring follows the log");
        self.lsn_end = lsn + 1;
        let size = data.len() as u64;
        let capacity = self.bytes.len() as u64;
        if self.entries.is_empty() || size > capacity {
            self.lsn_oldest = self.lsn_end;
            return;
        }
        while self.lsn_oldest < lsn {
            let oldest = self.entry(self.lsn_oldest).position_bytes;
            let full = lsn - self.lsn_oldest >= self.entries.len() as u64;
            if !full && self.position_end_bytes + size - oldest <= capacity {
                break;
            }
            self.lsn_oldest += 1;
        }
        if self.lsn_oldest == lsn {
            // Empty: start the bytes afresh (a cut or an eviction left a gap).
            self.position_end_bytes = self.position_end_bytes.next_multiple_of(capacity);
        }
        let position = self.position_end_bytes;
        let at = (position % capacity) as usize;
        let first = data.len().min(self.bytes.len() - at);
        self.bytes[at..at + first].copy_from_slice(&data[..first]);
        self.bytes[..data.len() - first].copy_from_slice(&data[first..]);
        let slot = (lsn % self.entries.len() as u64) as usize;
        self.entries[slot] = Entry {
            position_bytes: position,
            size_bytes: data.len() as u32,
        };
        self.position_end_bytes = position + size;
    }

    /// Appends every record of a batch about to be committed.
    pub fn append_batch(&mut self, batch: &Batch) {
        for index in 0..batch.len() {
            self.append(batch.lsn_first() + index as Lsn, batch.record(index));
        }
    }

    /// Whether record `lsn` is durable, as far as the ring was told (false once stopped).
    pub fn durable_passes(&self, lsn: Lsn) -> bool {
        !self.stopped && lsn < self.lsn_durable
    }

    /// The log's durable watermark moved up to `lsn_durable`.
    pub fn durable_set(&mut self, lsn_durable: Lsn) {
        self.lsn_durable = self.lsn_durable.max(lsn_durable);
    }

    /// Follows the log's ends after anything that may have moved them: a commit, a tick, a
    /// truncation. The ring holds every record appended since it was made, so a log that ends
    /// below the ring was cut, and one that ends beyond it started again there. (The durable
    /// watermark is the caller's to publish, with `durable_set`.)
    pub fn follow(&mut self, lsn_first: Lsn, lsn_next: Lsn) {
        if lsn_next < self.lsn_end {
            self.cut(lsn_next);
        } else if lsn_next > self.lsn_end {
            self.restart(lsn_next);
        }
        self.first_set(lsn_first);
    }

    /// A suffix truncation dropped every record from `lsn` on: the next appended record has
    /// `lsn`. Never raises the durable watermark.
    pub fn cut(&mut self, lsn: Lsn) {
        if lsn == self.lsn_end {
            self.lsn_durable = self.lsn_durable.min(lsn);
            return;
        }
        if lsn <= self.lsn_oldest || lsn > self.lsn_end {
            self.restart_keeping_first(lsn);
            return;
        }
        self.position_end_bytes = self.entry(lsn).position_bytes;
        self.lsn_end = lsn;
        self.lsn_durable = self.lsn_durable.min(lsn);
    }

    /// A prefix truncation dropped every record below `lsn_first`.
    pub fn first_set(&mut self, lsn_first: Lsn) {
        if crate::planted::active("tail-first-ignored") {
            return;
        }
        self.lsn_first = self.lsn_first.max(lsn_first);
    }

    /// The log starts again, empty, at `lsn` (a prefix truncation past its end, or a
    /// recovery).
    pub fn restart(&mut self, lsn: Lsn) {
        self.restart_keeping_first(lsn);
        self.lsn_first = lsn;
    }

    /// Empties the ring at `lsn`. The durable watermark only comes down: a commit that failed
    /// part way (`LogFull`) cuts the ring below what it held, and the ring must not call
    /// durable what the shared log does not (a reader would find the record neither in the
    /// ring nor, yet, in the log, and ask again at once).
    fn restart_keeping_first(&mut self, lsn: Lsn) {
        self.lsn_oldest = lsn;
        self.lsn_end = lsn;
        self.lsn_durable = self.lsn_durable.min(lsn);
    }

    /// The log stopped after an IO failure: the ring serves nothing more.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Copies record `lsn` into `buffer` if the ring holds it as durable.
    pub fn read(&self, lsn: Lsn, buffer: &mut [u8]) -> TailRead {
        if !self.stopped && lsn >= self.lsn_durable {
            return TailRead::NotYet;
        }
        let held = !self.stopped
            && lsn >= self.lsn_oldest.max(self.lsn_first)
            && lsn < self.lsn_end.min(self.lsn_durable);
        if !held {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return TailRead::Miss;
        }
        let entry = self.entry(lsn);
        let size = entry.size_bytes as usize;
        if buffer.len() < size {
            return TailRead::TooSmall(size);
        }
        let at = (entry.position_bytes % self.bytes.len() as u64) as usize;
        let first = size.min(self.bytes.len() - at);
        buffer[..first].copy_from_slice(&self.bytes[at..at + first]);
        buffer[first..size].copy_from_slice(&self.bytes[..size - first]);
        self.hits.fetch_add(1, Ordering::Relaxed);
        TailRead::Hit(size)
    }

    fn entry(&self, lsn: Lsn) -> Entry {
        assert!(lsn >= self.lsn_oldest && lsn < self.lsn_end);
        self.entries[(lsn % self.entries.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lsn: Lsn, size: usize) -> Vec<u8> {
        (0..size)
            .map(|index| (lsn as usize * 7 + index) as u8)
            .collect()
    }

    fn hit(tail: &TailCache, lsn: Lsn, size: usize) {
        let mut buffer = [0u8; 64];
        assert_eq!(tail.read(lsn, &mut buffer), TailRead::Hit(size), "{lsn}");
        assert_eq!(&buffer[..size], record(lsn, size), "{lsn}");
    }

    /// Records wrap around the ring's end whole, the oldest are evicted by bytes and by count,
    /// and only durable records are served.
    #[test]
    fn the_ring_serves_the_newest_durable_records() {
        let mut tail = TailCache::new(100, 8, 10, 10);
        for lsn in 10..40 {
            tail.append(lsn, &record(lsn, 30));
        }
        // 100 bytes hold three records of 30.
        tail.durable_set(39);
        for lsn in 10..37 {
            assert_eq!(
                tail.read(lsn, &mut [0; 64]),
                TailRead::Miss,
                "{lsn} evicted"
            );
        }
        hit(&tail, 37, 30);
        hit(&tail, 38, 30);
        assert_eq!(tail.read(39, &mut [0; 64]), TailRead::NotYet, "not durable");
        assert!(tail.durable_passes(38) && !tail.durable_passes(39));
        assert_eq!(tail.read(37, &mut [0; 29]), TailRead::TooSmall(30));
        // By count: eight records of 1 byte, no more.
        for lsn in 40..60 {
            tail.append(lsn, &record(lsn, 1));
        }
        tail.durable_set(60);
        assert_eq!(tail.read(51, &mut [0; 64]), TailRead::Miss);
        for lsn in 52..60 {
            hit(&tail, lsn, 1);
        }
        let (hits, misses) = tail.hits_and_misses();
        assert_eq!(
            (hits, misses),
            (10, 28),
            "a read of what is not durable is no miss"
        );
    }

    /// A suffix truncation drops what follows the cut, even once durable; the records after
    /// it are the new ones. A prefix truncation hides what precedes it.
    #[test]
    fn truncations_cut_the_ring() {
        let mut tail = TailCache::new(1000, 100, 0, 0);
        for lsn in 0..20 {
            tail.append(lsn, &record(lsn, 10));
        }
        tail.durable_set(20);
        tail.cut(20);
        assert_eq!(
            (tail.lsn_end(), tail.read(19, &mut [0; 64])),
            (20, TailRead::Hit(10))
        );
        tail.cut(15);
        assert_eq!(tail.lsn_end(), 15);
        assert_eq!(tail.read(15, &mut [0; 64]), TailRead::NotYet);
        hit(&tail, 14, 10);
        tail.append(15, &record(99, 12));
        tail.durable_set(16);
        let mut buffer = [0u8; 64];
        assert_eq!(tail.read(15, &mut buffer), TailRead::Hit(12));
        assert_eq!(&buffer[..12], record(99, 12));
        tail.first_set(5);
        assert_eq!(tail.read(4, &mut [0; 64]), TailRead::Miss);
        hit(&tail, 5, 10);
        tail.restart(100);
        assert_eq!(tail.read(5, &mut [0; 64]), TailRead::Miss);
        tail.append(100, &record(100, 3));
        tail.durable_set(101);
        hit(&tail, 100, 3);
    }

    /// A commit that fails part way cuts the ring below what it held: the ring empties, and
    /// its durable watermark stays where the shared log's is (found in review: it rose to the
    /// cut, and a reader at the shared watermark asked again and again without sleeping).
    #[test]
    fn a_cut_never_raises_the_durable_watermark() {
        let mut tail = TailCache::new(1000, 100, 10, 5);
        for lsn in 10..13 {
            tail.append(lsn, &record(lsn, 10));
        }
        tail.cut(10);
        assert!(!tail.durable_passes(5) && !tail.durable_passes(9));
        assert_eq!(tail.read(7, &mut [0; 64]), TailRead::NotYet);
        tail.append(10, &record(10, 10));
        tail.durable_set(11);
        hit(&tail, 10, 10);
    }

    /// A record larger than the ring passes through it and leaves it empty; a stopped ring and
    /// a disabled one miss every read.
    #[test]
    fn records_larger_than_the_ring_a_stopped_ring_and_a_disabled_ring_miss() {
        let mut tail = TailCache::new(16, 4, 0, 0);
        tail.append(0, &record(0, 10));
        tail.append(1, &record(1, 17));
        tail.append(2, &record(2, 16));
        tail.durable_set(3);
        assert_eq!(tail.read(0, &mut [0; 64]), TailRead::Miss);
        assert_eq!(tail.read(1, &mut [0; 64]), TailRead::Miss);
        hit(&tail, 2, 16);
        tail.stop();
        assert_eq!(tail.read(2, &mut [0; 64]), TailRead::Miss, "stopped");
        assert_eq!(tail.read(3, &mut [0; 64]), TailRead::Miss, "stopped");
        assert!(!tail.durable_passes(2));
        let mut disabled = TailCache::new(0, 0, 0, 0);
        disabled.append(0, &record(0, 1));
        disabled.durable_set(1);
        assert_eq!(disabled.read(0, &mut [0; 64]), TailRead::Miss);
        assert_eq!(disabled.lsn_end(), 1);
    }
}
