//! The `Log` state machine: append, flush, read, cursors, retention, and open (format or
//! recover). It does no IO itself: every byte goes through the [`Storage`] seam, and every
//! buffer it uses is allocated in [`Log::open`].

use crate::config::Config;
use crate::error::{CorruptionKind, Error, IoOperation, Result};
use crate::format::{
    self, BlockHeader, FragmentKind, HeaderRead, Metadata, MetadataFault, BLOCK_HEADER_SIZE_BYTES,
    FLAG_CONTINUES, FORMAT_VERSION, FRAME_HEADER_SIZE_BYTES,
};
use crate::read::{HeaderState, Place, ReadCache};
use crate::recovery::{Chain, End, RecoveryReport, Scan, Verdict};
pub(crate) use crate::segments::IndexEntry;
use crate::segments::SegmentTable;
use crate::storage::{AlignedBuffer, Completion, CompletionKind, SegmentId, Storage};
use crate::Lsn;

const HEADER: usize = BLOCK_HEADER_SIZE_BYTES;
const FRAME: usize = FRAME_HEADER_SIZE_BYTES;

/// A write submitted to storage and not yet retired.
#[derive(Clone, Copy, Debug, Default)]
struct Inflight {
    token: u64,
    segment: SegmentId,
    offset_bytes: u64,
    size_bytes: u64,
    /// Every record below this LSN is complete in the blocks up to the end of this write.
    lsn_end: Lsn,
    done: bool,
}

/// The block being filled and the write buffer that holds it.
struct Writer {
    /// The current write buffer; `None` between a submission and the next block.
    buffer: Option<AlignedBuffer>,
    /// Where `buffer[0]` goes in the current (last) segment.
    buffer_offset_bytes: u64,
    /// Bytes of sealed blocks at the front of the buffer.
    buffer_used_bytes: usize,
    /// Where the open block starts, or the next block will start, in the current segment.
    block_offset_bytes: u64,
    /// Bytes of the open block filled (header included); zero when no block is open.
    block_fill_bytes: usize,
    /// The open block's size limit.
    block_size_bytes_max: usize,
    /// The open block's header, completed when it is sealed.
    block_header: BlockHeader,
}

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
struct Position {
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

/// A position in the log from which [`Log::cursor_next`] yields durable records in order.
/// It holds no borrow of the log, so the log can be appended to between calls.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    lsn_next: Lsn,
    position: Option<Position>,
}

impl Cursor {
    /// The LSN of the record the next call yields.
    pub fn lsn_next(&self) -> Lsn {
        self.lsn_next
    }
}

/// A record yielded by a cursor; `data` borrows the log's buffers until the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's LSN.
    pub lsn: Lsn,
    /// The record's bytes.
    pub data: &'a [u8],
}

/// An embeddable, crash-safe, append-only log over a [`Storage`].
pub struct Log<S: Storage> {
    config: Config,
    storage: S,
    table: SegmentTable,
    cache: ReadCache,
    /// Reassembles records that span blocks.
    record_buffer: Vec<u8>,
    buffers_free: Vec<AlignedBuffer>,
    writer: Writer,
    /// Writes in flight, in submission order (a ring).
    inflight: Vec<Inflight>,
    /// The buffers of completed writes, held in their ring slot until every earlier write has
    /// completed too: buffers are reused in submission order, so the ring never holds more
    /// writes than there are buffers, however out of order writes complete.
    inflight_buffers: Vec<Option<AlignedBuffer>>,
    inflight_head: usize,
    inflight_len: usize,
    /// The result of the last completed sync, by token.
    sync_done: Option<(u64, bool)>,
    token_next: u64,
    lsn_first: Lsn,
    lsn_next: Lsn,
    lsn_written: Lsn,
    lsn_durable: Lsn,
    epoch: u32,
    checksum_previous: u32,
    /// The oldest segment written since the last sync.
    unsynced_from: Option<SegmentId>,
    unflushed_bytes: u64,
    unflushed_since_ns: Option<u64>,
    failed: Option<(IoOperation, SegmentId)>,
    report: RecoveryReport,
}

