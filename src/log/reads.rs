//! Reads and cursors: find a record through the sparse index, walk the blocks from there
//! (from the write buffer or from storage, checked), and reassemble records that span blocks.

use super::*;

/// A record found by a read: where its bytes are.
#[derive(Clone, Copy, Debug)]
enum Found {
    /// In the current write buffer.
    Memory { start: usize, size: usize },
    /// In the read buffer.
    Cache { start: usize, size: usize },
    /// Assembled from fragments in the record buffer.
    Assembled { size: usize },
}

/// Where a walk over blocks stands: at a frame boundary inside a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Position {
    segment: SegmentId,
    block_offset_bytes: u64,
    /// Offset of the next frame in the block's body; zero at the start of a block.
    frame_offset_bytes: usize,
    /// The LSN of the record the next frame belongs to.
    lsn_frame: Lsn,
    /// What the next block's header must say, checked when it comes from storage.
    expect: Expect,
}

/// The link a block read from storage must have to the walk that reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Its own `checksum_header`, as the index recorded it.
    Checksum(u32),
    /// Its `checksum_previous`: the previous block's `checksum_header`.
    Previous(u32),
    /// Nothing known (the block was indexed while open in memory).
    Unknown,
}

/// Where a block's body is.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// In the current write buffer, from this offset.
    Memory(usize),
    /// In the read buffer, from this offset.
    Cache(usize),
}

impl<S: Storage> Log<S> {
    /// Reads record `lsn` into `buffer` and returns its size. Sees every appended record,
    /// durable or not.
    pub fn read(&mut self, lsn: Lsn, buffer: &mut [u8]) -> Result<usize> {
        self.writable()?;
        if lsn < self.lsn_first || lsn >= self.lsn_next {
            return Err(self.out_of_range(lsn));
        }
        let found = match self.sector_find(lsn)? {
            Some(found) => found,
            None => {
                let position = self.locate(lsn)?;
                self.cache.window_set(self.config.block_size_bytes as usize);
                self.record_find(lsn, position)?.0
            }
        };
        self.read_lsn_last = Some(lsn);
        let data = self.found_bytes(found);
        if buffer.len() < data.len() {
            return Err(Error::BufferTooSmall {
                size_bytes: data.len(),
            });
        }
        buffer[..data.len()].copy_from_slice(data);
        Ok(data.len())
    }

    /// A cursor that yields the durable records from `lsn` on.
    pub fn cursor(&self, lsn: Lsn) -> Result<Cursor> {
        if lsn < self.lsn_first || lsn > self.lsn_next {
            return Err(self.out_of_range(lsn));
        }
        Ok(Cursor {
            lsn_next: lsn,
            position: None,
        })
    }

