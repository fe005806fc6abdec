//! The thread-safe front end: [`SharedLog`] lets many producer threads append at once, with
//! group commit, and [`TailReader`]s follow the durable end of the log from other threads.
//!
//! A commit runs the commit step of [`staging`](crate::staging): it takes every record staged
//! since the last commit, appends the group to the [`Log`] and syncs it once, while producers
//! keep staging the next group into the other batch. One commit runs at a time: on the
//! committer thread, or on a producer's own thread when that producer must wait and finds the
//! committer asleep (a lone producer then pays no thread handoff). Readers and
//! `truncate_prefix` take the `Log` between commits, under its mutex. `docs/concurrency.md`
//! explains the design and its limits.

use crate::error::{Error, Result};
use crate::log::{Cursor, Log};
use crate::staging::{self, Batch, SharedOptions, Staged, Staging};
use crate::storage::Storage;
use crate::tail::{TailCache, TailRead};
use crate::Lsn;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When an append returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Once the records are durable. Every producer waiting at the same time shares one write
    /// and one sync.
    Wait,
    /// Once the records are staged (copied, with their LSNs). They become durable when some
    /// producer waits for durability ([`SharedLog::wait_durable`] or a [`Durability::Wait`]
    /// append after them), when the size or timeout policy of the `Config` flushes, or at
    /// shutdown.
    Staged,
}

/// What producers, readers and the committer share, under one mutex.
struct State {
    staging: Staging,
    /// The empty batch the next commit takes the staged records into. `None` while a commit
    /// runs: whoever runs it (the committer thread, or a producer that found it asleep) holds
    /// the batch, so there is never more than one commit at a time.
    spare: Option<Batch>,
    /// Commits taken so far; the running one, if any, is number `commits_taken`.
    commits_taken: u64,
    /// The `lsn_wanted` the running commit took: it makes everything below it durable.
    lsn_wanted_running: Lsn,
    /// The log's durable watermark as of the last commit.
    lsn_durable: Lsn,
    /// The log's next LSN as of the last commit: staged records below it are in the log.
    lsn_appended: Lsn,
    /// The committer sleeps on `work` and nobody has woken it yet: a producer that stages must
    /// wake it, or run the commit itself.
    committer_idle: bool,
    /// `shutdown` was called: nothing more is staged.
    closing: bool,
    /// The committer has exited: everything staged before `closing` is durable, or it stopped.
    finished: bool,
    /// The error that stopped the committer; every waiter gets a copy.
    stopped: Option<Error>,
    /// Commits that advanced the durable watermark (group commits), for measurement.
    commits_durable: u64,
    /// Producers sleeping on `space`: a commit wakes them only if there are any, so that a
    /// lone producer pays no system call for it.
    space_sleepers: u32,
    /// Per wait queue (`Inner::durable`), the smallest `lsn_end` one of its sleepers waits
    /// for: a publication wakes a queue only if it satisfies at least that sleeper.
    lsn_end_min: [Lsn; 2],
    /// The log holds durable records it has not attested yet: an idle committer ticks it
    /// after `Config::attest_idle_ns`.
    attest_pending: bool,
    /// Callers sleeping on `Inner::spare` until no commit or attestation runs.
    spare_sleepers: u32,
    /// Truncations that moved the log's end so far. Every record staged before one was made
    /// durable first: a producer whose wait began before it is answered by it.
    truncations: u64,
    /// The idle committer sleeps with a timeout (it will attest or flush by itself); else it
    /// sleeps until woken.
    committer_timed: bool,
    /// The last commit raised the durable watermark and left waking the tail readers to the
    /// next commit's start, which follows at once.
    readers_pending: bool,
}

