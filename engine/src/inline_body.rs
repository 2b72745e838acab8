//! An action's closure, kept in place when it is small and boxed only when it is not.
//!
//! Every `add_action` used to box its closure: one `malloc` on the adding thread and one
//! `free` on the worker that ran it. The engine bench's profile put a third of the adding
//! thread's time in the allocator (the worker frees into the adder's arena, so the adder's
//! thread cache never refills and each `malloc` takes the arena's lock). Most actions capture
//! an `Arc` or two and an index, so a closure of up to [`WORDS`] words is stored in the queue's
//! slot itself; a larger (or over-aligned) one is boxed as before and the box is stored there.
//!
//! The type erasure is two plain function pointers made for the closure's type at the place it
//! is stored: one moves the closure out and calls it, the other drops it unrun. That is the
//! only `unsafe` here, and each block says what it relies on.

#![allow(unsafe_code)]

use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

use crate::ActionResult;

/// Machine words a closure may take to be stored in place.
const WORDS: usize = 4;

/// The in-place storage: `WORDS` words, aligned as a word.
type Storage = MaybeUninit<[usize; WORDS]>;

/// Whether a value of type `T` can live in [`Storage`].
const fn fits<T>() -> bool {
    size_of::<T>() <= size_of::<Storage>() && align_of::<T>() <= align_of::<Storage>()
}

/// A `FnOnce() -> ActionResult + Send` closure, in place or boxed.
pub(crate) struct InlineBody {
    /// Holds a value of the closure's type `F` (in place) or a `Box<F>`, written by `new` and
    /// read out at most once, by `call` or by `drop`.
    storage: Storage,
    /// Moves the value out of `storage` and calls it.
    call: unsafe fn(*mut Storage) -> ActionResult,
    /// Drops the value in `storage` unrun.
    drop: unsafe fn(*mut Storage),
}

// SAFETY: `new` accepts only `Send` closures, and the storage holds nothing else (the closure
// or the box of it), so moving an `InlineBody` to another thread moves a `Send` value.
unsafe impl Send for InlineBody {}

impl InlineBody {
    /// Stores `f`: in place if it fits, else boxed (the box always fits: it is one pointer).
    pub(crate) fn new<F>(f: F) -> Self
    where
        F: FnOnce() -> ActionResult + Send + 'static,
    {
        if const { fits::<F>() } {
            Self {
                storage: place(f),
                call: call_in_place::<F>,
                drop: drop_in_place::<F>,
            }
        } else {
            Self {
                storage: place(Box::new(f)),
                call: call_in_place::<Box<F>>,
                drop: drop_in_place::<Box<F>>,
            }
        }
    }

    /// Whether the closure is kept in place (no allocation); for tests.
    #[cfg(test)]
    fn in_place<F: FnOnce() -> ActionResult>(_: &F) -> bool {
        fits::<F>()
    }

