//! [`BallastLogStore`]: openraft's `RaftLogStorage` over a Ballast [`SharedLog`].

use crate::codec::{self, Meta};
use crate::error::Error;
use crate::flush::Flusher;
use crate::reader::{BallastLogReader, Shared};
use crate::tail::TailCache;
use ballast_log::storage::Storage;
use ballast_log::{Durability, Log, Lsn, SharedLog, SharedOptions};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig,
    StorageError, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

/// How a [`BallastLogStore`] runs over its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// The staging area of the log's [`SharedLog`]: an append larger than one staging batch
    /// is staged in several.
    pub shared: SharedOptions,
    /// Durable entries kept in memory at the end of the log, beyond those not yet durable, so
    /// that replication reads them without reading the log (`tail.rs`).
    pub tail_cache_size_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            shared: SharedOptions::default(),
            tail_cache_size_bytes: 8 << 20,
        }
    }
}

/// A Raft log in a Ballast log: entry `i` is record `i` (index = LSN), the vote and the last
/// purged log id are the log's vote blob, and `append` acknowledges through group commit.
///
/// - **Index = LSN.** A fresh log starts at LSN 0, openraft's first index. A purge past the
///   end (a snapshot installed beyond the log) restarts the log, empty, at the index after
///   the snapshot (`truncate_prefix` past the end), so the next entry gets its index as LSN.
/// - **Purge** saves `last_purged` first, durably, then drops the whole segments below it;
///   entries of the kept segment up to `last_purged` stay on disk but are hidden.
/// - **Truncate** is `truncate_suffix`: durable when it returns.
/// - **Append** stages the encoded entries and returns; one flusher thread fires the flush
///   callbacks in order as commits make them durable.
///
/// Operations that write the vote blob or truncate block the calling task for a sync.
pub struct BallastLogStore<C: RaftTypeConfig, S: Storage + Send + 'static> {
    shared: Arc<Shared<S>>,
    flusher: Flusher<LogFlushed<C>>,
    reader: BallastLogReader<C, S>,
    /// The blob as last saved.
    meta: Meta<C::NodeId>,
    /// The last committed log id openraft gave; saved with the next blob, once durable.
    committed: Option<LogId<C::NodeId>>,
    /// The log id of the last entry present (not yet durable, maybe); `None` if none is.
    last_log_id: Option<LogId<C::NodeId>>,
    /// The log's `Config::record_size_bytes_max`: an append checks every entry against it
    /// before it stages any, so that a refused append leaves nothing behind.
    record_size_bytes_max: u32,
    options: StoreOptions,
}

impl<C, S> BallastLogStore<C, S>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    S: Storage + Send + 'static,
{
    /// Takes over an open log: reads the vote blob, finishes a purge past the end that a
    /// crash interrupted, finds the last entry, and starts the flusher.
    pub fn open(log: Log<S>, options: StoreOptions) -> Result<Self, Error> {
        let meta: Meta<C::NodeId> = codec::meta_decode(log.vote())?;
        let record_size_bytes_max = log.config().record_size_bytes_max;
        let log = SharedLog::open(log, options.shared.clone())?;
        let lsn_visible = meta.last_purged.as_ref().map_or(0, |id| id.index + 1);
        if lsn_visible > log.next_lsn() {
            // The purge saved `last_purged`, then a crash came before the restart.
            log.truncate_prefix(lsn_visible)?;
        }
        let lsn_visible = lsn_visible.max(log.first_lsn()?);
        let lsn_next = log.next_lsn();
        let tail = TailCache::new(lsn_next, lsn_visible, options.tail_cache_size_bytes);
        let shared = Arc::new(Shared::new(log, tail));
        let flusher =
            Flusher::start(Arc::clone(&shared)).map_err(|source| Error::FlusherSpawn { source })?;
        let mut store = BallastLogStore {
            reader: BallastLogReader::new(Arc::clone(&shared)),
            shared,
            flusher,
            committed: meta.committed.clone(),
            meta,
            last_log_id: None,
            record_size_bytes_max,
            options,
        };
        store.last_log_id = store.last_present()?;
        tracing::info!(
            lsn_visible,
            lsn_next,
            last_log_id = ?store.last_log_id,
            "raft log store opened"
        );
        Ok(store)
    }

    /// Closes the log cleanly after making everything durable, saving the committed log id.
    pub fn close(mut self) -> Result<S, Error> {
        self.flusher.stop();
        let lsn_end = self.shared.tail().lsn_end();
        self.shared
            .with_log(|log| crate::flush::durable_wait(log, lsn_end))?;
        self.meta_save()?;
        let log = self.shared.log_take().ok_or(Error::Closed)?;
        Ok(log.close()?)
    }

