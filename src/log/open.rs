//! Opening a log: formatting a new one, or recovering one and making recovery's outcome
//! durable in an order a crash cannot defeat (`docs/recovery.md`, "After the walk"); and the
//! metadata, which every open, every clean close and an idle log replace.

use super::*;

impl<S: Storage> Log<S> {
    /// Opens the log in `storage`: formats a new one if the storage is empty, else recovers the
    /// existing one as `config.recovery_mode` says. Allocates every buffer the log will use.
    pub fn open(config: Config, mut storage: S) -> Result<Log<S>> {
        let span = tracing::info_span!("open", mode = ?config.recovery_mode);
        let _entered = span.enter();
        config.validate()?;
        let storage_sector = storage.sector_size_bytes();
        if config.sector_size_bytes % storage_sector != 0 {
            return Err(Error::ConfigMismatch {
                field: "sector_size_bytes",
                config: u64::from(config.sector_size_bytes),
                disk: u64::from(storage_sector),
            });
        }
        let (segments, formatted, metadata) = Self::metadata_open(&config, &mut storage)?;
        let mut log = Log::allocate(config, storage, metadata);
        log.recover(&segments, formatted)?;
        tracing::info!(
            lsn_first = log.lsn_first,
            lsn_next = log.lsn_next,
            segments = log.table.len(),
            epoch = log.epoch,
            "opened"
        );
        Ok(log)
    }

    /// Reads and checks the metadata, or formats a new log; returns the segments, whether it
    /// formatted, and the metadata.
    fn metadata_open(config: &Config, storage: &mut S) -> Result<(Vec<SegmentId>, bool, Metadata)> {
        let sector = config.sector_size_bytes as usize;
        let mut buffer = AlignedBuffer::new(sector, sector);
        let exists = storage
            .metadata_read(&mut buffer)
            .map_err(io_error(IoOperation::MetadataRead, None))?;
        let mut segments = storage
            .segment_list()
            .map_err(io_error(IoOperation::SegmentList, None))?;
        let metadata = if exists {
            metadata_check(config, &buffer)?
        } else {
            if !segments.is_empty() {
                return Err(Error::MetadataMissing {
                    segment_count: segments.len(),
                });
            }
            tracing::info!("formatting a new log");
            let metadata = Metadata::new(
                config.sector_size_bytes,
                config.block_size_bytes,
                config.segment_size_bytes,
            );
            metadata.encode(&mut buffer);
            storage
                .metadata_write(&buffer)
                .map_err(io_error(IoOperation::MetadataWrite, None))?;
            metadata
        };
        if segments.is_empty() && metadata.lsn_checkpoint > 0 {
            // Every segment is gone, but records were durable: acknowledged data is lost.
            if config.recovery_mode == RecoveryMode::Strict {
                return Err(Error::Corruption {
                    segment: 0,
                    offset_bytes: 0,
                    kind: CorruptionKind::Missing,
                });
            }
            tracing::warn!(
                lsn_lost = metadata.lsn_checkpoint,
                "every segment is missing: the log starts again at lsn 0"
            );
        }
        if segments.is_empty() {
            storage
                .segment_create(0, config.segment_size_bytes)
                .map_err(io_error(IoOperation::SegmentCreate, Some(0)))?;
            segments.push(0);
        }
        if segments.iter().any(|&segment| segment >= format::LSN_MAX) {
            return Err(Error::NotALog {
                reason: "a segment is named beyond the LSN range",
            });
        }
        if segments.len() > config.segment_count_max as usize {
            return Err(Error::ConfigMismatch {
                field: "segment_count_max",
                config: u64::from(config.segment_count_max),
                disk: segments.len() as u64,
            });
        }
        for &segment in &segments {
            let size = storage
                .segment_size_bytes(segment)
                .map_err(io_error(IoOperation::SegmentSize, Some(segment)))?;
            if size != config.segment_size_bytes {
                return Err(Error::ConfigMismatch {
                    field: "segment_size_bytes",
                    config: config.segment_size_bytes,
                    disk: size,
                });
            }
        }
        Ok((segments, !exists, metadata))
    }

