//! The trace of the file-system seam (`sys.rs`): every call [`DirectStorage`](super::DirectStorage)
//! and its threads make that can change what a power loss leaves on disk, in the order the
//! calls completed, with their arguments, their results and the bytes written, and the log's
//! acknowledgements in the same order. A crash-state explorer replays it to compute what the
//! disk may hold after a power cut at each point (`docs/crash-consistency.md`).
//!
//! Off unless a test turns it on with [`start`]: then every call costs one relaxed atomic
//! load. Tracing is process-wide: a test that traces must not run other logs on disk at the
//! same time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

/// A file's identity: its device and inode numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// One call through the seam.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// The log directory was opened (`open(O_DIRECTORY)`) or made (`mkdir`, `created`).
    OpenDir {
        /// Its path.
        path: PathBuf,
        /// The directory.
        dir: FileId,
        /// Whether this call made it.
        created: bool,
    },
    /// `openat(dir, name, flags)`: opened `file`; `created` if the name did not exist before
    /// (with `O_CREAT`). With `O_TRUNC` an existing file was truncated to nothing.
    Open {
        /// The directory.
        dir: FileId,
        /// The name in it.
        name: String,
        /// The flags (`O_CREAT`, `O_TRUNC`, `O_DIRECT`...).
        flags: i32,
        /// The file opened.
        file: FileId,
        /// The name did not exist before the call.
        created: bool,
    },
    /// A write of `bytes` at `offset_bytes`: one `pwrite`, or one io_uring write, as it
    /// completed (a short `pwrite` holds only what it wrote).
    Write {
        /// The file.
        file: FileId,
        /// Where.
        offset_bytes: u64,
        /// What landed in the page cache or the device's.
        bytes: Vec<u8>,
    },
    /// `fallocate(file, 0, 0, size_bytes)` or, where unsupported, `ftruncate`.
    SetSize {
        /// The file.
        file: FileId,
        /// Its new size.
        size_bytes: u64,
    },
    /// `fdatasync` (`data_only`) or `fsync` of a file or of a directory.
    Sync {
        /// The file or directory.
        file: FileId,
        /// `fdatasync` rather than `fsync`.
        data_only: bool,
    },
    /// `renameat(dir, from, dir, to)`.
    Rename {
        /// The directory.
        dir: FileId,
        /// The old name.
        from: String,
        /// The new name (replaced if it existed).
        to: String,
    },
    /// `unlinkat(dir, name)`.
    Unlink {
        /// The directory.
        dir: FileId,
        /// The name removed.
        name: String,
    },
    /// `flock(file, LOCK_EX | LOCK_NB)`.
    Flock {
        /// The file.
        file: FileId,
    },
    /// The log acknowledged every record below `lsn_durable` (recorded by the caller, after
    /// the call that made them durable returned).
    Acknowledged {
        /// The durable watermark.
        lsn_durable: u64,
    },
    /// The caller is about to drop the records from `lsn` on (`truncate_suffix`), acknowledged
    /// or not: from here on they may be gone (recorded by the caller, before the call).
    Truncating {
        /// The first record dropped.
        lsn: u64,
    },
}

/// A call as it completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Which thread made it: a small number, the same for every call of one thread.
    pub thread: u32,
    /// The call and its arguments.
    pub call: Call,
    /// Its result: the errno if it failed.
    pub result: Result<(), i32>,
}

static ON: AtomicBool = AtomicBool::new(false);
static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());
static THREAD_NEXT: AtomicU32 = AtomicU32::new(1);

thread_local! {
    static THREAD: u32 = THREAD_NEXT.fetch_add(1, Ordering::Relaxed);
}

/// Starts recording, from an empty trace.
pub fn start() {
    events().clear();
    ON.store(true, Ordering::SeqCst);
}

/// Stops recording and returns the trace.
pub fn stop() -> Vec<Event> {
    ON.store(false, Ordering::SeqCst);
    std::mem::take(&mut *events())
}

/// Whether the seam records.
#[inline(always)]
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Records an acknowledgement: every record below `lsn_durable` is durable, as the log said.
pub fn acknowledged(lsn_durable: u64) {
    record(Call::Acknowledged { lsn_durable }, Ok(()));
}

/// Records that the caller is about to drop the records from `lsn` on.
pub fn truncating(lsn: u64) {
    record(Call::Truncating { lsn }, Ok(()));
}

/// Records a call of this thread, if the seam records.
pub(super) fn record(call: Call, result: Result<(), i32>) {
    if !is_on() {
        return;
    }
    let thread = THREAD.with(|thread| *thread);
    events().push(Event {
        thread,
        call,
        result,
    });
}

fn events() -> std::sync::MutexGuard<'static, Vec<Event>> {
    EVENTS.lock().unwrap_or_else(|poison| poison.into_inner())
}
