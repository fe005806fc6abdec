//! The tail cache: the encoded entries at the end of the log, kept in memory.
//!
//! openraft requires an appended entry to be readable as soon as `append` returns, but a
//! record staged in a `SharedLog` is readable only once a commit has taken it into the log.
//! The cache holds every entry from some LSN to the end, so reads of the tail never wait for
//! a commit; and it keeps durable entries too, up to a size, because replication reads the
//! entries just appended, and a read from the log waits for the log's lock, which a commit
//! holds through its write and its sync.

use ballast_log::Lsn;
use std::collections::VecDeque;

/// Entries `[lsn_first, lsn_end)` as encoded records, and which of them are in the log
/// (`lsn_durable`); entries before `lsn_first` are durable in the log, entries from
/// `lsn_visible` on are the ones a reader may see (the rest are purged).
#[derive(Debug)]
pub struct TailCache {
    records: VecDeque<Vec<u8>>,
    lsn_first: Lsn,
    /// Every entry below it is durable in the log.
    lsn_durable: Lsn,
    /// Entries below it are purged: hidden, whatever the log still holds.
    lsn_visible: Lsn,
    size_bytes: u64,
    /// Durable entries are dropped from the front while the cache holds more than this.
    size_bytes_max: u64,
}

impl TailCache {
    /// An empty cache at the end of a log whose next LSN is `lsn_next`, everything before it
    /// durable, entries below `lsn_visible` purged.
    pub fn new(lsn_next: Lsn, lsn_visible: Lsn, size_bytes_max: u64) -> TailCache {
        TailCache {
            records: VecDeque::new(),
            lsn_first: lsn_next,
            lsn_durable: lsn_next,
            lsn_visible,
            size_bytes: 0,
            size_bytes_max,
        }
    }

    /// The LSN the next appended entry gets.
    pub fn lsn_end(&self) -> Lsn {
        self.lsn_first + self.records.len() as Lsn
    }

    /// The first LSN a reader may see.
    pub fn lsn_visible(&self) -> Lsn {
        self.lsn_visible
    }

    /// The first LSN the cache holds: entries before it must be read from the log.
    pub fn lsn_first(&self) -> Lsn {
        self.lsn_first
    }

    /// Appends the records of entries `lsn_end()..`.
    pub fn push(&mut self, records: impl IntoIterator<Item = Vec<u8>>) {
        for record in records {
            self.size_bytes += record.len() as u64;
            self.records.push_back(record);
        }
        self.trim();
    }

    /// The record of entry `lsn`, if the cache holds it.
    pub fn get(&self, lsn: Lsn) -> Option<&[u8]> {
        let offset = lsn.checked_sub(self.lsn_first)?;
        self.records.get(offset as usize).map(Vec::as_slice)
    }

    /// Every entry below `lsn_end` is durable now; drops durable entries beyond the size.
    pub fn durable(&mut self, lsn_end: Lsn) {
        assert!(
            lsn_end <= self.lsn_end(),
            "only appended entries become durable"
        );
        self.lsn_durable = self.lsn_durable.max(lsn_end);
        self.trim();
    }

    /// Removes entries `lsn..`; everything before `lsn` is durable (a suffix truncation
    /// flushes first).
    pub fn truncate_suffix(&mut self, lsn: Lsn) {
        assert!(lsn >= self.lsn_visible && lsn <= self.lsn_end());
        while self.lsn_end() > lsn && !self.records.is_empty() {
            let record = self.records.pop_back().expect("not empty");
            self.size_bytes -= record.len() as u64;
        }
        if self.records.is_empty() {
            self.lsn_first = lsn;
        }
        self.lsn_durable = lsn;
        self.trim();
    }

    /// Hides entries below `lsn` (purged). Past the end, the log restarts empty at `lsn`.
    pub fn purge(&mut self, lsn: Lsn) {
        assert!(lsn >= self.lsn_visible, "purges only move forward");
        self.lsn_visible = lsn;
        if lsn >= self.lsn_end() {
            self.records.clear();
            self.size_bytes = 0;
            self.lsn_first = lsn;
            self.lsn_durable = lsn;
            return;
        }
        while self.lsn_first < lsn {
            self.pop_front();
        }
    }

    fn trim(&mut self) {
        while self.size_bytes > self.size_bytes_max && self.lsn_first < self.lsn_durable {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        let record = self.records.pop_front().expect("an entry to drop");
        self.size_bytes -= record.len() as u64;
        self.lsn_first += 1;
        // An entry may leave the cache before it is durable only when it is purged.
        self.lsn_durable = self.lsn_durable.max(self.lsn_first.min(self.lsn_visible));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(count: usize, size_bytes: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|index| vec![index as u8; size_bytes])
            .collect()
    }

    #[test]
    fn keeps_entries_that_are_not_durable_whatever_their_size() {
        let mut cache = TailCache::new(10, 0, 100);
        cache.push(records(5, 100));
        assert_eq!((cache.lsn_first(), cache.lsn_end()), (10, 15));
        cache.durable(13);
        // Over the size: durable entries go, the two that are not stay.
        assert_eq!(cache.lsn_first(), 13);
        assert_eq!(cache.get(12), None);
        assert_eq!(cache.get(14), Some(&[4u8; 100][..]));
    }

    #[test]
    fn truncation_and_purge_move_the_ends() {
        let mut cache = TailCache::new(0, 0, 1 << 20);
        cache.push(records(10, 8));
        cache.truncate_suffix(6);
        assert_eq!(cache.lsn_end(), 6);
        assert_eq!(cache.get(6), None);
        cache.purge(3);
        assert_eq!((cache.lsn_visible(), cache.lsn_first()), (3, 3));
        cache.purge(20);
        assert_eq!(
            (cache.lsn_first(), cache.lsn_end(), cache.lsn_visible()),
            (20, 20, 20)
        );
        cache.push(records(1, 8));
        assert_eq!(cache.get(20), Some(&[0u8; 8][..]));
    }
}