    fn allocate(config: Config, storage: S, metadata: Metadata) -> Log<S> {
        let sector = config.sector_size_bytes as usize;
        let count = config.write_buffer_count as usize;
        let buffers_free = (0..count)
            .map(|_| AlignedBuffer::new(config.write_buffer_size_bytes as usize, sector))
            .collect::<Vec<_>>();
        Log {
            table: SegmentTable::new(
                config.segment_count_max,
                config.index_slots_per_segment(),
                config.block_size_bytes,
                (config.sectors_per_segment(), config.sector_size_bytes),
            ),
            cache: ReadCache::new(
                config.read_buffer_size_bytes,
                config.sector_size_bytes,
                config.block_size_bytes,
                config.cache_size_bytes,
            ),
            record_buffer: vec![0; config.record_size_bytes_max as usize],
            read_lsn_last: None,
            buffers_free,
            writer: Writer {
                buffer: None,
                buffer_offset_bytes: 0,
                buffer_used_bytes: 0,
                block_offset_bytes: 0,
                block_fill_bytes: 0,
                block_size_bytes_max: 0,
                block_header: BlockHeader::default(),
                buffer_lsn_durable: 0,
            },
            inflight: vec![Inflight::default(); count],
            inflight_buffers: (0..count).map(|_| None).collect(),
            inflight_head: 0,
            inflight_len: 0,
            unsynced: Unsynced::default(),
            sync_done: None,
            token_next: 1,
            lsn_first: 0,
            lsn_next: 0,
            lsn_submitted: 0,
            lsn_durable: 0,
            lsn_attested: 0,
            durable_since_ns: 0,
            epoch: 0,
            epoch_opened: 0,
            written_from: (SegmentId::MAX, 0),
            checksum_previous: 0,
            metadata,
            metadata_buffer: AlignedBuffer::new(sector, sector),
            unflushed_bytes: 0,
            unflushed_since_ns: None,
            failed: None,
            report: RecoveryReport::empty(),
            config,
            storage,
        }
    }

    /// Walks the log, truncates what follows its end, makes what it kept durable, and sets
    /// the writer at the end.
    fn recover(&mut self, segments: &[SegmentId], formatted: bool) -> Result<()> {
        let metadata = self.metadata;
        let mut scan = Scan::new(
            &self.config,
            &mut self.storage,
            &mut self.cache,
            segments,
            formatted,
            &metadata,
        );
        let end = scan.run(&mut self.table)?;
        let (chain, epoch_max, block_count) = (scan.chain, scan.epoch_max, scan.block_count);
        // A loss an earlier recovery settled, with nothing written since: its open may have
        // been cut before anyone heard of it, so it is reported again.
        let earlier_loss = metadata
            .loss
            .filter(|loss| loss.lsn_next == chain.lsn_next && end.lsn_lost.is_none());
        if let Some(loss) = earlier_loss {
            tracing::warn!(
                lsn_next = loss.lsn_next,
                lsn_lost = loss.lsn_lost,
                "an earlier recovery dropped acknowledged records"
            );
        }
        let lsn_lost = end.lsn_lost.or(earlier_loss.map(|loss| loss.lsn_lost));
        let chain_segment_start = scan.chain_segment_start;
        recovery_end_trace(&end, &chain, segments[end.segment_index]);
        let stale = &segments[end.segment_index + 1..];
        self.recovery_abandon(&chain);
        // Newer than every block recovery read and than every epoch an earlier open took,
        // whether or not its blocks read well now.
        self.epoch = epoch_max
            .max(match crate::planted::active("epoch-from-blocks-only") {
                true => 0,
                false => metadata.epoch_max,
            })
            .checked_add(1)
            .ok_or(Error::NotALog {
                reason: "a block claims the last epoch: the epoch counter is exhausted",
            })?;
        self.checksum_previous = chain.checksum_previous.unwrap_or(0);
        self.lsn_first = self.table.id(0);
        self.lsn_next = chain.lsn_next;
        self.lsn_submitted = chain.lsn_next;
        self.lsn_durable = chain.lsn_next;
        self.durable_since_ns = self.storage.now_ns();
        self.writer.block_offset_bytes = end.offset_bytes;
        let end_written = self.recovery_settle(&end, stale, &chain_segment_start)?;
        self.report = RecoveryReport {
            lsn_first: self.lsn_first,
            lsn_next: self.lsn_next,
            block_count,
            segment_count: self.table.len(),
            segments_removed: stale.len(),
            end: end.verdict,
            end_written,
            end_segment: segments[end.segment_index],
            end_offset_bytes: end.offset_bytes,
            lsn_lost,
            epoch: self.epoch,
            lsn_checkpoint: metadata.lsn_checkpoint,
            clean_end: end.clean,
            discarded: end.discarded,
        };
        Ok(())
    }