/// Whether the log waits for a write right after submitting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Submit {
    /// Appends go on while the write is in flight.
    Background,
    /// The last write of a flush: the log waits for it next.
    Waited,
}

fn io_error(
    operation: IoOperation,
    segment: Option<SegmentId>,
) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        operation,
        segment,
        offset_bytes: None,
        source,
    }
}

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
        let (segments, formatted) = Self::metadata_open(&config, &mut storage)?;
        let mut log = Log::allocate(config, storage);
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

    /// Reads and checks the metadata, or formats a new log; returns the segments, and whether
    /// it formatted.
    fn metadata_open(config: &Config, storage: &mut S) -> Result<(Vec<SegmentId>, bool)> {
        let sector = config.sector_size_bytes as usize;
        let mut buffer = AlignedBuffer::new(sector, sector);
        let exists = storage
            .metadata_read(&mut buffer)
            .map_err(io_error(IoOperation::MetadataRead, None))?;
        let mut segments = storage
            .segment_list()
            .map_err(io_error(IoOperation::SegmentList, None))?;
        if exists {
            metadata_check(config, &buffer)?;
        } else {
            if !segments.is_empty() {
                return Err(Error::MetadataMissing {
                    segment_count: segments.len(),
                });
            }
            tracing::info!("formatting a new log");
            let metadata = Metadata {
                format_version: FORMAT_VERSION,
                sector_size_bytes: config.sector_size_bytes,
                block_size_bytes: config.block_size_bytes,
                segment_size_bytes: config.segment_size_bytes,
            };
            metadata.encode(&mut buffer);
            storage
                .metadata_write(&buffer)
                .map_err(io_error(IoOperation::MetadataWrite, None))?;
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
        Ok((segments, !exists))
    }

    fn allocate(config: Config, storage: S) -> Log<S> {
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
            ),
            cache: ReadCache::new(
                config.read_buffer_size_bytes,
                config.sector_size_bytes,
                config.block_size_bytes,
            ),
            record_buffer: vec![0; config.record_size_bytes_max as usize],
            buffers_free,
            writer: Writer {
                buffer: None,
                buffer_offset_bytes: 0,
                buffer_used_bytes: 0,
                block_offset_bytes: 0,
                block_fill_bytes: 0,
                block_size_bytes_max: 0,
                block_header: BlockHeader::default(),
            },
            inflight: vec![Inflight::default(); count],
            inflight_buffers: (0..count).map(|_| None).collect(),
            inflight_head: 0,
            inflight_len: 0,
            sync_done: None,
            token_next: 1,
            lsn_first: 0,
            lsn_next: 0,
            lsn_written: 0,
            lsn_durable: 0,
            epoch: 0,
            checksum_previous: 0,
            unsynced_from: None,
            unflushed_bytes: 0,
            unflushed_since_ns: None,
            failed: None,
            report: RecoveryReport {
                lsn_first: 0,
                lsn_next: 0,
                block_count: 0,
                segment_count: 0,
                segments_removed: 0,
                end: Verdict::Accept,
                end_written: false,
                end_segment: 0,
                end_offset_bytes: 0,
                lsn_lost: None,
                epoch: 0,
            },
            config,
            storage,
        }
    }

    /// Walks the log, truncates what follows its end, makes what it kept durable, and sets
    /// the writer at the end.
    fn recover(&mut self, segments: &[SegmentId], formatted: bool) -> Result<()> {
        let mut scan = Scan::new(
            &self.config,
            &mut self.storage,
            &mut self.cache,
            segments,
            formatted,
        );
        let end = scan.run(&mut self.table)?;
        let (chain, epoch_max, block_count) = (scan.chain, scan.epoch_max, scan.block_count);
        let chain_segment_start = scan.chain_segment_start;
        recovery_end_trace(&end, &chain, segments[end.segment_index]);
        let stale = &segments[end.segment_index + 1..];
        self.recovery_truncate(&chain, stale)?;
        self.epoch = epoch_max.checked_add(1).ok_or(Error::NotALog {
            reason: "a block claims the last epoch: the epoch counter is exhausted",
        })?;
        self.checksum_previous = chain.checksum_previous.unwrap_or(0);
        self.lsn_first = self.table.id(0);
        self.lsn_next = chain.lsn_next;
        self.lsn_written = chain.lsn_next;
        self.lsn_durable = chain.lsn_next;
        self.writer.block_offset_bytes = end.offset_bytes;
        let end_written = self.recovery_settle(end.verdict, &chain_segment_start)?;
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
            lsn_lost: end.lsn_lost,
            epoch: self.epoch,
        };
        Ok(())
    }

    /// Abandons a record the crash left open and removes the segments after the end.
    fn recovery_truncate(&mut self, chain: &Chain, stale: &[SegmentId]) -> Result<()> {
        if chain.record_open {
            let key = IndexEntry::key(chain.lsn_next, false);
            self.table.index_clamp(self.table.len() - 1, key);
            let lsn = chain.lsn_next;
            tracing::info!(lsn, "abandoning a record the crash left open");
        }
        for &segment in stale.iter().rev() {
            tracing::info!(segment, "removing a segment after the end of the log");
            self.storage
                .segment_remove(segment)
                .map_err(io_error(IoOperation::SegmentRemove, Some(segment)))?;
        }
        Ok(())
    }

    /// Makes recovery's outcome durable and final: recreates a last segment that holds no
    /// record, syncs every kept segment, then seals the end if it must.
    /// Returns whether the end's first sector held bytes (`RecoveryReport::end_written`).
    fn recovery_settle(&mut self, verdict: Verdict, chain_segment_start: &Chain) -> Result<bool> {
        let end_segment = self.table.last();
        let holds_no_record = end_segment == self.lsn_next;
        let room = self.writer.block_offset_bytes < self.config.segment_size_bytes;
        let end_written = room && verdict != Verdict::Accept && self.end_sector_written()?;
        // A seal makes recovery's decision durable: after a loss, and after a torn tail whose
        // first sector holds anything but zeros. Without one, bytes that read badly only this
        // time (a transient read fault) would read well at the next open and bring back
        // records this recovery dropped and the caller may since have written anew; and a
        // strict reopen after a point-in-time recovery would report the same damage again.
        let mut seal = room && (verdict == Verdict::Lose || end_written);
        if holds_no_record && (self.writer.block_offset_bytes > 0 || seal) {
            // Only what a crash abandoned is there: make it empty again, so that it can take
            // any record and nothing in it can come back.
            seal = false;
            tracing::info!(
                segment = end_segment,
                "recreating a segment that holds no record"
            );
            self.storage
                .segment_create(end_segment, self.config.segment_size_bytes)
                .map_err(io_error(IoOperation::SegmentCreate, Some(end_segment)))?;
            self.cache
                .invalidate(end_segment, 0, self.config.segment_size_bytes);
            self.table.index_reset(self.table.len() - 1);
            self.checksum_previous = chain_segment_start.checksum_previous.unwrap_or(0);
            self.writer.block_offset_bytes = 0;
        }
        // Everything kept becomes durable before the seal attests it.
        for index in 0..self.table.len() {
            self.sync_wait(self.table.id(index))?;
        }
        if seal {
            self.seal_write()?;
            self.sync_wait(self.table.last())?;
        }
        Ok(end_written)
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
        let sector = self.config.sector_size_bytes as usize;
        let segment = self.table.last();
        let offset_bytes = self.writer.block_offset_bytes;
        tracing::info!(
            segment,
            offset_bytes,
            lsn = self.lsn_next,
            "writing a seal block"
        );
        let mut buffer = self
            .buffers_free
            .pop()
            .expect("write buffers are free at open");
        let block = &mut buffer[..sector];
        block.fill(0);
        let mut header = BlockHeader {
            checksum_body: format::checksum(&[]),
            checksum_previous: self.checksum_previous,
            epoch: self.epoch,
            segment,
            lsn_first: self.lsn_next,
            lsn_durable: self.lsn_durable,
            offset_bytes: u32::try_from(offset_bytes).expect("offset fits u32"),
            size_bytes: sector as u32,
            sector_size_bytes: self.config.sector_size_bytes,
            block_size_bytes: self.config.block_size_bytes,
            segment_size_bytes: self.config.segment_size_bytes,
            ..BlockHeader::default()
        };
        self.checksum_previous = header.encode(block);
        let token = self.token_take();
        self.storage
            .write_submit(token, segment, offset_bytes, buffer, sector);
        let completion = self.storage.poll(true).expect("write in flight");
        assert_eq!(
            completion.token, token,
            "only the seal is in flight at open"
        );
        let CompletionKind::Write { buffer } = completion.kind else {
            panic!("the seal completed as a sync");
        };
        self.buffers_free.push(buffer);
        self.cache.invalidate(segment, offset_bytes, sector as u64);
        completion.result.map_err(|source| Error::Io {
            operation: IoOperation::Write,
            segment: Some(segment),
            offset_bytes: Some(offset_bytes),
            source,
        })?;
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

    /// What recovery found when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.lsn_next
    }

    /// Every record below this LSN is durable: it survives any crash.
    pub fn durable_lsn(&self) -> Lsn {
        self.lsn_durable
    }

    /// The first LSN still held (earlier ones were dropped by `truncate_prefix`).
    pub fn first_lsn(&self) -> Lsn {
        self.lsn_first
    }

    /// How many segments the log holds.
    pub fn segment_count(&self) -> usize {
        self.table.len()
    }

    /// The storage, for inspection.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, for tests that inject faults while the log is open.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Appends one record and returns its LSN. The record is readable at once with
    /// [`read`](Log::read); it is durable once [`durable_lsn`](Log::durable_lsn) passes it.
    pub fn append(&mut self, record: &[u8]) -> Result<Lsn> {
        self.writable()?;
        self.size_check(record.len())?;
        let lsn = self.append_one(record)?;
        self.unflushed_note(record.len() as u64);
        self.policies()?;
        Ok(lsn)
    }

    /// Appends records in order and returns the LSN of the first. Every size is checked before
    /// anything is appended. A crash may keep any prefix of the batch that was not yet durable.
    pub fn append_batch<R: AsRef<[u8]>>(&mut self, records: &[R]) -> Result<Lsn> {
        self.writable()?;
        for record in records {
            self.size_check(record.as_ref().len())?;
        }
        let lsn = self.lsn_next;
        let mut size_bytes = 0;
        for record in records {
            let record = record.as_ref();
            self.append_one(record)?;
            size_bytes += record.len() as u64;
        }
        self.unflushed_note(size_bytes);
        self.policies()?;
        Ok(lsn)
    }

    /// Flushes by the timeout policy if it is due. Call it when idle to bound how long an
    /// unflushed record may wait.
    pub fn tick(&mut self) -> Result<()> {
        self.writable()?;
        self.policies()
    }

    /// Writes everything appended and syncs it; on return, `durable_lsn() == next_lsn()`.
    /// A failed write or sync stops the log: this and every later call returns
    /// [`Error::Failed`], and reopening recovers from what is on disk.
    pub fn flush(&mut self) -> Result<()> {
        self.writable()?;
        if self.lsn_durable == self.lsn_next && self.unsynced_from.is_none() {
            return Ok(());
        }
        if self.writer.block_fill_bytes > 0 {
            self.block_seal();
        }
        self.buffer_submit(Submit::Waited);
        self.writes_wait_all()?;
        assert_eq!(
            self.lsn_written, self.lsn_next,
            "flush left records unwritten"
        );
        let lsn_target = self.lsn_written;
        if let Some(from) = self.unsynced_from {
            let first = self.table.find(from).unwrap_or(0);
            for index in first..self.table.len() {
                self.sync_wait(self.table.id(index))?;
            }
        }
        assert!(lsn_target >= self.lsn_durable);
        self.lsn_durable = lsn_target;
        self.unsynced_from = None;
        self.unflushed_bytes = 0;
        self.unflushed_since_ns = None;
        tracing::debug!(lsn_durable = self.lsn_durable, "flushed");
        Ok(())
    }

    /// Drops whole segments whose records are all below `lsn`. The current segment is never
    /// dropped, so records at and after `lsn` always stay. On an error, some of the segments
    /// asked for may already be gone (each removal is durable on its own), never more.
    pub fn truncate_prefix(&mut self, lsn: Lsn) -> Result<()> {
        self.writable()?;
        if lsn > self.lsn_next {
            return Err(self.out_of_range(lsn));
        }
        while self.table.len() > 1 && self.table.id(1) <= lsn {
            let segment = self.table.id(0);
            if self.inflight_segment(segment) {
                self.writes_wait_all()?;
            }
            self.storage
                .segment_remove(segment)
                .map_err(io_error(IoOperation::SegmentRemove, Some(segment)))?;
            self.table.pop_front();
            self.cache
                .invalidate(segment, 0, self.config.segment_size_bytes);
            self.lsn_first = self.table.id(0);
            tracing::info!(segment, lsn_first = self.lsn_first, "segment dropped");
        }
        if let Some(from) = self.unsynced_from {
            self.unsynced_from = Some(from.max(self.lsn_first));
        }
        Ok(())
    }

    /// Flushes and returns the storage.
    pub fn close(mut self) -> Result<S> {
        self.flush()?;
        tracing::info!(lsn_next = self.lsn_next, "closed");
        Ok(self.storage)
    }

    /// Returns the storage without flushing: what a crash of the process leaves behind.
    pub fn into_storage(self) -> S {
        self.storage
    }

    fn writable(&self) -> Result<()> {
        match self.failed {
            None => Ok(()),
            Some(_) => Err(self.failed_error()),
        }
    }

    fn failed_error(&self) -> Error {
        let (operation, segment) = self.failed.expect("log failed");
        Error::Failed { operation, segment }
    }

    fn fail(&mut self, operation: IoOperation, segment: SegmentId) {
        if self.failed.is_none() {
            tracing::error!(
                ?operation,
                segment,
                "fail-stop: the log accepts no more writes"
            );
            self.failed = Some((operation, segment));
        }
    }

    fn size_check(&self, size_bytes: usize) -> Result<()> {
        if size_bytes > self.config.record_size_bytes_max as usize {
            return Err(Error::RecordTooLarge {
                size_bytes: size_bytes as u64,
                size_bytes_max: self.config.record_size_bytes_max,
            });
        }
        Ok(())
    }

    fn out_of_range(&self, lsn: Lsn) -> Error {
        Error::LsnOutOfRange {
            lsn,
            lsn_first: self.lsn_first,
            lsn_next: self.lsn_next,
        }
    }

    fn unflushed_note(&mut self, size_bytes: u64) {
        self.unflushed_bytes += size_bytes;
        if self.unflushed_since_ns.is_none() {
            self.unflushed_since_ns = Some(self.storage.now_ns());
        }
    }

    /// Flushes if the size or timeout policy says so.
    fn policies(&mut self) -> Result<()> {
        let size_due = self
            .config
            .flush_size_bytes
            .is_some_and(|limit| self.unflushed_bytes >= limit);
        let timeout_due = match (self.config.flush_timeout_ns, self.unflushed_since_ns) {
            (Some(timeout), Some(since)) => self.storage.now_ns().saturating_sub(since) >= timeout,
            _ => false,
        };
        if size_due || timeout_due {
            tracing::trace!(size_due, timeout_due, "flush by policy");
            self.flush()?;
        }
        Ok(())
    }

    /// Places one record (already size-checked) in blocks, rolling the segment first if it
    /// does not fit.
    fn append_one(&mut self, record: &[u8]) -> Result<Lsn> {
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
    fn block_seal(&mut self) {
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
        self.checksum_previous = header.encode(block);
        debug_assert!(matches!(BlockHeader::decode(block), HeaderRead::Valid(_)));
        let block_offset = writer.block_offset_bytes;
        let last = self.table.len() - 1;
        self.table
            .index_seal(last, block_offset, self.checksum_previous);
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
    fn buffer_submit(&mut self, submit: Submit) {
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
        self.cache.invalidate(segment, offset, size as u64);
        self.unsynced_from = Some(self.unsynced_from.map_or(segment, |from| from.min(segment)));
        self.writer.buffer_used_bytes = 0;
        match submit {
            Submit::Background => self
                .storage
                .write_submit(token, segment, offset, buffer, size),
            Submit::Waited => self
                .storage
                .write_submit_waited(token, segment, offset, buffer, size),
        }
    }

    fn token_take(&mut self) -> u64 {
        let token = self.token_next;
        self.token_next += 1;
        token
    }

    fn buffer_acquire(&mut self) -> Result<AlignedBuffer> {
        loop {
            if let Some(buffer) = self.buffers_free.pop() {
                return Ok(buffer);
            }
            self.completion_wait()?;
        }
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
                if result.is_err() {
                    self.fail(IoOperation::Write, self.inflight[slot].segment);
                }
                self.inflight_retire();
            }
            CompletionKind::Sync => {
                self.sync_done = Some((token, result.is_ok()));
            }
        }
    }

    /// Retires completed writes from the front of the ring, in submission order.
    fn inflight_retire(&mut self) {
        while self.inflight_len > 0 && self.inflight[self.inflight_head].done {
            let write = self.inflight[self.inflight_head];
            assert!(write.lsn_end >= self.lsn_written);
            let buffer = self.inflight_buffers[self.inflight_head].take();
            self.buffers_free
                .push(buffer.expect("a completed write holds its buffer"));
            self.lsn_written = write.lsn_end;
            self.inflight_head = (self.inflight_head + 1) % self.inflight.len();
            self.inflight_len -= 1;
        }
    }

    fn writes_wait_all(&mut self) -> Result<()> {
        while self.inflight_len > 0 {
            self.completion_wait()?;
        }
        self.writable()
    }

    fn inflight_segment(&self, segment: SegmentId) -> bool {
        (0..self.inflight_len)
            .map(|index| self.inflight[(self.inflight_head + index) % self.inflight.len()])
            .any(|write| write.segment == segment)
    }

    fn inflight_overlaps(&self, segment: SegmentId, offset_bytes: u64, size_bytes: u64) -> bool {
        (0..self.inflight_len)
            .map(|index| self.inflight[(self.inflight_head + index) % self.inflight.len()])
            .any(|write| {
                write.segment == segment
                    && offset_bytes < write.offset_bytes + write.size_bytes
                    && write.offset_bytes < offset_bytes + size_bytes
            })
    }

    /// Syncs one segment and waits for it; a failure stops the log.
    fn sync_wait(&mut self, segment: SegmentId) -> Result<()> {
        let token = self.token_take();
        self.storage.sync_submit(token, segment);
        loop {
            let completion = self
                .storage
                .poll(true)
                .expect("sync submitted but nothing in flight");
            self.completion_handle(completion);
            if let Some((done, ok)) = self.sync_done {
                if done == token {
                    self.sync_done = None;
                    if !ok {
                        self.fail(IoOperation::Sync, segment);
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

    /// Reads record `lsn` into `buffer` and returns its size. Sees every appended record,
    /// durable or not.
    pub fn read(&mut self, lsn: Lsn, buffer: &mut [u8]) -> Result<usize> {
        self.writable()?;
        if lsn < self.lsn_first || lsn >= self.lsn_next {
            return Err(self.out_of_range(lsn));
        }
        let position = self.locate(lsn)?;
        self.cache.window_set(self.config.block_size_bytes as usize);
        let (found, _) = self.record_find(lsn, position)?;
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

    fn found_bytes(&self, found: Found) -> &[u8] {
        match found {
            Found::Memory { start, size } => {
                &self.writer.buffer.as_ref().expect("memory block")[start..start + size]
            }
            Found::Cache { start, size } => &self.cache.bytes()[start..start + size],
            Found::Assembled { size } => &self.record_buffer[..size],
        }
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
        if matches!(source, Source::Cache(_)) && !linked {
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

/// Where a block's body is.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// In the current write buffer, from this offset.
    Memory(usize),
    /// In the read buffer, from this offset.
    Cache(usize),
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
fn metadata_check(config: &Config, buffer: &[u8]) -> Result<()> {
    let metadata = Metadata::decode(buffer).map_err(|fault| Error::NotALog {
        reason: match fault {
            MetadataFault::Magic => "the metadata does not start with Ballast's magic",
            MetadataFault::Checksum => "the metadata checksum does not match",
            MetadataFault::Reserved => "the metadata has unknown fields set",
        },
    })?;
    if metadata.format_version != FORMAT_VERSION {
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
    Ok(())
}