impl State {
    /// Whether a producer may stage.
    fn accepting(&self) -> Result<()> {
        if let Some(error) = &self.stopped {
            return Err(error.duplicate());
        }
        if self.closing || self.finished {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Whether every LSN below `lsn_end` is durable; the error that stopped the committer, or
    /// [`Error::Closed`] once it exited, if they never will be.
    fn durable_reached(&self, lsn_end: Lsn) -> Result<bool> {
        if self.lsn_durable >= lsn_end {
            return Ok(true);
        }
        if let Some(error) = &self.stopped {
            return Err(error.duplicate());
        }
        if self.finished {
            return Err(Error::Closed);
        }
        Ok(false)
    }

    /// Whether a commit is owed now.
    fn work_due(&self) -> bool {
        !self.staging.is_empty()
            || self.staging.lsn_wanted() > self.lsn_durable
            || (self.closing && self.lsn_appended > self.lsn_durable)
    }

    /// The wait queue for `lsn_end`: the running commit's if it makes `lsn_end` durable,
    /// else the next commit's. Producers staged into different groups sleep apart, so a
    /// commit wakes only its own producers.
    fn queue_for(&self, lsn_end: Lsn) -> usize {
        let running = self.spare.is_none() && self.lsn_wanted_running >= lsn_end;
        let commit = if running {
            self.commits_taken
        } else {
            self.commits_taken + 1
        };
        (commit % 2) as usize
    }
}

struct Inner<S: Storage> {
    state: Mutex<State>,
    log: Mutex<Option<Log<S>>>,
    /// The newest records, for readers: the committer appends each group before its write and
    /// follows the log's watermarks under the log's lock; readers copy from it under a read
    /// lock, never waiting for IO. Lock order: `state`, then `log`, then `tail`.
    /// Its durable watermark is raised with `State::lsn_durable`, under the state's lock, so
    /// that a reader never yields a record [`SharedLog::durable_lsn`] does not call durable.
    tail: RwLock<TailCache>,
    /// Tail readers that found nothing durable to read sleep on `readers_wake` under this
    /// lock, apart from producers, so that their waits never contend for `state`.
    readers: Mutex<ReaderWait>,
    readers_wake: Condvar,
    /// The committer waits here for work.
    work: Condvar,
    /// Producers wait here for room in the staging area.
    space: Condvar,
    /// A truncation waits here for a running attestation to hand back the spare batch.
    spare: Condvar,
    /// Producers and readers wait here for the durable watermark to advance: two queues, for
    /// the running commit and the next (`State::queue_for`).
    durable: [Condvar; 2],
    flush_timeout: Option<Duration>,
    attest_idle: Option<Duration>,
}

/// What sleeping tail readers share.
#[derive(Default)]
struct ReaderWait {
    sleepers: u32,
    /// The committer stopped or exited: readers at the durable end learn why from `state`.
    ended: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("a thread panicked while holding a shared log lock")
}

fn tail_write<S: Storage>(inner: &Inner<S>) -> std::sync::RwLockWriteGuard<'_, TailCache> {
    inner
        .tail
        .write()
        .expect("a thread panicked while holding the tail cache")
}

fn tail_read<S: Storage>(inner: &Inner<S>) -> std::sync::RwLockReadGuard<'_, TailCache> {
    inner
        .tail
        .read()
        .expect("a thread panicked while holding the tail cache")
}

/// Makes the tail cache follow the log after `work` changed it (under the log's lock).
fn tail_follow<S: Storage>(inner: &Inner<S>, log: &Log<S>) {
    let mut tail = tail_write(inner);
    tail.follow(log.first_lsn(), log.next_lsn());
    if log.is_failed() {
        // Fail-stop holds for readers too: they read the log, which reports the failure.
        tail.stop();
    }
}

/// A [`Log`] shared by many threads: producers append with group commit, readers follow the
/// durable end. Share it by reference (scoped threads) or in an `Arc`.
///
/// Memory is bounded: the staging area is two batches of [`SharedOptions`] limits, allocated
/// in [`open`](SharedLog::open). A producer copies its records into the staging area and gets
/// their LSNs at once; when the area is full, it waits (backpressure). Nothing is allocated
/// per record.
///
/// ```
/// use ballast_log::{Config, Durability, Log, SharedLog, SharedOptions, storage::MemStorage};
///
/// let log = Log::open(Config::default(), MemStorage::new(4096))?;
/// let shared = SharedLog::open(log, SharedOptions::default())?;
/// std::thread::scope(|scope| {
///     for producer in 0..4u8 {
///         let shared = &shared;
///         scope.spawn(move || shared.append(&[producer], Durability::Wait).unwrap());
///     }
/// });
/// assert_eq!(shared.durable_lsn(), 4);
/// let mut reader = shared.reader(0)?;
/// let mut buffer = [0u8; 8];
/// assert_eq!(reader.next(&mut buffer)?.map(|(lsn, size)| (lsn, size)), Some((0, 1)));
/// let storage = shared.close()?;
/// # drop(storage);
/// # Ok::<(), ballast_log::Error>(())
/// ```
pub struct SharedLog<S: Storage + Send + 'static> {
    inner: Arc<Inner<S>>,
    committer: Option<JoinHandle<()>>,
}

