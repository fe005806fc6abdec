//! The flusher: one thread per store that turns durability into openraft's flush callbacks.
//!
//! `append` stages its records (`Durability::Staged`) and queues its callback with the LSN its
//! entries end at. The flusher waits for the highest queued LSN (`SharedLog::wait_durable`,
//! which asks the committer for a commit), then fires, in order, every callback that the
//! commit covered. Appends that arrive while a commit runs join the next one: one write and
//! one sync serve every callback queued meanwhile, and no thread or sync is spent per entry.
//!
//! A suffix truncation or a restart past the end moves LSNs backwards or forwards: it runs
//! with the queue locked and the flusher outside any wait ([`Flusher::exclusive`]), and fires
//! every queued callback itself (their entries were made durable before the change).

use crate::error::Error;
use crate::reader::Shared;
use ballast_log::storage::Storage;
use ballast_log::Lsn;
use openraft::storage::LogFlushed;
use openraft::RaftTypeConfig;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// What the flusher calls once entries are durable, or failed: openraft's [`LogFlushed`].
pub(crate) trait FlushCallback: Send + 'static {
    /// The entries are durable (`Ok`), or will never be.
    fn flushed(self, result: io::Result<()>);
}

impl<C: RaftTypeConfig> FlushCallback for LogFlushed<C> {
    fn flushed(self, result: io::Result<()>) {
        self.log_io_completed(result);
    }
}

/// A callback waiting for its entries: every LSN below `lsn_end` must be durable.
struct Waiting<F> {
    lsn_end: Lsn,
    callback: F,
}

/// The callbacks in append order, and what the flusher thread needs to know.
pub(crate) struct Queue<F: FlushCallback> {
    waiting: VecDeque<Waiting<F>>,
    /// Bumped by every change that moves LSNs (truncation, restart).
    generation: u64,
    /// The flusher thread is inside a wait for durability (the queue unlocked).
    flusher_waiting: bool,
    stopping: bool,
}

impl<F: FlushCallback> Queue<F> {
    /// Fires, in order, every callback whose entries end at or below `lsn_end`.
    fn fire_durable(&mut self, lsn_end: Lsn) {
        while self
            .waiting
            .front()
            .is_some_and(|waiting| waiting.lsn_end <= lsn_end)
        {
            let waiting = self.waiting.pop_front().expect("a callback");
            waiting.callback.flushed(Ok(()));
        }
    }

    /// Fires every callback with the error (a failed log stops; openraft stops with it).
    fn fire_failed(&mut self, error: &Error) {
        for waiting in self.waiting.drain(..) {
            let error = io::Error::other(error.to_string());
            waiting.callback.flushed(Err(error));
        }
    }

    /// Fires every callback: a truncation or restart has just made everything durable.
    pub(crate) fn fire_all(&mut self) {
        self.generation += 1;
        self.fire_durable(Lsn::MAX);
    }
}

struct Channel<F: FlushCallback> {
    queue: Mutex<Queue<F>>,
    /// The flusher thread sleeps here for callbacks.
    wake: Condvar,
    /// [`Flusher::exclusive`] sleeps here until the flusher's wait is over.
    idle: Condvar,
}

/// The flusher of one store: its queue and its thread.
pub(crate) struct Flusher<F: FlushCallback> {
    channel: Arc<Channel<F>>,
    thread: Option<JoinHandle<()>>,
}

