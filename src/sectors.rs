//! The sector table: for every sector the log wrote and checked, the CRC32C of its bytes and
//! the first frame that starts in it, so that a point read loads and checks only the sectors
//! of its record (one 4 KiB read for a small one) instead of a whole block.
//!
//! Entries are filled from the bytes of a block as they are known to be right: when the writer
//! seals it (the bytes it is about to write) and when recovery accepts it (the bytes it read
//! and checked against the block's own checksums). A read compares every sector it loads with
//! its entry: a stale, torn, misdirected or flipped sector differs from what was written, and
//! is reported as corruption, as a block that fails its body checksum is. A sector without an
//! entry (a gap: a frameless block, or a table switched off) sends the read to the block path.
//!
//! `docs/format.md` ("Point reads") explains why this lives in memory and not in the format.

use crate::format::{self, BlockHeader, FragmentKind, BLOCK_HEADER_SIZE_BYTES};
use crate::storage::SegmentId;
use crate::Lsn;

/// No frame starts in the sector.
const AT_NONE: u16 = u16::MAX;

/// The entry describes nothing (a gap): the `frames` of an invalid entry.
const FRAMES_INVALID: u8 = u8::MAX;

/// Frames counted per sector, at most (more are counted as this many).
const FRAMES_COUNTED_MAX: u8 = u8::MAX - 1;

/// What the table knows of one sector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SectorEntry {
    /// CRC32C of the sector's bytes as written.
    pub checksum: u32,
    /// `2 * (lsn - segment) + continuation` of the first frame that starts in the sector (its
    /// record's LSN, relative to the segment's first, and whether it is a `Middle` or `Last`
    /// fragment); in a sector where none starts, the key of the last frame before it, so that
    /// keys never decrease along a segment.
    pub key: u32,
    /// Where that frame's header starts in the sector; `AT_NONE` if none starts there.
    pub at: u16,
    /// How many frames start in the sector (at most `FRAMES_COUNTED_MAX`); `FRAMES_INVALID`
    /// in a gap, where the entry describes nothing. In one sector, the frames belong to
    /// consecutive records: the one of the first frame, then one more per frame.
    pub frames: u8,
    /// How many sectors after this one the last frame that starts in it reaches into (at
    /// most 255): a read of that frame's record loads them with the sector, in one read.
    pub spill: u8,
}

const _: () = assert!(
    std::mem::size_of::<SectorEntry>() == 12,
    "12 bytes per sector"
);

impl SectorEntry {
    /// Whether the entry describes its sector.
    pub fn valid(&self) -> bool {
        self.frames != FRAMES_INVALID
    }

    /// The sectors a read of record `lsn`, which starts in this sector, loads first: this
    /// one, and those its last frame reaches into if the record may be that frame's.
    pub fn sectors_for(&self, segment: SegmentId, lsn: Lsn) -> usize {
        let index = lsn.saturating_sub(segment + u64::from(self.key / 2));
        let last = u64::from(self.frames.saturating_sub(1));
        match index < last || self.frames >= FRAMES_COUNTED_MAX {
            true => 1,
            false => 1 + usize::from(self.spill),
        }
    }

    /// Where the first frame that starts in the sector is, if one does.
    pub fn frame_at(&self) -> Option<usize> {
        (self.at != AT_NONE).then_some(usize::from(self.at))
    }
}

/// The key of a frame of record `lsn` in segment `segment`.
fn key(segment: SegmentId, lsn: Lsn, continuation: bool) -> u32 {
    let relative = lsn - segment;
    u32::try_from(2 * relative + u64::from(continuation)).expect("records of a segment fit")
}

/// A sector table over `sector_size_bytes` sectors.
pub(crate) struct Sectors {
    pub sector_size_bytes: usize,
}