impl<S: Storage + Send + 'static> SharedLog<S> {
    /// Takes over an open log and starts its committer thread. Records the log holds but has
    /// not made durable are synced by the first commit that is asked for durability.
    pub fn open(log: Log<S>, options: SharedOptions) -> Result<SharedLog<S>> {
        options.validate(log.config())?;
        let staging = Staging::new(&options, log.config(), log.next_lsn());
        let state = State {
            staging,
            spare: Some(Batch::new(&options)),
            commits_taken: 0,
            lsn_wanted_running: 0,
            lsn_durable: log.durable_lsn(),
            lsn_appended: log.next_lsn(),
            committer_idle: false,
            closing: false,
            finished: false,
            stopped: None,
            commits_durable: 0,
            space_sleepers: 0,
            lsn_end_min: [Lsn::MAX; 2],
            attest_pending: log.attested_lsn() < log.durable_lsn(),
            spare_sleepers: 0,
            committer_timed: false,
            readers_pending: false,
            truncations: 0,
        };
        let inner = Arc::new(Inner {
            flush_timeout: log.config().flush_timeout_ns.map(Duration::from_nanos),
            attest_idle: log.config().attest_idle_ns.map(Duration::from_nanos),
            state: Mutex::new(state),
            tail: RwLock::new(TailCache::new(
                options.tail_cache_size_bytes,
                options.tail_cache_record_count_max,
                log.next_lsn(),
                log.durable_lsn(),
            )),
            readers: Mutex::new(ReaderWait::default()),
            readers_wake: Condvar::new(),
            log: Mutex::new(Some(log)),
            work: Condvar::new(),
            space: Condvar::new(),
            spare: Condvar::new(),
            durable: [Condvar::new(), Condvar::new()],
        });
        let committer_inner = Arc::clone(&inner);
        let committer = std::thread::Builder::new()
            .name("ballast-commit".into())
            .spawn(move || committer_run(&committer_inner))
            .map_err(|source| Error::Io {
                operation: crate::IoOperation::Write,
                segment: None,
                offset_bytes: None,
                source,
            })?;
        Ok(SharedLog {
            inner,
            committer: Some(committer),
        })
    }

    /// Appends one record and returns its LSN; see [`append_batch`](SharedLog::append_batch).
    pub fn append(&self, record: &[u8], durability: Durability) -> Result<Lsn> {
        self.append_batch(&[record], durability)
    }

    /// Appends records in order, as one unit: they get consecutive LSNs, and the first is
    /// returned. Waits while the staging area has no room for them. With
    /// [`Durability::Wait`], returns once they are durable. A batch larger than a whole
    /// staging batch is [`Error::BatchTooLarge`]; after `shutdown`, [`Error::Closed`]; after
    /// a failed commit, that failure.
    pub fn append_batch<R: AsRef<[u8]>>(
        &self,
        records: &[R],
        durability: Durability,
    ) -> Result<Lsn> {
        let inner = &*self.inner;
        let mut state = lock(&inner.state);
        let lsn = loop {
            state.accepting()?;
            match state
                .staging
                .stage(records, durability == Durability::Wait)?
            {
                Staged::At(lsn) => break lsn,
                Staged::Full => {
                    committer_wake(inner, &mut state);
                    state.space_sleepers += 1;
                    state = inner.space.wait(state).expect("state lock");
                    state.space_sleepers -= 1;
                }
            }
        };
        match durability {
            Durability::Wait => drop(durable_wait(inner, state, lsn + records.len() as Lsn)?),
            Durability::Staged => committer_wake(inner, &mut state),
        }
        Ok(lsn)
    }

    /// Waits until record `lsn` is durable (a commit syncs it soon, as someone now waits for
    /// it). An LSN not yet handed out is [`Error::LsnOutOfRange`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        let state = lock(&self.inner.state);
        let lsn_next = state.staging.lsn_next();
        if lsn >= lsn_next {
            drop(state);
            return Err(Error::LsnOutOfRange {
                lsn,
                lsn_first: self.first_lsn()?,
                lsn_next,
            });
        }
        durable_wait(&self.inner, state, lsn + 1).map(drop)
    }

    /// Every record below this LSN is durable. Poll it instead of waiting.
    pub fn durable_lsn(&self) -> Lsn {
        lock(&self.inner.state).lsn_durable
    }

    /// How many commits advanced the durable watermark so far: records made durable divided
    /// by this is the mean group size.
    pub fn commits_durable(&self) -> u64 {
        lock(&self.inner.state).commits_durable
    }

    /// Reads the tail cache served, and reads that missed it and went to the log, since the
    /// shared log opened: `hits / (hits + misses)` is its hit ratio.
    pub fn tail_cache_hits_and_misses(&self) -> (u64, u64) {
        tail_read(&self.inner).hits_and_misses()
    }

    /// The LSN the next staged record gets.
    pub fn next_lsn(&self) -> Lsn {
        lock(&self.inner.state).staging.lsn_next()
    }

    /// Reads record `lsn` into `buffer`, durable or not, once its group has been appended
    /// (a record still staged is [`Error::LsnOutOfRange`]). Returns its size.
    pub fn read(&self, lsn: Lsn, buffer: &mut [u8]) -> Result<usize> {
        match tail_read(&self.inner).read(lsn, buffer) {
            TailRead::Hit(size) => return Ok(size),
            TailRead::TooSmall(size) => return Err(Error::BufferTooSmall { size_bytes: size }),
            // Appended records are readable before they are durable: the log has them.
            TailRead::NotYet | TailRead::Miss => {}
        }
        let mut log = lock(&self.inner.log);
        log.as_mut().ok_or(Error::Closed)?.read(lsn, buffer)
    }

    /// Drops whole segments whose records are all below `lsn`, between two commits
    /// ([`Log::truncate_prefix`]). With `lsn` past every record staged, the log starts again,
    /// empty, at `lsn`, as [`truncate_suffix`](SharedLog::truncate_suffix) settles: the next
    /// append gets `lsn`.
    pub fn truncate_prefix(&self, lsn: Lsn) -> Result<()> {
        let state = lock(&self.inner.state);
        if lsn > state.staging.lsn_next() {
            return self.quiesced(state, |log| log.truncate_prefix(lsn));
        }
        drop(state);
        let mut log = lock(&self.inner.log);
        let log = log.as_mut().ok_or(Error::Closed)?;
        // Records staged and not yet appended are not in the log: they are no segment's.
        let lsn = lsn.min(log.next_lsn());
        let result = log.truncate_prefix(lsn);
        // A commit may run beside it, its group already in the ring and not yet in the log:
        // only the first LSN moves.
        tail_write(&self.inner).first_set(log.first_lsn());
        result
    }

    /// Drops every record at or after `lsn`; the next append gets `lsn`
    /// ([`Log::truncate_suffix`]). Durable when it returns. Everything staged before the call
    /// is made durable first, so that no producer waits for a record the truncation drops;
    /// producers that stage meanwhile wait until the truncation is done.
    pub fn truncate_suffix(&self, lsn: Lsn) -> Result<()> {
        let state = lock(&self.inner.state);
        self.quiesced(state, |log| log.truncate_suffix(lsn))
    }

    /// Saves the vote with the log, durably and atomically ([`Log::vote_save`]), between two
    /// commits.
    pub fn vote_save(&self, vote: &[u8]) -> Result<()> {
        let mut log = lock(&self.inner.log);
        log.as_mut().ok_or(Error::Closed)?.vote_save(vote)
    }

    /// A copy of the vote last saved ([`Log::vote`]); empty if none.
    pub fn vote(&self) -> Result<Vec<u8>> {
        let log = lock(&self.inner.log);
        Ok(log.as_ref().ok_or(Error::Closed)?.vote().to_vec())
    }

    /// Runs `work`, which may move the log's end, with every staged record durable, no commit
    /// running, and producers held off (the state stays locked throughout); then numbers the
    /// staging area from the log's new end. A failure of `work` stops the shared log, as a
    /// failed commit does, unless it was refused before anything changed (a bad LSN).
    fn quiesced<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        work: impl FnOnce(&mut Log<S>) -> Result<()>,
    ) -> Result<()> {
        let inner = &*self.inner;
        loop {
            state.accepting()?;
            let lsn_next = state.staging.lsn_next();
            let settled = state.staging.is_empty() && state.lsn_durable >= lsn_next;
            if settled && state.spare.is_some() {
                break;
            }
            if !settled {
                state = durable_wait(inner, state, lsn_next)?;
                continue;
            }
            // An attestation runs: it hands the spare batch back soon.
            state.spare_sleepers += 1;
            state = inner.spare.wait(state).expect("state lock");
            state.spare_sleepers -= 1;
        }
        let mut log = lock(&inner.log);
        let log = log.as_mut().ok_or(Error::Closed)?;
        let result = work(log);
        tail_follow(inner, log);
        if let Err(error) = &result {
            if !matches!(error, Error::LsnOutOfRange { .. } | Error::LogFull { .. }) {
                tracing::error!(%error, "truncation failed: the shared log stops");
                state.stopped = Some(error.duplicate());
                durable_notify(inner, &mut state);
                space_notify(inner, &state);
            }
            return result;
        }
        assert_eq!(log.durable_lsn(), log.next_lsn(), "a truncation flushes");
        state.staging.restart_at(log.next_lsn());
        state.lsn_durable = log.durable_lsn();
        tail_write(inner).durable_set(state.lsn_durable);
        state.lsn_appended = log.next_lsn();
        state.attest_pending = log.attested_lsn() < log.durable_lsn();
        // Every waiter's records were made durable before the end moved: all are answered,
        // whatever the watermark says now.
        state.truncations += 1;
        for queue in 0..2 {
            state.lsn_end_min[queue] = Lsn::MAX;
            inner.durable[queue].notify_all();
        }
        readers_notify(inner, false);
        Ok(())
    }

    /// The first LSN the log still holds.
    pub fn first_lsn(&self) -> Result<Lsn> {
        let log = lock(&self.inner.log);
        Ok(log.as_ref().ok_or(Error::Closed)?.first_lsn())
    }

    /// Every record below this LSN is attested on disk ([`Log::attested_lsn`]): the committer
    /// attests an idle log by itself after `Config::attest_idle_ns`.
    pub fn attested_lsn(&self) -> Result<Lsn> {
        let log = lock(&self.inner.log);
        Ok(log.as_ref().ok_or(Error::Closed)?.attested_lsn())
    }

    /// Runs `work` on the storage between two commits: for inspection, and for tests that
    /// inject faults.
    pub fn with_storage<R>(&self, work: impl FnOnce(&mut S) -> R) -> Result<R> {
        let mut log = lock(&self.inner.log);
        Ok(work(log.as_mut().ok_or(Error::Closed)?.storage_mut()))
    }

    /// A reader of durable records from `lsn` on, which can wait at the durable end.
    pub fn reader(&self, lsn: Lsn) -> Result<TailReader<'_, S>> {
        let log = lock(&self.inner.log);
        let cursor = log.as_ref().ok_or(Error::Closed)?.cursor(lsn)?;
        Ok(TailReader {
            shared: self,
            cursor,
            lsn_durable: 0,
        })
    }

    /// Stops accepting appends, commits and syncs everything staged, and waits for it.
    /// Waiting producers are answered; readers read to the durable end, then get
    /// [`Error::Closed`]. Returns the error that stopped the committer, if one did.
    pub fn shutdown(&self) -> Result<()> {
        let inner = &*self.inner;
        let mut state = lock(&inner.state);
        state.closing = true;
        committer_wake(inner, &mut state);
        inner.space.notify_all();
        while !state.finished {
            state = durable_sleep(inner, state, Lsn::MAX, None).0;
        }
        match &state.stopped {
            Some(error) => Err(error.duplicate()),
            None => Ok(()),
        }
    }

    /// Shuts down (see [`shutdown`](SharedLog::shutdown)), stops the committer thread, closes
    /// the log and returns its storage.
    pub fn close(mut self) -> Result<S> {
        let shutdown = self.shutdown();
        self.committer_join();
        let log = lock(&self.inner.log)
            .take()
            .expect("the log is closed once");
        shutdown?;
        log.close()
    }

    fn committer_join(&mut self) {
        if let Some(committer) = self.committer.take() {
            if let Err(panic) = committer.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl<S: Storage + Send + 'static> Drop for SharedLog<S> {
    /// Like `close`, but the result is lost: call `close` to learn it.
    fn drop(&mut self) {
        if self.committer.is_some() {
            let _ = self.shutdown();
            if let Some(committer) = self.committer.take() {
                let _ = committer.join();
            }
        }
    }
}

/// Wakes the committer if it sleeps.
fn committer_wake<S: Storage>(inner: &Inner<S>, state: &mut State) {
    if state.committer_idle {
        state.committer_idle = false;
        inner.work.notify_one();
    }
}

/// Waits until every LSN below `lsn_end` is durable. If the committer sleeps and no commit
/// runs, the caller runs the commit itself: a lone producer then pays no thread handoff (two
/// wakeups across CPUs, about 27 us each on a virtual machine, `docs/concurrency.md`).
/// Otherwise it asks the committer and sleeps until a publication satisfies it, or until a
/// truncation moves the log's end (which made every staged record durable first).
fn durable_wait<'a, S: Storage>(
    inner: &'a Inner<S>,
    mut state: MutexGuard<'a, State>,
    lsn_end: Lsn,
) -> Result<MutexGuard<'a, State>> {
    if state.lsn_durable < lsn_end {
        state.staging.durable_want(lsn_end);
    }
    let truncations = state.truncations;
    while state.truncations == truncations && !state.durable_reached(lsn_end)? {
        if state.committer_idle && state.spare.is_some() && !state.closing {
            state = commit_run(inner, state);
            continue;
        }
        committer_wake(inner, &mut state);
        state = durable_sleep(inner, state, lsn_end, None).0;
    }
    Ok(state)
}

