//! [`SimFs`]: an in-memory filesystem with a power-loss crash model and fault injection.
//!
//! # What is modelled
//!
//! **Durability.** Every file has *current* bytes (what reads see) and *durable* bytes (as of
//! its last successful `WritableFile::sync`). Every directory has *current* entries
//! (name → file bindings) and *durable* entries (as of its last successful `DirHandle::sync`).
//! Nothing else makes anything durable.
//!
//! **Crash** ([`SimFs::crash`]) is a power loss followed by a reboot:
//! - every handle opened before it is dead: each call on it fails with `EIO`; dropping it is
//!   harmless. Every lock is released.
//! - each directory entry whose current binding differs from its durable one independently
//!   (by the seeded RNG) keeps either its current or its durable binding, where "no such name"
//!   is a binding too. So a created-but-not-dir-synced name may vanish, an unlinked one may come
//!   back, and a rename (which changes two entries) may come back as the old name, the new
//!   name, both, or *neither*. That last outcome is harsher than ext4 or XFS, whose journals
//!   make a rename atomic, but POSIX promises nothing before the directory fsync, and the
//!   writer must not rely on more than that.
//! - a file no surviving name refers to is gone.
//! - each surviving file whose current bytes differ from its durable ones independently
//!   becomes: its current bytes; its durable bytes (a never-synced file: empty); its durable
//!   bytes plus a strict, non-empty prefix of what was appended since (a torn write); or its
//!   full current length with the tail past such a prefix zeroed (size reached the disk, data
//!   did not, as with ext4 `data=writeback`).
//! - the survivors become both current and durable; the filesystem is usable again.
//!
//! **Faults** ([`SimFs::inject`]) fail chosen calls with real errno values and realistic side
//! effects: a failed write writes nothing; a failed file fsync leaves the data non-durable *and*
//! poisons the file, so every later fsync of it fails too (Linux may drop the dirty pages and
//! report the error only once: a retried fsync that "succeeds" proves nothing, so the model
//! makes retrying visible); a failed close still closes; a failed rename, link, unlink,
//! create, directory fsync, listing, read or lock changes nothing.
//!
//! **Halting** ([`SimFs::halt_after`]) models the process dying mid-sequence: after n more calls
//! every call fails with `EIO` and changes nothing until [`SimFs::crash`].
//!
//! # What is not modelled
//!
//! - An fsync of a file does *not* make its new directory entry durable (ext4 and XFS often
//!   do in practice; not relying on it is the conservative choice), and a directory fsync does
//!   not make file data durable.
//! - Directories themselves are always durable, and cannot be removed or renamed (the real
//!   [`RealFs`](super::RealFs) fsyncs the parent of every directory it creates). Child
//!   directories show up in their parent's listing and occupy their name, nothing more.
//! - Only clean prefixes and zeroed tails are torn; no garbage bytes, no reordering within a
//!   file, no bit rot (use [`SimFs::flip_bit`] / [`SimFs::truncate`] for that).
//! - An in-place overwrite (`WritableFile::write_at`) of bytes that were already durable makes
//!   the file survive a crash as its current or its durable bytes, never a page-by-page mix.
//!   (The writer only overwrites files that were never fsynced, whose durable bytes are empty,
//!   so the torn-append rule above applies to them in full.)
//! - A directory fsync never fails on its own and is never poisoned; only injected faults fail
//!   it.
//! - Permissions, modes, ownership, timestamps and free space (`ENOSPC` only by injection).
//! - Reads see a copy taken at `open_read`; files are not changed in place by the seam anyway.
//!
//! Everything is deterministic for a given seed and call sequence. From several threads, the
//! interleaving decides the call sequence, so only single-threaded runs replay exactly.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use parking_lot::Mutex;

use super::name_check::check_name;
use super::{DirHandle, FileSystem};

mod fault;
mod handles;
mod model;
mod rng;
mod trace;

pub use fault::{Fault, FaultKind, Op, Trigger};
pub use trace::{OpRecord, Outcome};

use fault::FaultTable;
use handles::SimDir;
use model::Model;
use rng::SimRng;

/// The in-memory filesystem (see the module doc for its model). Cloning shares the state.
#[derive(Clone)]
pub struct SimFs {
    shared: Arc<Mutex<Shared>>,
}

