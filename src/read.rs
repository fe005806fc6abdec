//! Reading blocks back from storage through one fixed read buffer.

use crate::error::{CorruptionKind, Error, IoOperation, Result};
use crate::format::{self, BlockHeader, HeaderRead, BLOCK_HEADER_SIZE_BYTES};
use crate::sector_cache::SectorCache;
use crate::storage::{AlignedBuffer, SegmentId, Storage};

/// Steps a scan asks storage to read ahead of the window.
const READ_AHEAD_STEPS: usize = 2;

/// A window of one segment held in the read buffer.
///
/// A scan loads the segment one step at a time and asks storage to read the next steps
/// ahead. A step lands at the end of the spare buffer (`step_at`), the tail of the window
/// before it (a block that straddles the window's end) is copied in front of it, and the
/// buffers swap: storage may hand over a buffer it read ahead into instead of copying one.
pub(crate) struct ReadCache {
    buffer: AlignedBuffer,
    spare: AlignedBuffer,
    /// Where the window starts in `buffer`.
    base: usize,
    segment: SegmentId,
    offset_bytes: u64,
    size_bytes: usize,
    /// How much a miss loads: the whole buffer for scans, one block for point reads.
    window_bytes: usize,
    /// What a scan loads after the window, and asks storage to read ahead: the buffer less
    /// one block, the room kept for a block that straddles the window's end (0: the buffer
    /// holds less than two blocks, and scans do not read ahead).
    step_bytes: usize,
    /// The last block whose body was verified while in the buffer, with what it holds: a scan
    /// that yields its records one call at a time checks it once, not once per record.
    verified: Option<(SegmentId, u64, format::BodySummary)>,
    /// Sectors point reads loaded and checked, kept beyond the window (`Config::cache_size_bytes`).
    pub sectors: SectorCache,
}

impl ReadCache {
    pub fn new(
        size_bytes: u32,
        sector_size_bytes: u32,
        block_size_bytes: u32,
        cache_size_bytes: u64,
    ) -> ReadCache {
        assert!(size_bytes >= block_size_bytes);
        let step_bytes = if size_bytes >= 2 * block_size_bytes {
            (size_bytes - block_size_bytes) as usize
        } else {
            0
        };
        ReadCache {
            buffer: AlignedBuffer::new(size_bytes as usize, sector_size_bytes as usize),
            spare: AlignedBuffer::new(size_bytes as usize, sector_size_bytes as usize),
            base: 0,
            segment: 0,
            offset_bytes: 0,
            size_bytes: 0,
            window_bytes: size_bytes as usize,
            step_bytes,
            verified: None,
            sectors: SectorCache::new(cache_size_bytes, sector_size_bytes),
        }
    }

    /// Where `[offset_bytes, offset_bytes + size_bytes)` of the segment starts in `bytes()`,
    /// if the window holds it.
    pub fn holds(&self, segment: SegmentId, offset_bytes: u64, size_bytes: usize) -> Option<usize> {
        let cached_end = self.offset_bytes + self.size_bytes as u64;
        let hit = self.segment == segment
            && offset_bytes >= self.offset_bytes
            && offset_bytes + size_bytes as u64 <= cached_end;
        hit.then(|| (offset_bytes - self.offset_bytes) as usize)
    }

    /// Makes the window the sectors `[offset_bytes, offset_bytes + size_bytes)` (whole
    /// sectors) of the segment from the sector cache, if it holds them all; returns where
    /// they start. A use of each, counted as a hit; else counted as a miss.
    pub fn window_from_sectors(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        size_bytes: usize,
    ) -> Option<usize> {
        let sector = self.buffer.alignment_bytes();
        let first = offset_bytes / sector as u64;
        let count = size_bytes / sector;
        let held =
            (first..first + count as u64).all(|number| self.sectors.contains(segment, number));
        if !held || size_bytes > self.buffer.len() {
            self.sectors.misses += 1;
            return None;
        }
        self.sectors.hits += 1;
        for index in 0..count {
            let bytes = self
                .sectors
                .get(segment, first + index as u64)
                .expect("held");
            self.buffer[index * sector..(index + 1) * sector].copy_from_slice(bytes);
        }
        self.segment = segment;
        self.base = 0;
        self.offset_bytes = offset_bytes;
        self.size_bytes = size_bytes;
        self.verified = None;
        Some(0)
    }

    /// Puts the checked sectors `[offset_bytes, offset_bytes + size_bytes)` of the segment,
    /// which `bytes()` holds from `start`, in the sector cache.
    pub fn sectors_keep(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        size_bytes: usize,
        start: usize,
    ) {
        let sector = self.buffer.alignment_bytes();
        let first = offset_bytes / sector as u64;
        for index in 0..size_bytes / sector {
            let at = self.base + start + index * sector;
            self.sectors
                .insert(segment, first + index as u64, &self.buffer[at..at + sector]);
        }
    }

