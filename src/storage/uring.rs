//! Background writes of [`DirectStorage`](super::DirectStorage) through io_uring: the thread
//! that submits a write puts it on the ring and goes on, and the kernel starts an `O_DIRECT`
//! write at once, with no thread to wake. Without it, a background write goes to an IO thread,
//! and waking one across CPUs costs about 27 us on our 2-vCPU machine (`docs/disk.md`).
//!
//! The ring holds one submission and two completion entries per operation slot, made at open;
//! nothing is allocated per write. A write's buffer belongs to its slot until its completion is
//! reaped, and the ring is drained before the storage drops any buffer or file.

use io_uring::{opcode, types, IoUring, Probe};
use std::io;
use std::os::fd::RawFd;

pub(super) struct Uring {
    ring: IoUring,
    /// Writes submitted and not yet reaped.
    inflight: u32,
}

impl Uring {
    /// A ring for at most `operations` writes in flight. Fails where io_uring is missing or
    /// forbidden (old kernels, seccomp profiles of some containers), or cannot write (kernels
    /// before 5.6, some sandboxes): the caller then uses its IO threads.
    pub fn new(operations: u32) -> io::Result<Uring> {
        let ring = IoUring::new(operations.next_power_of_two())?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::Write::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring without IORING_OP_WRITE",
            ));
        }
        Ok(Uring { ring, inflight: 0 })
    }

    /// Queues a write of `size_bytes` from `address` at `offset_bytes` of `fd`, tagged `slot`,
    /// and submits it. Once queued, the write is the ring's: if the kernel refuses to take it
    /// now (`EAGAIN` under memory pressure), it stays queued and the next entry into the
    /// kernel (`complete`, or the next write) submits it; it is never run elsewhere.
    ///
    /// # Safety
    ///
    /// The `size_bytes` at `address` must stay valid and unchanged, and `fd` open, until the
    /// completion tagged `slot` is returned by [`complete`](Uring::complete).
    pub unsafe fn write(
        &mut self,
        slot: u32,
        fd: RawFd,
        address: usize,
        size_bytes: usize,
        offset_bytes: u64,
    ) {
        let size = u32::try_from(size_bytes).expect("a write fits u32");
        let entry = opcode::Write::new(types::Fd(fd), address as *const u8, size)
            .offset(offset_bytes)
            .build()
            .user_data(u64::from(slot));
        // SAFETY: the caller keeps the buffer and the descriptor alive until completion.
        unsafe { self.ring.submission().push(&entry) }
            .expect("the ring has an entry for every operation slot");
        self.inflight += 1;
        self.submit_queued();
    }

    /// Submits what is queued; what the kernel does not take now stays queued.
    fn submit_queued(&mut self) {
        while !self.ring.submission().is_empty() {
            match self.ring.submit() {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::debug!(%error, "io_uring submit deferred");
                    return;
                }
            }
        }
    }

    /// The next completed write: its slot and its result (bytes written, or a negative errno).
    /// With `wait`, blocks until one completes if any is in flight.
    pub fn complete(&mut self, wait: bool) -> Option<(u32, i32)> {
        loop {
            self.submit_queued();
            if let Some(entry) = self.ring.completion().next() {
                assert!(self.inflight > 0, "a completion nobody submitted");
                self.inflight -= 1;
                let slot = u32::try_from(entry.user_data()).expect("slots are u32");
                return Some((slot, entry.result()));
            }
            if !wait || self.inflight == 0 {
                return None;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // The kernel could not take a queued write now: let it work, then again.
                Err(error) if error.raw_os_error() == Some(libc::EAGAIN) => {
                    std::thread::yield_now();
                }
                // Only a broken ring fails otherwise. Writes in flight may still use their
                // buffers, which must not be freed: stop here rather than go on.
                Err(error) => panic!("io_uring wait failed with writes in flight: {error}"),
            }
        }
    }
}

impl Drop for Uring {
    /// Waits for every write in flight: the kernel may use their buffers until then.
    fn drop(&mut self) {
        while self.complete(true).is_some() {}
    }
}
