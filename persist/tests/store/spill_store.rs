//! Pending (spilled body) files in the store's life: their names, listing, removal when a
//! spill is dropped and at open, refusal of a taken pending name, and the real filesystem
//! producing a committed file byte-identical to a one-pass write.

use std::ffi::OsStr;
use std::sync::{Arc, OnceLock};

use crate::fixture::*;
use proptest::prelude::*;
use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::PendingName;
use snapseal_persist::internals::SpillCommit;
use snapseal_persist::Flags;
use snapseal_persist::SnapshotName;
use snapseal_persist::{FileState, SnapshotStore, Step};

fn snap() -> &'static Snap {
    static SNAP: OnceLock<Snap> = OnceLock::new();
    SNAP.get_or_init(|| Snap::new(20, 5000))
}

fn commit_request(snap: &Snap) -> SpillCommit<'_> {
    SpillCommit {
        evidence_idx: snap.evidence_idx,
        flags: Flags::NONE,
        raw_len: snap.body.len() as u64,
        body_digest: snap.digest,
        receipt: &snap.receipt,
    }
}

proptest! {
    #[test]
    fn every_pending_name_round_trips_and_is_no_snapshot_name(idx in any::<u64>(), generation in any::<u64>()) {
        let n = PendingName { idx, generation };
        let text = n.file_name();
        prop_assert_eq!(PendingName::parse(&text), Some(n));
        prop_assert_eq!(PendingName::parse_os(OsStr::new(&text)), Some(n));
        prop_assert_eq!(n.to_string(), text.clone());
        prop_assert_eq!(SnapshotName::parse(&text), None);
    }

    #[test]
    fn pending_parse_accepts_only_the_canonical_spelling(
        prefix in prop_oneof![4 => Just("snapshot_"), 1 => Just("snapshot"), 1 => Just("")],
        a in prop_oneof![3 => "[0-9]{1,3}", 1 => "[0-9]{19,21}", 1 => "[0-9+ -]{0,4}"],
        sep in prop_oneof![4 => Just(".g"), 1 => Just("_"), 1 => Just(".G"), 1 => Just("g")],
        b in prop_oneof![3 => "[0-9]{1,3}", 1 => "[0-9]{19,21}", 1 => "[0-9+ -]{0,4}"],
        suffix in prop_oneof![4 => Just(".pending"), 1 => Just(".pending.x"), 1 => Just("")],
    ) {
        let text = format!("{prefix}{a}{sep}{b}{suffix}");
        if let Some(n) = PendingName::parse(&text) {
            // Whatever parses is exactly the canonical spelling of what it parsed to.
            prop_assert_eq!(n.file_name(), text);
        }
    }
}

#[test]
fn pending_names_reject_near_misses() {
    for bad in [
        "snapshot_1.g2.pending.committed",
        "snapshot_01.g2.pending",
        "snapshot_1.g02.pending",
        "snapshot_1.g.pending",
        "snapshot_.g2.pending",
        "snapshot_1.g2",
        "snapshot_1_2.pending",
        "snapshot_+1.g2.pending",
        "snapshot_1.g18446744073709551616.pending",
    ] {
        assert_eq!(PendingName::parse(bad), None, "{bad}");
    }
    assert_eq!(
        PendingName::parse("snapshot_0.g0.pending"),
        Some(PendingName {
            idx: 0,
            generation: 0
        })
    );
}

#[test]
fn a_dropped_spill_removes_its_pending_file() {
    let sim = snapseal_persist::fs::SimFs::new(3);
    let store = open(&sim, opts());
    let mut spill = store.create_spill(20, 1).unwrap();
    spill.write_body(&snap().body).unwrap();
    let listed = store.list_pending().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].name,
        PendingName {
            idx: 20,
            generation: 1
        }
    );
    assert_eq!(listed[0].len, 160 + snap().body.len() as u64);
    assert!(
        store.list().unwrap().is_empty(),
        "a pending file is not a snapshot"
    );
    drop(spill);
    assert!(store.list_pending().unwrap().is_empty());
    assert_eq!(sim.open_files(), 0);
    assert!(
        sim.names(dir()).iter().all(|n| n == ".lock"),
        "{:?}",
        sim.names(dir())
    );
}

#[test]
fn a_taken_pending_name_is_refused_and_left_alone() {
    let sim = snapseal_persist::fs::SimFs::new(4);
    let store = open(&sim, opts());
    let mut first = store.create_spill(20, 1).unwrap();
    first.write_body(b"first").unwrap();
    let e = store.create_spill(20, 1).expect_err("name taken");
    assert_eq!(e.step(), Step::Create);
    assert!(e.to_string().contains("snapshot_20.g1.pending"), "{e}");
    // The live one is intact and still commits.
    first.write_body(&snap().body[5..]).unwrap();
    drop(first);
    let mut again = store.create_spill(20, 1).unwrap();
    again.write_body(&snap().body).unwrap();
    store.commit_spill(again, &commit_request(snap())).unwrap();
    assert_eq!(
        sim.read(dir(), &snap().file_name(FileState::Committed)),
        Some(snap().file_bytes())
    );
}

#[test]
fn open_removes_stale_pending_files_and_leaves_lookalikes() {
    let sim = snapseal_persist::fs::SimFs::new(5);
    for name in ["snapshot_7.g0.pending", "snapshot_9.g3.pending"] {
        sim.plant_file(dir(), name, b"half a body", true);
    }
    let lookalikes = [
        "snapshot_7.g0.pending.bak",
        "snapshot_07.g0.pending",
        "x.pending",
    ];
    for name in lookalikes {
        sim.plant_file(dir(), name, b"not ours", true);
    }
    sim.plant_symlink(dir(), "snapshot_8.g0.pending", "/etc/passwd");
    let store = open(&sim, opts());
    let names = sim.names(dir());
    assert!(
        !names.contains(&"snapshot_7.g0.pending".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"snapshot_9.g3.pending".to_string()),
        "{names:?}"
    );
    for name in lookalikes {
        assert!(names.contains(&name.to_string()), "{name} was touched");
    }
    // Not a regular file: never followed or removed.
    assert!(names.contains(&"snapshot_8.g0.pending".to_string()));
    assert_eq!(store.stats().stale_removed, 2);
    assert!(store.list_pending().unwrap().is_empty());
}

#[test]
fn on_the_real_filesystem_a_spilled_snapshot_is_byte_identical_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(Arc::new(RealFs::new()), tmp.path(), opts()).unwrap();
    let mut spill = store.create_spill(snap().idx, 2).unwrap();
    for chunk in snap().body.chunks(777) {
        std::io::Write::write_all(&mut spill, chunk).unwrap();
    }
    let pending = tmp.path().join("snapshot_20.g2.pending");
    assert!(pending.exists());
    let c = store.commit_spill(spill, &commit_request(snap())).unwrap();
    assert!(!pending.exists());
    assert_eq!(std::fs::read(&c.path).unwrap(), snap().file_bytes());
    let latest = store.latest().unwrap().unwrap();
    assert_eq!(latest.read_body().unwrap(), &snap().body[..]);
    // A dropped spill on the real filesystem leaves nothing either.
    let spill = store.create_spill(99, 0).unwrap();
    drop(spill);
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains("pending")), "{names:?}");
}
