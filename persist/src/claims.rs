//! Name claims: at most one write per committed name at a time, and writes of different names
//! in parallel.
//!
//! Two writes of the same name at once would each take the other's half-written uncommitted
//! file for a stale one and remove it; a second write of a name waits for the first, then
//! finds the committed file and is refused. Writes of different names share nothing but the
//! directory, so their file writes and `fsync`s overlap (the directory `fsync`s themselves are
//! serialised by the guarded directory handle).

use std::collections::HashSet;

use parking_lot::{Condvar, Mutex};

use crate::names::{FileState, SnapshotName};

/// The committed names being written right now.
#[derive(Debug, Default)]
pub(crate) struct NameClaims {
    writing: Mutex<HashSet<SnapshotName>>,
    released: Condvar,
}

impl NameClaims {
    /// Claims `name` (keyed by its committed form), waiting while another write holds it.
    pub(crate) fn claim(&self, name: SnapshotName) -> NameClaim<'_> {
        let name = name.with_state(FileState::Committed);
        let mut writing = self.writing.lock();
        while writing.contains(&name) {
            self.released.wait(&mut writing);
        }
        writing.insert(name);
        NameClaim { claims: self, name }
    }
}

/// A claim on one name; released on drop.
#[derive(Debug)]
pub(crate) struct NameClaim<'a> {
    claims: &'a NameClaims,
    name: SnapshotName,
}

impl Drop for NameClaim<'_> {
    fn drop(&mut self) {
        self.claims.writing.lock().remove(&self.name);
        self.claims.released.notify_all();
    }
}