    /// The log id of the last visible entry, read back from the log.
    fn last_present(&mut self) -> Result<Option<LogId<C::NodeId>>, Error> {
        let (lsn_visible, lsn_end) = {
            let tail = self.shared.tail();
            (tail.lsn_visible(), tail.lsn_end())
        };
        if lsn_end <= lsn_visible {
            return Ok(None);
        }
        let entry = self.reader.entry(lsn_end - 1)?;
        Ok(Some(entry.get_log_id().clone()))
    }

    /// Saves the vote, the last purged and the committed log id, durably. The committed log
    /// id goes in only once its entry is durable here: after a crash, openraft re-applies the
    /// entries up to it, so they must be in the log.
    fn meta_save(&mut self) -> Result<(), Error> {
        let durable = self.shared.with_log(|log| Ok(log.durable_lsn()))?;
        let committed_durable = match &self.committed {
            Some(committed) if committed.index < durable => Some(committed.clone()),
            Some(committed) if Some(committed) <= self.meta.last_purged.as_ref() => {
                Some(committed.clone())
            }
            _ => self.meta.committed.clone(),
        };
        let meta = Meta {
            committed: committed_durable,
            ..self.meta.clone()
        };
        let blob = codec::meta_encode(&meta)?;
        self.shared.with_log(|log| log.vote_save(&blob))?;
        self.meta = meta;
        Ok(())
    }

    /// Encodes `entries`, checking that they follow each other. Entries below `lsn_visible`
    /// are purged already (a snapshot holds them): they are left out, as a purge would drop
    /// them.
    fn encode(
        &mut self,
        entries: impl IntoIterator<Item = C::Entry>,
        lsn_visible: Lsn,
    ) -> Result<Encoded<C>, Error> {
        let mut encoded = Encoded {
            records: Vec::new(),
            lsn_first: 0,
            last: None,
        };
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            if log_id.index < lsn_visible {
                tracing::debug!(%log_id, lsn_visible, "append of a purged entry left out");
                continue;
            }
            match &encoded.last {
                None => encoded.lsn_first = log_id.index,
                Some(last) if log_id.index != last.index + 1 => {
                    let index_expected = last.index + 1;
                    return Err(Error::IndexGap {
                        index: log_id.index,
                        index_expected,
                    });
                }
                Some(_) => {}
            }
            let record = codec::entry_encode(&entry, log_id.index)?;
            if record.len() > self.record_size_bytes_max as usize {
                return Err(Error::EntryTooLarge {
                    index: log_id.index,
                    size_bytes: record.len(),
                    size_bytes_max: self.record_size_bytes_max,
                });
            }
            encoded.records.push(record);
            encoded.last = Some(log_id);
        }
        Ok(encoded)
    }

    /// Makes the log continue at `lsn`: it must already, unless it holds no visible entry and
    /// `lsn` is past its end (a first append at an index other than 0): then it restarts.
    fn continue_at(&mut self, lsn: Lsn) -> Result<(), Error> {
        let (lsn_visible, lsn_end) = {
            let tail = self.shared.tail();
            (tail.lsn_visible(), tail.lsn_end())
        };
        if lsn == lsn_end {
            return Ok(());
        }
        if lsn_end > lsn_visible || lsn < lsn_end {
            return Err(Error::IndexGap {
                index: lsn,
                index_expected: lsn_end,
            });
        }
        self.restart_at(lsn)
    }

    /// Restarts the log, empty, at `lsn` past its end.
    fn restart_at(&mut self, lsn: Lsn) -> Result<(), Error> {
        let shared = &self.shared;
        self.flusher.exclusive(|queue| {
            shared.with_log(|log| log.truncate_prefix(lsn))?;
            shared.tail().purge(lsn);
            queue.fire_all();
            Ok::<(), Error>(())
        })?;
        self.last_log_id = None;
        Ok(())
    }

    /// Stages the records of entries `lsn..` in batches that fit the staging area.
    fn stage(&mut self, records: &[Vec<u8>], lsn: Lsn) -> Result<(), Error> {
        let shared_options = &self.options.shared;
        let size_bytes_max = u64::from(shared_options.staging_size_bytes);
        let count_max = shared_options.staging_record_count_max as usize;
        let mut start = 0;
        while start < records.len() {
            let mut end = start;
            let mut size_bytes = 0;
            while end < records.len() && end - start < count_max {
                size_bytes += records[end].len() as u64;
                if end > start && size_bytes > size_bytes_max {
                    break;
                }
                end += 1;
            }
            let batch = &records[start..end];
            let lsn_batch = self
                .shared
                .with_log(|log| log.append_batch(batch, Durability::Staged))?;
            let index = lsn + start as Lsn;
            if lsn_batch != index {
                return Err(Error::LsnMismatch {
                    index,
                    lsn: lsn_batch,
                });
            }
            start = end;
        }
        Ok(())
    }

    fn append_entries(
        &mut self,
        entries: impl IntoIterator<Item = C::Entry>,
        callback: LogFlushed<C>,
    ) -> Result<(), Error> {
        let lsn_visible = self.shared.tail().lsn_visible();
        let encoded = self.encode(entries, lsn_visible)?;
        if let Some(last) = encoded.last.clone() {
            self.continue_at(encoded.lsn_first)?;
            self.stage(&encoded.records, encoded.lsn_first)?;
            self.shared.tail().push(encoded.records);
            self.last_log_id = Some(last);
        }
        // An empty append is flushed once everything before it is.
        let lsn_end = self.shared.tail().lsn_end();
        self.flusher.enqueue(lsn_end, callback);
        Ok(())
    }

    fn truncate_entries(&mut self, lsn: Lsn) -> Result<(), Error> {
        let (lsn_visible, lsn_end) = {
            let tail = self.shared.tail();
            (tail.lsn_visible(), tail.lsn_end())
        };
        let lsn = lsn.max(lsn_visible);
        if lsn >= lsn_end {
            return Ok(());
        }
        let shared = &self.shared;
        self.flusher.exclusive(|queue| {
            shared.with_log(|log| log.truncate_suffix(lsn))?;
            shared.tail().truncate_suffix(lsn);
            queue.fire_all();
            Ok::<(), Error>(())
        })?;
        self.last_log_id = self.last_present()?;
        Ok(())
    }

    fn purge_entries(&mut self, log_id: LogId<C::NodeId>) -> Result<(), Error> {
        if Some(&log_id) <= self.meta.last_purged.as_ref() {
            return Ok(());
        }
        // Durable first: once segments are gone, the blob must say why.
        let previous = self.meta.last_purged.replace(log_id.clone());
        if let Err(error) = self.meta_save() {
            self.meta.last_purged = previous;
            return Err(error);
        }
        let lsn = log_id.index + 1;
        let lsn_end = self.shared.tail().lsn_end();
        if lsn > lsn_end {
            return self.restart_at(lsn);
        }
        self.shared.tail().purge(lsn);
        if lsn == lsn_end {
            self.last_log_id = None;
        }
        self.shared.with_log(|log| log.truncate_prefix(lsn))
    }
}