    /// Abandons a record the crash left open: the index keys past it come down to it.
    fn recovery_abandon(&mut self, chain: &Chain) {
        if chain.record_open {
            let key = IndexEntry::key(chain.lsn_next, false);
            self.table.index_clamp(self.table.len() - 1, key);
            let lsn = chain.lsn_next;
            tracing::info!(lsn, "abandoning a record the crash left open");
        }
    }

    /// Makes recovery's outcome durable and final, in an order that a crash at any step leaves
    /// recoverable to the same outcome, a loss still reported (`docs/recovery.md`, "After the
    /// walk"): syncs every kept segment; takes the new epoch in the metadata, with a
    /// checkpoint that covers whatever a loss dropped; only then destroys anything (removes
    /// the segments after the end, recreates a last segment that holds no record, seals the
    /// end); and last brings the checkpoint down to the end.
    /// Returns whether the end's first sector held bytes (`RecoveryReport::end_written`).
    fn recovery_settle(
        &mut self,
        end: &End,
        stale: &[SegmentId],
        chain_segment_start: &Chain,
    ) -> Result<bool> {
        let verdict = end.verdict;
        let end_segment = self.table.last();
        let holds_no_record = end_segment == self.lsn_next;
        let room = self.writer.block_offset_bytes < self.config.segment_size_bytes;
        let end_written = room && verdict != Verdict::Accept && self.end_sector_written()?;
        // A seal makes recovery's decision durable: after a loss, and after a torn tail whose
        // first sector holds anything but zeros. Without one, bytes that read badly only this
        // time (a transient read fault) would read well at the next open and bring back
        // records this recovery dropped and the caller may since have written anew; and a
        // strict reopen after a point-in-time recovery would report the same damage again.
        // And before segments after the end are removed: one of them may be a suffix
        // truncation's, the only record of where its cut was; a seal of the new epoch at the
        // end outranks the truncated blocks after it, which could otherwise attest records
        // past the end at the next open (seed 1702497).
        let seal = room
            && (verdict == Verdict::Lose || end_written || !stale.is_empty())
            && !crate::planted::active("seal-skipped");
        // Only what a crash abandoned is in such a segment: it is made empty again, so that it
        // can take any record and nothing in it can come back.
        let recreate = holds_no_record && (self.writer.block_offset_bytes > 0 || seal);
        // From here on, every block of the log is one this process writes.
        self.epoch_opened = self.epoch;
        self.written_from = match recreate {
            true => (end_segment, 0),
            false => (end_segment, self.writer.block_offset_bytes),
        };
        // Everything kept becomes durable before the metadata and the seal attest it.
        let sync_late = crate::planted::active("recovery-sync-kept-after-seal");
        if !sync_late {
            self.sync_kept()?;
        }
        // The new epoch is taken durably before any block carries it. The checkpoint attests
        // everything kept, and everything a loss drops: until the last step, a crash leaves a
        // log whose next open reports the same loss even if the evidence is gone by then.
        let window = self
            .config
            .window_size_bytes
            .max(self.metadata.window_size_bytes);
        let checkpoint = self
            .lsn_next
            .max(end.lsn_lost.unwrap_or(0))
            .max(self.metadata.lsn_checkpoint);
        // The first block. If the first segment is about to be recreated empty, the record of
        // its first block stays until that is done: a failed recreation must leave the check.
        let first_recreated = recreate && self.table.len() == 1;
        let first = match first_recreated {
            true => self.metadata.first,
            false => self.first_block(),
        };
        self.metadata_write(Metadata {
            epoch_max: self.epoch,
            window_size_bytes: window,
            lsn_checkpoint: checkpoint,
            clean: None,
            first,
            loss: end
                .lsn_lost
                .map(|lsn_lost| Loss {
                    lsn_next: self.lsn_next,
                    lsn_lost,
                })
                .or(self.metadata.loss),
            ..self.metadata
        })?;
        if recreate {
            self.segment_recreate(chain_segment_start)?;
        } else if seal {
            self.seal_write()?;
            self.sync_wait(self.table.last())?;
        }
        // Only once the end is made final: a segment after it may be a suffix truncation's,
        // whose name alone cuts off records the truncation dropped from the end segment
        // (`docs/recovery.md`, "Suffix truncation"). A crash before the seal is durable must
        // find it still there, should the end read better next time.
        for &segment in stale.iter().rev() {
            tracing::info!(segment, "removing a segment after the end of the log");
            self.storage
                .segment_remove(segment)
                .map_err(io_error(IoOperation::SegmentRemove, Some(segment)))?;
        }
        if sync_late {
            self.sync_kept()?;
        }
        if checkpoint > self.lsn_next || first_recreated {
            self.metadata_write(Metadata {
                lsn_checkpoint: self.lsn_next,
                first: self.first_block(),
                ..self.metadata
            })?;
        }
        Ok(end_written)
    }

