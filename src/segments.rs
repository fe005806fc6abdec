//! The segment table and its sparse index, allocated once at open.
//!
//! Segments live in a ring of `Config::segment_count_max` slots. Each slot owns a fixed index
//! region: one entry per `block_size_bytes` of segment, holding the first block that starts in
//! that stretch. Blocks are never larger than `block_size_bytes`, so every stretch up to the
//! end of the written data has an entry, and finding a record reads at most about one block
//! of headers past the entry.

use crate::format::BlockHeader;
use crate::sectors::{SectorEntry, Sectors};
use crate::storage::SegmentId;
use crate::Lsn;

/// The first block that starts in one `block_size_bytes` stretch of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// `2 * lsn_first` for a block whose body starts with a new record, `2 * lsn_first + 1`
    /// for one that starts with the continuation of record `lsn_first`: the order in which
    /// such blocks follow each other in a segment.
    pub key: u64,
    /// Where the block starts in the segment.
    pub offset_bytes: u32,
    /// The block's `checksum_header` once it is sealed (zero while it is open in memory): a
    /// read checks it, and each later block's `checksum_previous`, so that a stale block left
    /// where a write never landed is refused rather than read.
    pub checksum: u32,
}

impl IndexEntry {
    pub fn key(lsn_first: Lsn, continues: bool) -> u64 {
        assert!(lsn_first < 1 << 62, "lsn out of range");
        lsn_first * 2 + u64::from(continues)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Segment {
    id: SegmentId,
    index_len: u32,
    /// Sectors from the segment's start that the sector table describes.
    sectors_len: u32,
}

pub(crate) struct SegmentTable {
    ring: Vec<Segment>,
    head: usize,
    len: usize,
    index: Vec<IndexEntry>,
    slots_per_segment: usize,
    block_size_bytes: u64,
    /// One entry per sector of every slot (empty when the table is off).
    sector_entries: Vec<SectorEntry>,
    sectors_per_segment: usize,
    sectors: Sectors,
}

impl SegmentTable {
    /// A table of `count_max` segments, with `slots_per_segment` index entries each and,
    /// if `sectors_per_segment` is not 0, a sector table of `sector_size_bytes` sectors.
    pub fn new(
        count_max: u32,
        slots_per_segment: usize,
        block_size_bytes: u32,
        (sectors_per_segment, sector_size_bytes): (usize, u32),
    ) -> SegmentTable {
        assert!(count_max >= 2 && slots_per_segment >= 1);
        SegmentTable {
            ring: vec![Segment::default(); count_max as usize],
            head: 0,
            len: 0,
            index: vec![IndexEntry::default(); count_max as usize * slots_per_segment],
            slots_per_segment,
            block_size_bytes: u64::from(block_size_bytes),
            sector_entries: vec![SectorEntry::default(); count_max as usize * sectors_per_segment],
            sectors_per_segment,
            sectors: Sectors {
                sector_size_bytes: sector_size_bytes as usize,
            },
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len == self.ring.len()
    }

    fn ring_position(&self, index: usize) -> usize {
        assert!(
            index < self.len,
            "segment index {index} out of {}",
            self.len
        );
        (self.head + index) % self.ring.len()
    }

    pub fn id(&self, index: usize) -> SegmentId {
        self.ring[self.ring_position(index)].id
    }

    pub fn last(&self) -> SegmentId {
        self.id(self.len - 1)
    }

    pub fn push(&mut self, id: SegmentId) {
        assert!(!self.is_full());
        assert!(self.len == 0 || id > self.last(), "segments out of order");
        let position = (self.head + self.len) % self.ring.len();
        self.ring[position] = Segment {
            id,
            index_len: 0,
            sectors_len: 0,
        };
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> SegmentId {
        assert!(self.len > 0);
        let id = self.ring[self.head].id;
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        id
    }

    pub fn pop_back(&mut self) -> SegmentId {
        assert!(self.len > 0);
        let id = self.last();
        self.len -= 1;
        id
    }

    /// The index of the segment that holds `lsn`: the last one whose id is at most `lsn`.
    pub fn find(&self, lsn: Lsn) -> Option<usize> {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let middle = (low + high) / 2;
            if self.id(middle) <= lsn {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low.checked_sub(1)
    }

    fn entries(&self, index: usize) -> &[IndexEntry] {
        let position = self.ring_position(index);
        let start = position * self.slots_per_segment;
        let len = self.ring[position].index_len as usize;
        &self.index[start..start + len]
    }

    /// Notes a block that starts at `offset_bytes`; keeps it if it is the first in its stretch.
    pub fn index_note(
        &mut self,
        index: usize,
        offset_bytes: u64,
        lsn_first: Lsn,
        continues: bool,
        checksum: u32,
    ) {
        let position = self.ring_position(index);
        let slot = (offset_bytes / self.block_size_bytes) as usize;
        assert!(slot < self.slots_per_segment);
        let segment = &mut self.ring[position];
        let len = segment.index_len as usize;
        if slot < len {
            return;
        }
        assert_eq!(slot, len, "index stretch skipped");
        let entry = IndexEntry {
            key: IndexEntry::key(lsn_first, continues),
            offset_bytes: u32::try_from(offset_bytes).expect("offset fits u32"),
            checksum,
        };
        let start = position * self.slots_per_segment;
        if let Some(previous) = len.checked_sub(1).map(|last| self.index[start + last]) {
            assert!(previous.key <= entry.key, "index keys out of order");
        }
        self.index[start + slot] = entry;
        segment.index_len += 1;
    }

    /// The `checksum_header` of the block at offset 0 of a segment, once it is sealed and
    /// noted; `None` if the segment has no block yet, or its first block is still open.
    pub fn first_block_checksum(&self, index: usize) -> Option<u32> {
        let first = self.entries(index).first()?;
        (first.offset_bytes == 0 && first.checksum != 0).then_some(first.checksum)
    }

    /// Forgets a segment's index (the segment was recreated empty).
    pub fn index_reset(&mut self, index: usize) {
        let position = self.ring_position(index);
        self.ring[position].index_len = 0;
        self.ring[position].sectors_len = 0;
    }

    /// Records the checksum of a block sealed after it was noted, if it is the entry of its
    /// stretch.
    pub fn index_seal(&mut self, index: usize, offset_bytes: u64, checksum: u32) {
        let position = self.ring_position(index);
        let slot = (offset_bytes / self.block_size_bytes) as usize;
        let start = position * self.slots_per_segment;
        let entry = &mut self.index[start + slot];
        if slot < self.ring[position].index_len as usize
            && u64::from(entry.offset_bytes) == offset_bytes
        {
            entry.checksum = checksum;
        }
    }

    /// Lowers every key of a segment's index above `key_max` to it. Recovery calls it when a
    /// crash left a record open: the blocks holding its continuation stay on disk, abandoned,
    /// and the new epoch writes a new record at the same LSN, whose key is lower. A walk from
    /// an abandoned block skips its fragments and finds the new record after it.
    pub fn index_clamp(&mut self, index: usize, key_max: u64) {
        let position = self.ring_position(index);
        let start = position * self.slots_per_segment;
        let len = self.ring[position].index_len as usize;
        for entry in &mut self.index[start..start + len] {
            entry.key = entry.key.min(key_max);
        }
        let segment = self.ring[position];
        let sectors = self.sectors_range(position, segment.sectors_len as usize);
        self.sectors
            .clamp(&mut self.sector_entries[sectors], segment.id, key_max);
    }

    fn sectors_range(&self, position: usize, len: usize) -> std::ops::Range<usize> {
        let start = position * self.sectors_per_segment;
        start..start + len
    }

    /// Notes the sectors of a block whose bytes are known right (sealed by the writer, or
    /// accepted by recovery) in the sector table, if it is on.
    pub fn sectors_note(
        &mut self,
        index: usize,
        offset_bytes: u64,
        block: &[u8],
        header: &BlockHeader,
    ) {
        if self.sectors_per_segment == 0 {
            return;
        }
        let position = self.ring_position(index);
        let segment = self.ring[position];
        let first = (offset_bytes / self.sectors.sector_size_bytes as u64) as usize;
        let entries = self.sectors_range(position, self.sectors_per_segment);
        let len = self.sectors.note(
            &mut self.sector_entries[entries],
            segment.sectors_len as usize,
            segment.id,
            first,
            block,
            header,
        );
        self.ring[position].sectors_len = len as u32;
    }

    /// The sector of segment `index` where record `lsn` starts, and its entry, if the sector
    /// table knows.
    pub fn sectors_locate(&self, index: usize, lsn: Lsn) -> Option<(usize, SectorEntry)> {
        let position = self.ring_position(index);
        let segment = self.ring[position];
        let entries = self.sectors_range(position, segment.sectors_len as usize);
        self.sectors
            .locate(&self.sector_entries[entries], segment.id, lsn)
    }

    /// The entry of sector `sector` of segment `index`, if the table holds one.
    pub fn sector_entry(&self, index: usize, sector: usize) -> Option<SectorEntry> {
        let position = self.ring_position(index);
        let len = self.ring[position].sectors_len as usize;
        let entry = self.sector_entries[self.sectors_range(position, len)].get(sector)?;
        entry.valid().then_some(*entry)
    }

    /// The offset of a block at or before the one where record `lsn` starts, from which a walk
    /// forward finds it; `None` if the segment has no blocks.
    pub fn index_locate(&self, index: usize, lsn: Lsn) -> Option<IndexEntry> {
        let entries = self.entries(index);
        // The last block that starts with record `lsn` itself or with anything before it; the
        // blocks that continue `lsn` come after the one it starts in.
        let upto = entries.partition_point(|entry| entry.key <= IndexEntry::key(lsn, false));
        upto.checked_sub(1).map(|at| entries[at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_find_and_pop() {
        let mut table = SegmentTable::new(3, 4, 4096, (0, 4096));
        table.push(0);
        table.push(10);
        table.push(20);
        assert!(table.is_full());
        assert_eq!(table.find(0), Some(0));
        assert_eq!(table.find(15), Some(1));
        assert_eq!(table.find(99), Some(2));
        assert_eq!(table.pop_front(), 0);
        table.push(30);
        assert_eq!(table.find(5), None);
        assert_eq!(table.find(30), Some(2));
        assert_eq!(table.id(0), 10);
    }

    #[test]
    fn locate_finds_the_block_a_record_starts_in() {
        let mut table = SegmentTable::new(2, 8, 4096, (0, 4096));
        table.push(0);
        // Slot 0: records 0..; slot 1: record 5 starts; slot 2 and 3: continuations of 5;
        // slot 4: record 6.
        table.index_note(0, 0, 0, false, 0);
        table.index_note(0, 4096, 5, false, 0);
        table.index_note(0, 8192, 5, true, 0);
        table.index_note(0, 12288, 5, true, 0);
        table.index_note(0, 16384, 6, false, 0);
        assert_eq!(
            table.index_locate(0, 3).map(|entry| entry.offset_bytes),
            Some(0)
        );
        assert_eq!(
            table.index_locate(0, 5).map(|entry| entry.offset_bytes),
            Some(4096)
        );
        assert_eq!(
            table.index_locate(0, 6).map(|entry| entry.offset_bytes),
            Some(16384)
        );
        assert_eq!(
            table.index_locate(0, 9).map(|entry| entry.offset_bytes),
            Some(16384)
        );
    }
}
