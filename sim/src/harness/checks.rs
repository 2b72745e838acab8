//! The invariants: each check compares what the simulated disk, the events and the
//! Snapshotter show against what the SPEC allows, given everything the harness recorded.
//!
//! Checks look at the disk through SimFs's test helpers (`names`, `read`), which are neither
//! counted nor traced nor subject to injected faults, so checking never changes the run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use snapseal_actors::internals::GenerationInfo;
use snapseal_actors::CommittedSnapshot;
use snapseal_persist::internals::receipt::Receipt;
use snapseal_persist::internals::{verify_bytes, PendingName};
use snapseal_persist::{BodyReader, FileState, SnapshotName};

use super::history::{AckRecord, GateRecord};
use super::{Harness, Invariant, Violation};
use snapseal_ledger::ledger::TxKind;
use snapseal_ledger::node::decode_kv;

impl Harness {
    /// Our snapshot files on the simulated disk, oldest first.
    pub(super) fn listing(&self) -> Vec<SnapshotName> {
        let mut names: Vec<SnapshotName> = self
            .sim
            .names(&self.dir)
            .iter()
            .filter_map(|n| SnapshotName::parse(n))
            .collect();
        names.sort();
        names
    }

    /// Records, and checks, the gate of every generation whose persist action was scheduled
    /// since the last look. Scheduling happens only inside the node's calls, and the harness
    /// looks right after each, so the state seen here is the state the gate was checked on.
    pub(super) fn observe_gates(&mut self) -> Result<(), Violation> {
        for g in self.process.snap.pending() {
            let key = (self.incarnation, g.generation);
            if !g.persist_scheduled || self.history.scheduled.contains_key(&key) {
                continue;
            }
            self.stats.checks += 1;
            let record = self.gate_record(&g).map_err(|detail| {
                self.violation(
                    Invariant::GateNotHeld,
                    format!("generation {} (idx {}): {detail}", g.generation, g.idx),
                )
            })?;
            self.history.scheduled.insert(key, record);
        }
        Ok(())
    }

    fn gate_record(&self, g: &GenerationInfo) -> Result<GateRecord, String> {
        if !g.serialised {
            return Err("persist scheduled before serialisation finished".into());
        }
        let e = g.evidence_idx.ok_or("persist scheduled without evidence")?;
        let s = g.sig_idx.ok_or("persist scheduled without a signature")?;
        if s <= e {
            return Err(format!("signature {s} is not after evidence {e}"));
        }
        if self.commit_idx < s {
            return Err(format!(
                "signature {s} is not committed (commit index {})",
                self.commit_idx
            ));
        }
        let digest = match self.ledger.tx(e) {
            Some(TxKind::Evidence {
                snapshot_idx,
                digest,
            }) if snapshot_idx == g.idx => digest,
            other => return Err(format!("ledger tx {e} is {other:?}, not its evidence")),
        };
        match self.ledger.tx(s) {
            Some(TxKind::Signature(_)) => {}
            other => return Err(format!("ledger tx {s} is {other:?}, not a signature")),
        }
        Ok(GateRecord {
            idx: g.idx,
            evidence_idx: e,
            sig_idx: s,
            digest,
        })
    }

