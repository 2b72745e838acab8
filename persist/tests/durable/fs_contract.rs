//! The filesystem seam's contract, written once and run against `RealFs`
//! ([`fs_real`](crate::fs_real)) and `SimFs` ([`fs_sim`](crate::fs_sim)), so the simulation
//! cannot drift from the real thing.

use std::io;
use std::path::Path;

use nix::errno::Errno;
use snapseal_persist::fs::FileSystem;
use snapseal_persist::internals::fs::{DirHandle, EntryKind, WritableFile};

/// One fresh, empty directory on some filesystem, plus the few things the seam cannot do.
pub(crate) trait Harness {
    /// The filesystem under test.
    fn fs(&self) -> &dyn FileSystem;
    /// The fresh directory (exists already).
    fn dir(&self) -> &Path;
    /// An independent view of the same filesystem, as another process would have.
    fn other_fs(&self) -> Box<dyn FileSystem>;
    /// Creates a symlink `name` -> `target` inside the directory.
    fn plant_symlink(&self, name: &str, target: &str);
    /// Creates an empty subdirectory `name`.
    fn plant_subdir(&self, name: &str);
}

/// Generates one `#[test]` per contract item, each on a fresh harness from `$make`.
macro_rules! contract_tests {
    ($make:expr) => {
        contract_tests!(@each $make;
            open_dir_missing_is_not_found_and_create_makes_it,
            create_new_is_exclusive,
            symlinks_are_never_followed,
            rename_noreplace_refuses_to_overwrite,
            rename_noreplace_moves_a_file,
            link_then_unlink_moves_without_overwriting,
            unlink_removes_a_name,
            list_reports_kinds_and_lengths,
            open_read_returns_contents_including_empty,
            lock_is_exclusive_across_handles_and_released_on_drop,
            names_must_be_single_file_names,
            written_bytes_read_back_after_sync_and_close,
            write_at_overwrites_in_place_and_leaves_the_append_offset,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let harness = $make;
                crate::fs_contract::$name(&harness);
            }
        )*
    };
}
pub(crate) use contract_tests;

pub(crate) fn errno(err: &io::Error) -> Option<Errno> {
    err.raw_os_error().map(Errno::from_raw)
}

/// Writes all of `bytes`, looping on short writes and EINTR as the writer does.
pub(crate) fn write_all(file: &mut dyn WritableFile, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `name` holding `bytes`, fsynced and closed.
pub(crate) fn put(dir: &dyn DirHandle, name: &str, bytes: &[u8]) {
    let mut file = dir.create_new(name, 0o600).unwrap();
    write_all(file.as_mut(), bytes).unwrap();
    file.sync().unwrap();
    file.close().unwrap();
}

pub(crate) fn contents(dir: &dyn DirHandle, name: &str) -> Vec<u8> {
    dir.open_read(name).unwrap().to_vec()
}

fn open(h: &dyn Harness) -> std::sync::Arc<dyn DirHandle> {
    h.fs().open_dir(h.dir(), false).unwrap()
}

pub(crate) fn open_dir_missing_is_not_found_and_create_makes_it(h: &dyn Harness) {
    let nested = h.dir().join("a").join("b");
    let err = h.fs().open_dir(&nested, false).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    let made = h.fs().open_dir(&nested, true).unwrap();
    assert_eq!(made.path(), nested);
    put(made.as_ref(), "f", b"x");
    // The same directory, opened again without create, sees the file.
    let again = h.fs().open_dir(&nested, false).unwrap();
    assert_eq!(contents(again.as_ref(), "f"), b"x");
    // Creating an existing directory is fine and keeps its contents.
    let third = h.fs().open_dir(&nested, true).unwrap();
    assert_eq!(contents(third.as_ref(), "f"), b"x");
}

pub(crate) fn create_new_is_exclusive(h: &dyn Harness) {
    let dir = open(h);
    put(dir.as_ref(), "a", b"first");
    let err = dir.create_new("a", 0o600).unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EEXIST));
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(contents(dir.as_ref(), "a"), b"first");
}

pub(crate) fn symlinks_are_never_followed(h: &dyn Harness) {
    let dir = open(h);
    put(dir.as_ref(), "target", b"precious");
    h.plant_symlink("link", "target");
    h.plant_symlink("dangling", "nowhere");

    // O_CREAT|O_EXCL on any existing name, symlinks (even dangling ones) included: EEXIST.
    for name in ["link", "dangling"] {
        let err = dir.create_new(name, 0o600).unwrap_err();
        assert_eq!(errno(&err), Some(Errno::EEXIST), "create_new({name})");
    }
    // O_NOFOLLOW: ELOOP.
    let err = dir.open_read("link").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ELOOP));
    let err = dir.lock_exclusive("link").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ELOOP));
    let err = dir.lock_exclusive("dangling").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ELOOP));

    // Nothing was created behind the dangling link, and the target is untouched.
    assert_eq!(contents(dir.as_ref(), "target"), b"precious");
    let names: Vec<_> = dir.list().unwrap().into_iter().map(|e| e.name).collect();
    assert!(!names.iter().any(|n| n == "nowhere"), "{names:?}");

    // Unlinking a symlink removes the link, not its target.
    dir.unlink("link").unwrap();
    assert_eq!(contents(dir.as_ref(), "target"), b"precious");
}

