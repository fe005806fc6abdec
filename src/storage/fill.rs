//! Fill-ahead for [`DirectStorage`](super::DirectStorage): one thread that writes zeros just
//! ahead of the log's writes in the segment being written, while the log syncs often.
//!
//! A segment file is preallocated with `fallocate`, so its blocks start *unwritten*: they read
//! as zeros, and the first write to each must also mark it written. A sync after that write
//! then carries a metadata update besides the data (on ext4 without a journal, a write of the
//! inode; with one, a journal commit), and on our machine a 4 KiB `O_DIRECT` write +
//! `fdatasync` of fresh blocks takes about 1.5 times as long as one of blocks written before
//! (`docs/benchmarks.md`, "Group commit"). The filler keeps the next
//! [`DirectOptions::fill_ahead_size_bytes`](super::DirectOptions::fill_ahead_size_bytes) after
//! the last write written, in chunks, so that the log's frequent small syncs find written
//! blocks. PostgreSQL zero-fills whole WAL segments for the same reason (`wal_init_zero`).
//!
//! It costs a second write of each byte the log writes, so it runs only while syncs are small:
//! a sync that follows less than one fill-ahead of new writes (counted across segments) turns
//! it on, and one fill-ahead written without a sync turns it off (bulk appends with rare syncs
//! gain nothing from it).
//!
//! Safety of the data: the filler writes only at or after the *frontier*, the end of the
//! furthest write submitted to the segment, and a write submitted over a chunk in flight first
//! waits for the chunk. Beyond the frontier the file holds nothing the log will read again:
//! zeros, or bytes that recovery gave up and sealed off. Zeros are what an unwritten block
//! reads as, so a crash in the middle of a chunk leaves the file as recovery expects it.

use super::monitor::Monitor;
use super::{AlignedBuffer, SegmentId};
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The largest chunk the filler writes at once: small enough that a sync queued behind it
/// waits little (about 0.05 ms at 1.4 GB/s).
const FILL_CHUNK_SIZE_BYTES_MAX: u32 = 64 * 1024;

/// Chunks start and end on multiples of this (or of the sector, if larger): a filesystem
/// block, so that a chunk never shares a block with a write of the log still in flight.
const FILL_ALIGNMENT_BYTES: u64 = 4096;

/// How far ahead the filler writes, and in what steps; all multiples of `align_bytes`.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    align_bytes: u64,
    /// How far past the frontier it keeps the file written.
    ahead_bytes: u64,
    /// The most it writes at once.
    chunk_bytes: u64,
    /// How far past the frontier a chunk starts at least (a chunk that started at the
    /// frontier would make the log's next write wait for it).
    gap_bytes: u64,
}

impl Geometry {
    fn new(ahead_bytes: u32, sector_size_bytes: u32) -> Geometry {
        let align_bytes = u64::from(sector_size_bytes).max(FILL_ALIGNMENT_BYTES);
        let ahead_bytes = u64::from(ahead_bytes).next_multiple_of(align_bytes);
        let chunk_bytes =
            ahead_bytes.min(u64::from(FILL_CHUNK_SIZE_BYTES_MAX).next_multiple_of(align_bytes));
        let gap_bytes = chunk_bytes / 4 / align_bytes * align_bytes;
        Geometry {
            align_bytes,
            ahead_bytes,
            chunk_bytes,
            gap_bytes,
        }
    }
}

/// The segment being filled.
#[derive(Clone, Copy, Debug)]
struct Target {
    fd: RawFd,
    segment: SegmentId,
    /// Where filling stops: the segment's size, rounded down to the alignment.
    limit_bytes: u64,
    /// The end of the furthest write submitted to the segment.
    frontier_bytes: u64,
    /// Chunks past the frontier reach up to here (a gap after the frontier may stay
    /// unwritten: the log writes it itself).
    filled_bytes: u64,
}

