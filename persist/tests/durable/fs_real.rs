//! `RealFs` against the seam contract, plus what only the real filesystem can show
//! (modes, fifos, memory maps, symlinked directory paths).

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::fs_contract::{contents, contract_tests, errno, put, Harness};
use nix::errno::Errno;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::fs::NotRegular;
use snapseal_persist::internals::open_snapshot;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::{SnapshotName, VerifyError};
use tempfile::TempDir;

struct Real {
    fs: RealFs,
    tmp: TempDir,
}

fn real() -> Real {
    Real {
        fs: RealFs::new(),
        tmp: tempfile::tempdir().unwrap(),
    }
}

impl Harness for Real {
    fn fs(&self) -> &dyn FileSystem {
        &self.fs
    }
    fn dir(&self) -> &Path {
        self.tmp.path()
    }
    fn other_fs(&self) -> Box<dyn FileSystem> {
        Box::new(RealFs::new())
    }
    fn plant_symlink(&self, name: &str, target: &str) {
        symlink(target, self.dir().join(name)).unwrap();
    }
    fn plant_subdir(&self, name: &str) {
        std::fs::create_dir(self.dir().join(name)).unwrap();
    }
}

contract_tests!(real());

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn create_new_uses_the_requested_mode() {
    let h = real();
    let dir = h.fs.open_dir(h.dir(), false).unwrap();
    put(dir.as_ref(), "f", b"x");
    // The umask can only remove bits: nothing beyond 0o600 may appear.
    assert_eq!(mode_of(&h.dir().join("f")) & !0o600, 0);
    let _lock = dir.lock_exclusive(".lock").unwrap();
    assert_eq!(mode_of(&h.dir().join(".lock")) & !0o600, 0);
}

#[test]
fn open_dir_creates_missing_parents_private() {
    let h = real();
    let nested = h.dir().join("x").join("y").join("z");
    h.fs.open_dir(&nested, true).unwrap();
    for p in [h.dir().join("x"), h.dir().join("x/y"), nested.clone()] {
        assert!(p.is_dir(), "{}", p.display());
        assert_eq!(mode_of(&p) & !0o700, 0, "{}", p.display());
    }
}

#[test]
fn open_dir_on_a_file_is_not_a_directory() {
    let h = real();
    std::fs::write(h.dir().join("file"), b"x").unwrap();
    for create in [false, true] {
        let err = h.fs.open_dir(&h.dir().join("file"), create).unwrap_err();
        assert_eq!(errno(&err), Some(Errno::ENOTDIR), "create={create}");
    }
    let err = h.fs.open_dir(&h.dir().join("file/sub"), true).unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ENOTDIR));
}

#[test]
fn open_dir_follows_a_symlinked_directory_path() {
    let h = real();
    std::fs::create_dir(h.dir().join("real")).unwrap();
    symlink("real", h.dir().join("alias")).unwrap();
    let dir = h.fs.open_dir(&h.dir().join("alias"), false).unwrap();
    put(dir.as_ref(), "f", b"via alias");
    assert_eq!(std::fs::read(h.dir().join("real/f")).unwrap(), b"via alias");
}

#[test]
fn open_read_of_a_fifo_fails_without_blocking() {
    let h = real();
    nix::unistd::mkfifo(
        &h.dir().join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let dir = h.fs.open_dir(h.dir(), false).unwrap();
    // Run in a thread so a regression (a blocking open) fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let dir2 = dir.clone();
    std::thread::spawn(move || {
        let read = dir2.open_read("pipe").map(drop);
        let lock = dir2.lock_exclusive("pipe").map(drop);
        let _ = tx.send((read, lock));
    });
    let (read, lock) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("open of a fifo blocked");
    for err in [read.unwrap_err(), lock.unwrap_err()] {
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let not_regular = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<NotRegular>())
            .expect("a NotRegular payload");
        assert_eq!(not_regular.what(), "fifo");
        assert_eq!(err.to_string(), "not a regular file (fifo)");
    }
    let entry = dir
        .list()
        .unwrap()
        .into_iter()
        .find(|e| e.name == "pipe")
        .unwrap();
    assert_eq!(
        entry.kind,
        snapseal_persist::internals::fs::EntryKind::Other
    );
}

