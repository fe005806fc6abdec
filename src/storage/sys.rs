//! The one seam between `DirectStorage` (and its threads) and the file system: every system
//! call that can change what a power loss leaves on disk goes through here (`openat`,
//! `pwrite`, `fallocate`, `ftruncate`, `fdatasync`, `fsync` of files and directories,
//! `renameat`, `unlinkat`, `mkdir`, `flock`), and io_uring writes are recorded here when they
//! are reaped. When a test turns the trace on ([`trace`](super::trace)), each call is recorded
//! as it completed; otherwise the seam costs one relaxed atomic load per call.

use super::trace::{self, Call, FileId};
use super::SegmentId;
use crate::error::{Error, Result};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The suffix of a segment file's name.
pub const SEGMENT_FILE_SUFFIX: &str = ".segment";
/// The suffix of a file being made; a leftover one (a crash interrupted its making) is
/// removed when a writer opens the directory.
pub const TEMPORARY_FILE_SUFFIX: &str = ".tmp";
/// Digits in a segment file's name: every `u64` fits.
pub const SEGMENT_NAME_DIGITS: usize = 20;
/// The alignment assumed when the kernel does not report one (`statx` without
/// `STATX_DIOALIGN`, before Linux 6.1).
pub const SECTOR_SIZE_BYTES_DEFAULT: u32 = 4096;
const _: () = assert!(SECTOR_SIZE_BYTES_DEFAULT.is_power_of_two());

/// Room for `{first LSN:020}.segment.tmp` and its terminating NUL.
pub(super) const NAME_SIZE_BYTES: usize = 40;

const _: () = assert!(SEGMENT_NAME_DIGITS + 8 + 4 < NAME_SIZE_BYTES);

/// The file name of a segment: its first LSN, zero-padded to 20 digits.
pub fn segment_file_name(segment: SegmentId) -> String {
    format!(
        "{segment:0width$}{SEGMENT_FILE_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

/// The segment a file name names, if it is a segment file's name.
pub fn segment_file_parse(name: &[u8]) -> Option<SegmentId> {
    let digits = name.strip_suffix(SEGMENT_FILE_SUFFIX.as_bytes())?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A file name built on the stack, NUL-terminated, so that naming a file allocates nothing.
pub(super) struct Name {
    bytes: [u8; NAME_SIZE_BYTES],
}

impl Name {
    pub(super) fn segment(segment: SegmentId, temporary: bool) -> Name {
        let mut bytes = [0u8; NAME_SIZE_BYTES];
        let mut value = segment;
        for index in (0..SEGMENT_NAME_DIGITS).rev() {
            bytes[index] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        assert_eq!(value, 0, "a u64 has at most 20 digits");
        let mut end = SEGMENT_NAME_DIGITS;
        for suffix in [SEGMENT_FILE_SUFFIX, TEMPORARY_FILE_SUFFIX] {
            if suffix == TEMPORARY_FILE_SUFFIX && !temporary {
                break;
            }
            bytes[end..end + suffix.len()].copy_from_slice(suffix.as_bytes());
            end += suffix.len();
        }
        Name { bytes }
    }

    pub(super) fn plain(name: &str) -> Name {
        assert!(name.len() < NAME_SIZE_BYTES && !name.as_bytes().contains(&0));
        let mut bytes = [0u8; NAME_SIZE_BYTES];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Name { bytes }
    }

    pub(super) fn c_str(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.bytes).expect("names are NUL-terminated")
    }

    /// The name as text, for the trace.
    fn text(&self) -> String {
        self.c_str().to_string_lossy().into_owned()
    }
}

/// Makes a file of `size_bytes` that reads as zeros, preallocated and synced, under `name`
/// (replacing any file of that name).
pub(super) fn file_make(
    dir: RawFd,
    name: &Name,
    size_bytes: u64,
    direct_flag: libc::c_int,
) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | direct_flag;
    let file = open_at(dir, name, flags)?;
    let length = libc::off_t::try_from(size_bytes).expect("segment size fits off_t");
    // SAFETY: plain system call on a descriptor we own.
    let allocated = syscall(|| unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, length) }.into());
    if allocated.as_ref().err().and_then(io::Error::raw_os_error) != Some(libc::EOPNOTSUPP) {
        trace_size(file.as_raw_fd(), size_bytes, &allocated);
    }
    if let Err(error) = allocated {
        if error.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(error);
        }
        // A filesystem without fallocate (ramfs, under the buffered fallback): a sparse file of
        // the right size reads as zeros too, but a full disk shows up at write time instead of
        // here.
        tracing::warn!("fallocate unsupported; the segment file is sparse");
        // SAFETY: plain system call on a descriptor we own.
        let truncated = syscall(|| unsafe { libc::ftruncate(file.as_raw_fd(), length) }.into());
        trace_size(file.as_raw_fd(), size_bytes, &truncated);
        truncated?;
    }
    let spare = name.c_str().to_bytes().starts_with(b"spare");
    if !(spare && crate::planted::active("prepare-rename-before-fsync")) {
        fsync(file.as_raw_fd())?;
    }
    Ok(file)
}

