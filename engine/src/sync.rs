//! The synchronisation primitives the engine's state machines are written against.
//!
//! Normal builds use `parking_lot` locks (no poisoning, so a panicking action can never wedge
//! the engine) and `std` atomics. Under `cfg(loom)` the same names resolve to loom's
//! model-checked versions, so the loom tests explore the real queue and board code rather than a
//! copy of it. Only the subset of the `parking_lot` API the engine uses is mirrored.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize};
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex};

#[cfg(loom)]
pub(crate) use self::loom_shim::{Condvar, Mutex};

/// The threaded board's lock-free FIFO: crossbeam-deque's `Injector` (a linearisable,
/// multi-producer multi-consumer queue). Under loom it is a loom mutex around a `VecDeque`,
/// which has the same sequential behaviour and lets the model interleave around every push
/// and pop (loom cannot see inside crossbeam's own atomics).
pub(crate) struct Injector<T> {
    #[cfg(not(loom))]
    inner: crossbeam_deque::Injector<T>,
    #[cfg(loom)]
    inner: Mutex<std::collections::VecDeque<T>>,
}

impl<T> Injector<T> {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            inner: crossbeam_deque::Injector::new(),
            #[cfg(loom)]
            inner: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    pub(crate) fn push(&self, value: T) {
        #[cfg(not(loom))]
        self.inner.push(value);
        #[cfg(loom)]
        self.inner.lock().push_back(value);
    }

    /// The oldest entry, if any.
    pub(crate) fn pop(&self) -> Option<T> {
        #[cfg(not(loom))]
        loop {
            match self.inner.steal() {
                crossbeam_deque::Steal::Success(value) => return Some(value),
                crossbeam_deque::Steal::Empty => return None,
                // Lost a race with another consumer: the queue is not empty, try again.
                crossbeam_deque::Steal::Retry => std::hint::spin_loop(),
            }
        }
        #[cfg(loom)]
        self.inner.lock().pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        #[cfg(not(loom))]
        return self.inner.is_empty();
        #[cfg(loom)]
        self.inner.lock().is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        #[cfg(not(loom))]
        return self.inner.len();
        #[cfg(loom)]
        self.inner.lock().len()
    }
}

#[cfg(loom)]
mod loom_shim {
    use std::ops::{Deref, DerefMut};
    use std::sync::PoisonError;
    use std::time::Instant;

    /// loom's mutex behind `parking_lot`'s signatures (no poisoning: a poisoned lock is used
    /// as is, exactly like `parking_lot` would).
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)))
        }

        pub(crate) fn get_mut(&mut self) -> &mut T {
            self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// The guard is an `Option` only so `Condvar::wait` can move it into loom and back.
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            match &self.0 {
                Some(guard) => guard,
                None => unreachable!("a guard is empty only inside Condvar::wait"),
            }
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            match &mut self.0 {
                Some(guard) => guard,
                None => unreachable!("a guard is empty only inside Condvar::wait"),
            }
        }
    }

    /// Result of a timed wait, as in `parking_lot`.
    pub(crate) struct WaitTimeoutResult(bool);

    impl WaitTimeoutResult {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    /// loom's condition variable behind `parking_lot`'s signatures.
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            if let Some(inner) = guard.0.take() {
                guard.0 = Some(self.0.wait(inner).unwrap_or_else(PoisonError::into_inner));
            }
        }

        /// loom has no clock: a timed wait is an untimed wait that never reports a timeout.
        /// Only the threaded paths wait with a deadline, and loom models never run those.
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            _deadline: Instant,
        ) -> WaitTimeoutResult {
            self.wait(guard);
            WaitTimeoutResult(false)
        }
    }
}