/// `open_read` copies the file with `pread` (never maps it): what it returned stays as it was
/// read after the file is truncated (touching a truncated mapping would be SIGBUS) or unlinked.
#[test]
fn open_read_copies_the_file_so_truncating_or_unlinking_it_leaves_the_bytes_read() {
    let h = real();
    let dir = h.fs.open_dir(h.dir(), false).unwrap();
    put(dir.as_ref(), "f", &[7u8; 64 << 10]);
    let bytes = dir.open_read("f").unwrap();
    std::fs::File::options()
        .write(true)
        .open(h.dir().join("f"))
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(&*bytes, &[7u8; 64 << 10][..]);
    dir.unlink("f").unwrap();
    assert_eq!(&*bytes, &[7u8; 64 << 10][..]);
}

#[test]
fn symlink_planted_as_the_new_name_leaves_its_target_untouched() {
    let h = real();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"do not touch").unwrap();
    symlink(&victim, h.dir().join("snapshot_1_2")).unwrap();
    let dir = h.fs.open_dir(h.dir(), false).unwrap();
    let err = dir.create_new("snapshot_1_2", 0o600).unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EEXIST));
    let err = dir.open_read("snapshot_1_2").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ELOOP));
    put(dir.as_ref(), "x", b"new");
    let err = dir.rename_noreplace("x", "snapshot_1_2").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EEXIST));
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    assert_eq!(contents(dir.as_ref(), "x"), b"new");
}

#[test]
fn lock_is_a_flock_on_the_directory_and_the_file_that_dropping_the_guard_releases() {
    // flock conflicts between open file descriptions, which is what another process has: a
    // plain flock(2) from another tool (or an older snapseal) must see the store's lock.
    use nix::fcntl::{Flock, FlockArg};
    let h = real();
    let dir = h.fs.open_dir(h.dir(), false).unwrap();
    let lock = dir.lock_exclusive(".lock").unwrap();
    let others = || {
        [
            std::fs::File::open(h.dir()).unwrap(),
            std::fs::File::open(h.dir().join(".lock")).unwrap(),
        ]
    };
    for file in others() {
        let err = Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap_err();
        assert_eq!(err.1, Errno::EWOULDBLOCK);
    }
    drop(lock);
    for file in others() {
        assert!(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok());
    }
}

#[test]
fn open_snapshot_of_a_fifo_names_the_file_and_what_it_is() {
    let h = real();
    let name = SnapshotName::parse("snapshot_5_6.committed").unwrap();
    let path = h.dir().join(name.file_name());
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let dir = h.fs.open_dir(h.dir(), false).unwrap();
    let err = open_snapshot(&*dir, &name, &Ed25519Verifier::new(Vec::new())).unwrap_err();
    assert!(
        matches!(err, VerifyError::NotRegularFile { what: "fifo", .. }),
        "{err:?}"
    );
    assert!(
        err.is_io(),
        "says nothing about contents: never quarantined"
    );
    assert_eq!(
        err.to_string(),
        format!("not a regular file: {} (fifo)", path.display())
    );
}

/// The hardened open path every crate reads hostile files through (`fs::Untrusted`).
mod untrusted {
    use std::io::Read;
    use std::os::unix::fs::symlink;

    use nix::sys::stat::Mode;
    use snapseal_persist::fs::{FileSystem, RealFs};
    use snapseal_persist::internals::fs::{Expect, Untrusted, UntrustedError};

    const CHUNK: Expect = Expect::new("ledger chunk", 1 << 20).with_magic(b"MAGIC123");

    fn dir() -> (
        tempfile::TempDir,
        std::sync::Arc<dyn snapseal_persist::internals::fs::DirHandle>,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RealFs.open_dir(tmp.path(), false).unwrap();
        (tmp, dir)
    }