    /// Checks one `Committed` event; returns the committed name.
    pub(super) fn check_ack(&mut self, c: &CommittedSnapshot) -> Result<SnapshotName, Violation> {
        self.stats.checks += 1;
        self.stats.acked += 1;
        let key = (self.incarnation, c.generation);
        let what = format!("generation {} (idx {})", c.generation, c.idx);
        if self.history.dropped.contains(&key) {
            return Err(self.violation(
                Invariant::DroppedPersisted,
                format!("{what} was dropped by a rollback, then reported committed"),
            ));
        }
        if !self.history.acked_gens.insert(key) {
            return Err(self.violation(
                Invariant::PersistedTwice,
                format!("{what} reported committed twice"),
            ));
        }
        let expected = GateRecord {
            idx: c.idx,
            evidence_idx: c.evidence_idx,
            sig_idx: c.sig_idx,
            digest: c.claims_digest,
        };
        match self.history.scheduled.get(&key) {
            Some(record) if *record == expected => {}
            other => {
                return Err(self.violation(
                    Invariant::PersistedWithoutGate,
                    format!("{what} reported committed as {expected:?}; gate seen: {other:?}"),
                ))
            }
        }
        let name = SnapshotName {
            idx: c.idx,
            evidence_idx: c.evidence_idx,
            state: FileState::Committed,
        };
        if c.path != self.dir.join(name.file_name()) {
            return Err(self.violation(
                Invariant::InvalidCommittedFile,
                format!("{what} reported at {}, expected {name}", c.path.display()),
            ));
        }
        if !self.history.acked_names.insert(name) {
            return Err(self.violation(
                Invariant::PersistedTwice,
                format!("{name} reported committed twice"),
            ));
        }
        let sig_idx = self.check_committed_file(name)?;
        if sig_idx != c.sig_idx {
            return Err(self.violation(
                Invariant::InvalidCommittedFile,
                format!(
                    "{name}: receipt signature {sig_idx}, event says {}",
                    c.sig_idx
                ),
            ));
        }
        self.verified.insert(name);
        let pending = PendingName {
            idx: c.idx,
            generation: c.generation,
        };
        if self.pending_seen.contains(&pending) {
            self.stats.spilled_acked += 1;
        }
        self.history.acks.push(AckRecord {
            incarnation: self.incarnation,
            generation: c.generation,
            idx: c.idx,
            evidence_idx: c.evidence_idx,
            sig_idx: c.sig_idx,
        });
        Ok(name)
    }

    /// A committed file verifies, is backed by the ledger and holds the right state. Returns
    /// its receipt's signature index.
    fn check_committed_file(&mut self, name: SnapshotName) -> Result<u64, Violation> {
        self.stats.checks += 1;
        let Some(bytes) = self.sim.read(&self.dir, &name.file_name()) else {
            return Err(self.violation(Invariant::AckedLost, format!("{name} is not on disk")));
        };
        self.sizes.insert(name, bytes.len() as u64);
        let v = verify_bytes(&bytes, Some(&name), self.verifier.as_ref()).map_err(|e| {
            self.violation(
                Invariant::InvalidCommittedFile,
                format!("{name} does not verify: {e}"),
            )
        })?;
        let unproven = |detail: String| {
            self.violation(
                Invariant::UnprovenCommittedFile,
                format!("{name}: {detail}"),
            )
        };
        match self.ledger.tx(name.evidence_idx) {
            Some(TxKind::Evidence {
                snapshot_idx,
                digest,
            }) if snapshot_idx == name.idx && digest == v.header.claims().digest() => {}
            other => {
                return Err(unproven(format!(
                    "ledger tx {} is {other:?}, not evidence of this body",
                    name.evidence_idx
                )))
            }
        }
        let sig_idx = v.verified.sig_idx;
        if sig_idx > self.commit_idx {
            return Err(unproven(format!(
                "its signature {sig_idx} is not committed (commit index {})",
                self.commit_idx
            )));
        }
        let root = Receipt::decode(v.receipt)
            .map(|r| r.signed.root)
            .map_err(|e| unproven(format!("receipt verified but does not decode: {e}")))?;
        match self.ledger.tx(sig_idx) {
            Some(TxKind::Signature(s)) if s.root == root => {}
            other => {
                return Err(unproven(format!(
                    "ledger tx {sig_idx} is {other:?}, not the signature in the receipt"
                )))
            }
        }
        self.check_content(name, v.body_reader())?;
        Ok(sig_idx)
    }

