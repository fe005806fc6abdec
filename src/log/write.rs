//! The write path: records into blocks, blocks into write buffers, buffers into writes, and
//! syncs. At most `Config::window_size_bytes` are ever written and not yet durable.

use super::*;

impl<S: Storage> Log<S> {
    /// Places one record (already size-checked) in blocks, rolling the segment first if it
    /// does not fit.
    pub(super) fn append_one(&mut self, record: &[u8]) -> Result<Lsn> {
        assert!(record.len() <= self.config.record_size_bytes_max as usize);
        if self.lsn_next >= format::LSN_APPEND_MAX {
            return Err(Error::LogFull {
                lsn_next: self.lsn_next,
            });
        }
        if !self.record_fits(record.len()) {
            self.segment_roll()?;
            assert!(
                self.record_fits(record.len()),
                "record does not fit an empty segment"
            );
        }
        let lsn = self.lsn_next;
        let mut offset = 0;
        loop {
            if self.writer.block_fill_bytes == 0 {
                self.block_open(lsn, offset > 0)?;
            }
            let free = self.writer.block_size_bytes_max - self.writer.block_fill_bytes;
            let rest = record.len() - offset;
            if free < FRAME + rest.min(1) {
                self.block_seal();
                continue;
            }
            let take = rest.min(free - FRAME);
            let kind = match (offset == 0, take == rest) {
                (true, true) => FragmentKind::Full,
                (true, false) => FragmentKind::First,
                (false, false) => FragmentKind::Middle,
                (false, true) => FragmentKind::Last,
            };
            self.frame_put(kind, &record[offset..offset + take]);
            offset += take;
            if offset == record.len() {
                break;
            }
            self.block_seal();
        }
        self.lsn_next += 1;
        Ok(lsn)
    }

    /// Whether a record of `size_bytes` fits in the rest of the current segment.
    fn record_fits(&self, size_bytes: usize) -> bool {
        // Most records fit in the open block, whose room is within the segment's: that
        // answer needs no division (this check runs for every append).
        let writer = &self.writer;
        let room = writer.block_size_bytes_max;
        if writer.block_fill_bytes > 0 && writer.block_fill_bytes + FRAME + size_bytes <= room {
            return true;
        }
        let fill = self.writer.block_fill_bytes.max(HEADER);
        let capacity = format::segment_capacity_bytes(
            self.config.segment_size_bytes,
            self.config.block_size_bytes,
            self.writer.block_offset_bytes,
            fill as u32,
        );
        size_bytes.max(1) as u64 <= capacity
    }

    fn frame_put(&mut self, kind: FragmentKind, data: &[u8]) {
        let writer = &mut self.writer;
        let buffer = writer.buffer.as_mut().expect("open block has a buffer");
        let start = writer.buffer_used_bytes + writer.block_fill_bytes;
        assert!(writer.block_fill_bytes + FRAME + data.len() <= writer.block_size_bytes_max);
        format::frame_encode(&mut buffer[start..start + FRAME], kind, data.len() as u32);
        buffer[start + FRAME..start + FRAME + data.len()].copy_from_slice(data);
        writer.block_fill_bytes += FRAME + data.len();
        writer.block_header.fragment_count += 1;
        writer.block_header.body_size_bytes = (writer.block_fill_bytes - HEADER) as u32;
    }