pub(crate) fn rename_noreplace_refuses_to_overwrite(h: &dyn Harness) {
    let dir = open(h);
    put(dir.as_ref(), "a", b"aaa");
    put(dir.as_ref(), "b", b"bbb");
    let err = dir.rename_noreplace("a", "b").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EEXIST));
    assert!(!snapseal_persist::internals::fs::is_noreplace_unsupported(
        &err
    ));
    assert_eq!(contents(dir.as_ref(), "a"), b"aaa");
    assert_eq!(contents(dir.as_ref(), "b"), b"bbb");
    // A symlink at the destination is an existing name too.
    h.plant_symlink("l", "a");
    let err = dir.rename_noreplace("b", "l").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EEXIST));
    assert_eq!(contents(dir.as_ref(), "b"), b"bbb");
}

pub(crate) fn rename_noreplace_moves_a_file(h: &dyn Harness) {
    let dir = open(h);
    put(dir.as_ref(), "a", b"aaa");
    dir.rename_noreplace("a", "c").unwrap();
    assert_eq!(
        dir.open_read("a").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(contents(dir.as_ref(), "c"), b"aaa");
    let err = dir.rename_noreplace("missing", "d").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ENOENT));
    dir.sync().unwrap();
}

/// The writer's fallback when RENAME_NOREPLACE is unsupported: link, then unlink the old name.
pub(crate) fn link_then_unlink_moves_without_overwriting(h: &dyn Harness) {
    let dir = open(h);
    put(dir.as_ref(), "a", b"aaa");
    put(dir.as_ref(), "b", b"bbb");
    let err = dir.hard_link("a", "b").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EEXIST));
    assert_eq!(contents(dir.as_ref(), "b"), b"bbb");

    dir.hard_link("a", "c").unwrap();
    assert_eq!(contents(dir.as_ref(), "a"), b"aaa");
    assert_eq!(contents(dir.as_ref(), "c"), b"aaa");
    dir.unlink("a").unwrap();
    assert_eq!(contents(dir.as_ref(), "c"), b"aaa");

    let err = dir.hard_link("missing", "e").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::ENOENT));

    // linkat without AT_SYMLINK_FOLLOW links the symlink itself.
    h.plant_symlink("l", "c");
    dir.hard_link("l", "l2").unwrap();
    let kinds: Vec<_> = dir
        .list()
        .unwrap()
        .into_iter()
        .filter(|e| e.name == "l2")
        .collect();
    assert_eq!(kinds.len(), 1);
    assert_eq!(kinds[0].kind, EntryKind::Symlink);
}

pub(crate) fn unlink_removes_a_name(h: &dyn Harness) {
    let dir = open(h);
    put(dir.as_ref(), "a", b"aaa");
    dir.unlink("a").unwrap();
    assert_eq!(
        dir.open_read("a").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let err = dir.unlink("a").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(errno(&err), Some(Errno::ENOENT));
    // The name is free again.
    put(dir.as_ref(), "a", b"new");
    assert_eq!(contents(dir.as_ref(), "a"), b"new");
    // A directory is not unlinked.
    h.plant_subdir("sub");
    let err = dir.unlink("sub").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EISDIR));
}

pub(crate) fn list_reports_kinds_and_lengths(h: &dyn Harness) {
    let dir = open(h);
    assert!(
        dir.list().unwrap().is_empty(),
        "fresh directory lists nothing"
    );
    put(dir.as_ref(), "five", b"12345");
    put(dir.as_ref(), "empty", b"");
    h.plant_symlink("link", "five");
    h.plant_subdir("sub");
    let mut entries = dir.list().unwrap();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let got: Vec<_> = entries
        .iter()
        .map(|e| (e.name.to_str().unwrap(), e.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("empty", EntryKind::File),
            ("five", EntryKind::File),
            ("link", EntryKind::Symlink),
            ("sub", EntryKind::Dir),
        ]
    );
    assert_eq!(entries[0].len, 0);
    assert_eq!(entries[1].len, 5);
    // lstat size of a symlink is the length of its target, "five".
    assert_eq!(entries[2].len, 4);
    // Listing twice gives the same names (no shared directory offset).
    assert_eq!(dir.list().unwrap().len(), 4);
}