    /// Runs the closure, consuming it.
    pub(crate) fn call(self) -> ActionResult {
        // Our `Drop` must not run after `call` moved the value out: the storage is spent.
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this.call` was made for the type `new` stored, the storage still holds that
        // value (nothing read it out: `call` and `drop` each consume the body), and it is not
        // touched again (`this` is never dropped).
        unsafe { (this.call)(&mut this.storage) }
    }
}

impl Drop for InlineBody {
    fn drop(&mut self) {
        // SAFETY: as in `call`: the storage holds the value `new` stored and `self.drop` was
        // made for its type; `drop` runs only when `call` did not (call forgets `self`).
        unsafe { (self.drop)(&mut self.storage) }
    }
}

/// Writes `value` into fresh storage. `T` must fit: `new` only places a type that does.
fn place<T>(value: T) -> Storage {
    // A constant for each `T`, so this costs nothing. (Not a compile-time assertion: the
    // branch of `new` that does not fit still instantiates `place` for the closure itself.)
    assert!(
        fits::<T>(),
        "a value placed in an InlineBody must fit its storage"
    );
    let mut storage = Storage::uninit();
    // SAFETY: the storage is large and aligned enough for `T` (the assertion above), and it
    // is fresh, so nothing is overwritten.
    unsafe { storage.as_mut_ptr().cast::<T>().write(value) };
    storage
}

/// Moves the `T` out of `storage` and calls it.
///
/// # Safety
///
/// `storage` holds a valid `T` written by [`place`], which nothing reads after this.
unsafe fn call_in_place<T: FnOnce() -> ActionResult>(storage: *mut Storage) -> ActionResult {
    // SAFETY: the caller's contract: a valid `T` is there and this is its only read. From
    // here on the closure is an ordinary local: if it panics, unwinding drops what it owns.
    let f = unsafe { storage.cast::<T>().read() };
    f()
}

/// Drops the `T` in `storage`.
///
/// # Safety
///
/// As for [`call_in_place`].
unsafe fn drop_in_place<T>(storage: *mut Storage) {
    // SAFETY: the caller's contract, as for `call_in_place`.
    unsafe { storage.cast::<T>().drop_in_place() }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::InlineBody;
    use crate::ActionResult;

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    #[test]
    fn a_small_closure_is_kept_in_place_and_a_large_or_over_aligned_one_is_boxed() {
        let small = 7usize;
        assert!(InlineBody::in_place(&move || {
            std::hint::black_box(small);
            Ok(())
        }));
        let large = [1u64; 5];
        assert!(!InlineBody::in_place(&move || {
            std::hint::black_box(large);
            Ok(())
        }));
        #[repr(align(64))]
        struct Wide(u8);
        let wide = Wide(1);
        assert!(!InlineBody::in_place(&move || {
            let Wide(byte) = std::hint::black_box(&wide);
            std::hint::black_box(byte);
            Ok(())
        }));
    }

    /// A body that holds `tracked` and runs `then`: kept in place, or, when `boxed`, with 64
    /// bytes of padding captured beside them so that it is boxed.
    fn tracked_body<F>(boxed: bool, tracked: Tracked, then: F) -> InlineBody
    where
        F: FnOnce() -> ActionResult + Send + 'static,
    {
        if boxed {
            let padding = [0u8; 64];
            let f = move || {
                let _keep = (&tracked, std::hint::black_box(&padding));
                then()
            };
            assert!(!InlineBody::in_place(&f));
            InlineBody::new(f)
        } else {
            let f = move || {
                let _keep = &tracked;
                then()
            };
            assert!(InlineBody::in_place(&f));
            InlineBody::new(f)
        }
    }

    #[test]
    fn a_called_body_runs_once_with_its_captures_and_drops_them_once() {
        for boxed in [false, true] {
            let drops = counter();
            let ran = counter();
            let seen = Arc::clone(&ran);
            let body = tracked_body(boxed, Tracked(Arc::clone(&drops)), move || {
                seen.fetch_add(12, Ordering::SeqCst);
                Ok(())
            });
            assert!(body.call().is_ok());
            assert_eq!(ran.load(Ordering::SeqCst), 12, "boxed: {boxed}");
            assert_eq!(drops.load(Ordering::SeqCst), 1, "boxed: {boxed}");
        }
    }

    #[test]
    fn a_body_dropped_unrun_drops_its_captures_once_and_never_runs() {
        for boxed in [false, true] {
            let drops = counter();
            let ran = counter();
            let seen = Arc::clone(&ran);
            let body = tracked_body(boxed, Tracked(Arc::clone(&drops)), move || {
                seen.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
            drop(body);
            assert_eq!(ran.load(Ordering::SeqCst), 0, "boxed: {boxed}");
            assert_eq!(drops.load(Ordering::SeqCst), 1, "boxed: {boxed}");
        }
    }

    #[test]
    fn a_panicking_body_drops_its_captures_once() {
        for boxed in [false, true] {
            let drops = counter();
            let body = tracked_body(boxed, Tracked(Arc::clone(&drops)), || panic!("boom"));
            assert!(catch_unwind(AssertUnwindSafe(|| body.call())).is_err());
            assert_eq!(drops.load(Ordering::SeqCst), 1, "boxed: {boxed}");
        }
    }

    #[test]
    fn a_body_moves_across_threads_and_returns_its_result() {
        let body = InlineBody::new(|| Err("refused".into()));
        let result = std::thread::spawn(move || body.call())
            .join()
            .map_err(|_| "the thread panicked");
        match result {
            Ok(Err(error)) => assert_eq!(error.to_string(), "refused"),
            other => panic!("expected the body's error, got {other:?}"),
        }
    }
}