    #[test]
    fn a_regular_file_with_its_magic_reads_whole_in_ranges_and_as_a_stream() {
        let (tmp, dir) = dir();
        std::fs::write(tmp.path().join("c"), b"MAGIC123 payload").unwrap();
        let f = Untrusted::open_in(&*dir, "c", CHUNK).unwrap().unwrap();
        assert_eq!(f.len(), 16);
        assert_eq!(f.read_all().unwrap(), b"MAGIC123 payload");
        assert_eq!(f.read_range(9, 7).unwrap(), b"payload");
        let mut streamed = Vec::new();
        f.reader().read_to_end(&mut streamed).unwrap();
        assert_eq!(streamed, b"MAGIC123 payload");
        assert!(Untrusted::open_in(&*dir, "missing", CHUNK)
            .unwrap()
            .is_none());
        let e = Untrusted::open_path(&tmp.path().join("missing"), CHUNK).unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    #[test]
    fn links_fifos_directories_oversized_and_wrong_magic_files_are_refused_naming_the_file() {
        let (tmp, dir) = dir();
        let d = tmp.path();
        std::fs::write(d.join("target"), b"MAGIC123 secret").unwrap();
        symlink(d.join("target"), d.join("link")).unwrap();
        nix::unistd::mkfifo(&d.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        // Sparse: 4 GiB that would cost 4 GiB to read; refused from fstat alone.
        std::fs::File::create(d.join("huge"))
            .unwrap()
            .set_len(4 << 30)
            .unwrap();
        std::fs::write(d.join("junk"), b"NOTMAGIC at all").unwrap();
        std::fs::write(d.join("short"), b"MAG").unwrap();
        for (name, why) in [
            ("link", "is a symbolic link"),
            ("fifo", "is a fifo, not a regular file"),
            ("sub", "is a directory, not a regular file"),
            ("huge", "over the limit of 1048576 bytes"),
            ("junk", "does not start with the ledger chunk magic"),
            ("short", "does not start with the ledger chunk magic"),
        ] {
            for e in [
                Untrusted::open_in(&*dir, name, CHUNK).unwrap_err(),
                Untrusted::open_path(&d.join(name), CHUNK).unwrap_err(),
            ] {
                let shown = e.to_string();
                assert!(
                    shown.contains(why) && shown.contains(name),
                    "{name}: {shown}"
                );
                assert!(shown.starts_with("ledger chunk "), "{shown}");
            }
        }
        assert!(matches!(
            Untrusted::open_in(&*dir, "link", CHUNK),
            Err(UntrustedError::Symlink { .. })
        ));
    }

    #[test]
    fn a_file_truncated_while_being_read_is_an_error_not_a_crash() {
        let (tmp, dir) = dir();
        let path = tmp.path().join("c");
        let mut bytes = b"MAGIC123".to_vec();
        bytes.resize(256 << 10, 7);
        std::fs::write(&path, &bytes).unwrap();
        let f = Untrusted::open_in(&*dir, "c", CHUNK).unwrap().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        let e = f.read_all().unwrap_err();
        assert!(
            matches!(e, UntrustedError::Truncated { at: 100, len, .. } if len == 256 << 10),
            "{e}"
        );
        let mut sink = Vec::new();
        let e = f.reader().read_to_end(&mut sink).unwrap_err();
        assert!(e.to_string().contains("truncated while being read"), "{e}");
        // Nothing past the size at open is read, even if the file grew meanwhile.
        assert!(f.read_range(255 << 10, 2 << 10).is_err());
    }

    #[test]
    fn names_are_printed_escaped() {
        let (tmp, dir) = dir();
        let name = "evil\x1b[2Jname";
        symlink("/etc/passwd", tmp.path().join(name)).unwrap();
        let e = Untrusted::open_in(&*dir, name, CHUNK)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("evil\\x1b[2Jname") && !e.contains('\x1b'),
            "{e:?}"
        );
    }

    #[test]
    fn a_subdirectory_walk_never_follows_a_symlink() {
        let (tmp, dir) = dir();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"MAGIC123").unwrap();
        symlink(outside.path(), tmp.path().join("node")).unwrap();
        let e = dir.open_subdir("node", true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ELOOP), "{e}");
        let made = dir.open_subdir("fresh", true).unwrap();
        assert!(tmp.path().join("fresh").is_dir());
        assert!(made.path().ends_with("fresh"));
        std::fs::write(tmp.path().join("plain"), b"x").unwrap();
        let e = dir.open_subdir("plain", false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENOTDIR), "{e}");
    }
}
