//! The one error type of the library.
//!
//! A broken invariant is a bug and panics; everything here is an operating error: bad input,
//! bad bytes on disk, or a failed IO, each with the fields a caller needs to act on it.

use crate::config::ConfigError;
use crate::Lsn;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a block or record on disk is not what was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// The block header's checksum does not match its bytes.
    HeaderChecksum,
    /// The block body's checksum does not match its bytes.
    BodyChecksum,
    /// The sector holds no block at all (zeros) where acknowledged data was attested.
    Missing,
    /// The header is valid but names another place (segment, offset) or breaks the chain of
    /// blocks: a misdirected or stale write.
    Misplaced,
    /// The header is valid but its fields are impossible (sizes, counts, LSNs).
    Malformed,
    /// The records inside a valid block do not frame correctly.
    Framing,
}

/// What a storage operation was doing when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOperation {
    /// Reading the log's metadata.
    MetadataRead,
    /// Writing the log's metadata when formatting.
    MetadataWrite,
    /// Listing segments.
    SegmentList,
    /// Creating (preallocating) a segment.
    SegmentCreate,
    /// Removing a segment.
    SegmentRemove,
    /// Querying a segment's size.
    SegmentSize,
    /// Reading from a segment.
    Read,
    /// Writing to a segment.
    Write,
    /// Syncing a segment.
    Sync,
}

/// What the operating system (or the storage) said when an IO failed: kept when a failure
/// stops the log, so that every later call says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoCause {
    /// The error's kind.
    pub kind: io::ErrorKind,
    /// The OS error number (`errno`), when the error came from the OS.
    pub errno: Option<i32>,
}

impl IoCause {
    /// The cause of an IO error.
    pub fn of(error: &io::Error) -> IoCause {
        IoCause {
            kind: error.kind(),
            errno: error.raw_os_error(),
        }
    }

    /// An `io::Error` with the same errno (or kind).
    pub fn to_io_error(self) -> io::Error {
        match self.errno {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::from(self.kind),
        }
    }
}

impl fmt::Display for IoCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_io_error())
    }
}

/// The library's error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A `Config` limit is wrong; names the field.
    Config(ConfigError),
    /// The files on disk were made with a different configuration.
    ConfigMismatch {
        /// The `Config` field that differs.
        field: &'static str,
        /// The value in `Config`.
        config: u64,
        /// The value found on disk.
        disk: u64,
    },
    /// The log's metadata is not Ballast's (foreign file) or is damaged.
    NotALog {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Segment files exist but the metadata that says how to read them does not.
    MetadataMissing {
        /// How many segments were found.
        segment_count: usize,
    },
    /// The log was written by a format version this build cannot read.
    FormatVersion {
        /// The version on disk.
        found: u16,
        /// The version this build reads and writes.
        supported: u16,
    },
    /// Acknowledged data is damaged: a later valid block attests that the block here held
    /// durable records.
    Corruption {
        /// The segment (its first LSN).
        segment: u64,
        /// The byte offset of the damaged block in the segment.
        offset_bytes: u64,
        /// What is wrong with it.
        kind: CorruptionKind,
    },
    /// A storage operation failed.
    Io {
        /// What was being done.
        operation: IoOperation,
        /// The segment involved, if any.
        segment: Option<u64>,
        /// The byte offset involved, if any.
        offset_bytes: Option<u64>,
        /// The error the storage reported.
        source: io::Error,
    },
    /// An earlier write or sync failed; the log accepts no more work. Reopen it to recover
    /// from what is on disk.
    Failed {
        /// What failed first.
        operation: IoOperation,
        /// The segment involved.
        segment: u64,
        /// What the storage said: the OS error (errno) or its kind.
        cause: IoCause,
    },
    /// A record is larger than `Config::record_size_bytes_max`.
    RecordTooLarge {
        /// The record's size.
        size_bytes: u64,
        /// The limit.
        size_bytes_max: u32,
    },
    /// The caller's buffer is too small for the record; nothing was copied.
    BufferTooSmall {
        /// The record's size.
        size_bytes: usize,
    },
    /// The LSN is not in the log (dropped by `truncate_prefix`, or not yet appended).
    LsnOutOfRange {
        /// The LSN asked for.
        lsn: Lsn,
        /// The first LSN still held.
        lsn_first: Lsn,
        /// The next LSN to be appended.
        lsn_next: Lsn,
    },
    /// All `Config::segment_count_max` segments are in use; drop some with
    /// `truncate_prefix`. Records of a batch before `lsn_next` were appended.
    LogFull {
        /// The next LSN that would have been appended.
        lsn_next: Lsn,
    },
    /// A batch larger than a whole staging batch of a `SharedLog`
    /// (`SharedOptions::staging_size_bytes` or `staging_record_count_max`): it could never be
    /// staged, so it is refused rather than waited on. Nothing was staged.
    BatchTooLarge {
        /// Records in the batch.
        record_count: usize,
        /// Bytes of record data in the batch.
        size_bytes: u64,
    },
    /// The `SharedLog` is closing or closed: it accepts no more work.
    Closed,
    /// Another writer holds the log directory's lock (in this process or another); nothing
    /// was written.
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// The filesystem of the log directory refuses `O_DIRECT` (tmpfs before Linux 6.6,
    /// ramfs, some network and FUSE filesystems). `DirectOptions::buffered_fallback` opts into
    /// buffered IO with `fdatasync` instead.
    DirectIoUnsupported {
        /// The log directory.
        path: PathBuf,
    },
    /// Opening the log directory or one of its files failed.
    Open {
        /// The directory or file.
        path: PathBuf,
        /// The error the operating system reported.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(error) => write!(f, "invalid config: {error}"),
            Error::ConfigMismatch {
                field,
                config,
                disk,
            } => write!(
                f,
                "config does not match the log on disk: `{field}` is {config} in the config \
                 but {disk} on disk"
            ),
            Error::NotALog { reason } => write!(f, "not a Ballast log: {reason}"),
            Error::MetadataMissing { segment_count } => write!(
                f,
                "{segment_count} segment file(s) found but the log metadata is missing"
            ),
            Error::FormatVersion { found, supported } => write!(
                f,
                "format version {found} on disk, this build supports version {supported}"
            ),
            Error::Corruption {
                segment,
                offset_bytes,
                kind,
            } => write!(
                f,
                "corruption of acknowledged data in segment {segment} at byte offset \
                 {offset_bytes}: {kind:?}"
            ),
            Error::Io {
                operation,
                segment,
                offset_bytes,
                source,
            } => {
                write!(f, "io error during {operation:?}")?;
                if let Some(segment) = segment {
                    write!(f, " on segment {segment}")?;
                }
                if let Some(offset_bytes) = offset_bytes {
                    write!(f, " at byte offset {offset_bytes}")?;
                }
                write!(f, ": {source}")
            }
            Error::Failed {
                operation,
                segment,
                cause,
            } => write!(
                f,
                "log stopped after a failed {operation:?} on segment {segment} ({cause}); \
                 reopen to recover"
            ),
            Error::RecordTooLarge {
                size_bytes,
                size_bytes_max,
            } => write!(
                f,
                "record of {size_bytes} bytes exceeds record_size_bytes_max ({size_bytes_max})"
            ),
            Error::BufferTooSmall { size_bytes } => {
                write!(f, "buffer too small: the record has {size_bytes} bytes")
            }
            Error::LsnOutOfRange {
                lsn,
                lsn_first,
                lsn_next,
            } => write!(
                f,
                "lsn {lsn} is outside the log, which holds [{lsn_first}, {lsn_next})"
            ),
            Error::LogFull { lsn_next } => write!(
                f,
                "log full at lsn {lsn_next}: all segments in use; truncate_prefix frees them"
            ),
            Error::BatchTooLarge {
                record_count,
                size_bytes,
            } => write!(
                f,
                "batch of {record_count} records ({size_bytes} bytes) exceeds a staging batch"
            ),
            Error::Closed => write!(f, "the shared log is closed"),
            Error::Locked { path } => write!(
                f,
                "log directory {} is locked by another writer",
                path.display()
            ),
            Error::DirectIoUnsupported { path } => write!(
                f,
                "the filesystem of {} refuses O_DIRECT; use a filesystem that accepts it \
                 (ext4, xfs, btrfs) or opt into the buffered fallback",
                path.display()
            ),
            Error::Open { path, source } => write!(f, "cannot open {}: {source}", path.display()),
        }
    }
}