/// Retries a system call interrupted by a signal; `Err` carries the OS error.
pub(super) fn syscall(mut call: impl FnMut() -> libc::c_long) -> io::Result<libc::c_long> {
    loop {
        let result = call();
        if result >= 0 {
            return Ok(result);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

pub(super) fn open_at(dir: RawFd, name: &Name, flags: libc::c_int) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_CLOEXEC;
    let existed = trace::is_on() && exists_at(dir, name);
    // SAFETY: the name is NUL-terminated; the mode is read only with O_CREAT.
    let fd = syscall(|| unsafe { libc::openat(dir, name.c_str().as_ptr(), flags, 0o644) }.into())?;
    // SAFETY: `openat` returned a new descriptor that nothing else owns.
    let file = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    if trace::is_on() && flags & (libc::O_WRONLY | libc::O_RDWR) != 0 {
        let call = Call::Open {
            dir: file_id(dir),
            name: name.text(),
            flags,
            file: file_id(file.as_raw_fd()),
            created: !existed,
        };
        trace::record(call, Ok(()));
    }
    Ok(file)
}

/// Whether a name exists in a directory (for the trace: did `openat` create it).
fn exists_at(dir: RawFd, name: &Name) -> bool {
    // SAFETY: `stat` is plain data; fstatat fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, NUL-terminated name, valid output pointer.
    unsafe { libc::fstatat(dir, name.c_str().as_ptr(), &mut stat, 0) == 0 }
}

/// The identity of an open file (zeros if `fstat` fails), for the trace.
fn file_id(fd: RawFd) -> FileId {
    // SAFETY: `stat` is plain data; fstat fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and pointer.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return FileId { dev: 0, ino: 0 };
    }
    FileId {
        dev: stat.st_dev,
        ino: stat.st_ino,
    }
}

fn errno_of<T>(result: &io::Result<T>) -> Result<(), i32> {
    match result {
        Ok(_) => Ok(()),
        Err(error) => Err(error.raw_os_error().unwrap_or(libc::EIO)),
    }
}

fn trace_size<T>(fd: RawFd, size_bytes: u64, result: &io::Result<T>) {
    if trace::is_on() {
        let file = file_id(fd);
        trace::record(Call::SetSize { file, size_bytes }, errno_of(result));
    }
}

fn trace_sync(fd: RawFd, data_only: bool, result: &io::Result<libc::c_long>) {
    if trace::is_on() {
        let file = file_id(fd);
        trace::record(Call::Sync { file, data_only }, errno_of(result));
    }
}

/// Records a write that completed (an io_uring write, reaped): `bytes` landed at
/// `offset_bytes`, or the write failed with `errno`.
pub(super) fn trace_write(fd: RawFd, offset_bytes: u64, bytes: &[u8], errno: i32) {
    if trace::is_on() {
        let call = Call::Write {
            file: file_id(fd),
            offset_bytes,
            bytes: match errno {
                0 => bytes.to_vec(),
                _ => Vec::new(),
            },
        };
        trace::record(call, if errno == 0 { Ok(()) } else { Err(errno) });
    }
}

/// Takes the directory's lock for a writer: `flock(LOCK_EX | LOCK_NB)`.
pub(super) fn flock_exclusive(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain system call on a descriptor we own.
    let result = syscall(|| unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) }.into());
    if trace::is_on() {
        trace::record(Call::Flock { file: file_id(fd) }, errno_of(&result));
    }
    result.map(drop)
}

pub(super) fn fsync(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain system call on a descriptor we own.
    let result = syscall(|| unsafe { libc::fsync(fd) }.into());
    trace_sync(fd, false, &result);
    result.map(drop)
}

pub(super) fn fdatasync(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain system call on a descriptor we own.
    let result = syscall(|| unsafe { libc::fdatasync(fd) }.into());
    trace_sync(fd, true, &result);
    result.map(drop)
}

pub(super) fn rename_at(dir: RawFd, from: &Name, to: &Name) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated.
    let result = syscall(|| unsafe {
        libc::renameat(dir, from.c_str().as_ptr(), dir, to.c_str().as_ptr()).into()
    });
    if trace::is_on() {
        let call = Call::Rename {
            dir: file_id(dir),
            from: from.text(),
            to: to.text(),
        };
        trace::record(call, errno_of(&result));
    }
    result.map(drop)
}

pub(super) fn unlink_at(dir: RawFd, name: &Name) -> io::Result<()> {
    // SAFETY: the name is NUL-terminated.
    let result = syscall(|| unsafe { libc::unlinkat(dir, name.c_str().as_ptr(), 0) }.into());
    if trace::is_on() {
        let call = Call::Unlink {
            dir: file_id(dir),
            name: name.text(),
        };
        trace::record(call, errno_of(&result));
    }
    result.map(drop)
}

