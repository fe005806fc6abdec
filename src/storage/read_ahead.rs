//! Read-ahead for [`DirectStorage`](super::DirectStorage): one thread that loads the next
//! stretch of a segment while the caller decodes the current one, so that a scan keeps the
//! disk busy instead of alternating between reading and decoding.
//!
//! It holds at most two stretches, in two buffers allocated when the storage opens: while the
//! caller copies one out, the thread loads the next. A read that a stretch covers waits for it
//! (if still loading) and copies it out; any other read goes to the file as before. A write submitted over the stretch, or the segment's file closing,
//! drops it, so a read never returns bytes older than a write that completed before it.

use super::monitor::Monitor;
use super::{AlignedBuffer, SegmentId};
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;

/// The stretch asked for, and where in the buffer it goes.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    fd: RawFd,
    segment: SegmentId,
    offset_bytes: u64,
    size_bytes: usize,
    at: usize,
}

impl Stretch {
    fn overlaps(&self, segment: SegmentId, offset_bytes: u64, size_bytes: u64) -> bool {
        self.segment == segment
            && offset_bytes < self.offset_bytes + self.size_bytes as u64
            && self.offset_bytes < offset_bytes + size_bytes
    }

    fn covers(&self, segment: SegmentId, offset_bytes: u64, size_bytes: usize) -> bool {
        self.segment == segment
            && offset_bytes >= self.offset_bytes
            && offset_bytes + size_bytes as u64 <= self.offset_bytes + self.size_bytes as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing held.
    Idle,
    /// Asked for; the thread has not started it.
    Queued,
    /// The thread is reading into the buffer.
    Reading,
    /// Loaded: `errno` is zero, or why it failed.
    Ready { errno: i32 },
}

/// One stretch and the buffer for it.
struct Slot {
    /// Here except while the thread reads into it.
    buffer: Option<AlignedBuffer>,
    stretch: Stretch,
    phase: Phase,
    /// A write overlapped the stretch after it was asked for: its bytes may be old.
    stale: bool,
    /// When it was asked for: the thread loads the oldest first.
    sequence: u64,
}

impl Slot {
    fn busy(&self) -> bool {
        matches!(self.phase, Phase::Queued | Phase::Reading)
    }

    /// Holds, or will hold, current bytes for `[offset_bytes, +size_bytes)` of the segment.
    fn serves(&self, segment: SegmentId, offset_bytes: u64, size_bytes: usize) -> bool {
        self.phase != Phase::Idle
            && !self.stale
            && self.stretch.covers(segment, offset_bytes, size_bytes)
    }
}

struct State {
    slots: [Slot; SLOT_COUNT],
    sequence: u64,
    stopping: bool,
}

/// Two stretches: while the caller copies out one, the thread loads the next, so the disk
/// does not wait for the copy.
const SLOT_COUNT: usize = 2;

type Shared = Monitor<State>;

/// Waits until the thread is not using slot `index`'s buffer.
fn settled<'a>(
    shared: &'a Shared,
    mut state: MutexGuard<'a, State>,
    index: usize,
) -> MutexGuard<'a, State> {
    while state.slots[index].busy() {
        state = shared.wait(state);
    }
    state
}

pub(super) struct ReadAhead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    capacity_bytes: usize,
}

impl ReadAhead {
    /// Allocates two buffers of `capacity_bytes` and starts the thread.
    pub fn new(capacity_bytes: usize, alignment_bytes: usize) -> io::Result<ReadAhead> {
        assert!(capacity_bytes > 0 && capacity_bytes % alignment_bytes == 0);
        let slot = || Slot {
            buffer: Some(AlignedBuffer::new(capacity_bytes, alignment_bytes)),
            stretch: Stretch {
                fd: -1,
                segment: 0,
                offset_bytes: 0,
                size_bytes: 0,
                at: 0,
            },
            phase: Phase::Idle,
            stale: false,
            sequence: 0,
        };
        let shared = Arc::new(Monitor::new(State {
            slots: [slot(), slot()],
            sequence: 0,
            stopping: false,
        }));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ballast-read-ahead".into())
            .spawn(move || read_ahead_thread(&thread_shared))?;
        Ok(ReadAhead {
            shared,
            thread: Some(thread),
            capacity_bytes,
        })
    }

