//! Snapshot file names: one spelling per name, and everything else is not ours.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use proptest::prelude::*;
use snapseal_persist::internals::{OurFile, LOCK_FILE};
use snapseal_persist::{FileState, SnapshotName};

fn state() -> impl Strategy<Value = FileState> {
    prop_oneof![
        Just(FileState::Uncommitted),
        Just(FileState::Committed),
        Just(FileState::Corrupt),
    ]
}

/// Digit strings that are often almost right: short (leading zeros), long (overflow), or
/// with signs and spaces mixed in.
fn number_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[0-9]{1,3}",
        2 => "[0-9]{18,21}",
        1 => "[0-9+ -]{0,5}",
    ]
}

fn name(idx: u64, evidence_idx: u64, state: FileState) -> SnapshotName {
    SnapshotName {
        idx,
        evidence_idx,
        state,
    }
}

proptest! {
    #[test]
    fn every_name_round_trips(idx in any::<u64>(), ev in any::<u64>(), st in state()) {
        let n = name(idx, ev, st);
        let text = n.file_name();
        prop_assert_eq!(SnapshotName::parse(&text), Some(n));
        prop_assert_eq!(SnapshotName::parse_os(OsStr::new(&text)), Some(n));
        prop_assert_eq!(n.to_string(), text.clone());
        prop_assert_eq!(OurFile::parse(&text), Some(OurFile::Snapshot(n)));
    }

    #[test]
    fn with_state_changes_only_the_state(idx in any::<u64>(), ev in any::<u64>(), a in state(), b in state()) {
        let n = name(idx, ev, a).with_state(b);
        prop_assert_eq!(n, name(idx, ev, b));
    }

    #[test]
    fn parse_accepts_only_the_canonical_spelling(
        prefix in prop_oneof![
            6 => Just("snapshot_"), 1 => Just("snapshot"), 1 => Just("Snapshot_"), 1 => Just(""),
        ],
        a in number_like(),
        sep in prop_oneof![6 => Just("_"), 1 => Just("."), 1 => Just("__"), 1 => Just("")],
        b in number_like(),
        suffix in prop_oneof![
            Just(""), Just(".committed"), Just(".committed.corrupt"), Just(".corrupt"),
            Just(".committed."), Just("x"),
        ],
    ) {
        // Near-misses of every kind (signs, spaces, leading zeros, overflow, bad separators
        // and suffixes): whatever parses must print back as exactly the same string.
        let s = format!("{prefix}{a}{sep}{b}{suffix}");
        if let Some(n) = SnapshotName::parse(&s) {
            prop_assert_eq!(n.file_name(), s);
        }
    }

    #[test]
    fn order_is_by_idx_then_evidence_then_state(
        a in (any::<u64>(), any::<u64>(), state()),
        b in (any::<u64>(), any::<u64>(), state()),
    ) {
        let (x, y) = (name(a.0, a.1, a.2), name(b.0, b.1, b.2));
        prop_assert_eq!(x.cmp(&y), a.cmp(&b));
    }
}

#[test]
fn examples_parse_to_the_right_fields() {
    assert_eq!(
        SnapshotName::parse("snapshot_10_12"),
        Some(name(10, 12, FileState::Uncommitted))
    );
    assert_eq!(
        SnapshotName::parse("snapshot_0_0.committed"),
        Some(name(0, 0, FileState::Committed))
    );
    assert_eq!(
        SnapshotName::parse("snapshot_18446744073709551615_1.committed.corrupt"),
        Some(name(u64::MAX, 1, FileState::Corrupt))
    );
    assert_eq!(
        name(5, 7, FileState::Committed).to_string(),
        "snapshot_5_7.committed"
    );
}

#[test]
fn malformed_names_are_not_ours() {
    let rejected = [
        // empty or missing parts
        "",
        "snapshot",
        "snapshot_",
        "snapshot_1",
        "snapshot_1_",
        "snapshot__2",
        "snapshot_1_2_3",
        "_1_2",
        "snapshot1_2",
        ".committed",
        "snapshot_.committed",
        // leading zeros
        "snapshot_01_2",
        "snapshot_1_02",
        "snapshot_00_2",
        "snapshot_1_00.committed",
        // signs
        "snapshot_+1_2",
        "snapshot_1_+2",
        "snapshot_-1_2",
        "snapshot_1_-0",
        // whitespace
        "snapshot_ 1_2",
        "snapshot_1_2 ",
        " snapshot_1_2",
        "snapshot_1_2\n",
        "snapshot_1\t_2",
        // overflow: u64::MAX + 1
        "snapshot_18446744073709551616_1",
        "snapshot_1_18446744073709551616.committed",
        "snapshot_99999999999999999999999_1",
        // suffixes: wrong, extra, out of order, doubled
        "snapshot_1_2.corrupt",
        "snapshot_1_2.committed.",
        "snapshot_1_2.committed.corrupt.corrupt",
        "snapshot_1_2.committed.committed",
        "snapshot_1_2.corrupt.committed",
        "snapshot_1_2.tmp",
        "snapshot_1_2.committedx",
        "snapshot_1_2~",
        "snapshot_1_2.",
        // case
        "SNAPSHOT_1_2",
        "Snapshot_1_2",
        "snapshot_1_2.COMMITTED",
        "snapshot_1_2.Committed",
        // non-ASCII digits: Arabic-Indic, fullwidth, superscript
        "snapshot_\u{0661}_2",
        "snapshot_1_\u{FF12}",
        "snapshot_\u{00B9}_2",
        // hex and other spellings
        "snapshot_0x1_2",
        "snapshot_1e3_2",
        "snapshot_1.0_2",
        "snapshot_1_2/",
        "dir/snapshot_1_2",
        // the lock file is ours, but not a snapshot
        ".lock",
    ];
    for s in rejected {
        assert_eq!(SnapshotName::parse(s), None, "{s:?}");
        if s != LOCK_FILE {
            assert_eq!(OurFile::parse(s), None, "{s:?}");
        }
    }
}

#[test]
fn lock_file_is_ours_but_not_a_snapshot() {
    assert_eq!(LOCK_FILE, ".lock");
    assert_eq!(OurFile::parse(".lock"), Some(OurFile::Lock));
    assert_eq!(OurFile::parse_os(OsStr::new(".lock")), Some(OurFile::Lock));
    assert_eq!(SnapshotName::parse(".lock"), None);
    for near in [".lock.", "lock", ".LOCK", ".lock2", " .lock"] {
        assert_eq!(OurFile::parse(near), None, "{near:?}");
    }
}

#[test]
fn non_utf8_names_are_not_ours() {
    let raw = OsStr::from_bytes(b"snapshot_1_2\xff");
    assert_eq!(SnapshotName::parse_os(raw), None);
    assert_eq!(OurFile::parse_os(raw), None);
    assert_eq!(
        SnapshotName::parse_os(OsStr::from_bytes(b"snapshot_1_2")),
        Some(name(1, 2, FileState::Uncommitted))
    );
}