struct State {
    target: Option<Target>,
    /// The chunk being written: segment, start, end.
    inflight: Option<(SegmentId, u64, u64)>,
    /// Bytes written to any segment since the last sync was submitted.
    written_since_sync_bytes: u64,
    /// The log syncs after small stretches of writes: fill.
    wanted: bool,
    /// Zeros written so far, for measurement and tests.
    filled_total_bytes: u64,
    /// The thread waits for work: a change that gives it some must wake it.
    idle: bool,
    stopping: bool,
}

impl State {
    /// The next chunk to fill, if any (see `chunk_next`).
    fn chunk_next(&self, geometry: Geometry) -> Option<(RawFd, SegmentId, u64, u64)> {
        let target = self.target.as_ref().filter(|_| self.wanted)?;
        let (mut start, end) = chunk_next(target, geometry)?;
        if crate::planted::active("fill-below-frontier") {
            let frontier = target.frontier_bytes / geometry.align_bytes * geometry.align_bytes;
            start = start.min(frontier.saturating_sub(geometry.align_bytes));
        } else {
            // The safety of the log's data: zeros only past everything submitted to the segment.
            assert!(start >= target.frontier_bytes && end <= target.limit_bytes);
        }
        Some((target.fd, target.segment, start, end))
    }
}

type Shared = Monitor<State>;

pub(super) struct Filler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    geometry: Geometry,
}

impl Filler {
    /// Starts the thread, with its buffer of zeros. `sector_size_bytes` aligns the chunks.
    pub fn new(ahead_bytes: u32, sector_size_bytes: u32) -> io::Result<Filler> {
        assert!(ahead_bytes > 0);
        let geometry = Geometry::new(ahead_bytes, sector_size_bytes);
        let zeros =
            AlignedBuffer::new(geometry.chunk_bytes as usize, geometry.align_bytes as usize);
        let shared = Arc::new(Monitor::new(State {
            target: None,
            inflight: None,
            written_since_sync_bytes: 0,
            wanted: false,
            filled_total_bytes: 0,
            idle: false,
            stopping: false,
        }));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ballast-fill".into())
            .spawn(move || fill_thread(&thread_shared, &zeros, geometry))?;
        Ok(Filler {
            shared,
            thread: Some(thread),
            geometry,
        })
    }

    /// A write of `[offset_bytes, +size_bytes)` of `segment` (file `fd`, `segment_size_bytes`
    /// long) is about to be submitted: moves the frontier past it, so that no chunk starts
    /// under it from now on, then waits for a chunk in flight over it. A write to another
    /// segment than the one being filled makes that segment the one.
    pub fn write_before(
        &self,
        fd: RawFd,
        segment: SegmentId,
        segment_size_bytes: u64,
        offset_bytes: u64,
        size_bytes: u64,
    ) {
        let end_bytes = offset_bytes + size_bytes;
        let geometry = self.geometry;
        let mut state = self.shared.lock();
        match &mut state.target {
            Some(target) if target.segment == segment => {
                assert_eq!(target.fd, fd, "a segment's file changed under the filler");
                target.frontier_bytes = target.frontier_bytes.max(end_bytes);
                target.filled_bytes = target.filled_bytes.max(target.frontier_bytes);
            }
            _ => {
                // A chunk in flight on the old segment finishes on its own; its file stays
                // open until `forget`.
                state.target = Some(Target {
                    fd,
                    segment,
                    limit_bytes: segment_size_bytes / geometry.align_bytes * geometry.align_bytes,
                    frontier_bytes: end_bytes,
                    filled_bytes: end_bytes,
                });
            }
        }
        state.written_since_sync_bytes += size_bytes;
        if state.written_since_sync_bytes >= geometry.ahead_bytes {
            state.wanted = false;
        }
        while state.inflight.is_some_and(|(filling, start, end)| {
            filling == segment && offset_bytes < end && start < end_bytes
        }) {
            state = self.shared.wait(state);
        }
        let wake = state.idle && state.chunk_next(geometry).is_some();
        drop(state);
        if wake {
            self.shared.notify_all();
        }
    }