impl Error {
    /// The same error again, for every producer that waits on one failure. An IO error keeps
    /// its `errno` (or its kind), not its message.
    pub(crate) fn duplicate(&self) -> Error {
        let io = |source: &io::Error| match source.raw_os_error() {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::from(source.kind()),
        };
        match self {
            Error::Config(error) => Error::Config(*error),
            Error::ConfigMismatch {
                field,
                config,
                disk,
            } => Error::ConfigMismatch {
                field,
                config: *config,
                disk: *disk,
            },
            Error::NotALog { reason } => Error::NotALog { reason },
            Error::MetadataMissing { segment_count } => Error::MetadataMissing {
                segment_count: *segment_count,
            },
            Error::FormatVersion { found, supported } => Error::FormatVersion {
                found: *found,
                supported: *supported,
            },
            Error::Corruption {
                segment,
                offset_bytes,
                kind,
            } => Error::Corruption {
                segment: *segment,
                offset_bytes: *offset_bytes,
                kind: *kind,
            },
            Error::Io {
                operation,
                segment,
                offset_bytes,
                source,
            } => Error::Io {
                operation: *operation,
                segment: *segment,
                offset_bytes: *offset_bytes,
                source: io(source),
            },
            Error::Failed {
                operation,
                segment,
                cause,
            } => Error::Failed {
                operation: *operation,
                segment: *segment,
                cause: *cause,
            },
            Error::RecordTooLarge {
                size_bytes,
                size_bytes_max,
            } => Error::RecordTooLarge {
                size_bytes: *size_bytes,
                size_bytes_max: *size_bytes_max,
            },
            Error::BufferTooSmall { size_bytes } => Error::BufferTooSmall {
                size_bytes: *size_bytes,
            },
            Error::LsnOutOfRange {
                lsn,
                lsn_first,
                lsn_next,
            } => Error::LsnOutOfRange {
                lsn: *lsn,
                lsn_first: *lsn_first,
                lsn_next: *lsn_next,
            },
            Error::LogFull { lsn_next } => Error::LogFull {
                lsn_next: *lsn_next,
            },
            Error::BatchTooLarge {
                record_count,
                size_bytes,
            } => Error::BatchTooLarge {
                record_count: *record_count,
                size_bytes: *size_bytes,
            },
            Error::Closed => Error::Closed,
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::DirectIoUnsupported { path } => {
                Error::DirectIoUnsupported { path: path.clone() }
            }
            Error::Open { path, source } => Error::Open {
                path: path.clone(),
                source: io(source),
            },
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::Open { source, .. } => Some(source),
            Error::Config(error) => Some(error),
            _ => None,
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Error {
        Error::Config(error)
    }
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