/// Everything behind the lock.
struct Shared {
    seed: u64,
    model: Model,
    faults: FaultTable,
    /// Separate streams, so injecting faults does not change which crash outcomes a seed gives.
    fault_rng: SimRng,
    crash_rng: SimRng,
    op_count: u64,
    /// Calls numbered above this fail (set by `halt_after`).
    halt_at: Option<u64>,
    /// Bumped by every crash; a handle from an older epoch is dead.
    epoch: u64,
    noreplace_supported: bool,
    trace: Vec<OpRecord>,
}

/// Where a call happened, for the gate and the trace.
struct Site<'a> {
    op: Op,
    dir: &'a Path,
    name: Option<&'a str>,
    to: Option<&'a str>,
    /// The epoch of the handle the call was made on (`None` for `open_dir`).
    epoch: Option<u64>,
}

impl SimFs {
    /// An empty filesystem whose random choices all derive from `seed`.
    pub fn new(seed: u64) -> SimFs {
        // Derive two independent streams from the one seed.
        let mut seeder = SimRng::new(seed);
        let fault_rng = SimRng::new(seeder.next_u64());
        let crash_rng = SimRng::new(seeder.next_u64());
        SimFs {
            shared: Arc::new(Mutex::new(Shared {
                seed,
                model: Model::default(),
                faults: FaultTable::default(),
                fault_rng,
                crash_rng,
                op_count: 0,
                halt_at: None,
                epoch: 0,
                noreplace_supported: true,
                trace: Vec::new(),
            })),
        }
    }

    // ---- crash and faults ----------------------------------------------------------------

    /// Power loss and reboot (see the module doc). Also lifts `halt_after`; injected faults
    /// stay until [`clear_faults`](Self::clear_faults).
    pub fn crash(&self) {
        let mut s = self.shared.lock();
        let s = &mut *s;
        s.epoch += 1;
        s.halt_at = None;
        s.model.crash(&mut s.crash_rng);
    }

    /// Adds a fault. Faults are checked in injection order; every matching fault counts every
    /// call it matches, and the first that fires decides the failure.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.inject(fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// After `n` more calls, every call fails with `EIO` (changing nothing) until
    /// [`crash`](Self::crash): the process died mid-sequence.
    pub fn halt_after(&self, n: u64) {
        let mut s = self.shared.lock();
        s.halt_at = Some(s.op_count.saturating_add(n));
    }

    /// With `false`, `rename_noreplace` fails with `EINVAL` like a kernel or filesystem without
    /// `RENAME_NOREPLACE`, so the link + unlink fallback can be tested.
    pub fn set_rename_noreplace_supported(&self, supported: bool) {
        self.shared.lock().noreplace_supported = supported;
    }

    /// Every seam call made so far, failed or not.
    pub fn op_count(&self) -> u64 {
        self.shared.lock().op_count
    }

    /// A record of every seam call so far (or since [`clear_trace`](Self::clear_trace)).
    pub fn trace(&self) -> Vec<OpRecord> {
        self.shared.lock().trace.clone()
    }

    /// Forgets the trace (long simulations); `op_count` and record numbering go on.
    pub fn clear_trace(&self) {
        self.shared.lock().trace.clear();
    }

    /// How many `WritableFile`s are open (a leak check: the writer must close every file, even
    /// on its failure paths).
    pub fn open_files(&self) -> usize {
        self.shared.lock().model.open_writers()
    }

    // ---- test helpers: no faults, not counted, not traced ----------------------------------

    /// Puts a file `name` holding `bytes` into `dir` (created if missing), replacing any
    /// existing binding. With `durable`, the bytes and the entry survive any crash; without,
    /// neither is durable.
    pub fn plant_file(&self, dir: &Path, name: &str, bytes: &[u8], durable: bool) {
        self.shared
            .lock()
            .model
            .plant_file(dir, name, bytes, durable);
    }

    /// Puts a durable symlink `name` → `target` into `dir` (created if missing).
    pub fn plant_symlink(&self, dir: &Path, name: &str, target: &str) {
        self.shared.lock().model.plant_symlink(dir, name, target);
    }

    /// The current bytes of regular file `name` in `dir`, or `None`.
    pub fn read(&self, dir: &Path, name: &str) -> Option<Vec<u8>> {
        self.shared.lock().model.peek(dir, name)
    }

