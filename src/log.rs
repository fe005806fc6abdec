//! The `Log` state machine: append, flush, read, cursors, retention, attestation, and open
//! (format or recover). It does no IO itself: every byte goes through the [`Storage`] seam, and
//! every buffer it uses is allocated in [`Log::open`].
//!
//! This file holds the state and the public calls. The rest is split along its seams:
//! `open.rs` (formatting, recovery's side effects, the metadata), `write.rs` (blocks, write
//! buffers, the window and syncs), `reads.rs` (reads and cursors) and `truncate.rs` (both
//! truncations and the vote).

mod open;
mod reads;
mod truncate;
mod write;

use crate::config::Config;
use crate::config::RecoveryMode;
use crate::error::{CorruptionKind, Error, IoCause, IoOperation, Result};
use crate::format::{
    self, BlockHeader, CleanEnd, FirstBlock, FragmentKind, HeaderRead, Loss, Metadata,
    MetadataFault, BLOCK_HEADER_SIZE_BYTES, FLAG_CONTINUES, FORMAT_VERSION, FORMAT_VERSION_MIN,
    FRAME_HEADER_SIZE_BYTES,
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

/// What was submitted since everything written was last synced: at most the window
/// (`Config::window_size_bytes`), which recovery relies on (`docs/recovery.md`).
#[derive(Clone, Copy, Debug, Default)]
struct Unsynced {
    /// The first segment written since.
    segment_first: Option<SegmentId>,
    /// Bytes written since.
    size_bytes: u64,
    /// The highest `lsn_durable` the blocks written since carry: what they attest once
    /// durable.
    lsn_durable_sealed: Lsn,
}

impl Unsynced {
    fn note(&mut self, segment: SegmentId, size_bytes: u64, lsn_durable_sealed: Lsn) {
        self.segment_first.get_or_insert(segment);
        self.size_bytes += size_bytes;
        self.lsn_durable_sealed = self.lsn_durable_sealed.max(lsn_durable_sealed);
    }
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
    /// The highest `lsn_durable` sealed into the current buffer's blocks.
    buffer_lsn_durable: Lsn,
}

/// A position in the log from which [`Log::cursor_next`] yields durable records in order.
/// It holds no borrow of the log, so the log can be appended to between calls.
#[derive(Clone, Copy, Debug)]
pub struct Cursor {
    lsn_next: Lsn,
    position: Option<reads::Position>,
}

impl Cursor {
    /// The LSN of the record the next call yields.
    pub fn lsn_next(&self) -> Lsn {
        self.lsn_next
    }

    /// A cursor at `lsn` that knows no position yet: its next call finds the record through
    /// the index. (A reader that read the records before from elsewhere, the tail cache.)
    pub(crate) fn at(lsn: Lsn) -> Cursor {
        Cursor {
            lsn_next: lsn,
            position: None,
        }
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
    /// The LSN the last point read returned: the next read of the one after it is a read in
    /// LSN order, and loads ahead.
    read_lsn_last: Option<Lsn>,
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
    unsynced: Unsynced,
    /// The outcome of the last completed sync, by token: its failure's cause, if it failed.
    sync_done: Option<(u64, Option<IoCause>)>,
    token_next: u64,
    lsn_first: Lsn,
    lsn_next: Lsn,
    /// Every record below this LSN is in a submitted write.
    lsn_submitted: Lsn,
    lsn_durable: Lsn,
    /// Every record below this LSN is attested on disk: a durable block sealed after it, an
    /// attestation block, or the metadata's checkpoint says it was durable, so damage to it is
    /// reported rather than read as a torn tail.
    lsn_attested: Lsn,
    /// When `lsn_durable` last advanced (storage clock): the idle attestation counts from it.
    durable_since_ns: u64,
    epoch: u32,
    /// The epoch this process took at open, and the place from which on every block of the
    /// log is one it wrote (the end recovery found, or a suffix truncation's new segment):
    /// a block read there with an older epoch is stale bytes where a write of ours never
    /// landed (a misdirected or lost write over a block that once followed the same one).
    epoch_opened: u32,
    written_from: (SegmentId, u64),
    checksum_previous: u32,
    /// The metadata as on storage, and the sector it is encoded in to rewrite it.
    metadata: Metadata,
    metadata_buffer: AlignedBuffer,
    unflushed_bytes: u64,
    unflushed_since_ns: Option<u64>,
    failed: Option<(IoOperation, SegmentId, IoCause)>,
    report: RecoveryReport,
}

/// Why the log syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// A flush, recovery or an attestation: a caller waits on it.
    Waited,
    /// Only to reuse write buffers during bulk appends.
    Bulk,
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
    /// Point reads the sector cache served whole, and point reads through the sector table
    /// that went to storage, since the log opened (`Config::cache_size_bytes`): `hits /
    /// (hits + misses)` is its hit ratio. Reads the read buffer already held count as neither.
    pub fn cache_hits_and_misses(&self) -> (u64, u64) {
        (self.cache.sectors.hits, self.cache.sectors.misses)
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

    /// The LSN segment `index` (oldest first, `0..segment_count()`) starts at: its name. A
    /// retention policy keeps the newest `k` segments with
    /// `truncate_prefix(segment_lsn(segment_count() - k))`.
    pub fn segment_lsn(&self, index: usize) -> Option<Lsn> {
        (index < self.table.len()).then(|| self.table.id(index))
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

    /// Flushes by the timeout policy if it is due, and attests an idle log
    /// ([`Config::attest_idle_ns`]). Call it when idle to bound how long an unflushed record
    /// may wait and how long the last flush stays unattested.
    pub fn tick(&mut self) -> Result<()> {
        self.writable()?;
        self.policies()?;
        if self.attest_due() && !crate::planted::active("idle-attestation-skipped") {
            self.attest()?;
        }
        Ok(())
    }

    /// Whether the idle attestation is due: every record is durable, some of them are not yet
    /// attested, and nothing was made durable for `attest_idle_ns`.
    fn attest_due(&self) -> bool {
        let Some(idle_ns) = self.config.attest_idle_ns else {
            return false;
        };
        let idle = self.lsn_durable == self.lsn_next && self.unsynced.size_bytes == 0;
        let elapsed_ns = self.storage.now_ns().saturating_sub(self.durable_since_ns);
        idle && self.lsn_attested < self.lsn_durable && elapsed_ns >= idle_ns
    }

    /// Makes every durable record attested on disk: an attestation block (one sector, one
    /// sync) after the last block, or, where no block fits or may go, the metadata's
    /// checkpoint. Damage to any of those records is then reported by recovery, never read as
    /// a torn tail.
    pub fn attest(&mut self) -> Result<()> {
        self.writable()?;
        self.flush()?;
        if self.lsn_attested == self.lsn_durable {
            return Ok(());
        }
        let sector = u64::from(self.config.sector_size_bytes);
        let room = self.writer.block_offset_bytes + sector <= self.config.segment_size_bytes;
        // A segment that holds no complete record takes no frameless block: the next record
        // must still fit whole in it (`docs/format.md`, padding).
        let holds_record = self.table.last() < self.lsn_next;
        if room && holds_record {
            self.attestation_write()?;
        } else {
            self.metadata_write(Metadata {
                lsn_checkpoint: self.lsn_durable,
                ..self.metadata
            })?;
        }
        assert_eq!(self.lsn_attested, self.lsn_durable);
        Ok(())
    }

    /// Writes an attestation block where the next block would go and syncs it.
    fn attestation_write(&mut self) -> Result<()> {
        assert_eq!(
            self.writer.block_fill_bytes, 0,
            "attesting with a block open"
        );
        assert_eq!(self.inflight_len, 0, "attesting with writes in flight");
        let segment = self.table.last();
        tracing::debug!(
            segment,
            offset_bytes = self.writer.block_offset_bytes,
            lsn_durable = self.lsn_durable,
            "writing an attestation block"
        );
        self.frameless_write()
            .map_err(|error| self.fail_on_write(error, segment))?;
        self.sync_wait(segment)?;
        self.lsn_attested = self.lsn_durable;
        Ok(())
    }

    /// The log's first block, for the metadata, once it is sealed.
    fn first_block(&self) -> Option<FirstBlock> {
        let checksum = self.table.first_block_checksum(0)?;
        Some(FirstBlock {
            segment: self.table.id(0),
            checksum,
        })
    }

    /// Writes `metadata` durably and keeps it as the log's own.
    fn metadata_write(&mut self, metadata: Metadata) -> Result<()> {
        // A loss a recovery settled is reported by every open until records are written after
        // it (`Metadata::loss`).
        let loss = metadata
            .loss
            .filter(|loss| loss.lsn_next == self.lsn_durable && loss.lsn_next == self.lsn_next);
        let metadata = Metadata {
            format_version: FORMAT_VERSION,
            loss,
            ..metadata
        };
        metadata.encode(&mut self.metadata_buffer);
        self.storage
            .metadata_write(&self.metadata_buffer)
            .map_err(io_error(IoOperation::MetadataWrite, None))?;
        self.metadata = metadata;
        // A checkpoint beyond the durable end (a loss recovery is settling) attests what is
        // kept, not more.
        let attested = metadata.lsn_checkpoint.min(self.lsn_durable);
        self.lsn_attested = self.lsn_attested.max(attested);
        Ok(())
    }

    /// Every record below this LSN is attested on disk: a durable block written after it, an
    /// attestation block or the metadata says it was durable, so recovery reports damage to it
    /// ([`Error::Corruption`], or `lsn_lost` in `PointInTime`) rather than reading it as a
    /// torn tail. At most [`durable_lsn`](Log::durable_lsn); it reaches it at [`close`](Log::close),
    /// at every open, and after `attest_idle_ns` of idleness (see [`tick`](Log::tick)).
    pub fn attested_lsn(&self) -> Lsn {
        self.lsn_attested
    }

    /// Writes everything appended and syncs it; on return, `durable_lsn() == next_lsn()`.
    /// A failed write or sync stops the log: this and every later call returns
    /// [`Error::Failed`], and reopening recovers from what is on disk.
    pub fn flush(&mut self) -> Result<()> {
        self.writable()?;
        if self.lsn_durable == self.lsn_next && self.unsynced.size_bytes == 0 {
            return Ok(());
        }
        if self.writer.block_fill_bytes > 0 {
            self.block_seal();
        }
        self.buffer_submit(Submit::Waited);
        self.writes_wait_all()?;
        assert_eq!(
            self.lsn_submitted, self.lsn_next,
            "flush left records unwritten"
        );
        self.sync_written(Sync::Waited)?;
        assert_eq!(self.lsn_durable, self.lsn_next);
        self.unflushed_bytes = 0;
        self.unflushed_since_ns = None;
        tracing::debug!(lsn_durable = self.lsn_durable, "flushed");
        Ok(())
    }

    /// Flushes, records in the metadata that the log was closed cleanly and where it ends (so
    /// that damage to any record is reported at the next open, and that open skips the scan
    /// after the end), and returns the storage.
    pub fn close(mut self) -> Result<S> {
        self.flush()?;
        if crate::planted::active("close-without-attestation") {
            return Ok(self.storage);
        }
        let clean = CleanEnd {
            segment: self.table.last(),
            offset_bytes: self.writer.block_offset_bytes,
            lsn_next: self.lsn_next,
            checksum_last: self.checksum_previous,
        };
        self.metadata_write(Metadata {
            lsn_checkpoint: self.lsn_next,
            clean: Some(clean),
            first: self.first_block(),
            ..self.metadata
        })?;
        tracing::info!(lsn_next = self.lsn_next, "closed");
        Ok(self.storage)
    }

    /// Returns the storage without flushing: what a crash of the process leaves behind.
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Whether an IO failure stopped the log (fail-stop): every call since returns
    /// [`Error::Failed`], reads included.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn writable(&self) -> Result<()> {
        match self.failed {
            None => Ok(()),
            Some(_) => Err(self.failed_error()),
        }
    }

    fn failed_error(&self) -> Error {
        let (operation, segment, cause) = self.failed.expect("log failed");
        Error::Failed {
            operation,
            segment,
            cause,
        }
    }

    /// Stops the log: every later call returns `Error::Failed` with the first failure's cause.
    fn fail(&mut self, operation: IoOperation, segment: SegmentId, cause: IoCause) {
        if self.failed.is_none() {
            tracing::error!(
                ?operation,
                segment,
                %cause,
                "fail-stop: the log accepts no more writes"
            );
            self.failed = Some((operation, segment, cause));
        }
    }

    /// A write outside the ring failed: the log stops, as for any failed write.
    fn fail_on_write(&mut self, error: std::io::Error, segment: SegmentId) -> Error {
        self.fail(IoOperation::Write, segment, IoCause::of(&error));
        self.failed_error()
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
}
