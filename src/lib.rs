//! # Ballast: an embeddable, crash-safe, append-only log
//!
//! Records are appended to a [`Log`] and identified by a dense `u64` log sequence number
//! ([`Lsn`]), like Kafka offsets. The log is a state machine that does no IO of its own: every
//! byte goes through the [`storage::Storage`] seam, to real files or to a simulator. Every
//! buffer is allocated when the log opens; appending, flushing, reading and rolling segments
//! allocate nothing afterwards.
//!
//! ## Durability contract
//!
//! - [`Log::append`] returns the record's LSN. The record is readable at once with
//!   [`Log::read`] (read-your-writes), but a [`Cursor`] yields only durable records, so a view
//!   derived from the log never gets ahead of it.
//! - [`Log::flush`] (and the flush-on-size and flush-on-timeout policies of [`Config`]) writes
//!   and syncs. [`Log::durable_lsn`] is the watermark: every record below it survives any
//!   crash. Acknowledgement is in order: a record is durable only when every record before it
//!   is.
//! - A sector that holds acknowledged data is never written again: a flush that ends inside a
//!   sector pads it, and the next records start in a fresh sector.
//! - Recovery keeps the longest valid prefix. It truncates a torn tail (records that were never
//!   acknowledged) and reports damage to acknowledged data as [`Error::Corruption`] in the
//!   default [`RecoveryMode::Strict`] (and as `lsn_lost` in [`RecoveryMode::PointInTime`]).
//!   Damage is told from a torn write by a fact written after the record was durable: a later
//!   block's durable watermark, an attestation block an idle log writes
//!   ([`Config::attest_idle_ns`]), the metadata's checkpoint (every open and every
//!   [`Log::close`]), or a valid block a whole window ([`Config::window_size_bytes`]) further on.
//!   One case stays ambiguous: after a crash, damage to the blocks of the last sync, before any
//!   of these facts was written, reads as a torn tail. [`Log::attested_lsn`] says where the
//!   attested part ends, and `docs/recovery.md` ("Known limits") bounds the rest.
//! - At most [`Config::window_size_bytes`] are ever written and not yet durable: bulk appends
//!   sync by themselves when the window is full, and [`Log::durable_lsn`] advances then too.
//! - A failed write or sync stops the log: every later call returns [`Error::Failed`], and
//!   reopening recovers from what is on disk.
//!
//! ## Many threads
//!
//! A [`Log`] is used from one thread. [`SharedLog`] wraps one for many: producers append from
//! any thread and wait for durability ([`Durability::Wait`]) or not ([`Durability::Staged`],
//! then [`SharedLog::wait_durable`]); a committer thread group-commits everything staged while
//! the previous sync was in flight. [`TailReader`]s follow the durable end from other threads.
//!
//! ## Hard limits
//!
//! Every limit is a [`Config`] field with its unit, checked by [`Config::validate`]; the
//! absolute bounds are constants in [`config`] (for example a record is at most
//! [`config::RECORD_SIZE_BYTES_MAX`] bytes, a segment at most
//! [`config::SEGMENT_SIZE_BYTES_MAX`]).
//!
//! ## Example
//!
//! ```
//! use ballast_log::{Config, Log, storage::MemStorage};
//!
//! let config = Config {
//!     segment_size_bytes: 1 << 20,
//!     block_size_bytes: 16 << 10,
//!     write_buffer_size_bytes: 64 << 10,
//!     read_buffer_size_bytes: 64 << 10,
//!     record_size_bytes_max: 64 << 10,
//!     segment_count_max: 8,
//!     ..Config::default()
//! };
//! let mut log = Log::open(config.clone(), MemStorage::new(4096))?;
//! let first = log.append(b"hello")?;
//! log.append_batch(&[b"a".as_slice(), b"b".as_slice()])?;
//! log.flush()?;
//! assert_eq!(log.durable_lsn(), first + 3);
//!
//! let mut buffer = [0u8; 16];
//! let size = log.read(first, &mut buffer)?;
//! assert_eq!(&buffer[..size], b"hello");
//!
//! // Reopen from the same storage: everything flushed is there.
//! let storage = log.close()?;
//! let mut log = Log::open(config, storage)?;
//! let mut cursor = log.cursor(first)?;
//! let mut count = 0;
//! while let Some(record) = log.cursor_next(&mut cursor)? {
//!     assert_eq!(record.lsn, first + count);
//!     count += 1;
//! }
//! assert_eq!(count, 3);
//! # Ok::<(), ballast_log::Error>(())
//! ```

#![warn(missing_docs)]

pub mod config;
mod error;
pub mod format;
mod log;
#[doc(hidden)]
pub mod planted;
mod read;
pub mod recovery;
mod sector_cache;
mod sectors;
mod segments;
mod shared;
pub mod staging;
pub mod storage;
pub mod tail;

pub use crate::config::{Config, ConfigError, RecoveryMode};
pub use crate::error::{CorruptionKind, Error, IoCause, IoOperation, Result};
pub use crate::log::{Cursor, Log, Record};
pub use crate::recovery::{RecoveryReport, Verdict};
pub use crate::shared::{Durability, SharedLog, TailReader};
pub use crate::staging::SharedOptions;

/// A log sequence number: the dense, 0-based position of a record in the log.
pub type Lsn = u64;

/// The README's examples compile and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
