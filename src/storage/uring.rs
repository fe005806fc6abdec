//! Background writes of [`DirectStorage`](super::DirectStorage) through io_uring: the thread
//! that submits a write puts it on the ring and goes on, and the kernel starts an `O_DIRECT`
//! write at once, with no thread to wake. Without it, a background write goes to an IO thread,
//! and waking one across CPUs costs about 27 us on our 2-vCPU machine (`docs/disk.md`).
//!
//! The ring holds one submission and two completion entries per operation slot, made at open;
//! nothing is allocated per write. A write's buffer belongs to its slot until its completion is
//! reaped, and the ring is drained before the storage drops any buffer or file.

use io_uring::{opcode, types, IoUring};
use std::io;
use std::os::fd::RawFd;

pub(super) struct Uring {
    ring: IoUring,
    /// Writes submitted and not yet reaped.
    inflight: u32,
}

impl Uring {
    /// A ring for at most `operations` writes in flight. Fails where io_uring is missing or
    /// forbidden (old kernels, seccomp profiles of some containers): the caller then uses its
    /// IO threads.
    pub fn new(operations: u32) -> io::Result<Uring> {
        let ring = IoUring::new(operations.next_power_of_two())?;
        Ok(Uring { ring, inflight: 0 })
    }

    /// Submits a write of `size_bytes` from `address` at `offset_bytes` of `fd`, tagged `slot`.
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
    ) -> io::Result<()> {
        let size = u32::try_from(size_bytes).expect("a write fits u32");
        let entry = opcode::Write::new(types::Fd(fd), address as *const u8, size)
            .offset(offset_bytes)
            .build()
            .user_data(u64::from(slot));
        // SAFETY: the caller keeps the buffer and the descriptor alive until completion.
        unsafe { self.ring.submission().push(&entry) }
            .expect("the ring has an entry for every operation slot");
        self.inflight += 1;
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }

    /// The next completed write: its slot and its result (bytes written, or a negative errno).
    /// With `wait`, blocks until one completes if any is in flight.
    pub fn complete(&mut self, wait: bool) -> Option<(u32, i32)> {
        loop {
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
                // Only a broken ring fails here; nothing in flight could be reaped again.
                Err(error) => panic!("io_uring wait failed: {error}"),
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