    /// A sync is about to be submitted: if it follows less than one fill-ahead of new writes,
    /// the filler runs; else it stops. A sync with no new write says nothing either way.
    pub fn sync_before(&self) {
        let geometry = self.geometry;
        let mut state = self.shared.lock();
        if state.written_since_sync_bytes == 0 {
            return;
        }
        state.wanted = state.written_since_sync_bytes < geometry.ahead_bytes;
        state.written_since_sync_bytes = 0;
        let wake = state.idle && state.chunk_next(geometry).is_some();
        drop(state);
        if wake {
            self.shared.notify_all();
        }
    }

    /// The segment's file is about to close: stop filling it, waiting for a chunk in flight.
    pub fn forget(&self, segment: SegmentId) {
        let mut state = self.shared.lock();
        while state
            .inflight
            .is_some_and(|(filling, _, _)| filling == segment)
        {
            state = self.shared.wait(state);
        }
        if state.target.is_some_and(|target| target.segment == segment) {
            state.target = None;
        }
    }

    /// Zeros written so far.
    pub fn filled_total_bytes(&self) -> u64 {
        self.shared.lock().filled_total_bytes
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The next chunk to fill, if any. It starts at what is filled, but at least the gap past the
/// frontier, and reaches at most one chunk further and one fill-ahead past the frontier,
/// within the segment. A chunk shorter than a whole one is written only once the filled
/// margin is down to half a fill-ahead, so the filler wakes about once per chunk of log
/// writes, not at every write.
fn chunk_next(target: &Target, geometry: Geometry) -> Option<(u64, u64)> {
    let start = target
        .filled_bytes
        .max(target.frontier_bytes + geometry.gap_bytes)
        .next_multiple_of(geometry.align_bytes);
    let limit = (target.frontier_bytes + geometry.ahead_bytes).min(target.limit_bytes)
        / geometry.align_bytes
        * geometry.align_bytes;
    if start >= limit {
        return None;
    }
    let refilling = target.filled_bytes < target.frontier_bytes + geometry.ahead_bytes / 2;
    let chunk_whole = start + geometry.chunk_bytes <= limit;
    if !refilling && !chunk_whole {
        return None;
    }
    Some((start, (start + geometry.chunk_bytes).min(limit)))
}

/// Clears the thread's claim and stops the filler if the thread unwinds (a broken
/// invariant), so that no write waits forever for a chunk that will never finish.
struct Unwind<'a> {
    shared: &'a Shared,
}

impl Drop for Unwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.shared.lock();
            state.inflight = None;
            state.target = None;
            state.stopping = true;
            drop(state);
            self.shared.notify_all();
        }
    }
}

fn fill_thread(shared: &Shared, zeros: &AlignedBuffer, geometry: Geometry) {
    assert_eq!(zeros.len() as u64, geometry.chunk_bytes);
    let _unwind = Unwind { shared };
    loop {
        let (fd, segment, start, end) = {
            let mut state = shared.lock();
            loop {
                if state.stopping {
                    return;
                }
                if let Some((fd, segment, start, end)) = state.chunk_next(geometry) {
                    // Claimed under the same lock that chose it: a write submitted from now
                    // on over it waits for it.
                    state.inflight = Some((segment, start, end));
                    state.idle = false;
                    break (fd, segment, start, end);
                }
                state.idle = true;
                state = shared.wait(state);
            }
        };
        assert!(start % geometry.align_bytes == 0 && end % geometry.align_bytes == 0);
        assert!(start < end && end - start <= geometry.chunk_bytes);
        let written = super::sys::write_all_at(fd, &zeros[..(end - start) as usize], start);
        let mut state = shared.lock();
        state.inflight = None;
        let target = state.target.as_mut().filter(|t| t.segment == segment);
        match written {
            Ok(()) => {
                if let Some(target) = target {
                    target.filled_bytes = target.filled_bytes.max(end);
                }
                state.filled_total_bytes += end - start;
            }
            Err(error) => {
                // Only an optimization: stop filling this segment; the log's own writes
                // report any real trouble with the disk.
                if let Some(target) = target {
                    target.filled_bytes = target.limit_bytes;
                }
                tracing::warn!(%error, segment, "filling ahead failed; stopped for this segment");
            }
        }
        drop(state);
        shared.notify_all();
    }
}