    /// The body is exactly the key-value state at the snapshot's index.
    fn check_content(
        &self,
        name: SnapshotName,
        body: std::io::Result<BodyReader<'_>>,
    ) -> Result<(), Violation> {
        let wrong =
            |detail: String| self.violation(Invariant::WrongContent, format!("{name}: {detail}"));
        let mut raw = Vec::new();
        body.and_then(|mut r| r.read_to_end(&mut raw))
            .map_err(|e| wrong(format!("decoding the body: {e}")))?;
        let (idx, map) = decode_kv(&raw).ok_or_else(|| wrong("not a KV body".into()))?;
        let mut expected = BTreeMap::new();
        let complete = self.ledger.for_each_write(name.idx, |k, v| {
            expected.insert(k, v.to_vec());
        });
        if !complete {
            return Err(wrong(format!(
                "the ledger no longer reaches {} (ends at {})",
                name.idx,
                self.ledger.last_idx()
            )));
        }
        if idx != name.idx || map != expected {
            return Err(wrong(format!(
                "body is the state at {idx} with {} keys; the ledger at {} has {} keys",
                map.len(),
                name.idx,
                expected.len()
            )));
        }
        Ok(())
    }

    /// The directory scan after every step and every job.
    pub(super) fn check_directory(&mut self) -> Result<(), Violation> {
        self.stats.checks += 1;
        let names = self.listing();
        let committed: BTreeSet<SnapshotName> = names
            .iter()
            .filter(|n| n.state == FileState::Committed)
            .copied()
            .collect();
        for &name in &committed {
            if self.corrupted.contains(&name) || self.verified.contains(&name) {
                continue;
            }
            self.check_committed_file(name)?;
            self.verified.insert(name);
        }
        let removed: Vec<SnapshotName> = self.present.difference(&committed).copied().collect();
        for r in removed {
            self.check_removal(r, &committed)?;
        }
        if !self.dirty {
            if let Some(u) = names.iter().find(|n| n.state == FileState::Uncommitted) {
                return Err(self.violation(
                    Invariant::StaleFile,
                    format!("{u} exists between jobs although no fault was injected"),
                ));
            }
        }
        self.present = committed;
        self.check_pending_files()
    }

    /// Pending files are counted, and without a fault each one belongs to a generation that is
    /// still pending: a dropped or failed generation removes its file, a persisted one renamed it.
    fn check_pending_files(&mut self) -> Result<(), Violation> {
        let on_disk = self.pending_files();
        if on_disk.is_empty() {
            return Ok(());
        }
        for p in &on_disk {
            if self.pending_seen.insert(*p) {
                self.stats.spilled += 1;
            }
        }
        if self.dirty {
            return Ok(());
        }
        let live: BTreeSet<PendingName> = self
            .process
            .snap
            .pending()
            .iter()
            .map(|g| PendingName {
                idx: g.idx,
                generation: g.generation,
            })
            .collect();
        // A rollback hands a dropped generation's spilled body to a job that removes its file.
        let incarnation = self.incarnation;
        let discarding =
            |p: &PendingName| self.history.dropped.contains(&(incarnation, p.generation));
        match on_disk.iter().find(|p| !live.contains(p) && !discarding(p)) {
            Some(p) => Err(self.violation(
                Invariant::StaleFile,
                format!(
                    "{p} belongs to no pending generation ({live:?}) although no fault was \
                     injected"
                ),
            )),
            None => Ok(()),
        }
    }