/// Sleeps on the wait queue for `lsn_end` until a publication wakes it or `deadline` passes
/// (then `true`). Spurious wakeups are possible: callers check again.
fn durable_sleep<'a, S: Storage>(
    inner: &'a Inner<S>,
    mut state: MutexGuard<'a, State>,
    lsn_end: Lsn,
    deadline: Option<Instant>,
) -> (MutexGuard<'a, State>, bool) {
    let queue = state.queue_for(lsn_end);
    state.lsn_end_min[queue] = state.lsn_end_min[queue].min(lsn_end);
    let condvar = &inner.durable[queue];
    match deadline {
        None => (condvar.wait(state).expect("state lock"), false),
        Some(deadline) => {
            let now = Instant::now();
            if now >= deadline {
                return (state, true);
            }
            let (state, waited) = condvar
                .wait_timeout(state, deadline - now)
                .expect("state lock");
            (state, waited.timed_out())
        }
    }
}

/// Wakes the sleepers a publication may satisfy: a queue whose most urgent sleeper is now
/// durable, or every queue once the committer stops.
fn durable_notify<S: Storage>(inner: &Inner<S>, state: &mut State) {
    let all = state.stopped.is_some() || state.finished;
    for queue in 0..2 {
        if all || state.lsn_end_min[queue] <= state.lsn_durable {
            state.lsn_end_min[queue] = Lsn::MAX;
            inner.durable[queue].notify_all();
        }
    }
    if all {
        readers_notify(inner, true);
    }
}

