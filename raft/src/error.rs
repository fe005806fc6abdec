//! The adapter's error: what can go wrong between openraft and the log, with the fields a
//! caller needs. openraft sees it wrapped in a `StorageError` ([`Error::into_storage`]).

use ballast_log::Lsn;
use openraft::{AnyError, ErrorSubject, ErrorVerb, NodeId, StorageError, StorageIOError};
use std::fmt;

/// Why a log store operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The Ballast log failed (IO, corruption, a full log, a closed log).
    Log(ballast_log::Error),
    /// An entry could not be encoded.
    Encode {
        /// The Raft index of the entry.
        index: u64,
        /// What the encoder said.
        source: postcard::Error,
    },
    /// A record read from the log is not an entry this adapter wrote.
    Decode {
        /// The record's LSN (its Raft index).
        lsn: Lsn,
        /// What is wrong with it.
        reason: DecodeReason,
    },
    /// The vote blob in the log's metadata is not one this adapter wrote.
    MetaMalformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The vote, purged and committed log ids do not fit in the log's vote blob (node ids
    /// too large for [`ballast_log::format::VOTE_SIZE_BYTES_MAX`]).
    MetaTooLarge {
        /// Their encoded size.
        size_bytes: usize,
        /// The blob's limit.
        size_bytes_max: usize,
    },
    /// An entry encodes to a record larger than the log's `Config::record_size_bytes_max`.
    EntryTooLarge {
        /// The entry's Raft index.
        index: u64,
        /// Its encoded size.
        size_bytes: usize,
        /// The log's limit.
        size_bytes_max: u32,
    },
    /// An append does not continue the log: Raft logs have no holes.
    IndexGap {
        /// The index of the entry that was offered.
        index: u64,
        /// The index the log expects next.
        index_expected: u64,
    },
    /// The log gave an entry another LSN than its Raft index: a broken mapping, never
    /// expected.
    LsnMismatch {
        /// The entry's Raft index.
        index: u64,
        /// The LSN the log assigned.
        lsn: Lsn,
    },
    /// The flusher thread could not be started.
    FlusherSpawn {
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The store was closed (dropped); a reader outlived it.
    Closed,
}

/// Why a record does not decode as an entry.
#[derive(Debug)]
pub enum DecodeReason {
    /// The record is empty.
    Empty,
    /// Its first byte names an entry format this build does not read.
    Version(u8),
    /// The decoder refused its bytes.
    Postcard(postcard::Error),
    /// It decoded, but its log id names another index than its LSN.
    Index(u64),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Log(error) => write!(f, "log: {error}"),
            Error::Encode { index, source } => write!(f, "entry {index} does not encode: {source}"),
            Error::Decode { lsn, reason } => write!(f, "record {lsn} is not an entry: {reason}"),
            Error::MetaMalformed { reason } => write!(f, "vote blob malformed: {reason}"),
            Error::MetaTooLarge {
                size_bytes,
                size_bytes_max,
            } => write!(
                f,
                "vote blob of {size_bytes} bytes exceeds the log's {size_bytes_max}"
            ),
            Error::EntryTooLarge {
                index,
                size_bytes,
                size_bytes_max,
            } => write!(
                f,
                "entry {index} encodes to {size_bytes} bytes, over the log's {size_bytes_max}"
            ),
            Error::IndexGap {
                index,
                index_expected,
            } => write!(
                f,
                "append at index {index}, but the log continues at {index_expected}"
            ),
            Error::LsnMismatch { index, lsn } => write!(f, "entry {index} was given LSN {lsn}"),
            Error::FlusherSpawn { source } => write!(f, "flusher thread not started: {source}"),
            Error::Closed => write!(f, "the log store is closed"),
        }
    }
}

impl fmt::Display for DecodeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeReason::Empty => write!(f, "empty record"),
            DecodeReason::Version(version) => write!(f, "unknown entry format {version}"),
            DecodeReason::Postcard(error) => write!(f, "{error}"),
            DecodeReason::Index(index) => write!(f, "it holds the entry of index {index}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Log(error) => Some(error),
            Error::Encode { source, .. } => Some(source),
            Error::FlusherSpawn { source } => Some(source),
            _ => None,
        }
    }
}

impl From<ballast_log::Error> for Error {
    fn from(error: ballast_log::Error) -> Error {
        match error {
            ballast_log::Error::Closed => Error::Closed,
            error => Error::Log(error),
        }
    }
}

impl Error {
    /// The error as openraft's `StorageError`, naming what was being done to what.
    pub fn into_storage<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> StorageError<NID> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}