    /// A committed file vanished without a crash: only retention (never among the newest
    /// `keep_last`, never under a hold) or the quarantine of a corrupted file may do that.
    fn check_removal(
        &mut self,
        r: SnapshotName,
        now: &BTreeSet<SnapshotName>,
    ) -> Result<(), Violation> {
        if self.corrupted.contains(&r) {
            return Ok(());
        }
        if self.process.holds.iter().any(|h| h.name() == r) {
            return Err(self.violation(
                Invariant::RetentionTooEager,
                format!("{r} was deleted under a hold"),
            ));
        }
        let newer: Vec<SnapshotName> = now.range(r..).filter(|n| **n != r).copied().collect();
        if newer.len() < self.cfg.keep_last {
            // Only max_bytes may take one of the newest keep_last, and only while they (from
            // this one up) do not fit; never the newest (a newer one must remain).
            // One pass may trim several: count the newer ones it removed alongside this one.
            let size = |n: &SnapshotName| self.sizes.get(n).copied().unwrap_or(0);
            let total = now
                .union(&self.present)
                .filter(|n| **n > r)
                .map(size)
                .sum::<u64>()
                + size(&r);
            let newer_verifying = newer.iter().any(|n| self.verifies(n));
            let trimmed = newer_verifying && self.cfg.max_bytes.is_some_and(|max| total > max);
            // Under an injected fault a read may fail, leaving a file's standing unknown; the
            // store then drops it if it is older than every snapshot it kept (retention rule
            // 3). Still never the newest one that verifies.
            let unknown_under_fault = self.dirty && newer_verifying;
            if !trimmed && !unknown_under_fault {
                return Err(self.violation(
                    Invariant::RetentionTooEager,
                    format!(
                        "{r} was deleted with only {} newer snapshots (keep_last {}, max_bytes \
                         {:?}, {total} bytes from it up)",
                        newer.len(),
                        self.cfg.keep_last,
                        self.cfg.max_bytes
                    ),
                ));
            }
            if trimmed {
                self.stats.size_trimmed += 1;
            }
        }
        if self.history.acked_names.contains(&r) {
            self.history.retired.insert(r);
        }
        Ok(())
    }

    /// The committed file `name` is on the simulated disk and verifies now.
    fn verifies(&self, name: &SnapshotName) -> bool {
        self.sim
            .read(&self.dir, &name.file_name())
            .is_some_and(|b| verify_bytes(&b, Some(name), self.verifier.as_ref()).is_ok())
    }

    /// The newest committed snapshot on the simulated disk that verifies now, if any.
    pub(super) fn newest_verifying(&self) -> Option<SnapshotName> {
        self.listing()
            .into_iter()
            .rev()
            .filter(|n| n.state == FileState::Committed)
            .find(|n| self.verifies(n))
    }

    /// After a retention pass, failed or not: the newest snapshot that verified before it
    /// (`before`) is still there under its committed name. Retention counts only snapshots
    /// that verify and never deletes the newest of them. With `newer_allowed` (the step was a
    /// job, which may commit a snapshot and then run the pass for it, unobservable in
    /// between), a newer snapshot that verifies now may stand in for it.
    pub(super) fn check_newest_verifying_kept(
        &mut self,
        before: Option<SnapshotName>,
        newer_allowed: bool,
    ) -> Result<(), Violation> {
        self.stats.checks += 1;
        let Some(name) = before else {
            return Ok(());
        };
        if self.sim.read(&self.dir, &name.file_name()).is_some() {
            return Ok(());
        }
        if newer_allowed && self.newest_verifying().is_some_and(|n| n > name) {
            return Ok(());
        }
        Err(self.violation(
            Invariant::NewestVerifiedRemoved,
            format!(
                "{name}, the newest snapshot that verified, is gone after a retention pass; \
                 left: {:?}",
                self.listing()
            ),
        ))
    }

