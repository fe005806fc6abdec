//! The one seam between the log and the world: storage and a clock.
//!
//! The `Log` does all IO through [`Storage`]. Writes and syncs are *submitted* and complete
//! later, reported by [`Storage::poll`], so a backend may keep several writes in flight and a
//! simulator may choose when each completes, in which order, and what survives a crash.
//! Reads and segment management are synchronous: they are rare, and the log waits for them
//! anyway.
//!
//! Every buffer, offset and length passed through the seam is a multiple of the sector size,
//! and every backend asserts it: a misaligned request is a bug in the caller, as `O_DIRECT`
//! would reject it.

mod buffer;
#[cfg(target_os = "linux")]
mod direct;
#[cfg(target_os = "linux")]
mod fill;
mod mem;
#[cfg(target_os = "linux")]
mod monitor;
#[cfg(target_os = "linux")]
mod prepare;
#[cfg(target_os = "linux")]
mod read_ahead;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
pub mod trace;
#[cfg(target_os = "linux")]
mod uring;

pub use buffer::AlignedBuffer;
#[cfg(target_os = "linux")]
pub use direct::*;
pub use mem::{MemStorage, SectorFate};
#[cfg(target_os = "linux")]
pub use sys::{
    segment_file_name, segment_file_parse, SECTOR_SIZE_BYTES_DEFAULT, SEGMENT_FILE_SUFFIX,
    SEGMENT_NAME_DIGITS, TEMPORARY_FILE_SUFFIX,
};

use std::io;

/// A segment is named by the first LSN it holds.
pub type SegmentId = u64;

/// A monotonic clock. The log never reads the operating system's time itself, so that
/// flush-on-timeout is deterministic under a simulated clock.
pub trait Clock {
    /// Nanoseconds since an arbitrary, fixed origin; never decreases.
    fn now_ns(&self) -> u64;
}

/// What a completed operation was.
#[derive(Debug)]
pub enum CompletionKind {
    /// A write finished; the buffer comes back to its owner.
    Write {
        /// The buffer that was written.
        buffer: AlignedBuffer,
    },
    /// A sync finished.
    Sync,
}

/// A submitted operation that has finished, successfully or not.
#[derive(Debug)]
pub struct Completion {
    /// The token the caller gave when it submitted the operation.
    pub token: u64,
    /// What the operation was, with the buffer of a write.
    pub kind: CompletionKind,
    /// Whether it succeeded.
    pub result: io::Result<()>,
}

/// Where a log keeps its bytes.
///
/// Contract, which every backend keeps and the `Log` relies on:
/// - A write that completed successfully is visible to later reads; it survives a crash only
///   once a sync of its segment, submitted after the write completed, completed successfully.
/// - Writes in flight at the same time never overlap.
/// - `segment_remove` and `metadata_write` are durable when they return. A segment made by
///   `segment_create` is durable once a sync of it, submitted after the creation, completes;
///   a crash before that may undo the creation: the segment is then missing, or holds what it
///   held before it was replaced.
/// - A read of bytes never written returns zeros.
pub trait Storage: Clock {
    /// The alignment and granularity of all IO, in bytes.
    fn sector_size_bytes(&self) -> u32;

    /// Reads the log's metadata (one sector) into `buffer`; `Ok(false)` if there is none.
    fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool>;

    /// Writes the log's metadata (one sector), durably and atomically.
    fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()>;

    /// Lists the segments, in ascending order. Called when the log opens.
    fn segment_list(&mut self) -> io::Result<Vec<SegmentId>>;

    /// Creates a segment of `size_bytes`, preallocated and reading as zeros. If a segment with
    /// this id exists, it is replaced. Durable with the segment's next sync (see the contract
    /// above).
    fn segment_create(&mut self, segment: SegmentId, size_bytes: u64) -> io::Result<()> {
        self.segment_create_with(segment, size_bytes, &[])
    }

