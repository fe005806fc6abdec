//! Reading blocks back from storage through one fixed read buffer.

use crate::error::{CorruptionKind, Error, IoOperation, Result};
use crate::format::{self, BlockHeader, HeaderRead, BLOCK_HEADER_SIZE_BYTES};
use crate::storage::{AlignedBuffer, SegmentId, Storage};

/// A window of one segment held in the read buffer.
pub(crate) struct ReadCache {
    buffer: AlignedBuffer,
    segment: SegmentId,
    offset_bytes: u64,
    size_bytes: usize,
    /// How much a miss loads: the whole buffer for scans, one block for point reads.
    window_bytes: usize,
    /// The last block whose body was verified while in the buffer, with what it holds: a scan
    /// that yields its records one call at a time checks it once, not once per record.
    verified: Option<(SegmentId, u64, format::BodySummary)>,
}

impl ReadCache {
    pub fn new(size_bytes: u32, sector_size_bytes: u32) -> ReadCache {
        ReadCache {
            buffer: AlignedBuffer::new(size_bytes as usize, sector_size_bytes as usize),
            segment: 0,
            offset_bytes: 0,
            size_bytes: 0,
            window_bytes: size_bytes as usize,
            verified: None,
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
            let window = self
                .window_bytes
                .max(needed)
                .next_multiple_of(sector as usize);
            let size = (window.min(self.buffer.len()) as u64).min(segment_size_bytes - start);
            let size = size as usize;
            assert!(start + size as u64 >= offset_bytes + size_bytes as u64);
            self.size_bytes = 0;
            self.verified = None;
            storage
                .read(segment, start, &mut self.buffer[..size])
                .map_err(|source| Error::Io {
                    operation: IoOperation::Read,
                    segment: Some(segment),
                    offset_bytes: Some(start),
                    source,
                })?;
            self.segment = segment;
            self.offset_bytes = start;
            self.size_bytes = size;
        }
        Ok((offset_bytes - self.offset_bytes) as usize)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buffer[..self.size_bytes]
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
        let placed = header.segment == self.segment
            && u64::from(header.offset_bytes) == self.offset_bytes
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