    fn block_open(&mut self, lsn_first: Lsn, continues: bool) -> Result<()> {
        assert_eq!(self.writer.block_fill_bytes, 0);
        if self.writer.buffer.is_none() {
            let buffer = self.buffer_acquire()?;
            self.writer.buffer = Some(buffer);
            self.writer.buffer_offset_bytes = self.writer.block_offset_bytes;
            self.writer.buffer_used_bytes = 0;
        }
        let writer = &mut self.writer;
        let buffer_len = writer.buffer.as_ref().map_or(0, |buffer| buffer.len());
        assert_eq!(
            writer.block_offset_bytes,
            writer.buffer_offset_bytes + writer.buffer_used_bytes as u64
        );
        let segment_rest = self.config.segment_size_bytes - writer.block_offset_bytes;
        let size_max = (self.config.block_size_bytes as u64)
            .min(segment_rest)
            .min((buffer_len - writer.buffer_used_bytes) as u64) as usize;
        assert!(
            size_max >= self.config.sector_size_bytes as usize,
            "no room for a block"
        );
        writer.block_size_bytes_max = size_max;
        writer.block_fill_bytes = HEADER;
        writer.block_header = BlockHeader {
            flags: if continues { FLAG_CONTINUES } else { 0 },
            epoch: self.epoch,
            segment: self.table.last(),
            lsn_first,
            offset_bytes: u32::try_from(writer.block_offset_bytes).expect("offset fits u32"),
            sector_size_bytes: self.config.sector_size_bytes,
            block_size_bytes: self.config.block_size_bytes,
            segment_size_bytes: self.config.segment_size_bytes,
            ..BlockHeader::default()
        };
        let last = self.table.len() - 1;
        self.table
            .index_note(last, writer.block_offset_bytes, lsn_first, continues, 0);
        Ok(())
    }

    /// Seals the open block: pads it to whole sectors, checksums it, and submits the buffer if
    /// no further block fits in it.
    pub(super) fn block_seal(&mut self) {
        let sector = self.config.sector_size_bytes as usize;
        let writer = &mut self.writer;
        assert!(writer.block_fill_bytes > HEADER, "sealing an empty block");
        assert!(writer.block_header.fragment_count > 0);
        let size = writer.block_fill_bytes.next_multiple_of(sector);
        assert!(size <= writer.block_size_bytes_max);
        let start = writer.buffer_used_bytes;
        let buffer = writer.buffer.as_mut().expect("open block has a buffer");
        let block = &mut buffer[start..start + size];
        block[writer.block_fill_bytes..].fill(0);
        let header = &mut writer.block_header;
        header.size_bytes = size as u32;
        header.checksum_body = format::checksum(&block[HEADER..writer.block_fill_bytes]);
        header.checksum_previous = self.checksum_previous;
        header.lsn_durable = self.lsn_durable;
        writer.buffer_lsn_durable = writer.buffer_lsn_durable.max(self.lsn_durable);
        self.checksum_previous = header.encode(block);
        debug_assert!(matches!(BlockHeader::decode(block), HeaderRead::Valid(_)));
        let block_offset = writer.block_offset_bytes;
        let last = self.table.len() - 1;
        self.table
            .index_seal(last, block_offset, self.checksum_previous);
        let header = writer.block_header;
        self.table
            .sectors_note(last, block_offset, &buffer[start..start + size], &header);
        writer.buffer_used_bytes += size;
        writer.block_offset_bytes += size as u64;
        writer.block_fill_bytes = 0;
        let buffer_full = writer.buffer_used_bytes == buffer.len();
        let segment_full = writer.block_offset_bytes == self.config.segment_size_bytes;
        if buffer_full || segment_full {
            self.buffer_submit(Submit::Background);
        }
    }

    /// Submits the sealed blocks of the current buffer as one write.
    pub(super) fn buffer_submit(&mut self, submit: Submit) {
        assert_eq!(self.writer.block_fill_bytes, 0, "submitting an open block");
        let Some(buffer) = self.writer.buffer.take() else {
            return;
        };
        let size = self.writer.buffer_used_bytes;
        if size == 0 {
            self.buffers_free.push(buffer);
            return;
        }
        let segment = self.table.last();
        let offset = self.writer.buffer_offset_bytes;
        let token = self.token_take();
        assert!(
            self.inflight_len < self.inflight.len(),
            "more writes than buffers"
        );
        let slot = (self.inflight_head + self.inflight_len) % self.inflight.len();
        self.inflight[slot] = Inflight {
            token,
            segment,
            offset_bytes: offset,
            size_bytes: size as u64,
            lsn_end: self.lsn_next,
            done: false,
        };
        self.inflight_len += 1;
        self.lsn_submitted = self.lsn_next;
        self.unsynced
            .note(segment, size as u64, self.writer.buffer_lsn_durable);
        assert!(
            self.unsynced.size_bytes <= self.window_size_bytes(),
            "more than the window unsynced"
        );
        self.cache.invalidate(segment, offset, size as u64);
        self.writer.buffer_used_bytes = 0;
        self.writer.buffer_lsn_durable = 0;
        match submit {
            Submit::Background => self
                .storage
                .write_submit(token, segment, offset, buffer, size),
            Submit::Waited => self
                .storage
                .write_submit_waited(token, segment, offset, buffer, size),
        }
    }