    /// Syncs every segment recovery keeps: what it accepted may have been written and never
    /// synced before the crash.
    fn sync_kept(&mut self) -> Result<()> {
        for index in 0..self.table.len() {
            self.sync_wait(self.table.id(index))?;
        }
        Ok(())
    }

    /// Recreates the last segment empty (it holds no complete record) and syncs it; the writer
    /// starts at its offset 0, linked to the last block before it.
    fn segment_recreate(&mut self, chain_segment_start: &Chain) -> Result<()> {
        let segment = self.table.last();
        assert_eq!(segment, self.lsn_next);
        tracing::info!(segment, "recreating a segment that holds no record");
        let link = chain_segment_start.checksum_previous.unwrap_or(0);
        let checksum = self.segment_make_truncating(segment, link)?;
        let index = self.table.len() - 1;
        self.table.index_reset(index);
        self.table.index_note(index, 0, segment, false, checksum);
        self.checksum_previous = checksum;
        self.writer.block_offset_bytes = u64::from(self.config.sector_size_bytes);
        Ok(())
    }

    /// Whether the first sector where the log ends holds anything but zeros.
    fn end_sector_written(&mut self) -> Result<bool> {
        let offset_bytes = self.writer.block_offset_bytes;
        let sector = self.config.sector_size_bytes as usize;
        let start = self.cache.load(
            &mut self.storage,
            self.table.last(),
            self.config.segment_size_bytes,
            offset_bytes,
            sector,
        )?;
        Ok(self.cache.bytes()[start..start + sector]
            .iter()
            .any(|&byte| byte != 0))
    }

    /// Writes a seal where the log ends: a block of one sector with no records, of the new
    /// epoch, chained to the last block kept, attesting every record kept as durable. Later
    /// blocks of older epochs no longer continue the chain and no longer attest anything.
    fn seal_write(&mut self) -> Result<()> {
        let segment = self.table.last();
        let offset_bytes = self.writer.block_offset_bytes;
        tracing::info!(
            segment,
            offset_bytes,
            lsn = self.lsn_next,
            "writing a seal block"
        );
        self.frameless_write().map_err(|source| Error::Io {
            operation: IoOperation::Write,
            segment: Some(segment),
            offset_bytes: Some(offset_bytes),
            source,
        })
    }

