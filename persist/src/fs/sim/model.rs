//! The simulated filesystem's state and its crash rule: what each file and each directory
//! entry is *now*, what it is *durably*, and what a power loss leaves behind.
//!
//! Only plain semantics live here; fault injection, halting, dead handles and tracing are
//! applied around these calls by [`SimFs`](super::SimFs).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;

use super::rng::SimRng;
use crate::fs::{DirEntry, EntryKind};

/// An inode number. Never reused, so a stale reference can never hit a newer file.
pub(super) type Ino = u64;

fn err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// A regular file's bytes, now and as of its last successful fsync.
#[derive(Debug, Default)]
struct FileData {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// An fsync failed: per Linux semantics the dirty pages may be gone and the error is not
    /// reported twice, so we make every later fsync fail (code that retries is caught).
    poisoned: bool,
}

/// What a power loss leaves of a file whose current bytes differ from its durable bytes.
#[derive(Clone, Copy, Debug)]
enum Settle {
    /// Everything written reached the disk anyway.
    Current,
    /// Nothing since the last fsync reached the disk.
    Durable,
    /// The durable bytes plus a strict, non-empty prefix of what was appended (a torn write).
    TornPrefix,
    /// The new length reached the disk but, past a torn prefix, not the data: the tail reads
    /// as zeros (ext4 `data=writeback`, old XFS "NULL files").
    ZeroTail,
}

impl FileData {
    /// Applies the crash rule to this file and makes the survivor durable.
    fn settle(&mut self, rng: &mut SimRng) {
        self.poisoned = false;
        if self.current == self.durable {
            return;
        }
        let durable_len = self.durable.len();
        // Tearing only makes sense for an append with room for a strict, non-empty prefix.
        let appended = self.current.starts_with(&self.durable);
        let tearable = appended && self.current.len() > durable_len + 1;
        let choices: &[Settle] = if tearable {
            &[
                Settle::Current,
                Settle::Durable,
                Settle::TornPrefix,
                Settle::ZeroTail,
            ]
        } else {
            &[Settle::Current, Settle::Durable]
        };
        let pick = choices[rng.below(choices.len() as u64) as usize];
        let appended_len = self.current.len().saturating_sub(durable_len);
        let survivor = match pick {
            Settle::Current => std::mem::take(&mut self.current),
            Settle::Durable => std::mem::take(&mut self.durable),
            Settle::TornPrefix => {
                let keep = durable_len + 1 + rng_len(rng, appended_len - 1);
                self.current[..keep].to_vec()
            }
            Settle::ZeroTail => {
                let keep = durable_len + 1 + rng_len(rng, appended_len - 1);
                let mut bytes = std::mem::take(&mut self.current);
                bytes[keep..].fill(0);
                bytes
            }
        };
        self.durable = survivor.clone();
        self.current = survivor;
    }
}

