//! `demo --deterministic`: the same settings and seed give a byte-identical directory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::snapseal;

/// Every file in `dir` by name, with its bytes; the ledger's chunk files (`ledger/`) as
/// `ledger/<name>`.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            for (inner, bytes) in contents(&e.path()) {
                out.insert(format!("{name}/{inner}"), bytes);
            }
        } else {
            out.insert(name, std::fs::read(e.path()).unwrap());
        }
    }
    out
}

/// Runs a deterministic demo with `seed` into a new `dir`. Compression, rollbacks and
/// retention are on so each of them is covered by the comparison.
fn run(dir: &Path, seed: &str) -> BTreeMap<String, Vec<u8>> {
    snapseal(&[
        "demo".as_ref(),
        "--quiet".as_ref(),
        "--deterministic".as_ref(),
        "--dir".as_ref(),
        dir.as_os_str(),
        "--seed".as_ref(),
        seed.as_ref(),
        "--txs".as_ref(),
        "6000".as_ref(),
        "--tx-interval".as_ref(),
        "500".as_ref(),
        "--sig-every".as_ref(),
        "50".as_ref(),
        "--rollback-every".as_ref(),
        "2222".as_ref(),
        "--compression".as_ref(),
        "3".as_ref(),
    ])
    .expect(0);
    contents(dir)
}

#[test]
fn the_same_seed_gives_a_byte_identical_directory_and_another_seed_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let a = run(&tmp.path().join("a"), "42");
    let b = run(&tmp.path().join("b"), "42");
    let snapshots = a.keys().filter(|n| n.ends_with(".committed")).count();
    assert!(snapshots >= 2, "several snapshots kept: {:?}", a.keys());
    assert!(a.contains_key("node.pub") && a.contains_key("committed.log"));
    assert!(
        a.keys().any(|n| n.starts_with("ledger/ledger_")),
        "the ledger is on disk and compared too: {:?}",
        a.keys()
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same file names"
    );
    for (name, bytes) in &a {
        assert!(
            b[name] == *bytes,
            "{name} differs between two runs of seed 42"
        );
    }
    let c = run(&tmp.path().join("c"), "43");
    assert_ne!(a["node.pub"], c["node.pub"], "another seed, another key");
    assert_ne!(a["committed.log"], c["committed.log"]);
}