/// Wakes the tail readers sleeping at the durable end, if any; `ended` once the committer
/// stopped or exited, so that they ask `state` why.
fn readers_notify<S: Storage>(inner: &Inner<S>, ended: bool) {
    let mut wait = lock(&inner.readers);
    wait.ended |= ended;
    if wait.sleepers > 0 {
        inner.readers_wake.notify_all();
    }
}

/// Wakes a truncation waiting for the spare batch, if any.
fn spare_notify<S: Storage>(inner: &Inner<S>, state: &State) {
    if state.spare_sleepers > 0 {
        inner.spare.notify_all();
    }
}

/// Wakes the producers waiting for room in the staging area, if any.
fn space_notify<S: Storage>(inner: &Inner<S>, state: &State) {
    if state.space_sleepers > 0 {
        inner.space.notify_all();
    }
}

/// Takes the staged group and runs one commit on this thread (the committer, or a producer
/// that found it asleep), then publishes it. The caller checked that no commit runs.
fn commit_run<'a, S: Storage>(
    inner: &'a Inner<S>,
    mut state: MutexGuard<'a, State>,
) -> MutexGuard<'a, State> {
    let mut batch = state.spare.take().expect("one commit at a time");
    let readers_due = std::mem::take(&mut state.readers_pending);
    state.staging.take(&mut batch);
    state.commits_taken += 1;
    // Shutdown drains: everything appended becomes durable.
    let lsn_wanted = match state.closing {
        true => Lsn::MAX,
        false => state.staging.lsn_wanted(),
    };
    state.lsn_wanted_running = lsn_wanted;
    space_notify(inner, &state);
    drop(state);
    // If the commit panics (a broken invariant), waiters must not sleep forever.
    let abandon = Unwind {
        inner,
        finished: false,
    };
    // Before the write: readers see the group once `commit_publish` raises the ring's durable
    // watermark with the shared one, after the sync.
    tail_write(inner).append_batch(&batch);
    if readers_due {
        readers_notify(inner, false);
    }
    let (result, durable, appended, attest_pending) = committer_log(inner, |log| {
        let result = staging::commit(log, &mut batch, lsn_wanted);
        let pending = log.attested_lsn() < log.durable_lsn();
        (result, log.durable_lsn(), log.next_lsn(), pending)
    });
    std::mem::forget(abandon);
    let mut state = commit_publish(inner, batch, result, durable, appended);
    state.attest_pending = attest_pending;
    // A producer ran this commit while the committer sleeps without a timeout: it must wake
    // to sleep with one, or it would never attest. Once per idle period, not per commit.
    if attest_pending && state.committer_idle && !state.committer_timed {
        committer_wake(inner, &mut state);
    }
    state
}

