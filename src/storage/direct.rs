//! `DirectStorage`: the log on real files, opened with `O_DIRECT` (Linux).
//!
//! A log directory holds:
//!
//! - one file per segment, named by its first LSN in 20 zero-padded digits so that names sort
//!   as numbers do (`00000000000000000000.segment`), preallocated with `fallocate` to the
//!   segment size;
//! - `metadata`, one sector, replaced atomically (write `metadata.tmp`, `fsync`, rename,
//!   `fsync` the directory);
//! - `lock`, which a writer holds with `flock(LOCK_EX)` for as long as it is open, so that a
//!   second writer, in this process or another, gets [`Error::Locked`].
//!
//! Background writes go through io_uring from the appending thread (`uring.rs`), or, where the
//! kernel refuses it, to a fixed pool of IO threads fed by bounded queues allocated at open;
//! waited writes and syncs run on the caller's thread. Several writes are in flight at once
//! and nothing is allocated per operation. `docs/disk.md` has the measurements.
//! Durability is `fdatasync` of the segment file, never a no-op and never `sync_file_range`.
//!
//! [`DirectStorage::open_read_only`] opens a log without the lock, for readers beside a
//! running writer (`ballast cat -f`, `info`, `verify`): it never changes a file. What the log's
//! recovery would change (a seal block, a recreated or removed segment) is kept in memory.

use super::fill::Filler;
use super::prepare::Preparer;
use super::read_ahead::ReadAhead;
use super::sys::{
    direct_alignment_bytes, directory_create, directory_open, fdatasync, file_make,
    file_size_bytes, flock_exclusive, fsync, open_at, read_at, rename_at, trace_write, unlink_at,
    write_all_at, Name, NAME_SIZE_BYTES, SECTOR_SIZE_BYTES_DEFAULT, TEMPORARY_FILE_SUFFIX,
};
use super::sys::{segment_file_name, segment_file_parse};
use super::uring::Uring;
use super::{assert_aligned, AlignedBuffer, Clock, Completion, CompletionKind, SegmentId, Storage};
use crate::error::{Error, Result};
use crate::Lsn;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// The name of the metadata file.
pub const METADATA_FILE_NAME: &str = "metadata";
/// The metadata's name while it is written, before it replaces the old one.
const METADATA_TEMPORARY_FILE_NAME: &str = "metadata.tmp";
/// The name of the lock file.
pub const LOCK_FILE_NAME: &str = "lock";
/// Most IO threads.
pub const IO_THREAD_COUNT_MAX: u32 = 64;
/// Most operations (writes and syncs) in flight at once.
pub const OPERATIONS_INFLIGHT_MAX: u32 = 4096;
/// Sectors a read-only storage keeps in memory for what the log's recovery writes (a seal
/// block is one sector).
pub const OVERLAY_SECTOR_COUNT_MAX: usize = 16;

/// How a [`DirectStorage`] is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectOptions {
    /// If the filesystem refuses `O_DIRECT`, open the files buffered instead of failing with
    /// [`Error::DirectIoUnsupported`]. Every sync is still an `fdatasync`, so durability holds;
    /// what is lost is the bypass of the page cache (writes are copied into it, and reads may
    /// be served from it).
    pub buffered_fallback: bool,
    /// IO threads that run writes and syncs; also the most writes the disk sees at once.
    pub io_thread_count: u32,
    /// Most writes and syncs in flight at once: at least `Config::write_buffer_count + 1`.
    pub operations_inflight_max: u32,
    /// Most segment files: at least `Config::segment_count_max`. One file descriptor each.
    pub segment_count_max: u32,
    /// The size of each read-ahead buffer: a scan's read-ahead loads up to two stretches in
    /// the background, into two buffers of this size and one thread, all made at open (0: no
    /// read-ahead). Set it to `Config::read_buffer_size_bytes` (the default matches the
    /// default config): `Log` asks for its read buffer less one block at a time, placed after
    /// one block, and a smaller buffer serves none of it.
    pub read_ahead_size_bytes: u32,
    /// While the log fills a segment, make the next segment's file on a thread of its own
    /// (create, `fallocate`, `fsync`, under a temporary name), so that a roll only renames it
    /// into place. Costs one segment of disk space beyond the log's.
    pub segment_prepare_ahead: bool,
    /// While the log syncs after small writes, keep this many bytes after its last write
    /// written with zeros, on a thread of its own, so that its syncs find blocks already
    /// written and skip marking them so (on our ext4, a 4 KiB write + `fdatasync` then takes
    /// about two thirds of the time). 0 turns it off; so, until the next small sync, does this
    /// many bytes written without a sync, as bulk appends gain nothing from it. The thread's
    /// buffer of zeros (at most 64 KiB) is made at open. `O_DIRECT` only. See
    /// `src/storage/fill.rs`.
    pub fill_ahead_size_bytes: u32,
    /// Submit background writes through io_uring, from the thread that appends, instead of
    /// handing them to an IO thread (`src/storage/uring.rs`); syncs then run on the caller's
    /// thread. Where the kernel refuses io_uring, the IO threads are used, as with `false`.
    /// `O_DIRECT` only.
    pub io_uring: bool,
}

impl Default for DirectOptions {
    fn default() -> DirectOptions {
        DirectOptions {
            buffered_fallback: false,
            io_thread_count: 4,
            operations_inflight_max: 128,
            segment_count_max: 4096,
            read_ahead_size_bytes: 1024 * 1024,
            segment_prepare_ahead: true,
            fill_ahead_size_bytes: 1024 * 1024,
            io_uring: true,
        }
    }
}

/// How the files are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// `O_DIRECT`: the page cache is bypassed.
    Direct,
    /// Buffered, because the filesystem refuses `O_DIRECT` and the caller opted in.
    Buffered,
}

