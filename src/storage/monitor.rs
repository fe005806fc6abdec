//! A state under a mutex with one condition variable, for the storage's helper threads.

use std::sync::{Condvar, Mutex, MutexGuard};

pub(super) struct Monitor<T> {
    state: Mutex<T>,
    /// Signalled whenever the state changes in a way someone may wait for.
    changed: Condvar,
}

impl<T> Monitor<T> {
    pub fn new(state: T) -> Monitor<T> {
        Monitor {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// A poisoned lock means a helper thread panicked, which is a bug: carry on and let the
    /// assertions of the caller find what is missing.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn wait<'a>(&self, state: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.changed
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn notify_all(&self) {
        self.changed.notify_all();
    }
}