/// The committer was idle for `attest_idle_ns` with durable records not yet attested: ticks
/// the log, which attests them if nothing was made durable since (one sector, one sync). A
/// failure stops the shared log, as a failed commit does.
fn attest_run<'a, S: Storage>(
    inner: &'a Inner<S>,
    mut state: MutexGuard<'a, State>,
) -> MutexGuard<'a, State> {
    let batch = state.spare.take().expect("no commit runs");
    drop(state);
    let (result, pending) = committer_log(inner, |log| {
        let result = log.tick();
        (result, log.attested_lsn() < log.durable_lsn())
    });
    let mut state = lock(&inner.state);
    state.spare = Some(batch);
    spare_notify(inner, &state);
    state.attest_pending = pending;
    if let Err(error) = result {
        tracing::error!(%error, "attestation failed: the shared log stops");
        state.stopped = Some(error);
        durable_notify(inner, &mut state);
        space_notify(inner, &state);
    }
    state
}

/// Runs `work` on the log, which stays open while the committer runs.
fn committer_log<S: Storage, R>(inner: &Inner<S>, work: impl FnOnce(&mut Log<S>) -> R) -> R {
    let mut log = lock(&inner.log);
    let log = log
        .as_mut()
        .expect("the log stays while the committer runs");
    let result = work(log);
    tail_follow(inner, log);
    result
}