impl<F: FlushCallback> Flusher<F> {
    /// Starts the flusher thread of `shared`.
    pub(crate) fn start<S: Storage + Send + 'static>(shared: Arc<Shared<S>>) -> io::Result<Self> {
        let channel = Arc::new(Channel {
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                generation: 0,
                flusher_waiting: false,
                stopping: false,
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
        });
        let thread_channel = Arc::clone(&channel);
        let thread = std::thread::Builder::new()
            .name("ballast-raft-flush".into())
            .spawn(move || flusher_run(&thread_channel, &shared))?;
        Ok(Flusher {
            channel,
            thread: Some(thread),
        })
    }

    /// Queues `callback` for when every LSN below `lsn_end` is durable.
    pub(crate) fn enqueue(&self, lsn_end: Lsn, callback: F) {
        let mut queue = self.queue();
        assert!(
            queue
                .waiting
                .back()
                .is_none_or(|last| last.lsn_end <= lsn_end),
            "callbacks are queued in LSN order"
        );
        queue.waiting.push_back(Waiting { lsn_end, callback });
        drop(queue);
        self.channel.wake.notify_one();
    }

    /// Runs `work` with the queue locked and the flusher outside any wait: it neither fires
    /// nor waits meanwhile. For the operations that move LSNs; `work` calls
    /// [`Queue::fire_all`] once they are done.
    ///
    /// A wait that straddled a suffix truncation could wait for an LSN the truncation removed,
    /// and `SharedLog::wait_durable` would then sleep until the log grows back past it; so the
    /// truncation waits for the flusher's wait to end first (at most one commit, which the
    /// wait itself asked for).
    pub(crate) fn exclusive<R>(&self, work: impl FnOnce(&mut Queue<F>) -> R) -> R {
        let mut queue = self.queue();
        while queue.flusher_waiting {
            queue = self.channel.idle.wait(queue).expect("flush queue lock");
        }
        work(&mut queue)
    }

    fn queue(&self) -> MutexGuard<'_, Queue<F>> {
        self.channel.queue.lock().expect("flush queue lock")
    }

    /// Stops the thread; callbacks still queued are dropped unfired (their Raft is gone).
    pub(crate) fn stop(&mut self) {
        self.queue().stopping = true;
        self.channel.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl<F: FlushCallback> Drop for Flusher<F> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The flusher thread: waits for the newest queued callback's entries, fires what is durable.
fn flusher_run<F: FlushCallback, S: Storage + Send + 'static>(
    channel: &Channel<F>,
    shared: &Shared<S>,
) {
    let mut queue = channel.queue.lock().expect("flush queue lock");
    loop {
        while queue.waiting.is_empty() && !queue.stopping {
            queue = channel.wake.wait(queue).expect("flush queue lock");
        }
        if queue.stopping {
            return;
        }
        let lsn_end = queue.waiting.back().expect("a callback").lsn_end;
        let generation = queue.generation;
        queue.flusher_waiting = true;
        drop(queue);
        let waited = shared.with_log(|log| durable_wait(log, lsn_end));
        queue = channel.queue.lock().expect("flush queue lock");
        queue.flusher_waiting = false;
        channel.idle.notify_all();
        assert_eq!(
            queue.generation, generation,
            "nothing moves LSNs while the flusher waits"
        );
        match waited {
            Ok(()) => {
                queue.fire_durable(lsn_end);
                shared.tail().durable(lsn_end);
            }
            Err(error) => {
                tracing::error!(%error, "the log failed: flush callbacks get the error");
                queue.fire_failed(&error);
            }
        }
    }
}

/// Waits until every LSN below `lsn_end` is durable.
pub(crate) fn durable_wait<S: Storage + Send + 'static>(
    log: &ballast_log::SharedLog<S>,
    lsn_end: Lsn,
) -> Result<(), ballast_log::Error> {
    if lsn_end == 0 || log.durable_lsn() >= lsn_end {
        return Ok(());
    }
    log.wait_durable(lsn_end - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::TailCache;
    use ballast_log::storage::MemStorage;
    use ballast_log::{Durability, Log, SharedLog, SharedOptions};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Reports which append it was, and how it ended.
    struct Reported {
        number: u64,
        sender: mpsc::Sender<(u64, bool)>,
    }

    impl FlushCallback for Reported {
        fn flushed(self, result: io::Result<()>) {
            let _ = self.sender.send((self.number, result.is_ok()));
        }
    }

    /// Appends staged records and truncates at once, so that the flusher is often inside its
    /// wait when the truncation comes: every callback must still fire, in order, with
    /// success (the truncation flushed their records first), and none may be stranded
    /// waiting for an LSN the truncation removed.
    #[test]
    fn callbacks_fire_in_order_across_truncations() {
        // Small segments: every truncation makes a segment.
        let config = crate::store::tests::config();
        let log = Log::open(config, MemStorage::new(4096)).unwrap();
        let log = SharedLog::open(log, SharedOptions::default()).unwrap();
        let shared = Arc::new(Shared::new(log, TailCache::new(0, 0, 1 << 20)));
        let flusher = Flusher::start(Arc::clone(&shared)).unwrap();
        let (sender, receiver) = mpsc::channel();
        for number in 0..300u64 {
            let records = vec![vec![number as u8; 8]; 10];
            let lsn = shared
                .with_log(|log| log.append_batch(&records, Durability::Staged))
                .unwrap();
            shared.tail().push(records);
            let lsn_end = lsn + 10;
            let sender = sender.clone();
            flusher.enqueue(lsn_end, Reported { number, sender });
            if number % 3 == 0 {
                flusher.exclusive(|queue| {
                    shared
                        .with_log(|log| log.truncate_suffix(lsn_end - 5))
                        .unwrap();
                    shared.tail().truncate_suffix(lsn_end - 5);
                    queue.fire_all();
                });
            }
            // A deadline against a hang, not a timing assertion.
            let fired = receiver.recv_timeout(Duration::from_secs(60));
            assert_eq!(fired, Ok((number, true)), "append {number}");
        }
    }
}