    /// The names in `dir` (files, symlinks and child directories), sorted; empty for a missing
    /// directory.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        let s = self.shared.lock();
        let mut names: Vec<String> = s
            .model
            .list(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Flips bit `bit_index` (bit `i % 8` of byte `i / 8`) of file `name` on the medium, like
    /// bit rot. False if there is no such file or the file is too short.
    pub fn flip_bit(&self, dir: &Path, name: &str, bit_index: u64) -> bool {
        let mut s = self.shared.lock();
        let Some(len) = s.model.file_len(dir, name) else {
            return false;
        };
        let byte = bit_index / 8;
        if byte >= len as u64 {
            return false;
        }
        // byte < len, so it fits in usize.
        let (byte, mask) = (byte as usize, 1u8 << (bit_index % 8));
        s.model.edit_file(dir, name, |bytes| {
            if let Some(b) = bytes.get_mut(byte) {
                *b ^= mask;
            }
        })
    }

    /// Cuts file `name` on the medium down to `len` bytes. False if there is no such file or
    /// it is shorter than `len` (this only shrinks).
    pub fn truncate(&self, dir: &Path, name: &str, len: u64) -> bool {
        let mut s = self.shared.lock();
        match s.model.file_len(dir, name) {
            Some(cur) if len <= cur as u64 => {
                // len <= cur, so it fits in usize.
                let len = len as usize;
                s.model.edit_file(dir, name, |bytes| bytes.truncate(len))
            }
            _ => false,
        }
    }

    // ---- the gate every seam call passes -------------------------------------------------

    /// Counts and traces one call, and decides whether it gets to run: a halted filesystem or
    /// a dead handle fails it with `EIO`, an invalid name with `InvalidInput`; otherwise `body`
    /// runs with the fault (if any) that fired for it, and applies that fault's side effects.
    fn call<T>(
        &self,
        site: Site<'_>,
        body: impl FnOnce(&mut Shared, Option<FaultKind>) -> io::Result<T>,
        outcome: impl FnOnce(&T) -> Outcome,
    ) -> io::Result<T> {
        let mut guard = self.shared.lock();
        let s = &mut *guard;
        s.op_count += 1;
        let seq = s.op_count;
        let halted = s.halt_at.is_some_and(|h| seq > h);
        let mut fault = None;
        let result = if halted || site.epoch.is_some_and(|e| e != s.epoch) {
            Err(io::Error::from_raw_os_error(Errno::EIO as i32))
        } else if let Err(e) = [site.name, site.to]
            .into_iter()
            .flatten()
            .try_for_each(check_name)
        {
            Err(e)
        } else {
            fault = s.faults.check(site.op, &mut s.fault_rng);
            body(s, fault)
        };
        s.trace.push(OpRecord {
            seq,
            op: site.op,
            dir: site.dir.to_path_buf(),
            name: site.name.map(str::to_owned),
            to: site.to.map(str::to_owned),
            outcome: match &result {
                Ok(v) => outcome(v),
                Err(e) => Outcome::Failed(e.raw_os_error()),
            },
            fault,
            halted,
        });
        result
    }
}

/// Fails with the injected fault, if one fired: for calls whose failure has no side effect.
fn fail_if(fault: Option<FaultKind>) -> io::Result<()> {
    match fault {
        Some(kind) => Err(kind.error()),
        None => Ok(()),
    }
}

impl FileSystem for SimFs {
    fn open_dir(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DirHandle>> {
        let site = Site {
            op: Op::OpenDir,
            dir: path,
            name: None,
            to: None,
            epoch: None,
        };
        let epoch = self.call(
            site,
            |s, fault| {
                fail_if(fault)?;
                s.model.open_dir(path, create)?;
                Ok(s.epoch)
            },
            |_| Outcome::Ok,
        )?;
        Ok(Arc::new(SimDir::new(
            self.clone(),
            path.to_path_buf(),
            epoch,
        )))
    }
}

impl fmt::Debug for SimFs {
    // The state can be large; show what identifies a run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.shared.lock();
        f.debug_struct("SimFs")
            .field("seed", &s.seed)
            .field("op_count", &s.op_count)
            .field("epoch", &s.epoch)
            .finish_non_exhaustive()
    }
}
