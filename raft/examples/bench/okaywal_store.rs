//! A Raft log store over okaywal, for the benchmark: every change is an okaywal entry, and the
//! log is also kept in memory, where reads are served.
//!
//! One writer thread takes every append queued since its last commit, writes them as one
//! okaywal entry (a chunk per Raft entry) and commits it (okaywal's commit waits for its
//! `fdatasync`), then fires the flush callbacks in order: group commit across appends, as the
//! Ballast store does. Votes, truncations and purges go through the same thread, in order,
//! and the caller waits for their commit. Reopening replays the entries. okaywal's
//! checkpointing is turned off: the write-ahead log is the only copy of the Raft log, so it
//! must keep every segment (a full store would checkpoint into a second structure).

use ballast_openraft::cluster::{Entry, NodeId, TypeConfig};
use okaywal::{Configuration, EntryId, LogManager, SegmentReader, WriteAheadLog};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

/// What one chunk of an okaywal entry says.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change {
    Append(Entry),
    Vote(Vote<NodeId>),
    Truncate(u64),
    Purge(LogId<NodeId>),
}

/// The log as the changes leave it.
#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

impl State {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Append(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            Change::Vote(vote) => self.vote = Some(vote),
            Change::Truncate(index) => {
                self.entries.split_off(&index);
            }
            Change::Purge(log_id) => {
                self.entries = self.entries.split_off(&(log_id.index + 1));
                self.last_purged = Some(log_id);
            }
        }
    }
}

/// What the writer thread is asked to commit.
enum Job {
    Append(Vec<Vec<u8>>, LogFlushed<TypeConfig>),
    Change(Vec<u8>, mpsc::Sender<io::Result<()>>),
}

/// The okaywal store of one node.
pub struct OkaywalLogStore {
    state: Arc<Mutex<State>>,
    jobs: mpsc::Sender<Job>,
}

/// Replays every chunk into the state; checkpoints never happen (see the module).
#[derive(Debug)]
struct Replay {
    state: Arc<Mutex<State>>,
}

impl LogManager for Replay {
    fn recover(&mut self, entry: &mut okaywal::Entry<'_>) -> io::Result<()> {
        let Some(chunks) = entry.read_all_chunks()? else {
            return Ok(());
        };
        let mut state = self.state.lock().expect("state lock");
        for chunk in chunks {
            let change = postcard::from_bytes(&chunk).map_err(io::Error::other)?;
            state.apply(change);
        }
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _: EntryId,
        _: &mut SegmentReader,
        _: &WriteAheadLog,
    ) -> io::Result<()> {
        Err(io::Error::other("the Raft log is never checkpointed"))
    }
}

impl OkaywalLogStore {
    /// Opens (or creates) the store in `dir`, replaying what it holds.
    pub fn open(dir: &Path) -> io::Result<OkaywalLogStore> {
        let state = Arc::new(Mutex::new(State::default()));
        let replay = Replay {
            state: Arc::clone(&state),
        };
        let mut configuration = Configuration::default_for(dir);
        configuration.checkpoint_after_bytes = u64::MAX;
        let wal = configuration.open(replay)?;
        let (jobs, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("okaywal-raft".into())
            .spawn(move || writer_run(&wal, &receiver))?;
        Ok(OkaywalLogStore { state, jobs })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("state lock")
    }

    /// Commits one change through the writer thread and waits for it.
    fn change(&self, change: &Change) -> io::Result<()> {
        let chunk = postcard::to_allocvec(change).map_err(io::Error::other)?;
        let (done, wait) = mpsc::channel();
        let stopped = || io::Error::other("writer stopped");
        self.jobs
            .send(Job::Change(chunk, done))
            .map_err(|_| stopped())?;
        wait.recv().map_err(|_| stopped())?
    }
}

/// A failed write as openraft's error.
fn write_error(error: io::Error) -> StorageError<NodeId> {
    StorageIOError::write(AnyError::new(&error)).into()
}

/// The writer thread: commits every queued job as one okaywal entry, then answers them in
/// order. Stops when the store is dropped.
fn writer_run(wal: &WriteAheadLog, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        let result = commit(wal, &batch);
        for job in batch {
            let result = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(io::Error::new(error.kind(), error.to_string())),
            };
            match job {
                Job::Append(_, callback) => callback.log_io_completed(result),
                Job::Change(_, done) => _ = done.send(result),
            }
        }
    }
}

fn commit(wal: &WriteAheadLog, batch: &[Job]) -> io::Result<()> {
    let mut entry = wal.begin_entry()?;
    for job in batch {
        match job {
            Job::Append(chunks, _) => {
                for chunk in chunks {
                    entry.write_chunk(chunk)?;
                }
            }
            Job::Change(chunk, _) => _ = entry.write_chunk(chunk)?,
        }
    }
    entry.commit().map(|_| ())
}

impl RaftLogReader<TypeConfig> for OkaywalLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self
            .state()
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

/// Readers share the state with the store.
pub struct OkaywalReader {
    state: Arc<Mutex<State>>,
}

impl RaftLogReader<TypeConfig> for OkaywalReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let state = self.state.lock().expect("state lock");
        Ok(state
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for OkaywalLogStore {
    type LogReader = OkaywalReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let state = self.state();
        let last = state.entries.values().next_back().map(|entry| entry.log_id);
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: last.or(state.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> OkaywalReader {
        OkaywalReader {
            state: Arc::clone(&self.state),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.change(&Change::Vote(*vote)).map_err(write_error)?;
        self.state().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.state().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut chunks = Vec::new();
        let mut state = self.state();
        for entry in entries {
            let change = Change::Append(entry);
            let chunk = postcard::to_allocvec(&change)
                .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
            chunks.push(chunk);
            state.apply(change);
        }
        drop(state);
        let stopped = || StorageIOError::write_logs(AnyError::error("writer stopped"));
        self.jobs
            .send(Job::Append(chunks, callback))
            .map_err(|_| stopped())?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.change(&Change::Truncate(log_id.index))
            .map_err(write_error)?;
        self.state().apply(Change::Truncate(log_id.index));
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.change(&Change::Purge(log_id)).map_err(write_error)?;
        self.state().apply(Change::Purge(log_id));
        Ok(())
    }
}