/// Publishes a commit's outcome, returns its batch, and wakes whom it concerns.
fn commit_publish<S: Storage>(
    inner: &Inner<S>,
    batch: Batch,
    result: Result<()>,
    durable: Lsn,
    appended: Lsn,
) -> MutexGuard<'_, State> {
    let mut state = lock(&inner.state);
    assert!(batch.is_empty() || result.is_err());
    assert!(state.spare.is_none(), "one commit at a time");
    state.spare = Some(batch);
    spare_notify(inner, &state);
    assert!(
        durable >= state.lsn_durable,
        "the durable watermark never goes back"
    );
    assert!(appended >= state.lsn_appended && durable <= appended);
    if durable > state.lsn_durable {
        state.commits_durable += 1;
    }
    state.lsn_durable = durable;
    tail_write(inner).durable_set(durable);
    state.lsn_appended = appended;
    if let Err(error) = result {
        tracing::error!(%error, "commit failed: the shared log stops");
        state.stopped = Some(error);
    }
    durable_notify(inner, &mut state);
    space_notify(inner, &state);
    // Readers copy from memory and can wait a moment: when another commit follows at once,
    // its start wakes them (its write and sync then run beside them), rather than this one
    // waking them between its sync and the producers it answers.
    match state.work_due() && state.stopped.is_none() {
        true => state.readers_pending = true,
        false => readers_notify(inner, false),
    }
    // A producer that ran this commit hands what was staged meanwhile to the committer.
    if state.work_due() || state.stopped.is_some() {
        committer_wake(inner, &mut state);
    }
    state
}

/// Wakes everyone when dropped: when the committer exits (`finished`), or when a commit
/// panics (a broken invariant) and the shared log stops.
struct Unwind<'a, S: Storage> {
    inner: &'a Inner<S>,
    finished: bool,
}

impl<S: Storage> Drop for Unwind<'_, S> {
    fn drop(&mut self) {
        let inner = self.inner;
        let mut state = inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match self.finished {
            true => state.finished = true,
            false => _ = state.stopped.get_or_insert(Error::Closed),
        }
        durable_notify(inner, &mut state);
        inner.space.notify_all();
        inner.work.notify_all();
    }
}

/// The committer: waits for work while no commit runs, commits, publishes; until shutdown
/// has drained everything or a commit failed.
fn committer_run<S: Storage>(inner: &Inner<S>) {
    // However it exits, even by a panic, waiters must not sleep forever.
    let _finish = Unwind {
        inner,
        finished: true,
    };
    let mut state = lock(&inner.state);
    loop {
        if state.stopped.is_some() {
            return;
        }
        let running = state.spare.is_none();
        if !running && state.work_due() {
            state = commit_run(inner, state);
            continue;
        }
        if state.closing && !running {
            assert_eq!(state.lsn_durable, state.lsn_appended);
            return;
        }
        state = committer_sleep(inner, state, running);
    }
}

/// Sleeps until woken for work. With appended records not yet durable and no commit
/// running, sleeps at most `flush_timeout_ns` and then commits nothing, so that the log's
/// timeout policy decides (`tick`).
fn committer_sleep<'a, S: Storage>(
    inner: &'a Inner<S>,
    mut state: MutexGuard<'a, State>,
    running: bool,
) -> MutexGuard<'a, State> {
    state.committer_idle = true;
    let unflushed = state.lsn_appended > state.lsn_durable && !running;
    let unattested = state.attest_pending && !running && !unflushed;
    state.committer_timed =
        (unflushed && inner.flush_timeout.is_some()) || (unattested && inner.attest_idle.is_some());
    if let Some(timeout) = inner.flush_timeout.filter(|_| unflushed) {
        let (mut state, waited) = inner.work.wait_timeout(state, timeout).expect("lock");
        if waited.timed_out() && state.spare.is_some() && state.stopped.is_none() {
            state.committer_idle = false;
            return commit_run(inner, state);
        }
        return state;
    }
    if let Some(idle) = inner.attest_idle.filter(|_| unattested) {
        let (mut state, waited) = inner.work.wait_timeout(state, idle).expect("lock");
        let quiet = state.spare.is_some() && state.stopped.is_none() && !state.work_due();
        if waited.timed_out() && quiet && !state.closing {
            state.committer_idle = false;
            return attest_run(inner, state);
        }
        return state;
    }
    inner.work.wait(state).expect("state lock")
}