    /// Sets how much a miss loads (at least the block asked for, at most the buffer).
    pub fn window_set(&mut self, window_bytes: usize) {
        assert!(window_bytes > 0);
        self.window_bytes = window_bytes.min(self.buffer.len());
    }

    /// Forgets what the buffer holds of `segment` from `offset_bytes` on, because it is about
    /// to change on storage.
    pub fn invalidate(&mut self, segment: SegmentId, offset_bytes: u64, size_bytes: u64) {
        if !crate::planted::active("sector-cache-kept-on-write") {
            self.sectors.invalidate(segment, offset_bytes, size_bytes);
        }
        let cached_end = self.offset_bytes + self.size_bytes as u64;
        let overlaps = offset_bytes < cached_end && self.offset_bytes < offset_bytes + size_bytes;
        if self.segment == segment && overlaps {
            self.size_bytes = 0;
            self.verified = None;
        }
    }

    /// Ensures `[offset_bytes, offset_bytes + size_bytes)` of the segment is in the buffer and
    /// returns where it starts in it.
    pub fn load<S: Storage>(
        &mut self,
        storage: &mut S,
        segment: SegmentId,
        segment_size_bytes: u64,
        offset_bytes: u64,
        size_bytes: usize,
    ) -> Result<usize> {
        assert!(offset_bytes + size_bytes as u64 <= segment_size_bytes);
        assert!(size_bytes <= self.buffer.len());
        let cached_end = self.offset_bytes + self.size_bytes as u64;
        let hit = self.segment == segment
            && offset_bytes >= self.offset_bytes
            && offset_bytes + size_bytes as u64 <= cached_end;
        if !hit {
            let sector = self.buffer.alignment_bytes() as u64;
            let start = offset_bytes / sector * sector;
            let needed = (offset_bytes - start) as usize + size_bytes;
            let scanning = self.step_bytes > 0 && self.window_bytes == self.buffer.len();
            let carry = cached_end.saturating_sub(start) as usize;
            let follows = scanning
                && self.segment == segment
                && self.size_bytes > 0
                && (self.offset_bytes..=cached_end).contains(&start)
                && carry + self.step_bytes <= self.buffer.len()
                && carry + self.step_bytes >= needed;
            let end = (offset_bytes + size_bytes as u64).next_multiple_of(sector);
            let extends = !scanning
                && self.window_bytes <= needed
                && self.segment == segment
                && self.size_bytes > 0
                && (self.offset_bytes..=cached_end).contains(&start)
                && self.base + (end - self.offset_bytes) as usize <= self.buffer.len();
            self.verified = None;
            if follows {
                self.load_next(storage, segment, segment_size_bytes, start)?;
            } else if extends {
                // A point read that runs past the window (a record that crosses into the
                // next sector) reads only what is missing, after it.
                let at = self.base + self.size_bytes;
                let missing = (end - cached_end) as usize;
                storage
                    .read(segment, cached_end, &mut self.buffer[at..at + missing])
                    .map_err(read_error(segment, cached_end))?;
                self.size_bytes += missing;
            } else {
                let window = self
                    .window_bytes
                    .max(needed)
                    .next_multiple_of(sector as usize);
                let size = (window.min(self.buffer.len()) as u64).min(segment_size_bytes - start);
                self.size_bytes = 0;
                storage
                    .read(segment, start, &mut self.buffer[..size as usize])
                    .map_err(read_error(segment, start))?;
                self.segment = segment;
                self.base = 0;
                self.offset_bytes = start;
                self.size_bytes = size as usize;
            }
            assert!(self.offset_bytes + self.size_bytes as u64 >= offset_bytes + size_bytes as u64);
            if scanning {
                // The next two steps: while this one is decoded and the next copied out, the
                // one after is already loading.
                let mut end = self.offset_bytes + self.size_bytes as u64;
                for _ in 0..READ_AHEAD_STEPS {
                    let ahead = (segment_size_bytes - end).min(self.step_bytes as u64);
                    if ahead == 0 {
                        break;
                    }
                    storage.read_ahead(segment, end, ahead as usize, self.step_at());
                    end += ahead;
                }
            }
        }
        Ok((offset_bytes - self.offset_bytes) as usize)
    }

    /// Where a scan's step lands in a buffer: after room for one block.
    fn step_at(&self) -> usize {
        self.buffer.len() - self.step_bytes
    }