pub(crate) fn open_read_returns_contents_including_empty(h: &dyn Harness) {
    let dir = open(h);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    put(dir.as_ref(), "big", &big);
    put(dir.as_ref(), "empty", b"");
    assert_eq!(&*dir.open_read("big").unwrap(), &big[..]);
    let empty = dir.open_read("empty").unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        dir.open_read("missing").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    h.plant_subdir("sub");
    let err = dir.open_read("sub").unwrap_err();
    assert_eq!(errno(&err), Some(Errno::EISDIR));
    // The bytes outlive the read and can cross threads.
    let bytes = dir.open_read("big").unwrap();
    let sum = std::thread::spawn(move || bytes.iter().map(|&b| u64::from(b)).sum::<u64>())
        .join()
        .unwrap();
    assert_eq!(sum, big.iter().map(|&b| u64::from(b)).sum::<u64>());
}

pub(crate) fn lock_is_exclusive_across_handles_and_released_on_drop(h: &dyn Harness) {
    let dir = open(h);
    let lock = dir.lock_exclusive(".lock").unwrap();
    // Same handle, another handle, another filesystem instance: all refused.
    let err = dir.lock_exclusive(".lock").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    let dir2 = h.fs().open_dir(h.dir(), false).unwrap();
    let err = dir2.lock_exclusive(".lock").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    let other = h.other_fs();
    let dir3 = other.open_dir(h.dir(), false).unwrap();
    let err = dir3.lock_exclusive(".lock").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    // The lock file exists as a plain empty file.
    let entry = dir
        .list()
        .unwrap()
        .into_iter()
        .find(|e| e.name == ".lock")
        .unwrap();
    assert_eq!((entry.kind, entry.len), (EntryKind::File, 0));

    drop(lock);
    let again = dir3.lock_exclusive(".lock").unwrap();
    let err = dir.lock_exclusive(".lock").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    drop(again);
}

pub(crate) fn names_must_be_single_file_names(h: &dyn Harness) {
    let dir = open(h);
    put(dir.as_ref(), "ok", b"x");
    for bad in ["", ".", "..", "a/b", "../escape", "/abs", "nul\0byte"] {
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            kind(dir.create_new(bad, 0o600).map(drop)),
            io::ErrorKind::InvalidInput,
            "create_new({bad:?})"
        );
        assert_eq!(
            kind(dir.rename_noreplace("ok", bad)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(dir.rename_noreplace(bad, "x")),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(kind(dir.hard_link("ok", bad)), io::ErrorKind::InvalidInput);
        assert_eq!(kind(dir.unlink(bad)), io::ErrorKind::InvalidInput);
        assert_eq!(
            kind(dir.open_read(bad).map(drop)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(dir.lock_exclusive(bad).map(drop)),
            io::ErrorKind::InvalidInput
        );
    }
    // Nothing happened to the one real file.
    let names: Vec<_> = dir.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["ok"]);
}

pub(crate) fn written_bytes_read_back_after_sync_and_close(h: &dyn Harness) {
    let dir = open(h);
    let mut file = dir.create_new("f", 0o600).unwrap();
    assert_eq!(file.write(b"").unwrap(), 0);
    write_all(file.as_mut(), b"hello ").unwrap();
    write_all(file.as_mut(), b"world").unwrap();
    file.sync().unwrap();
    file.close().unwrap();
    dir.sync().unwrap();
    assert_eq!(contents(dir.as_ref(), "f"), b"hello world");
    // A file dropped without close is still closed and its bytes are there.
    let mut dropped = dir.create_new("g", 0o600).unwrap();
    write_all(dropped.as_mut(), b"bye").unwrap();
    drop(dropped);
    assert_eq!(contents(dir.as_ref(), "g"), b"bye");
}

pub(crate) fn write_at_overwrites_in_place_and_leaves_the_append_offset(h: &dyn Harness) {
    let dir = open(h);
    let mut file = dir.create_new("f", 0o600).unwrap();
    write_all(file.as_mut(), &[0u8; 8]).unwrap();
    write_all(file.as_mut(), b"body").unwrap();
    // Fill in the placeholder at offset 0 (as the writer does for a spilled body) ...
    let mut head: &[u8] = b"HEADER!!";
    let mut at = 0;
    while !head.is_empty() {
        match file.write_at(head, at) {
            Ok(n) => {
                head = &head[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("write_at: {e}"),
        }
    }
    // ... and later appends still go to the end, not after the pwrite.
    write_all(file.as_mut(), b"+tail").unwrap();
    // Past the end, the gap reads as zeros.
    assert_eq!(file.write_at(b"Z", 20).unwrap(), 1);
    assert_eq!(file.write_at(b"", 3).unwrap(), 0);
    file.sync().unwrap();
    file.close().unwrap();
    assert_eq!(contents(dir.as_ref(), "f"), b"HEADER!!body+tail\0\0\0Z");
}
