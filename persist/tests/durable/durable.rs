//! `fs::write_pending` and `fs::publish`: the crash-safe sequence the ledger and archive files
//! share — a stale pending file replaced, the data whole and durable before the rename, a
//! failed step named and never retried, an existing final name never replaced.

use std::path::Path;

use snapseal_persist::fs::{Fault, FaultKind, FileSystem, Op, SimFs};
use snapseal_persist::internals::fs::{publish, write_pending};

const DIR: &str = "/d";

fn dir() -> &'static Path {
    Path::new(DIR)
}

#[test]
fn a_file_is_written_whole_then_published_and_survives_a_crash() {
    let sim = SimFs::new(1);
    let d = sim.open_dir(dir(), true).unwrap();
    // A stale pending file from an earlier crash is replaced, not appended to.
    sim.plant_file(dir(), "f.pending", b"stale bytes", true);
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut seen = 0usize;
    let n = write_pending(&*d, "f.pending", &mut &data[..], 1 << 20, &mut |b| {
        seen += b.len()
    })
    .unwrap();
    assert_eq!((n, seen), (data.len() as u64, data.len()));
    publish(&*d, "f.pending", "f").unwrap();
    sim.crash();
    assert_eq!(sim.read(dir(), "f").as_deref(), Some(&data[..]));
    assert_eq!(sim.names(dir()), ["f"]);
}

#[test]
fn each_failing_step_is_named() {
    for (op, step) in [
        (Op::CreateNew, "creating (O_EXCL)"),
        (Op::Write, "writing"),
        (Op::Sync, "fsync"),
        (Op::Close, "close"),
        (Op::Rename, "rename (no replace)"),
        (Op::SyncDir, "fsync of the directory"),
    ] {
        let sim = SimFs::new(2);
        let d = sim.open_dir(dir(), true).unwrap();
        sim.inject(Fault::nth(op, 1, FaultKind::Eio));
        let err = write_pending(&*d, "f.pending", &mut &b"data"[..], 100, &mut |_| {})
            .and_then(|_| publish(&*d, "f.pending", "f"))
            .unwrap_err();
        assert_eq!(err.step, step, "{op:?}");
        assert_eq!(err.source.raw_os_error(), Some(nix::libc::EIO), "{op:?}");
    }
}

#[test]
fn more_than_the_limit_is_refused_and_an_existing_name_is_never_replaced() {
    let sim = SimFs::new(3);
    let d = sim.open_dir(dir(), true).unwrap();
    let err = write_pending(&*d, "f.pending", &mut &[0u8; 101][..], 100, &mut |_| {}).unwrap_err();
    assert_eq!(err.step, "reading the source");
    assert_eq!(err.source.kind(), std::io::ErrorKind::InvalidData);

    sim.plant_file(dir(), "f", b"the committed one", true);
    write_pending(&*d, "f.pending", &mut &b"new"[..], 100, &mut |_| {}).unwrap();
    let err = publish(&*d, "f.pending", "f").unwrap_err();
    assert_eq!(err.step, "rename (no replace)");
    assert_eq!(
        sim.read(dir(), "f").as_deref(),
        Some(&b"the committed one"[..])
    );
}