    /// A scan goes on past the window: keeps its tail from `start` on (the start of a block
    /// that straddles the end, or nothing) and loads one step after it, the stretch the
    /// previous load asked storage to read ahead.
    fn load_next<S: Storage>(
        &mut self,
        storage: &mut S,
        segment: SegmentId,
        segment_size_bytes: u64,
        start: u64,
    ) -> Result<()> {
        let cached_end = self.offset_bytes + self.size_bytes as u64;
        let carry = (cached_end - start) as usize;
        let at = self.step_at();
        assert!(carry <= at, "a straddling block fits in front of the step");
        let size = (segment_size_bytes - cached_end).min(self.step_bytes as u64) as usize;
        storage
            .read_exchange(segment, cached_end, &mut self.spare, at, size)
            .map_err(read_error(segment, cached_end))?;
        let kept_from = self.base + (start - self.offset_bytes) as usize;
        self.spare[at - carry..at].copy_from_slice(&self.buffer[kept_from..kept_from + carry]);
        std::mem::swap(&mut self.buffer, &mut self.spare);
        self.segment = segment;
        self.base = at - carry;
        self.offset_bytes = start;
        self.size_bytes = carry + size;
        Ok(())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buffer[self.base..self.base + self.size_bytes]
    }
}

fn read_error(segment: SegmentId, offset_bytes: u64) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        operation: IoOperation::Read,
        segment: Some(segment),
        offset_bytes: Some(offset_bytes),
        source,
    }
}

/// Where a block must be, and the limits it must respect, to be accepted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Place {
    pub segment: SegmentId,
    pub offset_bytes: u64,
    pub segment_size_bytes: u64,
    pub sector_size_bytes: u32,
    pub block_size_bytes: u32,
}

/// A block header that passed its own checksum, judged against where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderState {
    Zero,
    Invalid,
    /// Valid, but names another place or another configuration.
    Misplaced(BlockHeader),
    /// Valid, but its fields are impossible (sizes, counts, LSNs, epoch).
    Malformed(BlockHeader),
    Valid(BlockHeader),
}

impl Place {
    /// Judges the header at the start of `bytes` (at least one header long).
    pub fn header_state(&self, bytes: &[u8]) -> HeaderState {
        let header = match BlockHeader::decode(bytes) {
            HeaderRead::Zero => return HeaderState::Zero,
            HeaderRead::Invalid => return HeaderState::Invalid,
            HeaderRead::Valid(header) => header,
        };
        let placed = (header.segment == self.segment
            && u64::from(header.offset_bytes) == self.offset_bytes
            || crate::planted::active("placement-unchecked"))
            && header.sector_size_bytes == self.sector_size_bytes
            && header.block_size_bytes == self.block_size_bytes
            && header.segment_size_bytes == self.segment_size_bytes;
        let possible = header.sizes_valid(self.sector_size_bytes, self.block_size_bytes)
            && self.offset_bytes + u64::from(header.size_bytes) <= self.segment_size_bytes;
        match (placed, possible) {
            (true, true) => HeaderState::Valid(header),
            (false, _) => HeaderState::Misplaced(header),
            (true, false) => HeaderState::Malformed(header),
        }
    }

    /// Loads the header sector at this place.
    pub fn load_header<S: Storage>(
        &self,
        cache: &mut ReadCache,
        storage: &mut S,
    ) -> Result<HeaderState> {
        let start = cache.load(
            storage,
            self.segment,
            self.segment_size_bytes,
            self.offset_bytes,
            self.sector_size_bytes as usize,
        )?;
        Ok(self.header_state(&cache.bytes()[start..start + BLOCK_HEADER_SIZE_BYTES]))
    }

