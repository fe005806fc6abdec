//! Truncation and the vote: dropping a prefix of the log (retention), dropping a suffix (a Raft
//! follower whose log conflicts with its leader's), restarting an empty log further on, and
//! saving a small blob durably with the log (`docs/recovery.md`, "Suffix truncation").

use super::*;

impl<S: Storage> Log<S> {
    /// Drops whole segments whose records are all below `lsn`. The current segment is never
    /// dropped, so records at and after `lsn` always stay. On an error, some of the segments
    /// asked for may already be gone (each removal is durable on its own), never more.
    ///
    /// With `lsn` past the end (`lsn > next_lsn()`), every record is dropped and the log
    /// starts again, empty, at `lsn`: the next append gets `lsn` (a Raft log store installing
    /// a snapshot past its log does this).
    pub fn truncate_prefix(&mut self, lsn: Lsn) -> Result<()> {
        self.writable()?;
        if lsn > self.lsn_next {
            return self.restart_at(lsn);
        }
        let mut dropped = false;
        while self.table.len() > 1 && self.table.id(1) <= lsn {
            let segment = self.table.id(0);
            if self.inflight_segment(segment) {
                self.writes_wait_all()?;
            }
            self.segment_drop(segment)?;
            self.table.pop_front();
            self.lsn_first = self.table.id(0);
            tracing::info!(segment, lsn_first = self.lsn_first, "segment dropped");
            dropped = true;
        }
        if dropped {
            // The new first block has nothing before it to vouch for it: the metadata does.
            self.metadata_write(Metadata {
                first: self.first_block(),
                ..self.metadata
            })?;
        }
        Ok(())
    }

    /// Removes a segment's file (durably) and forgets what the read cache held of it; the
    /// caller then takes it out of the table.
    fn segment_drop(&mut self, segment: SegmentId) -> Result<()> {
        self.storage
            .segment_remove(segment)
            .map_err(io_error(IoOperation::SegmentRemove, Some(segment)))?;
        self.cache
            .invalidate(segment, 0, self.config.segment_size_bytes);
        Ok(())
    }

    /// Drops every record and starts again, empty, at `lsn` (past the end). A segment named
    /// `lsn` is made durable first, then every other segment is removed, oldest first: a crash
    /// leaves the old log (recovery removes the new segment after its end), a prefix of it
    /// removed, or the new empty log.
    fn restart_at(&mut self, lsn: Lsn) -> Result<()> {
        assert!(lsn > self.lsn_next);
        if lsn >= format::LSN_APPEND_MAX {
            return Err(self.out_of_range(lsn));
        }
        self.flush()?;
        self.writer_release();
        if self.table.is_full() {
            return Err(Error::LogFull {
                lsn_next: self.lsn_next,
            });
        }
        self.storage
            .segment_create(lsn, self.config.segment_size_bytes)
            .map_err(io_error(IoOperation::SegmentCreate, Some(lsn)))?;
        self.sync_wait(lsn)?;
        self.table.push(lsn);
        self.cache
            .invalidate(lsn, 0, self.config.segment_size_bytes);
        while self.table.len() > 1 {
            self.segment_drop(self.table.id(0))?;
            self.table.pop_front();
        }
        tracing::info!(lsn, "log restarted empty");
        self.position_at(lsn, 0, 0);
        Ok(())
    }

