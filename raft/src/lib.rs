//! # ballast-openraft: Ballast as the log store of openraft 0.9
//!
//! [`BallastLogStore`] implements openraft's storage v2 API ([`RaftLogStorage`] and
//! [`RaftLogReader`]) over a Ballast [`SharedLog`](ballast_log::SharedLog), on real files
//! ([`DirectStorage`](ballast_log::storage::DirectStorage)) or any other storage.
//!
//! - **Index = LSN.** Raft entry `i` is the log's record `i`. A purge past the end of the log
//!   (a snapshot installed beyond it) restarts the log, empty, at the index after the
//!   snapshot, so that the mapping holds for every later entry.
//! - **Durability.** `append` stages the entries and returns; they are readable at once (from
//!   the tail cache) and one flusher thread fires the flush callbacks, in order, once group
//!   commit has made them durable. The vote and the last purged log id live in the log's vote
//!   blob, replaced atomically and durably when they change; the committed log id rides along
//!   with the next save (or `close`) once its entry is durable. `truncate` is durable when it
//!   returns, and a purge drops whole segments.
//! - **Encoding.** Entries and the blob are postcard behind one format byte (`codec.rs`).
//!
//! The [`cluster`] module is an in-process cluster (network, state machine, an in-memory log
//! store) for the examples, the tests and the benchmark.
//!
//! [`RaftLogStorage`]: openraft::storage::RaftLogStorage
//! [`RaftLogReader`]: openraft::RaftLogReader

#![warn(missing_docs)]

pub mod cluster;
mod codec;
mod error;
mod flush;
mod reader;
mod store;
mod tail;

pub use crate::codec::{ENTRY_FORMAT, META_FORMAT};
pub use crate::error::{DecodeReason, Error};
pub use crate::reader::BallastLogReader;
pub use crate::store::{BallastLogStore, StoreOptions};