    /// The most one stretch holds.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Starts loading a stretch of `fd` in the background, into a buffer at `at`, unless one
    /// held already covers it. Takes an idle slot, else drops the oldest loaded stretch, else
    /// waits for the oldest.
    pub fn start(
        &self,
        fd: RawFd,
        segment: SegmentId,
        offset_bytes: u64,
        size_bytes: usize,
        at: usize,
    ) {
        assert!(size_bytes > 0 && at + size_bytes <= self.capacity_bytes);
        let mut state = self.shared.lock();
        if state
            .slots
            .iter()
            .any(|slot| slot.serves(segment, offset_bytes, size_bytes))
        {
            return;
        }
        let oldest = |busy: bool| {
            (0..SLOT_COUNT)
                .filter(|&index| busy || !state.slots[index].busy())
                .min_by_key(|&index| state.slots[index].sequence)
        };
        let index = (0..SLOT_COUNT)
            .find(|&index| state.slots[index].phase == Phase::Idle)
            .or_else(|| oldest(false))
            .or_else(|| oldest(true))
            .expect("slots");
        state = settled(&self.shared, state, index);
        state.sequence += 1;
        let sequence = state.sequence;
        let slot = &mut state.slots[index];
        slot.stretch = Stretch {
            fd,
            segment,
            offset_bytes,
            size_bytes,
            at,
        };
        slot.phase = Phase::Queued;
        slot.stale = false;
        slot.sequence = sequence;
        drop(state);
        self.shared.notify_all();
    }

    /// Puts the `size_bytes` at `offset_bytes` of the segment into `buffer` at `at`, if a
    /// stretch held covers them and is current, and returns whether it did: by swapping
    /// buffers when the stretch sits there already, else by copying. A stretch that served
    /// a read, or failed to load, is dropped.
    pub fn take(
        &self,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: &mut AlignedBuffer,
        at: usize,
        size_bytes: usize,
    ) -> bool {
        let state = self.shared.lock();
        let Some(index) = (0..SLOT_COUNT)
            .find(|&index| state.slots[index].serves(segment, offset_bytes, size_bytes))
        else {
            return false;
        };
        let mut state = settled(&self.shared, state, index);
        let slot = &mut state.slots[index];
        let served = match slot.phase {
            // Stale now if a write came while this thread waited: it cannot, as the caller
            // that writes is this one, but the check costs nothing.
            Phase::Ready { errno } => errno == 0 && !slot.stale,
            // Only the caller drops or starts a stretch, and settling waits out the thread.
            Phase::Idle | Phase::Queued | Phase::Reading => unreachable!("settled"),
        };
        if served {
            let held = slot.buffer.as_mut().expect("settled: the buffer is back");
            let start = slot.stretch.at + (offset_bytes - slot.stretch.offset_bytes) as usize;
            let swappable = start == at
                && held.len() == buffer.len()
                && held.alignment_bytes() == buffer.alignment_bytes();
            if swappable {
                std::mem::swap(held, buffer);
            } else {
                buffer[at..at + size_bytes].copy_from_slice(&held[start..start + size_bytes]);
            }
        }
        slot.phase = Phase::Idle;
        served
    }

    /// A write of these bytes was submitted: a stretch over them may hold what they were.
    pub fn invalidate(&self, segment: SegmentId, offset_bytes: u64, size_bytes: u64) {
        let mut state = self.shared.lock();
        for slot in &mut state.slots {
            if slot.phase != Phase::Idle && slot.stretch.overlaps(segment, offset_bytes, size_bytes)
            {
                slot.stale = true;
            }
        }
    }

    /// The segment's file is about to close: drops its stretches, waiting for the one the
    /// thread may be reading.
    pub fn forget(&self, segment: SegmentId) {
        let mut state = self.shared.lock();
        for index in 0..SLOT_COUNT {
            if state.slots[index].phase == Phase::Idle
                || state.slots[index].stretch.segment != segment
            {
                continue;
            }
            // A stretch the thread has not started is dropped at once; one it reads is waited
            // for, as the file must outlive the read.
            if state.slots[index].phase == Phase::Reading {
                state = settled(&self.shared, state, index);
            }
            state.slots[index].phase = Phase::Idle;
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // The thread finishes a read in progress before it stops, so the buffers and the
        // file outlive it.
        self.shared.lock().stopping = true;
        self.shared.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn read_ahead_thread(shared: &Shared) {
    loop {
        let (index, stretch, mut buffer) = {
            let mut state = shared.lock();
            let index = loop {
                if state.stopping {
                    return;
                }
                let queued = (0..SLOT_COUNT)
                    .filter(|&index| state.slots[index].phase == Phase::Queued)
                    .min_by_key(|&index| state.slots[index].sequence);
                if let Some(index) = queued {
                    break index;
                }
                state = shared.wait(state);
            };
            let slot = &mut state.slots[index];
            slot.phase = Phase::Reading;
            let buffer = slot
                .buffer
                .take()
                .expect("the buffer is home between reads");
            (index, slot.stretch, buffer)
        };
        let bytes = &mut buffer[stretch.at..stretch.at + stretch.size_bytes];
        let errno = match super::sys::read_at(stretch.fd, bytes, stretch.offset_bytes) {
            Ok(size) if size == bytes.len() => 0,
            Ok(_) => libc::EIO,
            Err(error) => error.raw_os_error().unwrap_or(libc::EIO),
        };
        let mut state = shared.lock();
        state.slots[index].buffer = Some(buffer);
        state.slots[index].phase = Phase::Ready { errno };
        drop(state);
        shared.notify_all();
    }
}