/// A uniform number in `0..n`, as a length.
fn rng_len(rng: &mut SimRng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

/// What a name refers to.
#[derive(Debug)]
enum Body {
    File(FileData),
    /// A symlink and its target; it is never followed.
    Symlink(String),
}

#[derive(Debug)]
struct Inode {
    body: Body,
    /// Open `WritableFile`s on it: an unlinked inode lives until the last one closes.
    open_writers: u32,
}

/// A directory's name → inode bindings, now and as of its last successful fsync.
#[derive(Debug, Default)]
struct DirState {
    current: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
}

/// What a name in a directory currently refers to.
enum Found {
    Nothing,
    ChildDir,
    File(Ino),
    Symlink(Ino),
}

/// The whole simulated filesystem. Ordered maps throughout: the crash rule walks them while
/// drawing random numbers, and the walk order must not vary between runs.
#[derive(Debug, Default)]
pub(super) struct Model {
    inodes: BTreeMap<Ino, Inode>,
    /// Directories by path. Directories themselves are always durable (see the module doc of
    /// `SimFs`); only their entries have a crash rule.
    dirs: BTreeMap<PathBuf, DirState>,
    next_ino: Ino,
    /// flock holders: inode → guard id.
    locks: BTreeMap<Ino, u64>,
    next_lock_id: u64,
}

impl Model {
    // ---- directories -------------------------------------------------------------------

    /// Opens (and with `create`, creates along with its ancestors) the directory `path`.
    pub(super) fn open_dir(&mut self, path: &Path, create: bool) -> io::Result<()> {
        if self.dirs.contains_key(path) {
            return Ok(());
        }
        if !create {
            return Err(err(Errno::ENOENT));
        }
        let mut missing: Vec<&Path> = path
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty() && !self.dirs.contains_key(*a))
            .collect();
        missing.reverse();
        // Refuse before creating anything: a file standing where a directory should be.
        for dir in &missing {
            if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
                let clash = self
                    .dirs
                    .get(parent)
                    .is_some_and(|p| name.to_str().is_some_and(|n| p.current.contains_key(n)));
                if clash {
                    return Err(err(Errno::ENOTDIR));
                }
            }
        }
        for dir in missing {
            self.dirs.insert(dir.to_path_buf(), DirState::default());
        }
        Ok(())
    }

    fn dir(&self, dir: &Path) -> io::Result<&DirState> {
        self.dirs.get(dir).ok_or_else(|| err(Errno::ENOENT))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut DirState> {
        self.dirs.get_mut(dir).ok_or_else(|| err(Errno::ENOENT))
    }

    fn find(&self, dir: &Path, name: &str) -> io::Result<Found> {
        let state = self.dir(dir)?;
        if let Some(&ino) = state.current.get(name) {
            return Ok(match self.inodes.get(&ino).map(|i| &i.body) {
                Some(Body::Symlink(_)) => Found::Symlink(ino),
                _ => Found::File(ino),
            });
        }
        if self.dirs.contains_key(&dir.join(name)) {
            return Ok(Found::ChildDir);
        }
        Ok(Found::Nothing)
    }

    fn new_inode(&mut self, body: Body) -> Ino {
        self.next_ino += 1;
        let ino = self.next_ino;
        self.inodes.insert(
            ino,
            Inode {
                body,
                open_writers: 0,
            },
        );
        ino
    }

    /// `fsync(dir)`: the current entries become the durable ones.
    pub(super) fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        let state = self.dir_mut(dir)?;
        state.durable = state.current.clone();
        self.collect_garbage();
        Ok(())
    }

    pub(super) fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let state = self.dir(dir)?;
        let mut out: Vec<DirEntry> = state
            .current
            .iter()
            .map(|(name, ino)| {
                let (kind, len) = match self.inodes.get(ino).map(|i| &i.body) {
                    Some(Body::File(data)) => (EntryKind::File, data.current.len()),
                    Some(Body::Symlink(target)) => (EntryKind::Symlink, target.len()),
                    None => (EntryKind::Other, 0),
                };
                DirEntry {
                    name: OsString::from(name),
                    kind,
                    len: len as u64,
                }
            })
            .collect();
        let children = self
            .dirs
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name());
        out.extend(children.map(|name| DirEntry {
            name: name.to_os_string(),
            kind: EntryKind::Dir,
            len: 0,
        }));
        Ok(out)
    }

    // ---- files -------------------------------------------------------------------------

    /// `O_CREAT|O_EXCL`: a new empty file with one open writer. Its entry is not durable.
    pub(super) fn create_new(&mut self, dir: &Path, name: &str) -> io::Result<Ino> {
        match self.find(dir, name)? {
            Found::Nothing => {}
            _ => return Err(err(Errno::EEXIST)),
        }
        let ino = self.new_inode(Body::File(FileData::default()));
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.open_writers = 1;
        }
        self.dir_mut(dir)?.current.insert(name.to_owned(), ino);
        Ok(ino)
    }

    fn file_mut(&mut self, ino: Ino) -> io::Result<&mut FileData> {
        match self.inodes.get_mut(&ino).map(|i| &mut i.body) {
            Some(Body::File(data)) => Ok(data),
            _ => Err(err(Errno::EBADF)),
        }
    }

    pub(super) fn append(&mut self, ino: Ino, bytes: &[u8]) -> io::Result<()> {
        self.file_mut(ino)?.current.extend_from_slice(bytes);
        Ok(())
    }

    /// `pwrite`: overwrites `bytes` at `offset` in the current bytes, zero-filling any gap
    /// past the end. Nothing becomes durable.
    pub(super) fn write_at(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let data = self.file_mut(ino)?;
        let start = usize::try_from(offset).map_err(|_| err(Errno::EFBIG))?;
        let end = start
            .checked_add(bytes.len())
            .ok_or_else(|| err(Errno::EFBIG))?;
        if data.current.len() < end {
            data.current.resize(end, 0);
        }
        data.current[start..end].copy_from_slice(bytes);
        Ok(())
    }

    /// `fsync(fd)`: the current bytes become durable, unless an earlier fsync failed.
    pub(super) fn sync_file(&mut self, ino: Ino) -> io::Result<()> {
        let data = self.file_mut(ino)?;
        if data.poisoned {
            return Err(err(Errno::EIO));
        }
        data.durable = data.current.clone();
        Ok(())
    }

    /// Records a failed fsync (see [`FileData::poisoned`]).
    pub(super) fn poison(&mut self, ino: Ino) {
        if let Ok(data) = self.file_mut(ino) {
            data.poisoned = true;
        }
    }

    /// One writer closed its handle.
    pub(super) fn release_writer(&mut self, ino: Ino) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.open_writers = inode.open_writers.saturating_sub(1);
        }
        self.collect_garbage();
    }

    pub(super) fn open_writers(&self) -> usize {
        self.inodes.values().map(|i| i.open_writers as usize).sum()
    }

    /// A whole regular file's current bytes (`O_NOFOLLOW`: a symlink is `ELOOP`).
    pub(super) fn read(&self, dir: &Path, name: &str) -> io::Result<Arc<[u8]>> {
        match self.find(dir, name)? {
            Found::File(ino) => match self.inodes.get(&ino).map(|i| &i.body) {
                Some(Body::File(data)) => Ok(data.current.as_slice().into()),
                _ => Err(err(Errno::EIO)),
            },
            Found::Symlink(_) => Err(err(Errno::ELOOP)),
            Found::ChildDir => Err(err(Errno::EISDIR)),
            Found::Nothing => Err(err(Errno::ENOENT)),
        }
    }

    // ---- names -------------------------------------------------------------------------

    /// `renameat2(RENAME_NOREPLACE)`: moves the binding, only touching the current entries.
    pub(super) fn rename_noreplace(&mut self, dir: &Path, from: &str, to: &str) -> io::Result<()> {
        let ino = self.existing_for_link(dir, from, Errno::EINVAL)?;
        if !matches!(self.find(dir, to)?, Found::Nothing) {
            return Err(err(Errno::EEXIST));
        }
        let state = self.dir_mut(dir)?;
        state.current.remove(from);
        state.current.insert(to.to_owned(), ino);
        Ok(())
    }

    /// `linkat(.., 0)`: a second binding to the same inode (a symlink is linked itself).
    pub(super) fn hard_link(&mut self, dir: &Path, from: &str, to: &str) -> io::Result<()> {
        let ino = self.existing_for_link(dir, from, Errno::EPERM)?;
        if !matches!(self.find(dir, to)?, Found::Nothing) {
            return Err(err(Errno::EEXIST));
        }
        self.dir_mut(dir)?.current.insert(to.to_owned(), ino);
        Ok(())
    }

    /// The inode `from` names, for rename/link. Moving or linking a directory is not
    /// modelled; it fails with `on_dir` (Linux's answer for linking one is `EPERM`).
    fn existing_for_link(&self, dir: &Path, from: &str, on_dir: Errno) -> io::Result<Ino> {
        match self.find(dir, from)? {
            Found::File(ino) | Found::Symlink(ino) => Ok(ino),
            Found::ChildDir => Err(err(on_dir)),
            Found::Nothing => Err(err(Errno::ENOENT)),
        }
    }

    /// `unlinkat(.., 0)`: drops the current binding; the inode lives on while a durable
    /// entry, an open writer or a lock still refers to it.
    pub(super) fn unlink(&mut self, dir: &Path, name: &str) -> io::Result<()> {
        match self.find(dir, name)? {
            Found::File(_) | Found::Symlink(_) => {}
            Found::ChildDir => return Err(err(Errno::EISDIR)),
            Found::Nothing => return Err(err(Errno::ENOENT)),
        }
        self.dir_mut(dir)?.current.remove(name);
        self.collect_garbage();
        Ok(())
    }

    // ---- locks -------------------------------------------------------------------------

    /// Creates `name` if missing (entry not durable, like the real one) and locks its inode.
    /// Returns the inode and the guard id to unlock with.
    pub(super) fn lock(&mut self, dir: &Path, name: &str) -> io::Result<(Ino, u64)> {
        let ino = match self.find(dir, name)? {
            Found::File(ino) => ino,
            Found::Symlink(_) => return Err(err(Errno::ELOOP)),
            Found::ChildDir => return Err(err(Errno::EISDIR)),
            Found::Nothing => {
                let ino = self.new_inode(Body::File(FileData::default()));
                self.dir_mut(dir)?.current.insert(name.to_owned(), ino);
                ino
            }
        };
        if self.locks.contains_key(&ino) {
            return Err(err(Errno::EWOULDBLOCK));
        }
        self.next_lock_id += 1;
        self.locks.insert(ino, self.next_lock_id);
        Ok((ino, self.next_lock_id))
    }

    /// Releases the lock on `ino` if guard `id` still holds it (after a crash, or once the
    /// lock was taken again, an old guard must not release someone else's lock).
    pub(super) fn unlock(&mut self, ino: Ino, id: u64) {
        if self.locks.get(&ino) == Some(&id) {
            self.locks.remove(&ino);
            self.collect_garbage();
        }
    }

    // ---- crash -------------------------------------------------------------------------

    /// Power loss and reboot: see the crash model in the `SimFs` module doc.
    pub(super) fn crash(&mut self, rng: &mut SimRng) {
        self.locks.clear();
        for state in self.dirs.values_mut() {
            let names: BTreeSet<String> = state
                .current
                .keys()
                .chain(state.durable.keys())
                .cloned()
                .collect();
            let mut survived = BTreeMap::new();
            for name in names {
                let now = state.current.get(&name).copied();
                let durable = state.durable.get(&name).copied();
                // Each changed entry independently: the new binding or the old one (either
                // may be "no such name").
                let keep = if now == durable || rng.coin() {
                    now
                } else {
                    durable
                };
                if let Some(ino) = keep {
                    survived.insert(name, ino);
                }
            }
            state.durable = survived.clone();
            state.current = survived;
        }
        for inode in self.inodes.values_mut() {
            inode.open_writers = 0;
        }
        // Drop inodes no surviving name refers to before settling data, so the random draws
        // depend only on what survives.
        self.collect_garbage();
        for inode in self.inodes.values_mut() {
            if let Body::File(data) = &mut inode.body {
                data.settle(rng);
            }
        }
    }

    /// Forgets inodes nothing refers to any more: no current or durable entry, no open
    /// writer, no lock.
    fn collect_garbage(&mut self) {
        let referenced: BTreeSet<Ino> = self
            .dirs
            .values()
            .flat_map(|d| d.current.values().chain(d.durable.values()))
            .copied()
            .collect();
        let locks = &self.locks;
        self.inodes.retain(|ino, inode| {
            referenced.contains(ino) || inode.open_writers > 0 || locks.contains_key(ino)
        });
    }

    // ---- test helpers (no faults, not counted) -------------------------------------------

    /// Binds `name` to a new file holding `bytes`; `durable` makes both the bytes and the
    /// entry durable, otherwise neither is.
    pub(super) fn plant_file(&mut self, dir: &Path, name: &str, bytes: &[u8], durable: bool) {
        let data = FileData {
            current: bytes.to_vec(),
            durable: if durable { bytes.to_vec() } else { Vec::new() },
            poisoned: false,
        };
        self.plant(dir, name, Body::File(data), durable);
    }

    /// Binds `name` to a new symlink to `target`, durably.
    pub(super) fn plant_symlink(&mut self, dir: &Path, name: &str, target: &str) {
        self.plant(dir, name, Body::Symlink(target.to_owned()), true);
    }

    fn plant(&mut self, dir: &Path, name: &str, body: Body, durable: bool) {
        // Helpers set the stage without checks: every missing ancestor simply appears.
        for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            self.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        let ino = self.new_inode(body);
        if let Some(state) = self.dirs.get_mut(dir) {
            state.current.insert(name.to_owned(), ino);
            if durable {
                state.durable.insert(name.to_owned(), ino);
            }
        }
        self.collect_garbage();
    }

    /// The current length of regular file `name`, if there is one.
    pub(super) fn file_len(&self, dir: &Path, name: &str) -> Option<usize> {
        let ino = self.dirs.get(dir)?.current.get(name)?;
        match &self.inodes.get(ino)?.body {
            Body::File(data) => Some(data.current.len()),
            Body::Symlink(_) => None,
        }
    }

    /// The current bytes of regular file `name`, if there is one.
    pub(super) fn peek(&self, dir: &Path, name: &str) -> Option<Vec<u8>> {
        let ino = self.dirs.get(dir)?.current.get(name)?;
        match &self.inodes.get(ino)?.body {
            Body::File(data) => Some(data.current.clone()),
            Body::Symlink(_) => None,
        }
    }

    /// Edits regular file `name` as stored on the medium: both its current and its durable
    /// bytes. Returns false when there is no such file.
    pub(super) fn edit_file(
        &mut self,
        dir: &Path,
        name: &str,
        edit: impl Fn(&mut Vec<u8>),
    ) -> bool {
        let Some(ino) = self
            .dirs
            .get(dir)
            .and_then(|d| d.current.get(name))
            .copied()
        else {
            return false;
        };
        match self.file_mut(ino) {
            Ok(data) => {
                edit(&mut data.current);
                edit(&mut data.durable);
                true
            }
            Err(_) => false,
        }
    }
}