impl Sectors {
    /// Fills the entries of the sectors of one block (`block`, whole sectors, starting at
    /// sector `first` of the segment; `entries` is the segment's table, of which `len` are
    /// filled), and marks any gap before it as unknown; returns the new length.
    pub fn note(
        &self,
        entries: &mut [SectorEntry],
        len: usize,
        segment: SegmentId,
        first: usize,
        block: &[u8],
        header: &BlockHeader,
    ) -> usize {
        let size = self.sector_size_bytes;
        assert_eq!(block.len() % size, 0);
        let count = block.len() / size;
        assert!(first + count <= entries.len());
        // A block written where the table already knew sectors replaces them, and what
        // followed them.
        let len = len.min(first);
        let mut carry = key(segment, header.lsn_first, header.continues());
        if let Some(last) = len.checked_sub(1) {
            carry = carry.max(entries[last].key);
        }
        for entry in entries.iter_mut().take(first).skip(len) {
            *entry = SectorEntry {
                checksum: 0,
                key: carry,
                at: AT_NONE,
                frames: FRAMES_INVALID,
                spill: 0,
            };
        }
        for (index, bytes) in block.chunks_exact(size).enumerate() {
            entries[first + index] = SectorEntry {
                checksum: format::checksum(bytes),
                key: carry,
                at: AT_NONE,
                frames: 0,
                spill: 0,
            };
        }
        // Frames, from the header's end to the body's.
        let body_end = BLOCK_HEADER_SIZE_BYTES + header.body_size_bytes as usize;
        let mut at = BLOCK_HEADER_SIZE_BYTES;
        let mut lsn = header.lsn_first;
        for _ in 0..header.fragment_count {
            assert!(at + format::FRAME_HEADER_SIZE_BYTES <= body_end);
            let (kind, frame_size) = format::frame_decode(&block[at..]);
            let continuation = matches!(kind, FragmentKind::Middle | FragmentKind::Last);
            let entry = &mut entries[first + at / size];
            if entry.at == AT_NONE {
                entry.at = (at % size) as u16;
                entry.key = key(segment, lsn, continuation);
            }
            entry.frames = (entry.frames + 1).min(FRAMES_COUNTED_MAX);
            if matches!(kind, FragmentKind::Full | FragmentKind::Last) {
                lsn += 1;
            }
            let end = at + format::FRAME_HEADER_SIZE_BYTES + frame_size as usize;
            entry.spill = ((end - 1) / size - at / size).min(usize::from(u8::MAX)) as u8;
            at = end;
        }
        // Sectors where no frame starts carry the key of the last one before them.
        let mut previous = carry;
        for entry in &mut entries[first..first + count] {
            if entry.at == AT_NONE {
                entry.key = previous;
            }
            previous = entry.key;
        }
        first + count
    }

    /// The sector where record `lsn`'s first frame starts, among the `len` entries of a
    /// segment: the last sector whose first frame comes at or before it, provided that a
    /// frame after the record's start is known too, in a later sector or in the same one (so
    /// that the record's frame lies between the two, and a walk from the first never runs
    /// into a block's padding). `None` if the table cannot say: the record is past what it
    /// knows (the open block), or a gap lies in the way.
    pub fn locate(
        &self,
        entries: &[SectorEntry],
        segment: SegmentId,
        lsn: Lsn,
    ) -> Option<(usize, SectorEntry)> {
        let target = key(segment, lsn, false);
        let mut at = entries.partition_point(|entry| entry.key <= target);
        let bounded_after = entries.get(at).is_some_and(|after| after.valid());
        while at > 0 {
            at -= 1;
            let entry = entries[at];
            if !entry.valid() {
                return None;
            }
            if entry.frame_at().is_some() {
                // Or bounded by a later frame in the same sector.
                let index = lsn - (segment + u64::from(entry.key / 2));
                let within =
                    index + 1 < u64::from(entry.frames) && entry.frames < FRAMES_COUNTED_MAX;
                return (bounded_after || within).then_some((at, entry));
            }
        }
        None
    }