    /// Loads a whole block whose header was judged valid and checks its body: returns where
    /// the body starts in the cache, or what is wrong with it.
    pub fn load_body<S: Storage>(
        &self,
        cache: &mut ReadCache,
        storage: &mut S,
        header: &BlockHeader,
    ) -> Result<Result<(usize, format::BodySummary), CorruptionKind>> {
        let start = cache.load(
            storage,
            self.segment,
            self.segment_size_bytes,
            self.offset_bytes,
            header.size_bytes as usize,
        )?;
        let body_start = start + BLOCK_HEADER_SIZE_BYTES;
        if let Some((segment, offset_bytes, summary)) = cache.verified {
            if (segment, offset_bytes) == (self.segment, self.offset_bytes) {
                return Ok(Ok((body_start, summary)));
            }
        }
        let body = &cache.bytes()[body_start..body_start + header.body_size_bytes as usize];
        if format::checksum(body) != header.checksum_body {
            return Ok(Err(CorruptionKind::BodyChecksum));
        }
        match format::body_check(body, header.fragment_count, header.continues()) {
            Some(summary) => {
                cache.verified = Some((self.segment, self.offset_bytes, summary));
                Ok(Ok((body_start, summary)))
            }
            None => Ok(Err(CorruptionKind::Framing)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Clock, Completion, MemStorage};
    use std::io;

    const SECTOR: u32 = 4096;
    const BLOCK: u32 = 8192;
    const BUFFER: u32 = 32 * 1024;
    const SEGMENT: u64 = 256 * 1024;

    /// A storage that records the reads and read-ahead hints made through it, over one
    /// segment (1) whose every byte names its sector.
    struct Recorder {
        inner: MemStorage,
        reads: Vec<(SegmentId, u64, usize)>,
        hints: Vec<(SegmentId, u64, usize)>,
    }

    impl Recorder {
        fn new() -> Recorder {
            let mut inner = MemStorage::new(SECTOR);
            let mut head = AlignedBuffer::new(SEGMENT as usize, SECTOR as usize);
            for (index, sector) in head.chunks_mut(SECTOR as usize).enumerate() {
                sector.fill(index as u8);
            }
            inner.segment_create_with(1, SEGMENT, &head).unwrap();
            let reads = Vec::new();
            let hints = Vec::new();
            Recorder {
                inner,
                reads,
                hints,
            }
        }

        fn bytes_read(&self) -> usize {
            self.reads.iter().map(|read| read.2).sum()
        }
    }

    impl Clock for Recorder {
        fn now_ns(&self) -> u64 {
            self.inner.now_ns()
        }
    }

    impl Storage for Recorder {
        fn sector_size_bytes(&self) -> u32 {
            SECTOR
        }
        fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
            self.inner.metadata_read(buffer)
        }
        fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()> {
            self.inner.metadata_write(buffer)
        }
        fn segment_list(&mut self) -> io::Result<Vec<SegmentId>> {
            self.inner.segment_list()
        }
        fn segment_create_with(&mut self, _: SegmentId, _: u64, _: &[u8]) -> io::Result<()> {
            unreachable!("reads only")
        }
        fn segment_remove(&mut self, segment: SegmentId) -> io::Result<()> {
            self.inner.segment_remove(segment)
        }
        fn segment_size_bytes(&mut self, segment: SegmentId) -> io::Result<u64> {
            self.inner.segment_size_bytes(segment)
        }
        fn read(&mut self, segment: SegmentId, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
            self.reads.push((segment, offset, buffer.len()));
            self.inner.read(segment, offset, buffer)
        }
        fn read_ahead(&mut self, segment: SegmentId, offset: u64, size_bytes: usize, _: usize) {
            self.hints.push((segment, offset, size_bytes));
        }
        fn write_submit(&mut self, _: u64, _: SegmentId, _: u64, _: AlignedBuffer, _: usize) {
            unreachable!("reads only")
        }
        fn sync_submit(&mut self, _: u64, _: SegmentId) {
            unreachable!("reads only")
        }
        fn poll(&mut self, _: bool) -> Option<Completion> {
            None
        }
    }

    fn load(cache: &mut ReadCache, storage: &mut Recorder, offset: u64, size: usize) {
        let at = cache.load(storage, 1, SEGMENT, offset, size).unwrap();
        let bytes = &cache.bytes()[at..at + size];
        for (index, &byte) in bytes.iter().enumerate() {
            let sector = (offset + index as u64) / u64::from(SECTOR);
            assert_eq!(byte, sector as u8, "byte {index} of the load at {offset}");
        }
    }

    /// A scan reads every byte of the segment once, in steps, and asks storage to read the
    /// next two steps ahead, never past the segment: with blocks that straddle the window's
    /// end (carried into the next window) and with blocks that end where it ends.
    #[test]
    fn a_scan_reads_each_byte_once_and_reads_ahead() {
        for sectors in [3, 2] {
            scan_check(sectors * SECTOR as usize);
        }
    }

    fn scan_check(block: usize) {
        let mut storage = Recorder::new();
        let mut cache = ReadCache::new(BUFFER, SECTOR, BLOCK, 0);
        let mut offset = 0;
        while offset + block as u64 <= SEGMENT {
            load(&mut cache, &mut storage, offset, block);
            offset += block as u64;
        }
        let step = (BUFFER - BLOCK) as usize;
        assert_eq!(
            storage.reads[0],
            (1, 0, BUFFER as usize),
            "a whole window first"
        );
        let mut end = u64::from(BUFFER);
        for &(_, read_offset, size) in &storage.reads[1..] {
            assert_eq!(
                (read_offset, size),
                (end, step.min((SEGMENT - end) as usize))
            );
            end += size as u64;
        }
        assert_eq!(storage.bytes_read() as u64, SEGMENT, "{:?}", storage.reads);
        // Every step was asked for ahead before it was read.
        for read in &storage.reads[1..] {
            assert!(storage.hints.contains(read), "{read:?} not read ahead");
        }
        for &(segment, hint_offset, size) in &storage.hints {
            assert_eq!(segment, 1);
            assert_eq!(hint_offset % u64::from(SECTOR), 0);
            assert_eq!(
                size,
                step.min((SEGMENT - hint_offset) as usize),
                "{hint_offset}"
            );
        }
        // Each load's hints start where it ended and run on, step by step.
        assert_eq!(storage.hints[0], (1, u64::from(BUFFER), step));
        assert_eq!(storage.hints[1], (1, u64::from(BUFFER) + step as u64, step));
    }

    /// A point read loads one block and asks for nothing ahead; it stays cached until a write
    /// overlaps it, and a write that only touches it, or lands elsewhere, leaves it cached.
    #[test]
    fn a_point_read_loads_one_block_and_only_an_overlapping_write_drops_it() {
        let mut storage = Recorder::new();
        let mut cache = ReadCache::new(BUFFER, SECTOR, BLOCK, 0);
        cache.window_set(BLOCK as usize);
        let at = 64 * 1024;
        load(&mut cache, &mut storage, at, SECTOR as usize);
        assert_eq!(storage.reads, [(1, at, BLOCK as usize)]);
        assert!(storage.hints.is_empty(), "a point read reads nothing ahead");
        let sector = u64::from(SECTOR);
        for (segment, offset) in [(1, at - sector), (1, at + 2 * sector), (1, 0), (2, at)] {
            cache.invalidate(segment, offset, sector);
            load(&mut cache, &mut storage, at + sector, SECTOR as usize);
            assert_eq!(
                storage.reads.len(),
                1,
                "a write at {segment}/{offset} dropped it"
            );
        }
        cache.invalidate(1, at + sector, sector);
        load(&mut cache, &mut storage, at, SECTOR as usize);
        assert_eq!(
            storage.reads,
            [(1, at, BLOCK as usize), (1, at, BLOCK as usize)]
        );
    }

    /// After a write drops a scan's window, the next miss loads a whole window again rather
    /// than a step after the forgotten one.
    #[test]
    fn a_scan_reloads_a_whole_window_after_a_write_drops_it() {
        let mut storage = Recorder::new();
        let mut cache = ReadCache::new(BUFFER, SECTOR, BLOCK, 0);
        load(&mut cache, &mut storage, 0, BLOCK as usize);
        cache.invalidate(1, 0, u64::from(SECTOR));
        load(&mut cache, &mut storage, 0, BLOCK as usize);
        assert_eq!(
            storage.reads,
            [(1, 0, BUFFER as usize), (1, 0, BUFFER as usize)]
        );
    }

    /// A forged header (valid checksum, right place) with impossible fields is `Malformed`,
    /// and so is one that would run past its segment's end.
    #[test]
    fn forged_headers_at_their_place_are_malformed() {
        let place = Place {
            segment: 7,
            offset_bytes: 8192,
            segment_size_bytes: 16384,
            sector_size_bytes: 4096,
            block_size_bytes: 65536,
        };
        let good = BlockHeader {
            segment: 7,
            offset_bytes: 8192,
            size_bytes: 4096,
            body_size_bytes: 100,
            fragment_count: 1,
            lsn_first: 10,
            sector_size_bytes: 4096,
            block_size_bytes: 65536,
            segment_size_bytes: 16384,
            ..BlockHeader::default()
        };
        let state = |mut header: BlockHeader| {
            let mut bytes = [0u8; crate::format::BLOCK_HEADER_SIZE_BYTES];
            header.encode(&mut bytes);
            place.header_state(&bytes)
        };
        assert!(matches!(state(good), HeaderState::Valid(_)));
        let impossible = BlockHeader {
            fragment_count: 0,
            flags: crate::format::FLAG_CONTINUES,
            ..good
        };
        assert!(matches!(state(impossible), HeaderState::Malformed(_)));
        let past_the_end = BlockHeader {
            size_bytes: 12288,
            ..good
        };
        assert!(matches!(state(past_the_end), HeaderState::Malformed(_)));
        let elsewhere = BlockHeader {
            offset_bytes: 4096,
            ..good
        };
        assert!(matches!(state(elsewhere), HeaderState::Misplaced(_)));
    }
}