    /// Like [`segment_create`](Storage::segment_create), with `head` (whole sectors, aligned)
    /// as the first bytes of the new segment, atomically: a crash leaves the segment as it was
    /// (missing, or its old content whole) or as created, `head` included; never a new
    /// segment without its head. Durable with the segment's next sync. An error leaves the
    /// segment as it was. A suffix truncation makes its segment so.
    fn segment_create_with(
        &mut self,
        segment: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<()>;

    /// Removes a segment.
    fn segment_remove(&mut self, segment: SegmentId) -> io::Result<()>;

    /// The size of a segment in bytes.
    fn segment_size_bytes(&mut self, segment: SegmentId) -> io::Result<u64>;

    /// Reads `buffer.len()` bytes at `offset_bytes`, synchronously.
    fn read(&mut self, segment: SegmentId, offset_bytes: u64, buffer: &mut [u8]) -> io::Result<()>;

    /// Reads `size_bytes` at `offset_bytes` into `buffer[at..at + size_bytes]`. The caller
    /// has no further use for the rest of `buffer`, so a backend may instead swap in another
    /// buffer of the same length and alignment that holds those bytes there (one it read
    /// ahead into, sparing a copy). The default reads into `buffer`.
    fn read_exchange(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: &mut AlignedBuffer,
        at: usize,
        size_bytes: usize,
    ) -> io::Result<()> {
        self.read(segment, offset_bytes, &mut buffer[at..at + size_bytes])
    }

    /// A hint that a read of `size_bytes` at `offset_bytes` of the segment is likely soon (a
    /// scan), into a buffer at `at` (see [`read_exchange`](Storage::read_exchange)): a backend
    /// may start loading it in the background. Reads return the same bytes with or without
    /// it. The default ignores it.
    fn read_ahead(&mut self, segment: SegmentId, offset_bytes: u64, size_bytes: usize, at: usize) {
        let _ = (segment, offset_bytes, size_bytes, at);
    }

    /// Submits a write of `buffer[..size_bytes]` at `offset_bytes`. The buffer comes back in
    /// the write's [`Completion`].
    fn write_submit(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    );

    /// Like [`write_submit`](Storage::write_submit), for a write the caller waits for next
    /// (the last write of a flush): a backend may run it on the caller's thread rather than
    /// hand it to another, since a handoff only adds latency then. The default submits it
    /// as any other write.
    fn write_submit_waited(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        self.write_submit(token, segment, offset_bytes, buffer, size_bytes);
    }

    /// Submits a sync of a segment: when it completes successfully, every write to the segment
    /// that completed before the submission is durable.
    fn sync_submit(&mut self, token: u64, segment: SegmentId);

    /// Like [`sync_submit`](Storage::sync_submit), for a sync the log makes only to reuse its
    /// write buffers during bulk appends (it keeps at most `write_buffer_count` writes not yet
    /// durable), not one a caller waits on: a backend that tunes itself for the latency of
    /// frequent small syncs should not count it. The default submits it as any other sync.
    fn sync_submit_bulk(&mut self, token: u64, segment: SegmentId) {
        self.sync_submit(token, segment);
    }

    /// Returns a completed operation, if any. With `wait`, blocks until one completes, unless
    /// nothing is in flight.
    fn poll(&mut self, wait: bool) -> Option<Completion>;
}

/// Asserts what `O_DIRECT` would reject: a misaligned offset, length or buffer address.
pub fn assert_aligned(sector_size_bytes: u32, offset_bytes: u64, buffer: &[u8]) {
    let sector = u64::from(sector_size_bytes);
    assert!(sector.is_power_of_two());
    assert_eq!(
        offset_bytes % sector,
        0,
        "offset {offset_bytes} not sector-aligned"
    );
    assert_eq!(
        buffer.len() as u64 % sector,
        0,
        "length {} not sector-aligned",
        buffer.len()
    );
    // An empty buffer (a segment made without a head) transfers nothing from anywhere.
    assert!(
        buffer.is_empty() || buffer.as_ptr() as u64 % sector == 0,
        "buffer address not sector-aligned"
    );
}

impl<C: Clock + ?Sized> Clock for &mut C {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}

/// A log over a borrowed storage: the storage outlives the log, even one whose open failed (a
/// test can then look at what the failed open left behind).
impl<S: Storage + ?Sized> Storage for &mut S {
    fn sector_size_bytes(&self) -> u32 {
        (**self).sector_size_bytes()
    }
    fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        (**self).metadata_read(buffer)
    }
    fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()> {
        (**self).metadata_write(buffer)
    }
    fn segment_list(&mut self) -> io::Result<Vec<SegmentId>> {
        (**self).segment_list()
    }
    fn segment_create_with(
        &mut self,
        segment: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<()> {
        (**self).segment_create_with(segment, size_bytes, head)
    }
    fn segment_remove(&mut self, segment: SegmentId) -> io::Result<()> {
        (**self).segment_remove(segment)
    }
    fn segment_size_bytes(&mut self, segment: SegmentId) -> io::Result<u64> {
        (**self).segment_size_bytes(segment)
    }
    fn read(&mut self, segment: SegmentId, offset_bytes: u64, buffer: &mut [u8]) -> io::Result<()> {
        (**self).read(segment, offset_bytes, buffer)
    }
    fn read_exchange(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: &mut AlignedBuffer,
        at: usize,
        size_bytes: usize,
    ) -> io::Result<()> {
        (**self).read_exchange(segment, offset_bytes, buffer, at, size_bytes)
    }
    fn read_ahead(&mut self, segment: SegmentId, offset_bytes: u64, size_bytes: usize, at: usize) {
        (**self).read_ahead(segment, offset_bytes, size_bytes, at)
    }
    fn write_submit(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        (**self).write_submit(token, segment, offset_bytes, buffer, size_bytes)
    }
    fn write_submit_waited(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        (**self).write_submit_waited(token, segment, offset_bytes, buffer, size_bytes)
    }
    fn sync_submit(&mut self, token: u64, segment: SegmentId) {
        (**self).sync_submit(token, segment)
    }
    fn sync_submit_bulk(&mut self, token: u64, segment: SegmentId) {
        (**self).sync_submit_bulk(token, segment)
    }
    fn poll(&mut self, wait: bool) -> Option<Completion> {
        (**self).poll(wait)
    }
}