    /// After a retention pass that reported no failure: nothing unheld beyond the newest
    /// `keep_last` remains, except `just` (the snapshot that pass was run for, which it spares).
    pub(super) fn check_retention_bound(
        &mut self,
        just: Option<SnapshotName>,
    ) -> Result<(), Violation> {
        // Under an injected fault the store may fail to read a file and leave it in place as
        // unknown (retention rule 4) without the pass failing; the bound holds only without.
        if self.dirty {
            return Ok(());
        }
        self.stats.checks += 1;
        let committed = self.committed_files();
        // Only snapshots that verify count: files whose standing a fault left unknown stay in
        // place (retention rule 4), newer than the boundary. The boundary is the keep_last-th
        // newest file that verifies now (never newer than the store's: the store may count a
        // file it wrote and the simulation since corrupted).
        let boundary = committed
            .iter()
            .rev()
            .filter(|n| self.verifies(n))
            .nth(self.cfg.keep_last.saturating_sub(1))
            .copied();
        let beyond = boundary.map_or(0, |b| committed.iter().take_while(|n| **n < b).count());
        for name in &committed[..beyond] {
            let held = self.process.holds.iter().any(|h| h.name() == *name);
            if Some(*name) != just && !held {
                return Err(self.violation(
                    Invariant::RetentionLax,
                    format!(
                        "{name} survived a retention pass: {} committed, keep_last {}, not held",
                        committed.len(),
                        self.cfg.keep_last
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Right after recovery: no stale file, and nothing reported committed was lost.
    pub(super) fn check_recovered(
        &mut self,
        before: &BTreeSet<SnapshotName>,
    ) -> Result<(), Violation> {
        self.stats.checks += 1;
        let names = self.listing();
        if let Some(u) = names.iter().find(|n| n.state == FileState::Uncommitted) {
            return Err(self.violation(Invariant::StaleFile, format!("{u} survived recovery")));
        }
        if let Some(p) = self.pending_files().first() {
            return Err(self.violation(Invariant::StaleFile, format!("{p} survived recovery")));
        }
        let committed: BTreeSet<SnapshotName> = names
            .iter()
            .filter(|n| n.state == FileState::Committed)
            .copied()
            .collect();
        for r in before.difference(&committed) {
            let acked = self.history.acked_names.contains(r);
            if acked && !self.history.retired.contains(r) && !self.corrupted.contains(r) {
                return Err(self.violation(
                    Invariant::AckedLost,
                    format!("{r} was reported committed and is gone after a crash"),
                ));
            }
        }
        // Files the crash took or brought back are judged from here on.
        self.present = committed;
        Ok(())
    }

    /// `latest()` is a verified snapshot at least as new as the newest one reported committed
    /// that is still there, and newer corrupt files are quarantined.
    pub(super) fn check_latest(&mut self) -> Result<(), Violation> {
        self.stats.latest_checks += 1;
        let got = match self.process.store.latest() {
            Ok(got) => got,
            Err(_) if self.dirty => return Ok(()),
            Err(e) => {
                return Err(self.violation(
                    Invariant::UnexpectedError,
                    format!("latest() failed without faults: {e}"),
                ))
            }
        };
        let committed: BTreeSet<SnapshotName> = self.committed_files().into_iter().collect();
        let floor = self
            .history
            .acked_names
            .iter()
            .filter(|n| committed.contains(n) && !self.corrupted.contains(n))
            .max()
            .copied();
        let got_name = got.as_ref().map(|f| *f.name());
        if let Some(floor) = floor {
            if got_name.is_none_or(|g| g < floor) {
                return Err(self.violation(
                    Invariant::LatestTooOld,
                    format!("latest() gave {got_name:?}, but {floor} was reported committed"),
                ));
            }
        }
        if let Some(file) = &got {
            if self.corrupted.contains(file.name()) {
                return Err(self.violation(
                    Invariant::LatestTooOld,
                    format!("latest() returned {}, which was corrupted", file.name()),
                ));
            }
            self.check_content(*file.name(), file.body_reader())?;
        }
        drop(got);
        if !self.dirty && self.unquarantined(got_name).is_some() {
            // A quarantine cut short (link done, unlink failed, then a crash) leaves both names;
            // the store then finds the `.corrupt` name taken and leaves the failing file in
            // place, and a quarantine trim may remove the `.corrupt` link meanwhile. That is
            // documented store behaviour; the next reader's `latest()` must finish the job.
            let again = self.process.store.latest().map(|f| f.map(|f| *f.name()));
            if let Some(c) = self.unquarantined(got_name) {
                return Err(self.violation(
                    Invariant::NotQuarantined,
                    format!(
                        "{c} fails verification, is newer than {got_name:?}, and is still \
                         committed after a second latest() ({again:?})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A corrupted file newer than `got` still under its committed name, unless its `.corrupt`
    /// name is taken (then the store leaves it in place by design, never returning it).
    fn unquarantined(&self, got: Option<SnapshotName>) -> Option<SnapshotName> {
        let listing = self.listing();
        self.corrupted
            .iter()
            .find(|c| {
                listing.contains(c)
                    && got.is_none_or(|g| **c > g)
                    && !listing.contains(&c.with_state(FileState::Corrupt))
            })
            .copied()
    }
}