    pub(super) fn token_take(&mut self) -> u64 {
        let token = self.token_next;
        self.token_next += 1;
        token
    }

    /// A free write buffer, for the next write. If that write could take the bytes written and
    /// not yet durable past the window (`Config::window_size_bytes`), everything written so far
    /// is made durable first.
    fn buffer_acquire(&mut self) -> Result<AlignedBuffer> {
        let size = u64::from(self.config.write_buffer_size_bytes);
        if self.unsynced.size_bytes + size > self.window_size_bytes() {
            tracing::trace!(unsynced_bytes = self.unsynced.size_bytes, "window full");
            self.writes_wait_all()?;
            self.sync_written(Sync::Bulk)?;
        }
        loop {
            if let Some(buffer) = self.buffers_free.pop() {
                return Ok(buffer);
            }
            self.completion_wait()?;
        }
    }

    /// The window the writer keeps (a planted bug may widen it by one buffer).
    fn window_size_bytes(&self) -> u64 {
        let window = self.config.window_size_bytes;
        match crate::planted::active("window-writer-one-buffer-wide") {
            true => window + u64::from(self.config.write_buffer_size_bytes),
            false => window,
        }
    }

    /// Syncs every segment written since the last such sync, every write having completed:
    /// then every record submitted is durable, and attested by what the synced blocks carry.
    pub(super) fn sync_written(&mut self, sync: Sync) -> Result<()> {
        assert_eq!(self.inflight_len, 0, "syncing with writes in flight");
        if let Some(from) = self.unsynced.segment_first {
            let first = self.table.find(from).unwrap_or(0);
            for index in first..self.table.len() {
                self.sync_wait_with(self.table.id(index), sync)?;
            }
        }
        assert!(self.lsn_submitted >= self.lsn_durable);
        if self.lsn_submitted > self.lsn_durable {
            self.lsn_durable = self.lsn_submitted;
            self.durable_since_ns = self.storage.now_ns();
        }
        self.lsn_attested = self.lsn_attested.max(self.unsynced.lsn_durable_sealed);
        assert!(self.lsn_attested <= self.lsn_durable);
        self.unsynced = Unsynced::default();
        // The log's first block just became durable (a new log's, or a recreated first
        // segment's): nothing before it can vouch for it, so the metadata records it, once.
        let first = self.first_block();
        if first.is_some() && first != self.metadata.first {
            self.metadata_write(Metadata {
                first,
                ..self.metadata
            })?;
        }
        Ok(())
    }

    /// Waits for one completion and handles it.
    fn completion_wait(&mut self) -> Result<()> {
        let completion = self
            .storage
            .poll(true)
            .expect("waiting with nothing in flight");
        self.completion_handle(completion);
        self.writable()
    }