    /// Drops every record at or after `lsn`; appends continue at `lsn`. Durable when it
    /// returns: after any crash, recovery finds the log as it was before or as it is after,
    /// never a mixture, and never a truncated record again (`docs/recovery.md`, "Suffix
    /// truncation"). Every record is flushed first. No sector holding a kept record is
    /// written: the truncation is a new segment named `lsn`, made atomically with its first
    /// block.
    pub fn truncate_suffix(&mut self, lsn: Lsn) -> Result<()> {
        self.writable()?;
        if lsn < self.lsn_first || lsn > self.lsn_next {
            return Err(self.out_of_range(lsn));
        }
        self.flush()?;
        if lsn == self.lsn_next {
            return Ok(());
        }
        self.writer_release();
        let index = self.table.find(lsn).expect("lsn in a segment");
        let replaces = self.table.id(index) == lsn;
        if !replaces && self.table.is_full() {
            return Err(Error::LogFull {
                lsn_next: self.lsn_next,
            });
        }
        let checksum_previous = self.truncation_link(lsn)?;
        // A newer epoch, taken durably first: older blocks after the truncation can neither
        // chain nor attest. The checkpoint comes down to the truncation; a first block about
        // to be replaced is no longer vouched for.
        let epoch = self.epoch.checked_add(1).ok_or(Error::NotALog {
            reason: "the epoch counter is exhausted",
        })?;
        let first_replaced = replaces && index == 0;
        let before = self.metadata;
        self.metadata_write(Metadata {
            epoch_max: epoch,
            lsn_checkpoint: self.metadata.lsn_checkpoint.min(lsn),
            clean: None,
            loss: None,
            first: if first_replaced {
                None
            } else {
                self.metadata.first
            },
            ..self.metadata
        })?;
        self.epoch = epoch;
        let written_from = self.written_from;
        // Every block of the truncation's segment is ours.
        self.written_from = self.written_from.min((lsn, 0));
        let checksum = match self.segment_make_truncating(lsn, checksum_previous) {
            Ok(checksum) => checksum,
            Err(error) => {
                // A refused creation (no space, say) leaves the old segment whole and the log
                // going on: the metadata says again what it said before (the checkpoint that
                // attests the records, the first block it vouches for), or damage to them
                // would read as a torn tail, and a block of another history could take the
                // first one's place unseen. Only the epoch stays taken. After a failed sync
                // the log is stopped and the next open decides.
                self.written_from = written_from;
                if self.failed.is_none() {
                    self.metadata_write(Metadata {
                        epoch_max: epoch,
                        ..before
                    })?;
                }
                return Err(error);
            }
        };
        self.truncation_settle(lsn, replaces, checksum)?;
        tracing::info!(lsn, epoch, "suffix truncated");
        if first_replaced {
            self.metadata_write(Metadata {
                first: self.first_block(),
                ..self.metadata
            })?;
        }
        Ok(())
    }

    /// The `checksum_header` of the block where record `lsn - 1` ends (0 for the log's first
    /// LSN): the truncation's block links to it, and recovery ends that segment's part of the
    /// log right after it (`docs/recovery.md`, "Suffix truncation").
    fn truncation_link(&mut self, lsn: Lsn) -> Result<u32> {
        if lsn == self.lsn_first {
            return Ok(0);
        }
        let header = self.record_end_block(lsn - 1)?;
        assert!(header.lsn_first < lsn, "the block holds record {}", lsn - 1);
        Ok(header.checksum_header)
    }

    /// Makes the segment named `lsn`, replacing any of that name, with a truncation's block
    /// at its offset 0 linked to `checksum_previous`, atomically, and syncs it: the log then
    /// goes on after that block, whatever the previous segment holds after the block linked
    /// to (`docs/recovery.md`, "Suffix truncation"). Returns the block's checksum. A suffix
    /// truncation makes its segment so, and so does a recovery that recreates a segment that
    /// holds no record. Nothing may be in flight.
    pub(super) fn segment_make_truncating(
        &mut self,
        lsn: Lsn,
        checksum_previous: u32,
    ) -> Result<u32> {
        let sector = self.config.sector_size_bytes as usize;
        let mut buffer = self
            .buffers_free
            .pop()
            .expect("write buffers are free when nothing is in flight");
        let block = &mut buffer[..sector];
        block.fill(0);
        let mut header = self.frameless_header(lsn, 0, checksum_previous);
        header.flags = format::FLAG_TRUNCATES;
        header.lsn_first = lsn;
        header.lsn_durable = lsn;
        let checksum = header.encode(block);
        let made = self.storage.segment_create_with(
            lsn,
            self.config.segment_size_bytes,
            &buffer[..sector],
        );
        self.buffers_free.push(buffer);
        made.map_err(io_error(IoOperation::SegmentCreate, Some(lsn)))?;
        self.cache
            .invalidate(lsn, 0, self.config.segment_size_bytes);
        if !crate::planted::active("truncation-acknowledged-before-sync") {
            self.sync_wait(lsn)?;
        }
        Ok(checksum)
    }

