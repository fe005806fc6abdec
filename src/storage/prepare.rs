//! Segment files made ahead of need for [`DirectStorage`](super::DirectStorage): while the log
//! fills one segment, a thread makes the next file (create, `fallocate`, `fsync`) under a
//! temporary name, so that a segment roll only renames it into place, instead of stalling
//! appends for the whole making (5 to 8 ms for 64 MiB here).
//!
//! At most one spare exists. A crash leaves it behind as a `*.tmp` file, which the next writer
//! removes when it opens the directory; dropping the storage removes it.

use super::monitor::Monitor;
use super::sys::{file_make, rename_at, unlink_at, Name};
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The spare's name: a temporary file's, so that a crash's leftover is removed at open.
pub const SPARE_FILE_NAME: &str = "spare.segment.tmp";

struct State {
    /// The size of the spare asked for; 0 when none is.
    wanted_size_bytes: u64,
    /// The size of the spare being made; 0 when none is.
    making_size_bytes: u64,
    /// The spare made, with its size.
    ready: Option<(OwnedFd, u64)>,
    stopping: bool,
}

type Shared = Monitor<State>;

pub(super) struct Preparer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dir: RawFd,
}

impl Preparer {
    /// Starts the thread. `dir` must stay open until the preparer is dropped.
    pub fn new(dir: RawFd, direct_flag: libc::c_int) -> io::Result<Preparer> {
        let shared = Arc::new(Monitor::new(State {
            wanted_size_bytes: 0,
            making_size_bytes: 0,
            ready: None,
            stopping: false,
        }));
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ballast-prepare".into())
            .spawn(move || prepare_thread(&thread_shared, dir, direct_flag))?;
        Ok(Preparer {
            shared,
            thread: Some(thread),
            dir,
        })
    }

    /// Asks for a spare of `size_bytes`, made in the background.
    pub fn request(&self, size_bytes: u64) {
        assert!(size_bytes > 0);
        self.shared.lock().wanted_size_bytes = size_bytes;
        self.shared.notify_all();
    }

    /// Renames the spare into place as `name` (the directory is synced with the segment's
    /// first sync), if a spare of `size_bytes` is ready, or being made (then it waits: the rest of the making costs less
    /// than a whole one); `Ok(None)` if none is (the caller makes the file itself).
    pub fn take(&self, name: &Name, size_bytes: u64) -> io::Result<Option<OwnedFd>> {
        // The lock is held across the rename, so that the thread cannot start the next spare
        // under the same name before this one has left it.
        let mut state = self.shared.lock();
        while state.making_size_bytes == size_bytes {
            state = self.shared.wait(state);
        }
        if !matches!(state.ready, Some((_, size)) if size == size_bytes) {
            return Ok(None);
        }
        let (file, _) = state.ready.take().expect("checked");
        state.wanted_size_bytes = 0;
        rename_at(self.dir, &Name::plain(SPARE_FILE_NAME), name)?;
        Ok(Some(file))
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if self.shared.lock().ready.take().is_some() {
            // Not needed: the next open would remove it anyway.
            let _ = unlink_at(self.dir, &Name::plain(SPARE_FILE_NAME));
        }
    }
}

fn prepare_thread(shared: &Shared, dir: RawFd, direct_flag: libc::c_int) {
    let name = Name::plain(SPARE_FILE_NAME);
    loop {
        let size_bytes = {
            let mut state = shared.lock();
            loop {
                if state.stopping {
                    return;
                }
                if state.wanted_size_bytes > 0 && state.ready.is_none() {
                    break;
                }
                state = shared.wait(state);
            }
            let size_bytes = std::mem::take(&mut state.wanted_size_bytes);
            state.making_size_bytes = size_bytes;
            size_bytes
        };
        // Without the lock: the main thread never touches the spare's name unless one is
        // ready, and none is until this one is.
        let made = file_make(dir, &name, size_bytes, direct_flag);
        let mut state = shared.lock();
        state.making_size_bytes = 0;
        match made {
            Ok(file) => {
                assert!(state.ready.is_none());
                state.ready = Some((file, size_bytes));
                tracing::debug!(size_bytes, "spare segment ready");
            }
            // The roll that wanted it makes its file itself, and reports the error if it
            // fails again.
            Err(error) => tracing::warn!(%error, "making a spare segment failed"),
        }
        drop(state);
        shared.notify_all();
    }
}
