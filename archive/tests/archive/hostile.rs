//! Hostile archives and files changing under an export: a huge junk chunk entry is refused
//! after a few bytes, an archive cut short anywhere is "truncated" (and commits nothing),
//! names and bytes from an archive are escaped in every message, and a file truncated while
//! it is exported is an error naming it, never a `SIGBUS`.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::*;
use snapseal_archive::{
    export, ArtifactKind, ExportError, ImportError, Level, Manifest, MAX_CHUNK,
};
use snapseal_ledger::disk_ledger::{ChunkKeys, LedgerDir};
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::{
    DirEntry, DirHandle, DirLock, FileBytes, ReadableFile, WritableFile,
};
use snapseal_persist::SnapshotStore;

/// Counts what is read through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// A tar header block for a regular file `path` of `len` bytes.
fn header(path: &str, len: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_size(len);
    h.set_mode(0o644);
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[test]
fn a_huge_zero_filled_chunk_entry_is_refused_after_reading_its_head() {
    let (tmp, dir, _) = src();
    let (good, _) = export_bytes(&dir, Level::Archival).unwrap();
    let list = entries(&good);
    let mut m: Manifest = manifest_of(&list);
    let kept: Vec<(String, Vec<u8>)> = list
        .iter()
        .skip(1)
        .filter(|(p, _)| !p.starts_with("ledger/"))
        .cloned()
        .collect();
    let huge = 1u64 << 30;
    assert!(
        huge <= MAX_CHUNK,
        "within the cap: only its bytes can refuse it"
    );
    m.artifacts.retain(|a| a.kind != ArtifactKind::Ledger);
    let mut chunk = m.artifacts[0].clone();
    chunk.kind = ArtifactKind::Ledger;
    chunk.path = "ledger/ledger_1-9.committed".into();
    chunk.len = huge;
    m.artifacts.push(chunk);
    m.missing = vec![snapseal_archive::Missing {
        from: 10,
        to: m.commit_idx,
    }];
    let mut head = vec![("MANIFEST.json".to_string(), serde_json::to_vec(&m).unwrap())];
    head.extend(kept);
    let mut prefix = tar_of(&head);
    prefix.truncate(prefix.len() - 1024); // no end-of-archive blocks yet
    prefix.extend(header("ledger/ledger_1-9.committed", huge));
    let before = prefix.len() as u64;
    // The zeros are generated as they are read: a GiB never exists anywhere.
    let mut src = Counted {
        inner: (&prefix[..]).chain(io::repeat(0).take(huge + 1024)),
        n: 0,
    };
    let fresh = tmp.path().join("fresh");
    let store = SnapshotStore::open(Arc::new(RealFs::new()), &fresh, store_opts()).unwrap();
    let handle = snapseal_archive::Dir::open(&fresh).unwrap();
    let ledger = handle.open_subdir("ledger", true).unwrap();
    let target = snapseal_archive::Target {
        store: &store,
        dir: &handle,
        ledger: &ledger,
    };
    let opts = snapseal_archive::ImportOptions {
        level: Level::Archival,
        trusted_keys: vec![key()],
        repopulate: false,
    };
    let e =
        snapseal_archive::import(&mut src, &target, &ChunkKeys(vec![key()]), &opts).unwrap_err();
    assert!(
        matches!(&e, ImportError::Refused { why, .. } if why.contains("magic")),
        "{e}"
    );
    assert!(
        src.n - before <= 1 << 16,
        "{} bytes of the entry read before refusing it",
        src.n - before
    );
    drop((store, handle, ledger));
    assert!(committed(&fresh).is_empty());
    let left: Vec<_> = std::fs::read_dir(fresh.join("ledger")).unwrap().collect();
    assert!(left.is_empty(), "no pending chunk left: {left:?}");
}

#[test]
fn an_entry_over_its_kinds_cap_is_refused_before_any_entry_is_read() {
    let (tmp, dir, _) = src();
    let (good, _) = export_bytes(&dir, Level::Archival).unwrap();
    let mut list = entries(&good);
    let mut m = manifest_of(&list);
    let at = m
        .artifacts
        .iter()
        .position(|a| a.kind == ArtifactKind::Ledger)
        .unwrap();
    m.artifacts[at].len = MAX_CHUNK + 1;
    list[0].1 = serde_json::to_vec(&m).unwrap();
    let e = import_into(&tar_of(&list), &tmp.path().join("x"), Level::Archival).unwrap_err();
    assert!(
        matches!(&e, ImportError::Malformed(why) if why.contains("at most")),
        "{e}"
    );
}

#[test]
fn an_archive_cut_short_anywhere_is_reported_truncated_and_commits_nothing() {
    let (tmp, dir, _) = src();
    let (good, _) = export_bytes(&dir, Level::Replay).unwrap();
    let full = import_into(&good, &tmp.path().join("whole"), Level::Replay).unwrap();
    assert!(!full.chunks_committed.is_empty());
    // Every block boundary, and a byte either side of it and of every 173rd byte.
    let mut cuts: Vec<usize> = (0..good.len()).step_by(512).collect();
    cuts.extend((1..good.len()).step_by(173));
    cuts.extend((511..good.len()).step_by(512));
    cuts.sort_unstable();
    cuts.dedup();
    let mut n = 0;
    for cut in cuts {
        let d = tmp.path().join(format!("cut{n}"));
        n += 1;
        let e = import_into(&good[..cut], &d, Level::Replay).unwrap_err();
        assert!(
            matches!(e, ImportError::Truncated { .. }),
            "cut at {cut} of {}: {e}",
            good.len()
        );
        assert!(e.to_string().contains("truncated"));
        assert!(
            committed(&d).is_empty(),
            "cut at {cut}: {:?}",
            committed(&d)
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
    assert!(n > 20);
}

fn no_raw_escape(e: &ImportError) {
    let text = e.to_string();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "raw control bytes in: {text:?}"
    );
    assert!(text.contains("\\x1b"), "shown escaped: {text}");
}

#[test]
fn names_and_bytes_from_an_archive_are_escaped_in_every_message() {
    let (tmp, dir, _) = src();
    let (good, _) = export_bytes(&dir, Level::Operational).unwrap();
    let list = entries(&good);
    let d = tmp.path().join("x");
    let evil = "\u{1b}]0;owned\u{7}\u{1b}[2J";

    // A first entry that is not the manifest.
    let mut l = list.clone();
    l[0].0 = format!("{evil}MANIFEST");
    no_raw_escape(&import_into(&tar_of(&l), &d, Level::Operational).unwrap_err());

    // Fields of the manifest that a JSON parser quotes in its errors, and that the checks do.
    let m = String::from_utf8(list[0].1.clone()).unwrap();
    let json_evil = evil
        .replace('\u{1b}', "\\u001b")
        .replace('\u{7}', "\\u0007");
    for (from, to) in [
        (
            "\"level\": \"operational\"",
            format!("\"level\": \"{json_evil}\""),
        ),
        (
            "\"format\": \"snapseal-archive v1\"",
            format!("\"format\": \"{json_evil}\""),
        ),
        (
            "\"path\": \"snapshots/",
            format!("\"path\": \"{json_evil}snapshots/"),
        ),
    ] {
        assert!(m.contains(from), "{from}");
        let mut l = list.clone();
        l[0].1 = m.replacen(from, &to, 1).into_bytes();
        no_raw_escape(&import_into(&tar_of(&l), &d, Level::Operational).unwrap_err());
    }

    // An entry whose name differs from the one the manifest lists there.
    let mut l = list.clone();
    l[1].0 = format!("keys/{evil}");
    no_raw_escape(&import_into(&tar_of(&l), &d, Level::Operational).unwrap_err());
}

/// A directory that truncates `victim` to half its size right after opening it for the
/// `nth` time (counting from 1): whatever reads it next finds it shorter than it was when
/// opened, as when another process truncates a file under a reader.
#[derive(Debug)]
struct Truncating {
    inner: Arc<dyn DirHandle>,
    victim: String,
    nth: usize,
    opened: AtomicUsize,
}

impl Truncating {
    fn after_open(&self, name: &str) {
        if name == self.victim && self.opened.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            let path = self.inner.path().join(name);
            let len = std::fs::metadata(&path).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(len / 2).unwrap();
        }
    }
}

impl DirHandle for Truncating {
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn create_new(&self, name: &str, mode: u32) -> io::Result<Box<dyn WritableFile>> {
        self.inner.create_new(name, mode)
    }
    fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename_noreplace(from, to)
    }
    fn hard_link(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.hard_link(from, to)
    }
    fn unlink(&self, name: &str) -> io::Result<()> {
        self.inner.unlink(name)
    }
    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
    fn list(&self) -> io::Result<Vec<DirEntry>> {
        self.inner.list()
    }
    fn open_read(&self, name: &str) -> io::Result<FileBytes> {
        let bytes = self.inner.open_read(name)?;
        self.after_open(name);
        Ok(bytes)
    }
    fn open_readable(&self, name: &str) -> io::Result<Box<dyn ReadableFile>> {
        let file = self.inner.open_readable(name)?;
        self.after_open(name);
        Ok(file)
    }
    fn lock_exclusive(&self, name: &str) -> io::Result<Box<dyn DirLock>> {
        self.inner.lock_exclusive(name)
    }
}