/// Follows the durable end of a [`SharedLog`] from `lsn` on: yields durable records in order,
/// and can wait for more.
pub struct TailReader<'a, S: Storage + Send + 'static> {
    shared: &'a SharedLog<S>,
    cursor: Cursor,
    /// The published watermark as last seen. The log's own may be ahead of it for a moment
    /// (the committer publishes after its sync), but a reader yields nothing that
    /// [`SharedLog::durable_lsn`] does not yet call durable.
    lsn_durable: Lsn,
}

impl<S: Storage + Send + 'static> TailReader<'_, S> {
    /// The LSN of the record the next call yields.
    pub fn lsn_next(&self) -> Lsn {
        self.cursor.lsn_next()
    }

    /// Copies the next durable record into `buffer` and returns its LSN and size, or `None`
    /// at the durable end ("nothing yet"). A buffer too small is [`Error::BufferTooSmall`] and
    /// the reader stays where it was.
    pub fn next(&mut self, buffer: &mut [u8]) -> Result<Option<(Lsn, usize)>> {
        let lsn = self.cursor.lsn_next();
        match tail_read(&self.shared.inner).read(lsn, buffer) {
            TailRead::Hit(size) => {
                self.cursor = Cursor::at(lsn + 1);
                return Ok(Some((lsn, size)));
            }
            TailRead::TooSmall(size) => return Err(Error::BufferTooSmall { size_bytes: size }),
            TailRead::NotYet => return Ok(None),
            TailRead::Miss => {}
        }
        if self.cursor.lsn_next() >= self.lsn_durable {
            self.lsn_durable = lock(&self.shared.inner.state).lsn_durable;
            if self.cursor.lsn_next() >= self.lsn_durable {
                return Ok(None);
            }
        }
        let mut log = lock(&self.shared.inner.log);
        let log = log.as_mut().ok_or(Error::Closed)?;
        let before = self.cursor;
        let Some(record) = log.cursor_next(&mut self.cursor)? else {
            return Ok(None);
        };
        let size = record.data.len();
        if buffer.len() < size {
            self.cursor = before;
            return Err(Error::BufferTooSmall { size_bytes: size });
        }
        assert!(
            record.lsn < self.lsn_durable,
            "a reader yields durable records only"
        );
        buffer[..size].copy_from_slice(record.data);
        Ok(Some((record.lsn, size)))
    }

    /// Like [`next`](TailReader::next), but at the durable end waits until the watermark
    /// passes the reader, at most `timeout` (`None`: without limit). `Ok(None)` only after a
    /// timeout; [`Error::Closed`] at the end of a log that was shut down.
    pub fn next_wait(
        &mut self,
        buffer: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<Option<(Lsn, usize)>> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            if let Some(found) = self.next(buffer)? {
                return Ok(Some(found));
            }
            if !self.durable_wait(deadline)? {
                return Ok(None);
            }
        }
    }

    /// Waits until the durable watermark passes the reader; `false` at the deadline. Sleeps
    /// apart from producers, on the tail cache's watermark (which rises with the shared one);
    /// once the committer stopped or exited, asks `state` why.
    fn durable_wait(&self, deadline: Option<Instant>) -> Result<bool> {
        let inner = &*self.shared.inner;
        let lsn = self.cursor.lsn_next();
        let mut wait = lock(&inner.readers);
        loop {
            if tail_read(inner).durable_passes(lsn) {
                return Ok(true);
            }
            if wait.ended {
                drop(wait);
                return self.durable_wait_state(deadline);
            }
            wait.sleepers += 1;
            let timed_out = match deadline {
                None => {
                    wait = inner.readers_wake.wait(wait).expect("readers lock");
                    false
                }
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let (guard, waited) = inner
                        .readers_wake
                        .wait_timeout(wait, left)
                        .expect("readers lock");
                    wait = guard;
                    waited.timed_out()
                }
            };
            wait.sleepers -= 1;
            if timed_out {
                return Ok(false);
            }
        }
    }

    /// Waits on `state` until the durable watermark passes the reader, or reports why it
    /// never will.
    fn durable_wait_state(&self, deadline: Option<Instant>) -> Result<bool> {
        let inner = &*self.shared.inner;
        let lsn_end = self.cursor.lsn_next() + 1;
        let mut state = lock(&inner.state);
        while !state.durable_reached(lsn_end)? {
            let (guard, timed_out) = durable_sleep(inner, state, lsn_end, deadline);
            state = guard;
            if timed_out {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