/// A fixed-capacity FIFO over a vector allocated once.
struct Ring<T: Copy + Default> {
    items: Vec<T>,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> Ring<T> {
    fn new(capacity: usize) -> Ring<T> {
        assert!(capacity > 0);
        Ring {
            items: vec![T::default(); capacity],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, item: T) {
        assert!(self.len < self.items.len(), "ring full");
        let index = (self.head + self.len) % self.items.len();
        self.items[index] = item;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[self.head];
        self.head = (self.head + 1) % self.items.len();
        self.len -= 1;
        Some(item)
    }
}

/// An operation for an IO thread. The buffer of a write stays owned by its slot in
/// [`DirectStorage`] until the operation completes, so the address stays valid.
#[derive(Clone, Copy, Debug, Default)]
struct Operation {
    slot: u32,
    fd: RawFd,
    /// The directory, for a sync that must also sync it (the segment's file was renamed into
    /// place since the last one).
    dir_fd: Option<RawFd>,
    /// Zero for a sync.
    size_bytes: usize,
    address: usize,
    offset_bytes: u64,
}

/// A finished operation: its slot and its `errno` (zero for success).
#[derive(Clone, Copy, Debug, Default)]
struct Done {
    slot: u32,
    errno: i32,
}

struct Queues {
    submitted: Ring<Operation>,
    completed: Ring<Done>,
    stopping: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    /// Signalled when an operation is submitted (or the pool stops).
    work: Condvar,
    /// Signalled when an operation completes.
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A poisoned lock means an IO thread panicked, which is a bug: carry on and let the
        // assertions of the caller find what is missing.
        self.queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The IO threads and their queues, all allocated when the storage opens.
struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(thread_count: u32, capacity: u32) -> io::Result<Pool> {
        assert!((1..=IO_THREAD_COUNT_MAX).contains(&thread_count));
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues {
                submitted: Ring::new(capacity as usize),
                completed: Ring::new(capacity as usize),
                stopping: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let mut pool = Pool {
            shared,
            threads: Vec::with_capacity(thread_count as usize),
        };
        for index in 0..thread_count {
            let shared = Arc::clone(&pool.shared);
            let thread = std::thread::Builder::new()
                .name(format!("ballast-io-{index}"))
                .spawn(move || io_thread(&shared))?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    fn submit(&self, operation: Operation) {
        self.shared.lock().submitted.push(operation);
        self.shared.work.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // The threads finish every queued operation before they stop, so no buffer is freed
        // while the kernel may still use it.
        self.shared.lock().stopping = true;
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn io_thread(shared: &Shared) {
    loop {
        let operation = {
            let mut queues = shared.lock();
            loop {
                if let Some(operation) = queues.submitted.pop() {
                    break operation;
                }
                if queues.stopping {
                    return;
                }
                queues = shared
                    .work
                    .wait(queues)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let done = operation_run(operation);
        shared.lock().completed.push(done);
        shared.done.notify_one();
    }
}

/// Runs one operation, on an IO thread or on the thread that waits for it.
fn operation_run(operation: Operation) -> Done {
    let result = if operation.size_bytes == 0 {
        if crate::planted::active("direct-sync-skipped") {
            return Done {
                slot: operation.slot,
                errno: 0,
            };
        }
        fdatasync(operation.fd).and_then(|()| operation.dir_fd.map_or(Ok(()), fsync))
    } else {
        // SAFETY: the slot owns the buffer until this operation completes, and nothing else
        // touches it meanwhile.
        let bytes = unsafe {
            std::slice::from_raw_parts(operation.address as *const u8, operation.size_bytes)
        };
        write_all_at(operation.fd, bytes, operation.offset_bytes)
    };
    let errno = match result {
        Ok(()) => 0,
        Err(error) => error.raw_os_error().unwrap_or(libc::EIO),
    };
    Done {
        slot: operation.slot,
        errno,
    }
}

/// An operation in flight: who asked, and the buffer of a write.
#[derive(Debug, Default)]
struct Slot {
    token: u64,
    segment: SegmentId,
    /// A sync that also syncs the directory: if it fails, the segment is marked again.
    directory: bool,
    /// Where a write goes (zero bytes for a sync).
    offset_bytes: u64,
    size_bytes: u64,
    buffer: Option<AlignedBuffer>,
    busy: bool,
}

/// One segment file.
#[derive(Debug)]
struct SegmentFile {
    id: SegmentId,
    /// `None` for a segment that exists only in the memory of a read-only storage.
    file: Option<OwnedFd>,
    size_bytes: u64,
    /// Read-only storage: the log recreated this segment, so it reads as zeros here.
    zeroed: bool,
    /// Operations in flight on this file: it must not be closed under them.
    inflight: u32,
    /// The file was renamed into place and the directory not synced since: the next sync of
    /// the segment syncs the directory too, so that the segment is durable with its bytes.
    directory_unsynced: bool,
}

/// What a read-only storage keeps in memory instead of writing it.
struct Overlay {
    /// The place of each sector held, in the order they were written.
    places: Vec<(SegmentId, u64)>,
    sectors: AlignedBuffer,
    /// The metadata as the log last wrote it, if it did.
    metadata: Option<AlignedBuffer>,
}

/// The log on real files, opened with `O_DIRECT` (Linux).
///
/// A log directory holds one file per segment, named by its first LSN in 20 zero-padded
/// digits (`00000000000000000000.segment`) and preallocated with `fallocate`; a `metadata`
/// file of one sector, replaced atomically; and a `lock` file that a writer holds with
/// `flock(LOCK_EX)`, so that a second writer, in this process or another, gets
/// [`Error::Locked`]. Creating a segment writes it under a temporary name, syncs it and
/// renames it into place, so a crash never leaves a short segment file; the directory is
/// synced with the segment's first sync, which is when the creation becomes durable. With
/// [`DirectOptions::segment_prepare_ahead`], a thread makes the next one ahead of need and a
/// roll only renames it.
///
/// Background writes go through io_uring ([`DirectOptions::io_uring`]), or a fixed pool of IO
/// threads where the kernel refuses it, both made at open: several writes are in flight at
/// once and nothing is allocated per operation. Every sync is an `fdatasync` of the segment
/// file. Reads are `pread`s; a scan's next steps are
/// read ahead on a thread of their own ([`DirectOptions::read_ahead_size_bytes`]). Every buffer,
/// offset and length is asserted aligned to [`Storage::sector_size_bytes`], the alignment the
/// kernel reports for `O_DIRECT` (`statx` with `STATX_DIOALIGN`, else 4096).
///
/// [`open_read_only`](DirectStorage::open_read_only) opens a log without the lock, beside a
/// running writer; it never changes a file.
///
/// ```no_run
/// use ballast_log::storage::{DirectOptions, DirectStorage};
/// use ballast_log::{Config, Log};
///
/// let storage = DirectStorage::open("/var/lib/app/log", &DirectOptions::default())?;
/// let mut log = Log::open(Config::default(), storage)?;
/// log.append(b"hello")?;
/// log.flush()?; // written and fdatasynced
/// # Ok::<(), ballast_log::Error>(())
/// ```
pub struct DirectStorage {
    dir: PathBuf,
    dir_fd: OwnedFd,
    /// Holds the writer's `flock`; `None` when read-only.
    lock: Option<OwnedFd>,
    mode: IoMode,
    sector_size_bytes: u32,
    segments: Vec<SegmentFile>,
    segment_count_max: usize,
    slots: Vec<Slot>,
    slots_free: Vec<u32>,
    inflight: u32,
    /// Completions decided without an IO thread (read-only storage).
    completions_local: VecDeque<Completion>,
    pool: Option<Pool>,
    /// Background writes go here when the kernel allows io_uring; the pool is not made then.
    uring: Option<Uring>,
    read_ahead: Option<ReadAhead>,
    prepare: Option<Preparer>,
    fill: Option<Filler>,
    overlay: Option<Overlay>,
    origin: Instant,
}

impl std::fmt::Debug for DirectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectStorage")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field("read_only", &self.lock.is_none())
            .field("sector_size_bytes", &self.sector_size_bytes)
            .field("segment_count", &self.segments.len())
            .finish()
    }
}

impl DirectStorage {
    /// Opens (creating it if needed) the log directory `dir` for writing: takes its lock,
    /// probes `O_DIRECT`, removes files left half-made by a crash, and opens every segment.
    ///
    /// Errors: [`Error::Locked`] if another writer holds the directory,
    /// [`Error::DirectIoUnsupported`] if the filesystem refuses `O_DIRECT` and
    /// `options.buffered_fallback` is off, [`Error::Open`] for any other failure.
    pub fn open(dir: impl AsRef<Path>, options: &DirectOptions) -> Result<DirectStorage> {
        let dir = dir.as_ref();
        options_check(options);
        directory_create(dir)?;
        let dir_fd = directory_open(dir)?;
        let open_error = |name: &str| {
            let path = dir.join(name);
            move |source| Error::Open { path, source }
        };
        let lock = open_at(
            dir_fd.as_raw_fd(),
            &Name::plain(LOCK_FILE_NAME),
            libc::O_RDWR | libc::O_CREAT,
        )
        .map_err(open_error(LOCK_FILE_NAME))?;
        if let Err(error) = flock_exclusive(lock.as_raw_fd()) {
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            return Err(open_error(LOCK_FILE_NAME)(error));
        }
        let (mode, sector_size_bytes) = probe_write(dir, &dir_fd, options)?;
        let mut storage = DirectStorage::allocate(dir, dir_fd, mode, sector_size_bytes, options);
        storage.lock = Some(lock);
        storage.temporary_files_remove()?;
        storage.segments_open(0, libc::O_RDWR)?;
        storage.directory_sync_at_open()?;
        if options.io_uring && mode == IoMode::Direct {
            match Uring::new(options.operations_inflight_max) {
                Ok(uring) => storage.uring = Some(uring),
                Err(error) => tracing::info!(%error, "io_uring unavailable; using IO threads"),
            }
        }
        if storage.uring.is_none() {
            storage.pool = Some(
                Pool::new(options.io_thread_count, options.operations_inflight_max)
                    .map_err(open_error("."))?,
            );
        }
        storage.read_ahead_start(options)?;
        if options.segment_prepare_ahead {
            let preparer = Preparer::new(storage.dir_fd.as_raw_fd(), storage.direct_flag());
            storage.prepare = Some(preparer.map_err(open_error("."))?);
        }
        if options.fill_ahead_size_bytes > 0 && mode == IoMode::Direct {
            let filler = Filler::new(options.fill_ahead_size_bytes, sector_size_bytes);
            storage.fill = Some(filler.map_err(open_error("."))?);
        }
        tracing::info!(
            dir = %dir.display(),
            ?mode,
            sector_size_bytes,
            segments = storage.segments.len(),
            "direct storage opened"
        );
        Ok(storage)
    }

    /// Opens the log directory `dir` for reading, without its lock, beside a writer that may
    /// be running: no file is ever changed. Segments wholly before the one holding `lsn_from`
    /// are left out, so that the log's recovery scans only from there (0 keeps them all).
    ///
    /// The log's recovery may still write a seal block, or recreate or remove a segment, to
    /// settle a torn tail: a read-only storage keeps those changes in memory, so the log it
    /// opens sees the directory as recovery would leave it, while the files stay as they are.
    /// Its syncs are real `fdatasync` calls, so every record such a log yields is durable on
    /// disk, whoever wrote it.
    pub fn open_read_only(
        dir: impl AsRef<Path>,
        options: &DirectOptions,
        lsn_from: Lsn,
    ) -> Result<DirectStorage> {
        let dir = dir.as_ref();
        options_check(options);
        let dir_fd = directory_open(dir)?;
        let (mode, sector_size_bytes) = probe_read(dir, &dir_fd, options)?;
        let mut storage = DirectStorage::allocate(dir, dir_fd, mode, sector_size_bytes, options);
        storage.segments_open(lsn_from, libc::O_RDONLY)?;
        // What the reader yields must be durable: the segments it found too, not only their
        // bytes (a writer syncs a new segment's directory entry only with its first sync).
        storage.directory_sync_at_open()?;
        storage.read_ahead_start(options)?;
        let sector = sector_size_bytes as usize;
        storage.overlay = Some(Overlay {
            places: Vec::with_capacity(OVERLAY_SECTOR_COUNT_MAX),
            sectors: AlignedBuffer::new(OVERLAY_SECTOR_COUNT_MAX * sector, sector),
            metadata: None,
        });
        tracing::debug!(
            dir = %dir.display(),
            ?mode,
            lsn_from,
            segments = storage.segments.len(),
            "direct storage opened read-only"
        );
        Ok(storage)
    }

    fn allocate(
        dir: &Path,
        dir_fd: OwnedFd,
        mode: IoMode,
        sector_size_bytes: u32,
        options: &DirectOptions,
    ) -> DirectStorage {
        let operations = options.operations_inflight_max;
        DirectStorage {
            dir: dir.to_path_buf(),
            dir_fd,
            lock: None,
            mode,
            sector_size_bytes,
            segments: Vec::with_capacity(options.segment_count_max as usize),
            segment_count_max: options.segment_count_max as usize,
            slots: (0..operations).map(|_| Slot::default()).collect(),
            slots_free: (0..operations).rev().collect(),
            inflight: 0,
            completions_local: VecDeque::with_capacity(operations as usize),
            pool: None,
            uring: None,
            read_ahead: None,
            prepare: None,
            fill: None,
            overlay: None,
            origin: Instant::now(),
        }
    }

    fn read_ahead_start(&mut self, options: &DirectOptions) -> Result<()> {
        if options.read_ahead_size_bytes > 0 {
            let sector = self.sector_size_bytes as usize;
            let size = (options.read_ahead_size_bytes as usize).next_multiple_of(sector);
            let read_ahead = ReadAhead::new(size, sector).map_err(|source| Error::Open {
                path: self.dir.clone(),
                source,
            })?;
            self.read_ahead = Some(read_ahead);
        }
        Ok(())
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the files bypass the page cache.
    pub fn io_mode(&self) -> IoMode {
        self.mode
    }

    /// Zeros the fill-ahead thread has written so far
    /// ([`DirectOptions::fill_ahead_size_bytes`]); 0 when it is off.
    pub fn zero_filled_bytes(&self) -> u64 {
        self.fill.as_ref().map_or(0, Filler::filled_total_bytes)
    }

    /// Whether this storage was opened with [`open_read_only`](DirectStorage::open_read_only).
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    /// The path of a segment's file.
    pub fn segment_path(&self, segment: SegmentId) -> PathBuf {
        self.dir.join(segment_file_name(segment))
    }

    /// Removes `*.tmp` files: a crash interrupted their making, and the files they were to
    /// replace are intact. The directory sync at open makes the removals durable.
    fn temporary_files_remove(&mut self) -> Result<()> {
        let names = self.directory_names()?;
        for name in names {
            if !name.as_bytes().ends_with(TEMPORARY_FILE_SUFFIX.as_bytes()) {
                continue;
            }
            let Some(text) = name.to_str().filter(|text| text.len() < NAME_SIZE_BYTES) else {
                continue;
            };
            tracing::info!(file = text, "removing a file a crash left half-made");
            unlink_at(self.dir_fd.as_raw_fd(), &Name::plain(text)).map_err(|source| {
                Error::Open {
                    path: self.dir.join(text),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Syncs the directory once at open: a segment renamed into place by an earlier process
    /// that died before the segment's first sync may not be durable yet, and syncs of it from
    /// now on would not sync the directory (its mark is gone with that process).
    fn directory_sync_at_open(&mut self) -> Result<()> {
        match fsync(self.dir_fd.as_raw_fd()) {
            // A read-only filesystem holds nothing unsynced.
            Err(error) if self.is_read_only() && error.raw_os_error() == Some(libc::EROFS) => {
                Ok(())
            }
            result => result.map_err(|source| Error::Open {
                path: self.dir.clone(),
                source,
            }),
        }
    }

    fn directory_names(&self) -> Result<Vec<std::ffi::OsString>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| Error::Open {
            path: self.dir.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::Open {
                path: self.dir.clone(),
                source,
            })?;
            names.push(entry.file_name());
        }
        Ok(names)
    }

    /// Opens every segment file, in order, from the one holding `lsn_from` on.
    fn segments_open(&mut self, lsn_from: Lsn, access: libc::c_int) -> Result<()> {
        let mut ids: Vec<SegmentId> = self
            .directory_names()?
            .iter()
            .filter_map(|name| segment_file_parse(name.as_bytes()))
            .collect();
        ids.sort_unstable();
        let first = ids.partition_point(|&id| id <= lsn_from).saturating_sub(1);
        let ids = &ids[first..];
        if ids.len() > self.segment_count_max {
            return Err(Error::Open {
                path: self.dir.clone(),
                source: io::Error::other(format!(
                    "{} segment files, more than DirectOptions::segment_count_max ({})",
                    ids.len(),
                    self.segment_count_max
                )),
            });
        }
        let flags = access | self.direct_flag();
        for &id in ids {
            let path_error = |source| Error::Open {
                path: self.segment_path(id),
                source,
            };
            let file = open_at(self.dir_fd.as_raw_fd(), &Name::segment(id, false), flags)
                .map_err(path_error)?;
            let size_bytes = file_size_bytes(file.as_raw_fd()).map_err(path_error)?;
            self.segments.push(SegmentFile {
                id,
                file: Some(file),
                size_bytes,
                zeroed: false,
                inflight: 0,
                directory_unsynced: false,
            });
        }
        Ok(())
    }

    fn direct_flag(&self) -> libc::c_int {
        match self.mode {
            IoMode::Direct => libc::O_DIRECT,
            IoMode::Buffered => 0,
        }
    }

    fn segment_index(&self, segment: SegmentId) -> Option<usize> {
        self.segments
            .binary_search_by_key(&segment, |file| file.id)
            .ok()
    }

    fn segment_index_or_error(&self, segment: SegmentId) -> io::Result<usize> {
        self.segment_index(segment)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn slot_take(&mut self, token: u64, segment: SegmentId) -> u32 {
        let slot = self
            .slots_free
            .pop()
            .expect("more operations in flight than DirectOptions::operations_inflight_max");
        let entry = &mut self.slots[slot as usize];
        assert!(!entry.busy && entry.buffer.is_none());
        entry.busy = true;
        entry.token = token;
        entry.segment = segment;
        entry.offset_bytes = 0;
        entry.size_bytes = 0;
        entry.directory = false;
        self.inflight += 1;
        slot
    }

    fn segment_inflight_change(&mut self, segment: SegmentId, up: bool) {
        if let Some(index) = self.segment_index(segment) {
            let file = &mut self.segments[index];
            if up {
                file.inflight += 1;
            } else {
                assert!(file.inflight > 0);
                file.inflight -= 1;
            }
        }
    }

    fn completion_from(&mut self, done: Done) -> Completion {
        let slot = &mut self.slots[done.slot as usize];
        assert!(slot.busy, "completion of an idle slot");
        slot.busy = false;
        let token = slot.token;
        let segment = slot.segment;
        let directory = slot.directory;
        let kind = match slot.buffer.take() {
            Some(buffer) => CompletionKind::Write { buffer },
            None => CompletionKind::Sync,
        };
        self.slots_free.push(done.slot);
        assert!(self.inflight > 0);
        self.inflight -= 1;
        self.segment_inflight_change(segment, false);
        let result = match done.errno {
            0 => Ok(()),
            errno => {
                if let (true, Some(index)) = (directory, self.segment_index(segment)) {
                    self.segments[index].directory_unsynced = true;
                }
                let error = io::Error::from_raw_os_error(errno);
                tracing::error!(segment, %error, "io operation failed");
                Err(error)
            }
        };
        Completion {
            token,
            kind,
            result,
        }
    }

    /// Read-only storage: keeps a written sector in memory.
    fn overlay_write(&mut self, segment: SegmentId, offset_bytes: u64, bytes: &[u8]) -> bool {
        let sector = self.sector_size_bytes as usize;
        let overlay = self
            .overlay
            .as_mut()
            .expect("read-only storage has an overlay");
        for (index, chunk) in bytes.chunks(sector).enumerate() {
            let place = (segment, offset_bytes + (index * sector) as u64);
            let found = overlay.places.iter().position(|&held| held == place);
            let at = match found {
                Some(at) => at,
                None if overlay.places.len() < OVERLAY_SECTOR_COUNT_MAX => {
                    overlay.places.push(place);
                    overlay.places.len() - 1
                }
                None => return false,
            };
            overlay.sectors[at * sector..(at + 1) * sector].copy_from_slice(chunk);
        }
        true
    }

    fn overlay_apply(&self, segment: SegmentId, offset_bytes: u64, buffer: &mut [u8]) {
        let Some(overlay) = &self.overlay else {
            return;
        };
        let sector = self.sector_size_bytes as u64;
        let end = offset_bytes + buffer.len() as u64;
        for (at, &(held_segment, held_offset)) in overlay.places.iter().enumerate() {
            if held_segment == segment && held_offset >= offset_bytes && held_offset < end {
                let start = (held_offset - offset_bytes) as usize;
                let source = &overlay.sectors[at * sector as usize..(at + 1) * sector as usize];
                buffer[start..start + sector as usize].copy_from_slice(source);
            }
        }
    }

    fn overlay_forget(&mut self, segment: SegmentId) {
        let sector = self.sector_size_bytes as usize;
        let Some(overlay) = &mut self.overlay else {
            return;
        };
        let mut index = 0;
        while index < overlay.places.len() {
            if overlay.places[index].0 != segment {
                index += 1;
                continue;
            }
            // Swap-remove the place and move the last sector's bytes into its room.
            let last = overlay.places.len() - 1;
            overlay
                .sectors
                .copy_within(last * sector..(last + 1) * sector, index * sector);
            overlay.places.swap_remove(index);
        }
    }

    fn segment_create_read_only(&mut self, segment: SegmentId, size_bytes: u64) {
        self.overlay_forget(segment);
        match self.segment_index(segment) {
            Some(index) => {
                let file = &mut self.segments[index];
                file.zeroed = true;
                file.size_bytes = size_bytes;
            }
            None => {
                let position = self
                    .segments
                    .binary_search_by_key(&segment, |file| file.id)
                    .unwrap_err();
                self.segments.insert(
                    position,
                    SegmentFile {
                        id: segment,
                        file: None,
                        size_bytes,
                        zeroed: true,
                        inflight: 0,
                        directory_unsynced: false,
                    },
                );
            }
        }
    }

    /// Makes a new segment file under a temporary name, preallocated, `head` written at offset
    /// 0, synced, then renames it into place (replacing any file of that name); the directory
    /// is synced with the segment's first sync. A crash at any point leaves either the old
    /// file or none, never a short one or one without its head.
    fn segment_file_make(
        &self,
        segment: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<OwnedFd> {
        let dir = self.dir_fd.as_raw_fd();
        let temporary = Name::segment(segment, true);
        let file = file_make(dir, &temporary, size_bytes, self.direct_flag())?;
        if !head.is_empty() {
            write_all_at(file.as_raw_fd(), head, 0)?;
            fsync(file.as_raw_fd())?;
        }
        rename_at(dir, &temporary, &Name::segment(segment, false))?;
        Ok(file)
    }

    /// The directory was synced: every segment renamed into place before is durable.
    fn directory_synced(&mut self) {
        for file in &mut self.segments {
            file.directory_unsynced = false;
        }
    }

    /// Starts a write: on an IO thread, or with `inline` on the caller's thread, which is
    /// about to wait for it anyway (two thread wakeups cost more than the write on a virtual
    /// machine, `docs/disk.md`).
    fn write_start(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
        inline: bool,
    ) {
        assert!(size_bytes > 0, "empty write");
        assert_aligned(self.sector_size_bytes, offset_bytes, &buffer[..size_bytes]);
        let index = self
            .segment_index(segment)
            .expect("write to a missing segment");
        let file = &self.segments[index];
        assert!(
            offset_bytes + size_bytes as u64 <= file.size_bytes,
            "write past the end of the segment"
        );
        let fd = file.file.as_ref().map(|fd| fd.as_raw_fd());
        let slot = self.slot_take(token, segment);
        self.slots[slot as usize].offset_bytes = offset_bytes;
        self.slots[slot as usize].size_bytes = size_bytes as u64;
        self.segment_inflight_change(segment, true);
        if let Some(read_ahead) = &self.read_ahead {
            read_ahead.invalidate(segment, offset_bytes, size_bytes as u64);
        }
        if self.is_read_only() {
            let kept = self.overlay_write(segment, offset_bytes, &buffer[..size_bytes]);
            self.slots[slot as usize].buffer = Some(buffer);
            let errno = if kept { 0 } else { libc::EROFS };
            let completion = self.completion_from(Done { slot, errno });
            self.completions_local.push_back(completion);
            return;
        }
        let fd = fd.expect("a writer's segments have files");
        if let Some(fill) = &self.fill {
            let segment_size_bytes = self.segments[index].size_bytes;
            fill.write_before(
                fd,
                segment,
                segment_size_bytes,
                offset_bytes,
                size_bytes as u64,
            );
        }
        let operation = Operation {
            slot,
            fd,
            dir_fd: None,
            size_bytes,
            address: buffer.as_ptr() as usize,
            offset_bytes,
        };
        self.slots[slot as usize].buffer = Some(buffer);
        if inline {
            let completion = self.completion_from(operation_run(operation));
            self.completions_local.push_back(completion);
            return;
        }
        if let Some(uring) = &mut self.uring {
            // SAFETY: the slot owns the buffer until `poll` reaps this write's completion, and
            // the segment's file stays open while it has operations in flight.
            unsafe {
                uring.write(
                    operation.slot,
                    operation.fd,
                    operation.address,
                    operation.size_bytes,
                    operation.offset_bytes,
                );
            }
            return;
        }
        self.pool
            .as_ref()
            .expect("a writer has IO threads or a ring")
            .submit(operation);
    }

    /// The completion of a write reaped from the ring: `result` is the bytes written or a
    /// negative errno. A short write (the disk filled up mid-way, say) is finished here, as
    /// `pwrite` would be by `write_all_at`.
    fn uring_done(&mut self, slot: u32, result: i32) -> Done {
        let entry = &self.slots[slot as usize];
        let index = self
            .segment_index(entry.segment)
            .expect("a segment with writes in flight stays open");
        let fd = self.segments[index]
            .file
            .as_ref()
            .map(|fd| fd.as_raw_fd())
            .expect("a writer's segments have files");
        let buffer = entry.buffer.as_ref().expect("a write owns its buffer");
        let size = entry.size_bytes as usize;
        let errno = match usize::try_from(result) {
            Err(_) => {
                trace_write(fd, entry.offset_bytes, &[], -result);
                -result
            }
            Ok(written) => {
                assert!(written <= size, "io_uring wrote more than asked");
                trace_write(fd, entry.offset_bytes, &buffer[..written], 0);
                if written == size {
                    0
                } else {
                    let rest = &buffer[written..size];
                    match write_all_at(fd, rest, entry.offset_bytes + written as u64) {
                        Ok(()) => 0,
                        Err(error) => error.raw_os_error().unwrap_or(libc::EIO),
                    }
                }
            }
        };
        Done { slot, errno }
    }
}

impl DirectStorage {
    /// Submits a sync; `counted` tells the filler about it (a sync a caller waits on).
    fn sync_start(&mut self, token: u64, segment: SegmentId, counted: bool) {
        let index = self
            .segment_index(segment)
            .expect("sync of a missing segment");
        let fd = self.segments[index].file.as_ref().map(|fd| fd.as_raw_fd());
        // The first sync after the file was renamed into place syncs the directory too; the
        // mark comes back if that sync fails.
        let directory = std::mem::take(&mut self.segments[index].directory_unsynced)
            && !crate::planted::active("direct-dir-fsync-removed");
        let slot = self.slot_take(token, segment);
        self.slots[slot as usize].directory = directory;
        self.segment_inflight_change(segment, true);
        if self.is_read_only() {
            // A reader syncs too: what it returns is then durable whoever wrote it.
            let errno = match fd.map(fdatasync) {
                None | Some(Ok(())) => 0,
                Some(Err(error)) => error.raw_os_error().unwrap_or(libc::EIO),
            };
            let completion = self.completion_from(Done { slot, errno });
            self.completions_local.push_back(completion);
            return;
        }
        if let Some(fill) = self.fill.as_ref().filter(|_| counted) {
            fill.sync_before();
        }
        let operation = Operation {
            slot,
            fd: fd.expect("a writer's segments have files"),
            dir_fd: directory.then(|| self.dir_fd.as_raw_fd()),
            size_bytes: 0,
            address: 0,
            offset_bytes: 0,
        };
        // The caller is about to wait for this sync: run it on its thread, sparing two thread
        // handoffs, which cost more than the sync on a busy machine (docs/disk.md), when
        // nothing else is in flight, and always with io_uring, which makes no IO threads.
        if self.inflight == 1 || self.uring.is_some() {
            let completion = self.completion_from(operation_run(operation));
            self.completions_local.push_back(completion);
            return;
        }
        self.pool
            .as_ref()
            .expect("a writer has IO threads")
            .submit(operation);
    }
}

fn options_check(options: &DirectOptions) {
    assert!((1..=IO_THREAD_COUNT_MAX).contains(&options.io_thread_count));
    assert!((2..=OPERATIONS_INFLIGHT_MAX).contains(&options.operations_inflight_max));
    assert!(options.segment_count_max >= 1);
}

/// Creates the directory if it does not exist, durably: its parent is synced.
/// Whether an error from `open` or from IO means "this filesystem refuses `O_DIRECT`".
fn refuses_direct(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP))
}

fn mode_fallback(dir: &Path, options: &DirectOptions) -> Result<(IoMode, u32)> {
    if !options.buffered_fallback {
        return Err(Error::DirectIoUnsupported {
            path: dir.to_path_buf(),
        });
    }
    tracing::warn!(
        dir = %dir.display(),
        "the filesystem refuses O_DIRECT; using buffered IO with fdatasync"
    );
    Ok((IoMode::Buffered, SECTOR_SIZE_BYTES_DEFAULT))
}

/// Probes `O_DIRECT` for a writer: opens the lock file (already locked by us) with it and
/// writes one aligned sector, as a segment write would. Returns the mode and the alignment.
fn probe_write(dir: &Path, dir_fd: &OwnedFd, options: &DirectOptions) -> Result<(IoMode, u32)> {
    let open_error = |source| Error::Open {
        path: dir.join(LOCK_FILE_NAME),
        source,
    };
    let name = Name::plain(LOCK_FILE_NAME);
    let file = match open_at(dir_fd.as_raw_fd(), &name, libc::O_RDWR | libc::O_DIRECT) {
        Ok(file) => file,
        Err(error) if refuses_direct(&error) => return mode_fallback(dir, options),
        Err(error) => return Err(open_error(error)),
    };
    let sector_size_bytes = direct_alignment_bytes(file.as_raw_fd());
    let sector = sector_size_bytes as usize;
    let mut buffer = AlignedBuffer::new(sector, sector);
    let note = format!("ballast writer pid {}\n", std::process::id());
    buffer[..note.len()].copy_from_slice(note.as_bytes());
    match write_all_at(file.as_raw_fd(), &buffer, 0) {
        Ok(()) => Ok((IoMode::Direct, sector_size_bytes)),
        Err(error) if refuses_direct(&error) => mode_fallback(dir, options),
        Err(error) => Err(open_error(error)),
    }
}

/// Probes `O_DIRECT` for a reader without writing: reads the first sector of the metadata
/// file with it (a directory without metadata holds no log, and the log says so).
fn probe_read(dir: &Path, dir_fd: &OwnedFd, options: &DirectOptions) -> Result<(IoMode, u32)> {
    let name = Name::plain(METADATA_FILE_NAME);
    let file = match open_at(dir_fd.as_raw_fd(), &name, libc::O_RDONLY | libc::O_DIRECT) {
        Ok(file) => file,
        Err(error) if refuses_direct(&error) => return mode_fallback(dir, options),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok((IoMode::Direct, SECTOR_SIZE_BYTES_DEFAULT))
        }
        Err(source) => {
            return Err(Error::Open {
                path: dir.join(METADATA_FILE_NAME),
                source,
            })
        }
    };
    let sector_size_bytes = direct_alignment_bytes(file.as_raw_fd());
    let sector = sector_size_bytes as usize;
    let mut buffer = AlignedBuffer::new(sector, sector);
    match read_at(file.as_raw_fd(), &mut buffer, 0) {
        Ok(_) => Ok((IoMode::Direct, sector_size_bytes)),
        Err(error) if refuses_direct(&error) => mode_fallback(dir, options),
        Err(source) => Err(Error::Open {
            path: dir.join(METADATA_FILE_NAME),
            source,
        }),
    }
}

impl Drop for DirectStorage {
    fn drop(&mut self) {
        // Stop the IO threads (they finish what is queued) and the read-ahead before any
        // buffer or file closes.
        drop(self.pool.take());
        drop(self.uring.take());
        drop(self.read_ahead.take());
        drop(self.prepare.take());
        drop(self.fill.take());
    }
}

impl Clock for DirectStorage {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Storage for DirectStorage {
    fn sector_size_bytes(&self) -> u32 {
        self.sector_size_bytes
    }

    fn metadata_read(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        assert_aligned(self.sector_size_bytes, 0, buffer);
        if let Some(metadata) = self
            .overlay
            .as_ref()
            .and_then(|overlay| overlay.metadata.as_ref())
        {
            let size = metadata.len().min(buffer.len());
            buffer[..size].copy_from_slice(&metadata[..size]);
            buffer[size..].fill(0);
            return Ok(true);
        }
        let flags = libc::O_RDONLY | self.direct_flag();
        let name = Name::plain(METADATA_FILE_NAME);
        let file = match open_at(self.dir_fd.as_raw_fd(), &name, flags) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        let size = read_at(file.as_raw_fd(), buffer, 0)?;
        buffer[size..].fill(0);
        Ok(true)
    }

    fn metadata_write(&mut self, buffer: &[u8]) -> io::Result<()> {
        assert_aligned(self.sector_size_bytes, 0, buffer);
        if let Some(overlay) = &mut self.overlay {
            // Read-only: what the log writes is kept here and read back, and no file changes.
            let sector = self.sector_size_bytes as usize;
            let held = overlay
                .metadata
                .get_or_insert_with(|| AlignedBuffer::new(buffer.len(), sector));
            assert_eq!(
                held.len(),
                buffer.len(),
                "the metadata is one sector of the log"
            );
            held.copy_from_slice(buffer);
            return Ok(());
        }
        let dir = self.dir_fd.as_raw_fd();
        let temporary = Name::plain(METADATA_TEMPORARY_FILE_NAME);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | self.direct_flag();
        let file = open_at(dir, &temporary, flags)?;
        write_all_at(file.as_raw_fd(), buffer, 0)?;
        if !crate::planted::active("metadata-write-without-sync") {
            fsync(file.as_raw_fd())?;
        }
        rename_at(dir, &temporary, &Name::plain(METADATA_FILE_NAME))?;
        fsync(dir)?;
        self.directory_synced();
        Ok(())
    }

    fn segment_list(&mut self) -> io::Result<Vec<SegmentId>> {
        Ok(self.segments.iter().map(|file| file.id).collect())
    }

    fn segment_create_with(
        &mut self,
        segment: SegmentId,
        size_bytes: u64,
        head: &[u8],
    ) -> io::Result<()> {
        assert_eq!(size_bytes % u64::from(self.sector_size_bytes), 0);
        assert!(size_bytes > 0 && head.len() as u64 <= size_bytes);
        assert_aligned(self.sector_size_bytes, 0, head);
        if let Some(index) = self.segment_index(segment) {
            assert_eq!(
                self.segments[index].inflight, 0,
                "segment replaced with operations in flight"
            );
        } else if self.segments.len() == self.segment_count_max {
            return Err(io::Error::other(
                "more segments than DirectOptions::segment_count_max",
            ));
        }
        if let Some(read_ahead) = &self.read_ahead {
            read_ahead.forget(segment);
        }
        if let Some(fill) = &self.fill {
            fill.forget(segment);
        }
        if self.is_read_only() {
            self.segment_create_read_only(segment, size_bytes);
            if !head.is_empty() && !self.overlay_write(segment, 0, head) {
                return Err(io::Error::other("read-only overlay full"));
            }
            return Ok(());
        }
        let prepared = match (&self.prepare, head.is_empty()) {
            (Some(prepare), true) => prepare.take(&Name::segment(segment, false), size_bytes)?,
            _ => None,
        };
        let file = match prepared {
            Some(file) => file,
            None => self.segment_file_make(segment, size_bytes, head)?,
        };
        if let Some(prepare) = &self.prepare {
            prepare.request(size_bytes);
        }
        let made = SegmentFile {
            id: segment,
            file: Some(file),
            size_bytes,
            zeroed: false,
            inflight: 0,
            directory_unsynced: true,
        };
        match self.segments.binary_search_by_key(&segment, |file| file.id) {
            // The old file's descriptor closes here; its inode went with the rename.
            Ok(index) => self.segments[index] = made,
            Err(position) => self.segments.insert(position, made),
        }
        tracing::debug!(segment, size_bytes, "segment created");
        Ok(())
    }

    fn segment_remove(&mut self, segment: SegmentId) -> io::Result<()> {
        let index = self.segment_index_or_error(segment)?;
        assert_eq!(
            self.segments[index].inflight, 0,
            "segment removed with operations in flight"
        );
        if let Some(read_ahead) = &self.read_ahead {
            read_ahead.forget(segment);
        }
        if let Some(fill) = &self.fill {
            fill.forget(segment);
        }
        if !self.is_read_only() {
            let dir = self.dir_fd.as_raw_fd();
            unlink_at(dir, &Name::segment(segment, false))?;
            fsync(dir)?;
            self.directory_synced();
        }
        self.overlay_forget(segment);
        self.segments.remove(index);
        tracing::debug!(segment, "segment removed");
        Ok(())
    }

    fn segment_size_bytes(&mut self, segment: SegmentId) -> io::Result<u64> {
        let index = self.segment_index_or_error(segment)?;
        Ok(self.segments[index].size_bytes)
    }

    fn read(&mut self, segment: SegmentId, offset_bytes: u64, buffer: &mut [u8]) -> io::Result<()> {
        assert_aligned(self.sector_size_bytes, offset_bytes, buffer);
        let index = self.segment_index_or_error(segment)?;
        let file = &self.segments[index];
        if offset_bytes + buffer.len() as u64 > file.size_bytes {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        match (&file.file, file.zeroed) {
            (Some(fd), false) => {
                let size = read_at(fd.as_raw_fd(), buffer, offset_bytes)?;
                if size < buffer.len() {
                    // The file is shorter than it was when opened: someone truncated it.
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
            }
            _ => buffer.fill(0),
        }
        self.overlay_apply(segment, offset_bytes, buffer);
        Ok(())
    }

    fn read_exchange(
        &mut self,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: &mut AlignedBuffer,
        at: usize,
        size_bytes: usize,
    ) -> io::Result<()> {
        let index = self.segment_index_or_error(segment)?;
        let file = &self.segments[index];
        let held = file.file.is_some() && !file.zeroed;
        let taken = held
            && self.read_ahead.as_ref().is_some_and(|read_ahead| {
                read_ahead.take(segment, offset_bytes, buffer, at, size_bytes)
            });
        if !taken {
            return self.read(segment, offset_bytes, &mut buffer[at..at + size_bytes]);
        }
        assert_aligned(
            self.sector_size_bytes,
            offset_bytes,
            &buffer[at..at + size_bytes],
        );
        self.overlay_apply(segment, offset_bytes, &mut buffer[at..at + size_bytes]);
        Ok(())
    }

    fn read_ahead(&mut self, segment: SegmentId, offset_bytes: u64, size_bytes: usize, at: usize) {
        let Some(read_ahead) = &self.read_ahead else {
            return;
        };
        let Some(index) = self.segment_index(segment) else {
            return;
        };
        let file = &self.segments[index];
        let (Some(fd), false) = (&file.file, file.zeroed) else {
            return;
        };
        let sector = u64::from(self.sector_size_bytes);
        assert_eq!(
            offset_bytes % sector,
            0,
            "read-ahead offset not sector-aligned"
        );
        assert_eq!(at as u64 % sector, 0, "read-ahead place not sector-aligned");
        let room = read_ahead.capacity_bytes().saturating_sub(at) as u64;
        let end = (offset_bytes + size_bytes as u64)
            .min(offset_bytes + room)
            .min(file.size_bytes)
            / sector
            * sector;
        if end <= offset_bytes {
            return;
        }
        // A write still in flight there may land after the read: loading those bytes now
        // could keep what they were.
        let written = self.slots.iter().any(|slot| {
            slot.busy
                && slot.segment == segment
                && offset_bytes < slot.offset_bytes + slot.size_bytes
                && slot.offset_bytes < end
        });
        if !written {
            let size = (end - offset_bytes) as usize;
            read_ahead.start(fd.as_raw_fd(), segment, offset_bytes, size, at);
        }
    }

    fn write_submit(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        self.write_start(token, segment, offset_bytes, buffer, size_bytes, false);
    }

    fn write_submit_waited(
        &mut self,
        token: u64,
        segment: SegmentId,
        offset_bytes: u64,
        buffer: AlignedBuffer,
        size_bytes: usize,
    ) {
        self.write_start(token, segment, offset_bytes, buffer, size_bytes, true);
    }

    fn sync_submit(&mut self, token: u64, segment: SegmentId) {
        self.sync_start(token, segment, true);
    }

    /// Bulk syncs do not tell the filler that the log syncs often.
    fn sync_submit_bulk(&mut self, token: u64, segment: SegmentId) {
        self.sync_start(token, segment, false);
    }

    fn poll(&mut self, wait: bool) -> Option<Completion> {
        if let Some(completion) = self.completions_local.pop_front() {
            return Some(completion);
        }
        if let Some(uring) = &mut self.uring {
            let (slot, result) = uring.complete(wait)?;
            let done = self.uring_done(slot, result);
            return Some(self.completion_from(done));
        }
        let pool = self.pool.as_ref()?;
        let done = {
            let mut queues = pool.shared.lock();
            loop {
                if let Some(done) = queues.completed.pop() {
                    break done;
                }
                if !wait || self.inflight == 0 {
                    return None;
                }
                // The caller would sleep until an IO thread runs a queued operation: run it
                // here instead. On a busy machine a thread's wakeup can cost a scheduler tick
                // (4 ms here), more than the write itself.
                if let Some(operation) = queues.submitted.pop() {
                    drop(queues);
                    break operation_run(operation);
                }
                queues = pool
                    .shared
                    .done
                    .wait(queues)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        Some(self.completion_from(done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_fifo_within_capacity() {
        let mut ring: Ring<u32> = Ring::new(3);
        for round in 0..5 {
            ring.push(round);
            ring.push(round + 100);
            assert_eq!(ring.pop(), Some(round));
            assert_eq!(ring.pop(), Some(round + 100));
            assert_eq!(ring.pop(), None);
        }
    }
}