    /// After the truncation is durable: removes the segments it dropped (newest first, so an
    /// interrupted removal leaves segments after the end, which recovery removes) and sets the
    /// writer after the truncation's block.
    fn truncation_settle(&mut self, lsn: Lsn, replaces: bool, checksum: u32) -> Result<()> {
        while self.table.last() > lsn {
            self.segment_drop(self.table.last())?;
            self.table.pop_back();
        }
        if replaces {
            assert_eq!(self.table.last(), lsn);
            self.table.index_reset(self.table.len() - 1);
        } else {
            self.table.push(lsn);
        }
        let sector = u64::from(self.config.sector_size_bytes);
        self.position_at(lsn, sector, checksum);
        self.table
            .index_note(self.table.len() - 1, 0, lsn, false, checksum);
        Ok(())
    }

    /// After a flush: hands back the writer's empty buffer, if it holds one.
    fn writer_release(&mut self) {
        assert_eq!(self.writer.block_fill_bytes, 0);
        if let Some(buffer) = self.writer.buffer.take() {
            assert_eq!(
                self.writer.buffer_used_bytes, 0,
                "a flush submits every block"
            );
            self.buffers_free.push(buffer);
        }
    }

    /// Sets the writer at `offset_bytes` of the last segment, with `lsn` next, everything
    /// before it durable and attested, and the next block linked to `checksum_previous`.
    fn position_at(&mut self, lsn: Lsn, offset_bytes: u64, checksum_previous: u32) {
        assert_eq!(self.table.last(), lsn);
        assert_eq!(self.inflight_len, 0);
        assert!(self.writer.buffer.is_none() && self.writer.block_fill_bytes == 0);
        self.lsn_first = self.table.id(0);
        self.lsn_next = lsn;
        self.lsn_submitted = lsn;
        self.lsn_durable = lsn;
        self.lsn_attested = self.lsn_attested.min(lsn);
        self.durable_since_ns = self.storage.now_ns();
        self.checksum_previous = checksum_previous;
        self.writer.block_offset_bytes = offset_bytes;
        self.unsynced = Unsynced::default();
        self.unflushed_bytes = 0;
        self.unflushed_since_ns = None;
    }

    /// Saves `vote` (at most [`format::VOTE_SIZE_BYTES_MAX`] bytes) with the log, durably and
    /// atomically: it is in the metadata, which is replaced whole (a crash leaves the old vote
    /// or the new one). For a Raft log store: the term, the vote and the purged log id.
    pub fn vote_save(&mut self, vote: &[u8]) -> Result<()> {
        self.writable()?;
        if vote.len() > format::VOTE_SIZE_BYTES_MAX {
            return Err(Error::RecordTooLarge {
                size_bytes: vote.len() as u64,
                size_bytes_max: format::VOTE_SIZE_BYTES_MAX as u32,
            });
        }
        let mut metadata = self.metadata;
        metadata.vote = [0; format::VOTE_SIZE_BYTES_MAX];
        metadata.vote[..vote.len()].copy_from_slice(vote);
        metadata.vote_size_bytes = vote.len() as u16;
        self.metadata_write(metadata)
    }

    /// The vote last saved ([`vote_save`](Log::vote_save)); empty if none.
    pub fn vote(&self) -> &[u8] {
        self.metadata.vote()
    }
}