    /// Lowers every key above `key_max` (an absolute index key, `2 * lsn`) to it, as
    /// `SegmentTable::index_clamp` does for the index.
    pub fn clamp(&self, entries: &mut [SectorEntry], segment: SegmentId, key_max: u64) {
        let relative = key_max.saturating_sub(2 * segment);
        let relative = u32::try_from(relative).unwrap_or(u32::MAX);
        for entry in entries {
            entry.key = entry.key.min(relative);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTOR: usize = 512;

    /// A block of `sectors` sectors at the start of segment 100 whose body holds `frames`
    /// (kind, data size), from record `lsn_first`.
    fn block(
        sectors: usize,
        lsn_first: Lsn,
        frames: &[(FragmentKind, usize)],
    ) -> (Vec<u8>, BlockHeader) {
        let mut bytes = vec![0u8; sectors * SECTOR];
        let mut at = BLOCK_HEADER_SIZE_BYTES;
        for &(kind, size) in frames {
            format::frame_encode(&mut bytes[at..], kind, size as u32);
            bytes[at + 4..at + 4 + size].fill(0xAB);
            at += 4 + size;
        }
        let header = BlockHeader {
            segment: 100,
            lsn_first,
            flags: match frames[0].0 {
                FragmentKind::Middle | FragmentKind::Last => format::FLAG_CONTINUES,
                _ => 0,
            },
            size_bytes: bytes.len() as u32,
            body_size_bytes: (at - BLOCK_HEADER_SIZE_BYTES) as u32,
            fragment_count: frames.len() as u32,
            ..BlockHeader::default()
        };
        (bytes, header)
    }

    /// Each sector gets the checksum of its bytes, the first frame that starts in it, how
    /// many start there and how far the last runs on; a record is located in the sector
    /// where its first frame starts, and only while a later frame bounds it.
    #[test]
    fn entries_describe_their_sectors_and_locate_records() {
        let table = Sectors {
            sector_size_bytes: SECTOR,
        };
        let mut entries = vec![SectorEntry::default(); 16];
        // Record 100: 300 bytes with its frame from 128 to 428; record 101 from 428 to 1132,
        // over sectors 0, 1 and 2; record 102: 10 bytes in sector 2; record 103 starts in
        // sector 2 and goes on in the next block (First).
        let frames = [
            (FragmentKind::Full, 296),
            (FragmentKind::Full, 700),
            (FragmentKind::Full, 10),
            (FragmentKind::First, 300),
        ];
        let (bytes, header) = block(3, 100, &frames);
        let len = table.note(&mut entries, 0, 100, 0, &bytes, &header);
        assert_eq!(len, 3);
        for (index, entry) in entries[..3].iter().enumerate() {
            let sector = &bytes[index * SECTOR..(index + 1) * SECTOR];
            assert_eq!(entry.checksum, format::checksum(sector), "sector {index}");
        }
        assert_eq!((entries[0].frame_at(), entries[0].key), (Some(128), 0));
        assert_eq!((entries[0].frames, entries[0].spill), (2, 2));
        assert_eq!(entries[1].frame_at(), None, "record 101's data only");
        assert_eq!(entries[1].key, 0, "carried from sector 0");
        assert_eq!(
            (entries[2].frame_at(), entries[2].key),
            (Some(1132 - 1024), 4)
        );
        assert_eq!((entries[2].frames, entries[2].spill), (2, 0));
        assert_eq!(
            entries[0].sectors_for(100, 100),
            1,
            "record 100 is not the last"
        );
        assert_eq!(entries[0].sectors_for(100, 101), 3, "record 101 runs on");
        // The next block continues record 103, then record 104 and 105.
        let frames = [(FragmentKind::Last, 100), (FragmentKind::Full, 50)];
        let (next, header) = block(1, 103, &frames);
        let len = table.note(&mut entries, len, 100, 3, &next, &header);
        assert_eq!(len, 4);
        assert_eq!(entries[3].key, 2 * 3 + 1, "a continuation of 103");
        let located = |lsn| table.locate(&entries[..len], 100, lsn).map(|found| found.0);
        assert_eq!(located(100), Some(0));
        assert_eq!(located(101), Some(0));
        assert_eq!(located(102), Some(2));
        assert_eq!(located(103), Some(2));
        assert_eq!(located(104), None, "no later frame bounds the last record");
        // A gap (a block the table never saw) stops a locate that would cross it.
        let (later, header) = block(1, 105, &[(FragmentKind::Full, 8), (FragmentKind::Full, 8)]);
        let len = table.note(&mut entries, len, 100, 6, &later, &header);
        assert_eq!(len, 7);
        assert!(!entries[4].valid() && !entries[5].valid());
        assert_eq!(
            table.locate(&entries[..len], 100, 104),
            None,
            "a gap follows"
        );
        assert_eq!(
            table.locate(&entries[..len], 100, 105).map(|found| found.0),
            Some(6)
        );
        // Recovery abandons what follows record 103's start: keys come down to it.
        table.clamp(&mut entries[..len], 100, 2 * 103);
        assert!(entries[..len].iter().all(|entry| entry.key <= 6));
    }
}