    /// The cursor's next durable record, or `None` at the durable end (more may come later).
    pub fn cursor_next(&mut self, cursor: &mut Cursor) -> Result<Option<Record<'_>>> {
        self.writable()?;
        let lsn = cursor.lsn_next;
        if lsn >= self.lsn_durable {
            return Ok(None);
        }
        if lsn < self.lsn_first {
            return Err(self.out_of_range(lsn));
        }
        let segment = self
            .table
            .id(self.table.find(lsn).expect("lsn in a segment"));
        let position = match cursor.position {
            Some(position) if position.segment == segment => position,
            _ => self.locate(lsn)?,
        };
        self.cache
            .window_set(self.config.read_buffer_size_bytes as usize);
        let (found, position) = self.record_find(lsn, position)?;
        cursor.position = Some(position);
        cursor.lsn_next = lsn + 1;
        Ok(Some(Record {
            lsn,
            data: self.found_bytes(found),
        }))
    }

    /// Finds record `lsn` through the sector table, loading and checking only the sectors
    /// it spans. `None` when the table cannot say, or the record is still in the write buffer
    /// or in flight, or spans blocks: the block path reads it then.
    fn sector_find(&mut self, lsn: Lsn) -> Result<Option<Found>> {
        let index = self.table.find(lsn).ok_or_else(|| self.out_of_range(lsn))?;
        let Some((sector, entry)) = self.table.sectors_locate(index, lsn) else {
            return Ok(None);
        };
        let segment = self.table.id(index);
        let size = self.config.sector_size_bytes as usize;
        if self.sector_buffered(segment, sector) {
            return Ok(None);
        }
        // The record's sector, and the next ones if its last frame runs on and the record
        // may be that frame's: one read on a miss.
        let first_bytes = entry.sectors_for(segment, lsn) * size;
        // Reads in LSN order load a block's worth ahead, as the block path would; a later
        // read checks what it takes of it.
        let sequential = self.read_lsn_last.is_some_and(|last| last + 1 == lsn);
        let window = match sequential {
            true => first_bytes.max(self.config.block_size_bytes as usize),
            false => first_bytes,
        };
        let loaded = self.sectors_load(index, segment, sector, (0, first_bytes), window)?;
        let Some(start) = loaded else {
            return Ok(None);
        };
        let mut at = entry.frame_at().expect("a located sector has a frame");
        let mut lsn_frame = segment + u64::from(entry.key / 2);
        // Frames before the record's own start in the same sector.
        while at + FRAME <= size {
            let (kind, data_size) = format::frame_decode(&self.cache.bytes()[start + at..]);
            let data_size = data_size as usize;
            let frame_lsn = lsn_frame;
            if matches!(kind, FragmentKind::Full | FragmentKind::Last) {
                lsn_frame += 1;
            }
            if frame_lsn < lsn {
                at += FRAME + data_size;
                continue;
            }
            if frame_lsn > lsn || !matches!(kind, FragmentKind::Full | FragmentKind::First) {
                return Ok(None);
            }
            let loaded = at + FRAME + data_size <= first_bytes
                && !crate::planted::active("sector-empty-record-loads-next");
            let start = match loaded {
                // Within the sectors loaded and checked above (an empty record whose frame
                // ends a sector included: nothing after it is loaded).
                true => start + at + FRAME,
                false => {
                    let range = (at + FRAME, data_size);
                    let loaded = self.sectors_load(index, segment, sector, range, data_size)?;
                    let Some(start) = loaded else {
                        return Ok(None);
                    };
                    start
                }
            };
            if kind == FragmentKind::Full {
                return Ok(Some(Found::Cache {
                    start,
                    size: data_size,
                }));
            }
            // The record goes on in the next blocks, which start in the sectors right after.
            let next = sector + (at + FRAME + data_size - 1) / size + 1;
            return self.sector_continue(index, lsn, next, (start, data_size));
        }
        Ok(None)
    }

    /// Gathers a record that spans blocks, through the sector table: its first fragment is at
    /// `first` in the read buffer, and the block that continues it starts at sector `next`.
    /// Each continuing block's first frame is the record's next fragment, right after the
    /// block's header; `None` sends the read to the block path.
    fn sector_continue(
        &mut self,
        index: usize,
        lsn: Lsn,
        mut next: usize,
        (first, first_size): (usize, usize),
    ) -> Result<Option<Found>> {
        if first_size > self.record_buffer.len() {
            return Ok(None);
        }
        self.record_buffer[..first_size]
            .copy_from_slice(&self.cache.bytes()[first..first + first_size]);
        let mut have = first_size;
        let segment = self.table.id(index);
        let size = self.config.sector_size_bytes as usize;
        let continuation = 2 * (lsn - segment) + 1;
        loop {
            let Some(entry) = self.table.sector_entry(index, next) else {
                return Ok(None);
            };
            // The key check never fails today (a record abandoned by a crash is never the one
            // a read locates: its new version comes later, with a lower or equal key); it
            // keeps a table entry from ever splicing another record's fragment in.
            let follows = entry.frame_at() == Some(HEADER) && u64::from(entry.key) == continuation;
            if !follows || self.sector_buffered(segment, next) {
                return Ok(None);
            }
            let sectors = match entry.frames {
                1 => 1 + usize::from(entry.spill),
                _ => 1,
            };
            let range = (0, sectors * size);
            let Some(start) = self.sectors_load(index, segment, next, range, range.1)? else {
                return Ok(None);
            };
            let (kind, data_size) = format::frame_decode(&self.cache.bytes()[start + HEADER..]);
            let data_size = data_size as usize;
            if !matches!(kind, FragmentKind::Middle | FragmentKind::Last)
                || have + data_size > self.record_buffer.len()
            {
                return Ok(None);
            }
            let data_at = HEADER + FRAME;
            let range = (data_at, data_size);
            let Some(start) = self.sectors_load(index, segment, next, range, data_size)? else {
                return Ok(None);
            };
            let data = &self.cache.bytes()[start..start + data_size];
            self.record_buffer[have..have + data_size].copy_from_slice(data);
            have += data_size;
            if kind == FragmentKind::Last {
                return Ok(Some(Found::Assembled { size: have }));
            }
            next += (data_at + data_size - 1) / size + 1;
        }
    }

    /// Whether sector `sector` of `segment` is in the write buffer, not yet on storage.
    fn sector_buffered(&self, segment: SegmentId, sector: usize) -> bool {
        let size = u64::from(self.config.sector_size_bytes);
        let writer = &self.writer;
        writer.buffer.is_some()
            && segment == self.table.last()
            && (sector as u64 + 1) * size > writer.buffer_offset_bytes
    }

    /// Loads `size_bytes` from `at` bytes past the start of sector `sector` of segment
    /// `index` (whole sectors, one read of at least `window_bytes` on a miss) and checks each
    /// sector of the range against the sector table; returns where the bytes start in the
    /// read buffer, or `None` if a sector has no entry or is being written.
    fn sectors_load(
        &mut self,
        index: usize,
        segment: SegmentId,
        sector: usize,
        (at, size_bytes): (usize, usize),
        window_bytes: usize,
    ) -> Result<Option<usize>> {
        if size_bytes == 0 && !crate::planted::active("sector-empty-record-loads-next") {
            // Nothing to load: an empty record's bytes may start where the next sector does,
            // which may hold a block still in the write buffer.
            return Ok(Some(0));
        }
        let size = self.config.sector_size_bytes as usize;
        let first = sector + at / size;
        let last = sector + (at + size_bytes.max(1) - 1) / size;
        if (first..=last).any(|sector| self.table.sector_entry(index, sector).is_none()) {
            return Ok(None);
        }
        let (offset, len) = ((first * size) as u64, (last - first + 1) * size);
        if self.inflight_overlaps(segment, offset, len as u64) {
            return Ok(None);
        }
        let (start, loaded) = match self.cache.holds(segment, offset, len) {
            Some(start) => (start, false),
            None => match self.cache.window_from_sectors(segment, offset, len) {
                // Checked when they went into the sector cache.
                Some(start) => return Ok(Some(start + at % size)),
                None => {
                    self.cache.window_set(window_bytes.max(len));
                    let storage = &mut self.storage;
                    let segment_size = self.config.segment_size_bytes;
                    let start = self
                        .cache
                        .load(storage, segment, segment_size, offset, len)?;
                    (start, true)
                }
            },
        };
        for (number, bytes) in
            (first..=last).zip(self.cache.bytes()[start..start + len].chunks_exact(size))
        {
            let entry = self
                .table
                .sector_entry(index, number)
                .expect("checked above");
            let unchecked = crate::planted::active("sector-checksum-unchecked");
            if format::checksum(bytes) != entry.checksum && !unchecked {
                return Err(Error::Corruption {
                    segment,
                    offset_bytes: (number * size) as u64,
                    kind: CorruptionKind::BodyChecksum,
                });
            }
        }
        if loaded {
            self.cache.sectors_keep(segment, offset, len, start);
        }
        Ok(Some(start + at % size))
    }

    fn found_bytes(&self, found: Found) -> &[u8] {
        match found {
            Found::Memory { start, size } => {
                &self.writer.buffer.as_ref().expect("memory block")[start..start + size]
            }
            Found::Cache { start, size } => &self.cache.bytes()[start..start + size],
            Found::Assembled { size } => &self.record_buffer[..size],
        }
    }

    /// The header of the block where record `lsn` ends (its `Full` or `Last` frame).
    pub(super) fn record_end_block(&mut self, lsn: Lsn) -> Result<BlockHeader> {
        let position = self.locate(lsn)?;
        self.cache.window_set(self.config.block_size_bytes as usize);
        let (_, position) = self.record_find(lsn, position)?;
        let (header, _) = self.block_view(position.segment, position.block_offset_bytes)?;
        Ok(header)
    }

    /// The position of a block at or before the one where record `lsn` starts.
    fn locate(&self, lsn: Lsn) -> Result<Position> {
        let index = self.table.find(lsn).ok_or_else(|| self.out_of_range(lsn))?;
        let entry = self
            .table
            .index_locate(index, lsn)
            .expect("a segment holding records has index entries");
        Ok(Position {
            segment: self.table.id(index),
            block_offset_bytes: u64::from(entry.offset_bytes),
            frame_offset_bytes: 0,
            lsn_frame: 0,
            expect: match entry.checksum {
                0 => Expect::Unknown,
                checksum => Expect::Checksum(checksum),
            },
        })
    }

    /// Makes the block at a place available, from the write buffer or from storage (checked),
    /// and returns its header and where its body starts.
    fn block_view(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
    ) -> Result<(BlockHeader, Source)> {
        let writer = &self.writer;
        let in_buffer = writer.buffer.is_some()
            && segment == self.table.last()
            && offset_bytes >= writer.buffer_offset_bytes
            && offset_bytes <= writer.block_offset_bytes;
        if in_buffer {
            let start = (offset_bytes - writer.buffer_offset_bytes) as usize;
            let buffer = writer.buffer.as_ref().expect("checked");
            if offset_bytes == writer.block_offset_bytes {
                assert!(writer.block_fill_bytes > 0, "walked past the open block");
                return Ok((writer.block_header, Source::Memory(start + HEADER)));
            }
            return match BlockHeader::decode(&buffer[start..]) {
                HeaderRead::Valid(header) => Ok((header, Source::Memory(start + HEADER))),
                _ => panic!("sealed block in memory does not decode"),
            };
        }
        let sector = u64::from(self.config.sector_size_bytes);
        if self.inflight_overlaps(segment, offset_bytes, sector) {
            self.writes_wait_all()?;
        }
        let place = Place {
            segment,
            offset_bytes,
            segment_size_bytes: self.config.segment_size_bytes,
            sector_size_bytes: self.config.sector_size_bytes,
            block_size_bytes: self.config.block_size_bytes,
        };
        let corruption = |kind| Error::Corruption {
            segment,
            offset_bytes,
            kind,
        };
        let header = match place.load_header(&mut self.cache, &mut self.storage)? {
            HeaderState::Valid(header) => header,
            HeaderState::Zero => return Err(corruption(CorruptionKind::Missing)),
            HeaderState::Invalid => return Err(corruption(CorruptionKind::HeaderChecksum)),
            HeaderState::Misplaced(_) => return Err(corruption(CorruptionKind::Misplaced)),
            HeaderState::Malformed(_) => return Err(corruption(CorruptionKind::Malformed)),
        };
        if self.inflight_overlaps(segment, offset_bytes, u64::from(header.size_bytes)) {
            self.writes_wait_all()?;
        }
        match place.load_body(&mut self.cache, &mut self.storage, &header)? {
            Ok((body_start, _)) => Ok((header, Source::Cache(body_start))),
            Err(kind) => Err(corruption(kind)),
        }
    }

    fn source_bytes(&self, source: Source) -> &[u8] {
        match source {
            Source::Memory(start) => &self.writer.buffer.as_ref().expect("memory block")[start..],
            Source::Cache(start) => &self.cache.bytes()[start..],
        }
    }

    /// Walks frames from `position` until record `target` is complete.
    fn record_find(&mut self, target: Lsn, mut position: Position) -> Result<(Found, Position)> {
        let mut assembled: Option<usize> = None;
        loop {
            if position.block_offset_bytes >= self.config.segment_size_bytes {
                return Err(self.walk_error(&position));
            }
            let (header, source) =
                self.block_view(position.segment, position.block_offset_bytes)?;
            if position.frame_offset_bytes == 0 {
                self.block_enter(&mut position, &header, source)?;
                if !header.continues() {
                    assembled = None;
                }
            }
            let body_size = header.body_size_bytes as usize;
            while position.frame_offset_bytes < body_size {
                let found = self.frame_take(target, &mut position, source, &mut assembled)?;
                if let Some(found) = found {
                    return Ok((found, position));
                }
            }
            position.block_offset_bytes += u64::from(header.size_bytes);
            position.frame_offset_bytes = 0;
            position.expect = Expect::Previous(header.checksum_header);
            if header.size_bytes == 0 {
                // The open block in memory has no size yet: the walk cannot pass it.
                return Err(self.walk_error(&position));
            }
        }
    }

    /// Checks that a block read from storage follows the walk, and starts its LSN count.
    fn block_enter(
        &self,
        position: &mut Position,
        header: &BlockHeader,
        source: Source,
    ) -> Result<()> {
        let linked = match position.expect {
            Expect::Checksum(checksum) => header.checksum_header == checksum,
            Expect::Previous(checksum) => header.checksum_previous == checksum,
            Expect::Unknown => true,
        };
        // Where only this process wrote, only its epochs can be.
        let ours = (position.segment, position.block_offset_bytes) >= self.written_from;
        let stale = ours && header.epoch < self.epoch_opened;
        let unchecked = crate::planted::active("read-link-unchecked");
        let (linked, stale) = (linked || unchecked, stale && !unchecked);
        if matches!(source, Source::Cache(_)) && (!linked || stale) {
            // A valid block that does not follow the walk: stale bytes where a write never
            // landed (a misdirected or lost write).
            return Err(Error::Corruption {
                segment: position.segment,
                offset_bytes: position.block_offset_bytes,
                kind: CorruptionKind::Misplaced,
            });
        }
        position.lsn_frame = header.lsn_first;
        Ok(())
    }

    /// Takes the frame at the position: skips it if it belongs to an earlier record, gathers
    /// it if it belongs to `target`, and returns the record once it is whole.
    fn frame_take(
        &mut self,
        target: Lsn,
        position: &mut Position,
        source: Source,
        assembled: &mut Option<usize>,
    ) -> Result<Option<Found>> {
        let frame_at = position.frame_offset_bytes;
        let (kind, size) = format::frame_decode(&self.source_bytes(source)[frame_at..]);
        let (data_at, size) = (frame_at + FRAME, size as usize);
        let lsn = position.lsn_frame;
        position.frame_offset_bytes = data_at + size;
        if matches!(kind, FragmentKind::Full | FragmentKind::Last) {
            position.lsn_frame += 1;
        }
        if lsn < target {
            return Ok(None);
        }
        if lsn > target {
            return Err(self.walk_error(position));
        }
        match (kind, *assembled) {
            (FragmentKind::Full, _) => Ok(Some(match source {
                Source::Memory(start) => Found::Memory {
                    start: start + data_at,
                    size,
                },
                Source::Cache(start) => Found::Cache {
                    start: start + data_at,
                    size,
                },
            })),
            (FragmentKind::First, _) => {
                self.record_buffer_put(0, source, data_at, size, position)?;
                *assembled = Some(size);
                Ok(None)
            }
            (FragmentKind::Middle | FragmentKind::Last, Some(have)) => {
                self.record_buffer_put(have, source, data_at, size, position)?;
                *assembled = Some(have + size);
                let whole = kind == FragmentKind::Last;
                Ok(whole.then_some(Found::Assembled { size: have + size }))
            }
            // The rest of a record abandoned by a crash, or of one before the walk began.
            (FragmentKind::Middle | FragmentKind::Last, None) => Ok(None),
        }
    }

    fn record_buffer_put(
        &mut self,
        at: usize,
        source: Source,
        data_at: usize,
        size: usize,
        position: &Position,
    ) -> Result<()> {
        if at + size > self.record_buffer.len() {
            return Err(self.walk_error(position));
        }
        let (start, bytes) = match source {
            Source::Memory(start) => (start, &self.writer.buffer.as_ref().expect("memory")[..]),
            Source::Cache(start) => (start, self.cache.bytes()),
        };
        let data = &bytes[start + data_at..start + data_at + size];
        self.record_buffer[at..at + size].copy_from_slice(data);
        Ok(())
    }

    /// A walk that did not find its record where the index and headers said it was: the
    /// blocks are well-formed but do not hold what they must.
    fn walk_error(&self, position: &Position) -> Error {
        Error::Corruption {
            segment: position.segment,
            offset_bytes: position.block_offset_bytes,
            kind: CorruptionKind::Framing,
        }
    }
}