#[derive(Debug)]
struct TruncatingFs {
    victim: String,
    nth: usize,
}

impl FileSystem for TruncatingFs {
    fn open_dir(&self, path: &Path, create: bool) -> io::Result<Arc<dyn DirHandle>> {
        Ok(Arc::new(Truncating {
            inner: RealFs::new().open_dir(path, create)?,
            victim: self.victim.clone(),
            nth: self.nth,
            opened: AtomicUsize::new(0),
        }))
    }
}

#[test]
fn a_file_truncated_while_it_is_exported_is_an_error_naming_it() {
    let (_tmp, dir, _) = src();
    let newest = snapshot_names(&dir)
        .into_iter()
        .max_by_key(|n| n.split('_').nth(1).and_then(|i| i.parse::<u64>().ok()))
        .unwrap();
    let chunk = chunk_names(&dir).pop().unwrap();
    // The snapshot cut during the copy (its second open), the chunk during its first read.
    for (victim, nth, in_ledger) in [(newest, 2, false), (chunk, 1, true)] {
        let path = if in_ledger {
            dir.join("ledger").join(&victim)
        } else {
            dir.join(&victim)
        };
        let saved = std::fs::read(&path).unwrap();
        let fs = TruncatingFs {
            victim: victim.clone(),
            nth,
        };
        let plain = RealFs::new();
        let (snap_fs, ledger_fs): (&dyn FileSystem, &dyn FileSystem) = if in_ledger {
            (&plain, &fs)
        } else {
            (&fs, &plain)
        };
        let handle = snapseal_archive::Dir::open_on(snap_fs, &dir, false).unwrap();
        let source = LedgerDir::open(ledger_fs, &dir.join("ledger")).unwrap();
        let e = export(
            &handle,
            &source,
            &ChunkKeys(vec![key()]),
            &export_opts(Level::Replay),
            &mut io::sink(),
        )
        .unwrap_err();
        let chain = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        assert!(
            chain.contains("truncated") && chain.contains(&victim),
            "{victim}: {chain}"
        );
        assert!(
            matches!(e, ExportError::File(_) | ExportError::Source(_)),
            "{e:?}"
        );
        std::fs::write(&path, saved).unwrap();
    }
}

#[test]
fn an_export_with_a_pending_archive_of_the_same_name_is_refused_and_touches_nothing() {
    use snapseal_archive::{ensure_free, PendingError, PendingFile, Stale};
    let tmp = tempfile::tempdir().unwrap();
    let out = snapseal_archive::Dir::open(tmp.path()).unwrap();
    std::fs::write(tmp.path().join("a.tar.pending"), b"someone else's").unwrap();
    let e = PendingFile::create(&out, "a.tar.pending", 0o644, Stale::Refuse).unwrap_err();
    assert!(matches!(e, PendingError::PendingExists(_)), "{e}");
    assert_eq!(
        std::fs::read(tmp.path().join("a.tar.pending")).unwrap(),
        b"someone else's"
    );
    std::fs::write(tmp.path().join("a.tar"), b"x").unwrap();
    assert!(matches!(
        ensure_free(&out, "a.tar"),
        Err(PendingError::Exists(_))
    ));
    std::os::unix::fs::symlink("/nonexistent", tmp.path().join("b.tar")).unwrap();
    assert!(
        ensure_free(&out, "b.tar").is_err(),
        "a dangling link takes the name"
    );
    assert!(ensure_free(&out, "c.tar").is_ok());
}