    /// The header of a block of one sector with no frames at a place, of this open's epoch,
    /// at the next LSN, everything before it durable, linked to `checksum_previous`: a seal,
    /// an attestation, or a truncation's block.
    pub(super) fn frameless_header(
        &self,
        segment: SegmentId,
        offset_bytes: u64,
        checksum_previous: u32,
    ) -> BlockHeader {
        BlockHeader {
            checksum_body: format::checksum(&[]),
            checksum_previous,
            epoch: self.epoch,
            segment,
            lsn_first: self.lsn_next,
            lsn_durable: self.lsn_next,
            offset_bytes: u32::try_from(offset_bytes).expect("offset fits u32"),
            size_bytes: self.config.sector_size_bytes,
            sector_size_bytes: self.config.sector_size_bytes,
            block_size_bytes: self.config.block_size_bytes,
            segment_size_bytes: self.config.segment_size_bytes,
            ..BlockHeader::default()
        }
    }

    /// Writes a block of one sector with no frames where the next block goes, of this open's
    /// epoch, chained to the last block and carrying `lsn_durable`, and waits for the write
    /// (not for a sync). A seal at open and an attestation later are such blocks. Nothing else
    /// may be in flight.
    pub(super) fn frameless_write(&mut self) -> std::io::Result<()> {
        let sector = self.config.sector_size_bytes as usize;
        let segment = self.table.last();
        let offset_bytes = self.writer.block_offset_bytes;
        assert!(offset_bytes + sector as u64 <= self.config.segment_size_bytes);
        assert_eq!(self.inflight_len, 0, "a frameless block is written alone");
        let mut buffer = self
            .buffers_free
            .pop()
            .expect("write buffers are free when nothing is in flight");
        let block = &mut buffer[..sector];
        block.fill(0);
        let mut header = self.frameless_header(segment, offset_bytes, self.checksum_previous);
        header.lsn_durable = self.lsn_durable;
        self.checksum_previous = header.encode(block);
        let token = self.token_take();
        self.storage
            .write_submit(token, segment, offset_bytes, buffer, sector);
        let completion = self.storage.poll(true).expect("write in flight");
        assert_eq!(
            completion.token, token,
            "only the frameless block is in flight"
        );
        let CompletionKind::Write { buffer } = completion.kind else {
            panic!("the frameless block completed as a sync");
        };
        self.buffers_free.push(buffer);
        self.cache.invalidate(segment, offset_bytes, sector as u64);
        completion.result?;
        let last = self.table.len() - 1;
        self.table.index_note(
            last,
            offset_bytes,
            self.lsn_next,
            false,
            self.checksum_previous,
        );
        self.writer.block_offset_bytes += sector as u64;
        Ok(())
    }
}

/// Says where and why the log ends; a loss of acknowledged records is a warning.
fn recovery_end_trace(end: &End, chain: &Chain, segment: SegmentId) {
    let offset_bytes = end.offset_bytes;
    if end.verdict == Verdict::Lose {
        tracing::warn!(
            segment,
            offset_bytes,
            lsn_next = chain.lsn_next,
            lsn_lost = ?end.lsn_lost,
            "recovery dropped acknowledged records after damaged data"
        );
    } else {
        tracing::info!(segment, offset_bytes, verdict = ?end.verdict, "log ends");
    }
}

/// Judges the metadata against the config.
fn metadata_check(config: &Config, buffer: &[u8]) -> Result<Metadata> {
    let metadata = Metadata::decode(buffer).map_err(|fault| Error::NotALog {
        reason: match fault {
            MetadataFault::Magic => "the metadata does not start with Ballast's magic",
            MetadataFault::Checksum => "the metadata checksum does not match",
            MetadataFault::Reserved => "the metadata has unknown fields set",
        },
    })?;
    if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&metadata.format_version) {
        return Err(Error::FormatVersion {
            found: metadata.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let fields = [
        (
            "sector_size_bytes",
            u64::from(config.sector_size_bytes),
            u64::from(metadata.sector_size_bytes),
        ),
        (
            "block_size_bytes",
            u64::from(config.block_size_bytes),
            u64::from(metadata.block_size_bytes),
        ),
        (
            "segment_size_bytes",
            config.segment_size_bytes,
            metadata.segment_size_bytes,
        ),
    ];
    for (field, config, disk) in fields {
        if config != disk {
            return Err(Error::ConfigMismatch {
                field,
                config,
                disk,
            });
        }
    }
    Ok(metadata)
}