/// Writes all of `bytes` at `offset_bytes`, or fails.
pub(super) fn write_all_at(fd: RawFd, bytes: &[u8], offset_bytes: u64) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        let rest = &bytes[done..];
        let offset = libc::off_t::try_from(offset_bytes + done as u64).expect("offset fits");
        // SAFETY: `rest` is valid for `rest.len()` bytes.
        let written = syscall(|| unsafe {
            libc::pwrite(fd, rest.as_ptr().cast(), rest.len(), offset) as libc::c_long
        });
        if trace::is_on() {
            let landed = written.as_ref().map_or(0, |&size| size as usize);
            let errno = written
                .as_ref()
                .err()
                .map_or(0, |error| error.raw_os_error().unwrap_or(libc::EIO));
            trace_write(fd, offset_bytes + done as u64, &rest[..landed], errno);
        }
        let written = written?;
        if written == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        done += written as usize;
    }
    Ok(())
}

/// Reads up to `buffer.len()` bytes at `offset_bytes`; returns how many (fewer only at the
/// end of the file).
pub(super) fn read_at(fd: RawFd, buffer: &mut [u8], offset_bytes: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buffer.len() {
        let rest = &mut buffer[done..];
        let offset = libc::off_t::try_from(offset_bytes + done as u64).expect("offset fits");
        // SAFETY: `rest` is valid for writes of `rest.len()` bytes.
        let read = syscall(|| unsafe {
            libc::pread(fd, rest.as_mut_ptr().cast(), rest.len(), offset) as libc::c_long
        })?;
        if read == 0 {
            break;
        }
        done += read as usize;
    }
    Ok(done)
}

pub(super) fn file_size_bytes(fd: RawFd) -> io::Result<u64> {
    // SAFETY: `stat` is plain data; fstat fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and pointer.
    syscall(|| unsafe { libc::fstat(fd, &mut stat) }.into())?;
    Ok(stat.st_size as u64)
}

/// The alignment `O_DIRECT` needs for this file, from `statx(STATX_DIOALIGN)` (Linux 6.1),
/// else [`SECTOR_SIZE_BYTES_DEFAULT`]: the larger of the memory and the offset alignment,
/// and at least 512 bytes.
pub(super) fn direct_alignment_bytes(fd: RawFd) -> u32 {
    // SAFETY: `statx` is plain data.
    let mut statx: libc::statx = unsafe { std::mem::zeroed() };
    let empty = c"";
    // SAFETY: valid descriptor, empty path with AT_EMPTY_PATH, valid output pointer.
    let result = unsafe {
        libc::statx(
            fd,
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut statx,
        )
    };
    if result != 0 || statx.stx_mask & libc::STATX_DIOALIGN == 0 {
        return SECTOR_SIZE_BYTES_DEFAULT;
    }
    let alignment = statx.stx_dio_offset_align.max(statx.stx_dio_mem_align);
    if alignment == 0 || !alignment.is_power_of_two() {
        return SECTOR_SIZE_BYTES_DEFAULT;
    }
    alignment.max(crate::config::SECTOR_SIZE_BYTES_MIN)
}

/// Makes the log directory and its missing parents, and syncs the parent, so that the
/// directory survives a power loss before its files do.
pub(super) fn directory_create(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    if trace::is_on() {
        let opened = directory_open_untraced(dir)?;
        let call = Call::OpenDir {
            path: dir.to_path_buf(),
            dir: file_id(opened.as_raw_fd()),
            created: true,
        };
        trace::record(call, Ok(()));
    }
    let parent = dir
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent_fd = directory_open_untraced(parent)?;
    fsync(parent_fd.as_raw_fd()).map_err(|source| Error::Open {
        path: parent.to_path_buf(),
        source,
    })
}

/// Opens a directory (the log's: traced).
pub(super) fn directory_open(dir: &Path) -> Result<OwnedFd> {
    let opened = directory_open_untraced(dir)?;
    if trace::is_on() {
        let call = Call::OpenDir {
            path: dir.to_path_buf(),
            dir: file_id(opened.as_raw_fd()),
            created: false,
        };
        trace::record(call, Ok(()));
    }
    Ok(opened)
}

fn directory_open_untraced(dir: &Path) -> Result<OwnedFd> {
    let error = |source| Error::Open {
        path: dir.to_path_buf(),
        source,
    };
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: the path is NUL-terminated.
    let fd = syscall(|| unsafe { libc::open(path.as_ptr(), flags) }.into()).map_err(error)?;
    // SAFETY: `open` returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_numbers_and_parse_back() {
        for segment in [0, 1, 42, 1 << 40, u64::MAX] {
            let name = segment_file_name(segment);
            assert_eq!(name.len(), SEGMENT_NAME_DIGITS + SEGMENT_FILE_SUFFIX.len());
            assert_eq!(segment_file_parse(name.as_bytes()), Some(segment));
            assert_eq!(
                Name::segment(segment, false).c_str().to_bytes(),
                name.as_bytes()
            );
            let temporary = Name::segment(segment, true);
            assert!(temporary.c_str().to_bytes().ends_with(b".segment.tmp"));
            assert_eq!(segment_file_parse(temporary.c_str().to_bytes()), None);
        }
        assert!(segment_file_name(9) < segment_file_name(10));
        for foreign in [
            "1.segment",
            "metadata",
            "lock",
            "0000000000000000000x.segment",
        ] {
            assert_eq!(segment_file_parse(foreign.as_bytes()), None, "{foreign}");
        }
    }
}