    fn completion_handle(&mut self, completion: Completion) {
        let Completion {
            token,
            kind,
            result,
        } = completion;
        match kind {
            CompletionKind::Write { buffer } => {
                let found = (0..self.inflight_len)
                    .map(|index| (self.inflight_head + index) % self.inflight.len())
                    .find(|&slot| self.inflight[slot].token == token);
                let slot = found.expect("completion of an unknown write");
                assert!(!self.inflight[slot].done);
                assert!(self.inflight_buffers[slot].is_none());
                self.inflight[slot].done = true;
                self.inflight_buffers[slot] = Some(buffer);
                // A read may have loaded this range while the write was in flight (the cache
                // window is larger than one block): what it holds there is stale now.
                let write = self.inflight[slot];
                self.cache
                    .invalidate(write.segment, write.offset_bytes, write.size_bytes);
                if let Err(error) = &result {
                    self.fail(IoOperation::Write, write.segment, IoCause::of(error));
                }
                self.inflight_retire();
            }
            CompletionKind::Sync => {
                self.sync_done = Some((token, result.as_ref().err().map(IoCause::of)));
            }
        }
    }

    /// Retires completed writes from the front of the ring, in submission order.
    fn inflight_retire(&mut self) {
        while self.inflight_len > 0 && self.inflight[self.inflight_head].done {
            let write = self.inflight[self.inflight_head];
            assert!(write.lsn_end <= self.lsn_submitted);
            let buffer = self.inflight_buffers[self.inflight_head].take();
            self.buffers_free
                .push(buffer.expect("a completed write holds its buffer"));
            self.inflight_head = (self.inflight_head + 1) % self.inflight.len();
            self.inflight_len -= 1;
        }
    }

    pub(super) fn writes_wait_all(&mut self) -> Result<()> {
        while self.inflight_len > 0 {
            self.completion_wait()?;
        }
        self.writable()
    }

    pub(super) fn inflight_segment(&self, segment: SegmentId) -> bool {
        (0..self.inflight_len)
            .map(|index| self.inflight[(self.inflight_head + index) % self.inflight.len()])
            .any(|write| write.segment == segment)
    }

    pub(super) fn inflight_overlaps(
        &self,
        segment: SegmentId,
        offset_bytes: u64,
        size_bytes: u64,
    ) -> bool {
        (0..self.inflight_len)
            .map(|index| self.inflight[(self.inflight_head + index) % self.inflight.len()])
            .any(|write| {
                write.segment == segment
                    && offset_bytes < write.offset_bytes + write.size_bytes
                    && write.offset_bytes < offset_bytes + size_bytes
            })
    }

    /// Syncs one segment and waits for it; a failure stops the log.
    pub(super) fn sync_wait(&mut self, segment: SegmentId) -> Result<()> {
        self.sync_wait_with(segment, Sync::Waited)
    }

    fn sync_wait_with(&mut self, segment: SegmentId, sync: Sync) -> Result<()> {
        let token = self.token_take();
        match sync {
            Sync::Waited => self.storage.sync_submit(token, segment),
            Sync::Bulk => self.storage.sync_submit_bulk(token, segment),
        }
        loop {
            let completion = self
                .storage
                .poll(true)
                .expect("sync submitted but nothing in flight");
            self.completion_handle(completion);
            if let Some((done, failure)) = self.sync_done {
                if done == token {
                    self.sync_done = None;
                    if let Some(cause) = failure {
                        self.fail(IoOperation::Sync, segment, cause);
                    }
                    return self.writable();
                }
            }
        }
    }

    /// Starts a new segment named after the next LSN.
    fn segment_roll(&mut self) -> Result<()> {
        if self.writer.block_fill_bytes > 0 {
            self.block_seal();
        }
        self.buffer_submit(Submit::Background);
        if self.table.is_full() {
            return Err(Error::LogFull {
                lsn_next: self.lsn_next,
            });
        }
        let segment = self.lsn_next;
        assert!(segment > self.table.last(), "segment names must increase");
        self.storage
            .segment_create(segment, self.config.segment_size_bytes)
            .map_err(io_error(IoOperation::SegmentCreate, Some(segment)))?;
        self.cache
            .invalidate(segment, 0, self.config.segment_size_bytes);
        self.table.push(segment);
        self.writer.block_offset_bytes = 0;
        tracing::info!(segment, "segment roll");
        Ok(())
    }
}
