//! Reading entries back: from the tail cache, else from the log; and what the store, its
//! readers and its flusher share.

use crate::codec;
use crate::error::{DecodeReason, Error};
use crate::tail::TailCache;
use ballast_log::storage::Storage;
use ballast_log::{Lsn, SharedLog};
use openraft::{
    ErrorSubject, ErrorVerb, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError,
};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

/// The size a reader's buffer starts at; it grows to the largest record read.
const READ_BUFFER_SIZE_BYTES_INITIAL: usize = 64 * 1024;

/// What the store, its readers and its flusher thread share.
pub(crate) struct Shared<S: Storage + Send + 'static> {
    /// `None` once the store is dropped: the log closes then, even while readers remain, so
    /// that its directory can be opened again at once.
    log: RwLock<Option<SharedLog<S>>>,
    pub(crate) tail: Mutex<TailCache>,
}

impl<S: Storage + Send + 'static> Shared<S> {
    pub(crate) fn new(log: SharedLog<S>, tail: TailCache) -> Shared<S> {
        Shared {
            log: RwLock::new(Some(log)),
            tail: Mutex::new(tail),
        }
    }

    /// Runs `work` on the open log; [`Error::Closed`] after the store was dropped.
    pub(crate) fn with_log<R>(
        &self,
        work: impl FnOnce(&SharedLog<S>) -> Result<R, ballast_log::Error>,
    ) -> Result<R, Error> {
        let log: RwLockReadGuard<'_, _> = self.log.read().expect("log lock");
        let log = log.as_ref().ok_or(Error::Closed)?;
        Ok(work(log)?)
    }

    /// Takes the log out, for closing it; readers get [`Error::Closed`] from then on.
    pub(crate) fn log_take(&self) -> Option<SharedLog<S>> {
        self.log.write().expect("log lock").take()
    }

    pub(crate) fn tail(&self) -> MutexGuard<'_, TailCache> {
        self.tail.lock().expect("tail lock")
    }
}

/// Reads entries for openraft's replication and state machine tasks; any number of them may
/// read beside the store.
pub struct BallastLogReader<C: RaftTypeConfig, S: Storage + Send + 'static> {
    shared: Arc<Shared<S>>,
    buffer: Vec<u8>,
    _config: PhantomData<C>,
}

impl<C: RaftTypeConfig, S: Storage + Send + 'static> BallastLogReader<C, S> {
    pub(crate) fn new(shared: Arc<Shared<S>>) -> BallastLogReader<C, S> {
        BallastLogReader {
            shared,
            buffer: vec![0; READ_BUFFER_SIZE_BYTES_INITIAL],
            _config: PhantomData,
        }
    }
}

impl<C, S> BallastLogReader<C, S>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
    S: Storage + Send + 'static,
{
    /// The visible entries of `range` that exist, in order.
    pub(crate) fn entries(&mut self, range: impl RangeBounds<u64>) -> Result<Vec<C::Entry>, Error> {
        let (lsn_start, lsn_end) = range_to_lsns(range);
        // The cached part is copied out under the lock and decoded after it, so that the
        // flusher never waits for a decode.
        let (lsn_start, lsn_cached, cached) = {
            let tail = self.shared.tail();
            let lsn_start = lsn_start.max(tail.lsn_visible());
            let lsn_end = lsn_end.min(tail.lsn_end());
            let lsn_cached = tail.lsn_first().clamp(lsn_start, lsn_end.max(lsn_start));
            let cached: Vec<Vec<u8>> = (lsn_cached..lsn_end)
                .map(|lsn| tail.get(lsn).expect("cached").to_vec())
                .collect();
            (lsn_start, lsn_cached, cached)
        };
        let mut entries = Vec::with_capacity((lsn_cached - lsn_start) as usize + cached.len());
        for lsn in lsn_start..lsn_cached {
            match self.entry_from_log(lsn) {
                Ok(entry) => entries.push(entry),
                Err(error) => match self.vanished(lsn, error)? {
                    Vanished::Purged => continue,
                    Vanished::Truncated => return Ok(entries),
                },
            }
        }
        for (offset, record) in cached.iter().enumerate() {
            entries.push(entry_checked::<C>(record, lsn_cached + offset as Lsn)?);
        }
        Ok(entries)
    }

    /// Whether entry `lsn`, which the log no longer has, was purged or truncated since the
    /// read began (a reader runs beside the store): openraft allows a read to miss entries,
    /// and finds out why from the log state. Any other error is returned.
    fn vanished(&self, lsn: Lsn, error: Error) -> Result<Vanished, Error> {
        if !matches!(error, Error::Log(ballast_log::Error::LsnOutOfRange { .. })) {
            return Err(error);
        }
        let tail = self.shared.tail();
        if lsn < tail.lsn_visible() {
            return Ok(Vanished::Purged);
        }
        if lsn >= tail.lsn_end() {
            return Ok(Vanished::Truncated);
        }
        Err(error)
    }

    /// Entry `lsn`, which must exist.
    pub(crate) fn entry(&mut self, lsn: Lsn) -> Result<C::Entry, Error> {
        let record = self.shared.tail().get(lsn).map(<[u8]>::to_vec);
        match record {
            Some(record) => entry_checked::<C>(&record, lsn),
            None => self.entry_from_log(lsn),
        }
    }

    fn entry_from_log(&mut self, lsn: Lsn) -> Result<C::Entry, Error> {
        let buffer = &mut self.buffer;
        let read = self.shared.with_log(|log| log.read(lsn, buffer));
        let size_bytes = match read {
            Err(Error::Log(ballast_log::Error::BufferTooSmall { size_bytes })) => {
                self.buffer.resize(size_bytes, 0);
                let buffer = &mut self.buffer;
                self.shared.with_log(|log| log.read(lsn, buffer))?
            }
            read => read?,
        };
        entry_checked::<C>(&self.buffer[..size_bytes], lsn)
    }
}

/// Why an entry a read wanted is gone.
enum Vanished {
    /// A purge hid it: later entries may still be there.
    Purged,
    /// A truncation removed it, and every entry after it.
    Truncated,
}

/// Decodes the record at `lsn` and checks that it is the entry of index `lsn`.
fn entry_checked<C>(record: &[u8], lsn: Lsn) -> Result<C::Entry, Error>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let entry: C::Entry = codec::entry_decode(record, lsn)?;
    let index = entry.get_log_id().index;
    if index != lsn {
        let reason = DecodeReason::Index(index);
        return Err(Error::Decode { lsn, reason });
    }
    Ok(entry)
}

/// The LSNs `[start, end)` of a range of Raft indexes (index = LSN).
fn range_to_lsns(range: impl RangeBounds<u64>) -> (Lsn, Lsn) {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.saturating_add(1),
        Bound::Excluded(&end) => end,
        Bound::Unbounded => Lsn::MAX,
    };
    (start, end.max(start))
}

impl<C, S> RaftLogReader<C> for BallastLogReader<C, S>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
    S: Storage + Send + 'static,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.entries(range)
            .map_err(|error| error.into_storage(ErrorSubject::Logs, ErrorVerb::Read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_map_to_half_open_lsns() {
        assert_eq!(range_to_lsns(3..7), (3, 7));
        assert_eq!(range_to_lsns(3..=7), (3, 8));
        assert_eq!(range_to_lsns(..), (0, Lsn::MAX));
        assert_eq!(range_to_lsns(5..5), (5, 5));
        let (start, end) = (9, 2);
        assert_eq!(range_to_lsns(start..end), (9, 9));
    }
}