/// Entries encoded for an append.
struct Encoded<C: RaftTypeConfig> {
    records: Vec<Vec<u8>>,
    lsn_first: Lsn,
    last: Option<LogId<C::NodeId>>,
}

impl<C: RaftTypeConfig, S: Storage + Send + 'static> Drop for BallastLogStore<C, S> {
    /// Stops the flusher and drops the log without closing it, as a crash would leave it
    /// (what was staged is still synced: `SharedLog`'s drop drains). Call
    /// [`close`](BallastLogStore::close) to close it cleanly.
    fn drop(&mut self) {
        self.flusher.stop();
        drop(self.shared.log_take());
    }
}

/// Maps an adapter error into openraft's, for the logs.
fn logs_error<NID: openraft::NodeId>(verb: ErrorVerb) -> impl FnOnce(Error) -> StorageError<NID> {
    move |error| error.into_storage(ErrorSubject::Logs, verb)
}

impl<C, S> RaftLogReader<C> for BallastLogStore<C, S>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    S: Storage + Send + 'static,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.reader.try_get_log_entries(range).await
    }
}

impl<C, S> RaftLogStorage<C> for BallastLogStore<C, S>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
    S: Storage + Send + 'static,
{
    type LogReader = BallastLogReader<C, S>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let last_purged_log_id = self.meta.last_purged.clone();
        let last_log_id = self.last_log_id.clone().or(last_purged_log_id.clone());
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        BallastLogReader::new(Arc::clone(&self.shared))
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let previous = self.meta.vote.replace(vote.clone());
        self.meta_save().map_err(|error| {
            self.meta.vote = previous;
            error.into_storage(ErrorSubject::Vote, ErrorVerb::Write)
        })
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.meta.vote.clone())
    }

    /// Kept in memory and saved with the next vote, purge or close, once its entry is
    /// durable: saving it on every commit would cost a metadata sync each, and a committed
    /// log id older than the last one is safe to restart from (openraft re-applies less).
    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_entries(entries, callback)
            .map_err(logs_error(ErrorVerb::Write))
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.truncate_entries(log_id.index)
            .map_err(logs_error(ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.purge_entries(log_id)
            .map_err(logs_error(ErrorVerb::Delete))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cluster::{Record, TypeConfig};
    use ballast_log::storage::MemStorage;
    use ballast_log::Config;
    use openraft::storage::RaftLogStorageExt;
    use openraft::testing::log_id;
    use openraft::{Entry, EntryPayload};

    /// Small segments, so that truncations and purges make and drop segments often.
    pub(crate) fn config() -> Config {
        Config {
            block_size_bytes: 16 * 1024,
            segment_size_bytes: 256 * 1024,
            write_buffer_size_bytes: 64 * 1024,
            window_size_bytes: 1024 * 1024,
            record_size_bytes_max: 64 * 1024,
            read_buffer_size_bytes: 128 * 1024,
            ..Config::default()
        }
    }

    fn entry(index: u64) -> Entry<TypeConfig> {
        let payload = EntryPayload::Normal(Record(vec![index as u8; 10]));
        Entry {
            log_id: log_id(1, 1, index),
            payload,
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    }

    #[test]
    fn open_finishes_a_purge_past_the_end_that_a_crash_interrupted() {
        let runtime = runtime();
        let log = Log::open(config(), MemStorage::new(4096)).unwrap();
        let mut store =
            BallastLogStore::<TypeConfig, _>::open(log, StoreOptions::default()).unwrap();
        runtime
            .block_on(store.blocking_append((0..10).map(entry)))
            .unwrap();
        let storage = store.close().unwrap();
        // The purge saved `last_purged` and stopped before the restart.
        let mut log = Log::open(config(), storage).unwrap();
        let meta = Meta::<u64> {
            last_purged: Some(log_id(1, 1, 99)),
            ..Meta::default()
        };
        log.vote_save(&codec::meta_encode(&meta).unwrap()).unwrap();
        let log = Log::open(config(), log.close().unwrap()).unwrap();
        let mut store =
            BallastLogStore::<TypeConfig, _>::open(log, StoreOptions::default()).unwrap();
        let state = runtime.block_on(store.get_log_state()).unwrap();
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 99)));
        assert_eq!(
            store.shared.with_log(|log| Ok(log.next_lsn())).unwrap(),
            100
        );
        runtime
            .block_on(store.blocking_append([entry(100)]))
            .unwrap();
        let entries = runtime.block_on(store.try_get_log_entries(..)).unwrap();
        assert_eq!(entries, [entry(100)]);
    }

    #[test]
    fn an_append_below_the_end_is_a_gap_not_an_overwrite() {
        let runtime = runtime();
        let log = Log::open(config(), MemStorage::new(4096)).unwrap();
        let mut store =
            BallastLogStore::<TypeConfig, _>::open(log, StoreOptions::default()).unwrap();
        runtime
            .block_on(store.blocking_append((0..5).map(entry)))
            .unwrap();
        let error = store.append_entries_blocking_error(3);
        assert!(matches!(
            error,
            Error::IndexGap {
                index: 3,
                index_expected: 5
            }
        ));
    }

    #[test]
    fn a_refused_append_leaves_nothing_behind() {
        let runtime = runtime();
        let log = Log::open(config(), MemStorage::new(4096)).unwrap();
        let mut store =
            BallastLogStore::<TypeConfig, _>::open(log, StoreOptions::default()).unwrap();
        let large = Entry {
            log_id: log_id(1, 1, 2),
            payload: EntryPayload::Normal(Record(vec![0; 65 * 1024])),
        };
        let batch = [entry(0), entry(1), large];
        let refused = runtime.block_on(store.blocking_append(batch));
        assert!(refused.is_err());
        runtime
            .block_on(store.blocking_append((0..3).map(entry)))
            .unwrap();
        let entries = runtime.block_on(store.try_get_log_entries(..)).unwrap();
        assert_eq!(entries, (0..3).map(entry).collect::<Vec<_>>());
    }

    impl<S: Storage + Send + 'static> BallastLogStore<TypeConfig, S> {
        /// The error of an append at `index`, which must fail before any callback.
        fn append_entries_blocking_error(&mut self, index: u64) -> Error {
            let lsn_visible = self.shared.tail().lsn_visible();
            let encoded = self.encode([entry(index)], lsn_visible).unwrap();
            self.continue_at(encoded.lsn_first).unwrap_err()
        }
    }
}
