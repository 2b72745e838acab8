//! Reading hostile files and writing new ones through the crash-safe sequence.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use snapseal_persist::fs::{DirHandle, WritableFile};

/// Copy buffer: the only per-file memory export and import use.
pub(crate) const BUF: usize = 1 << 16;

/// Opens `path` for reading without following a symlink; it must be a regular file of
/// exactly `len` bytes (what the listing said).
pub(crate) fn open_regular(path: &Path, len: u64) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes, listed as {len}", meta.len()),
        ));
    }
    Ok(file)
}

/// BLAKE3 and length of everything `src` yields.
pub(crate) fn hash_stream(src: &mut dyn Read) -> io::Result<(blake3::Hash, u64)> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut n = 0u64;
    loop {
        match src.read(&mut buf) {
            Ok(0) => return Ok((h.finalize(), n)),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `buf` (short writes looped, `EINTR` retried).
pub(crate) fn write_all(file: &mut dyn WritableFile, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write(buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing")),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The step a durable write failed at.
#[derive(Debug)]
pub(crate) struct WriteFailure {
    pub(crate) step: &'static str,
    pub(crate) source: io::Error,
}

/// Streams `src` (at most `limit` bytes) into a new `pending` file (a stale one removed
/// first, then `O_EXCL`), fsyncs and closes it; returns the BLAKE3 and length written. The
/// caller verifies, then calls [`commit`] or removes the pending file.
pub(crate) fn write_pending(
    dir: &dyn DirHandle,
    pending: &str,
    src: &mut dyn Read,
    limit: u64,
) -> Result<(blake3::Hash, u64), WriteFailure> {
    let fail = |step| move |source| WriteFailure { step, source };
    match dir.unlink(pending) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("removing a stale pending file")(e)),
    }
    let mut file = dir
        .create_new(pending, 0o600)
        .map_err(fail("creating (O_EXCL)"))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; BUF];
    let mut n = 0u64;
    loop {
        let k = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail("reading the archive")(e)),
        };
        n += k as u64;
        if n > limit {
            return Err(fail("reading the archive")(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than the {limit} bytes the manifest lists"),
            )));
        }
        h.update(&buf[..k]);
        write_all(&mut *file, &buf[..k]).map_err(fail("writing"))?;
    }
    file.sync().map_err(fail("fsync"))?;
    file.close().map_err(fail("close"))?;
    Ok((h.finalize(), n))
}

/// Renames `pending` to `name` without replacing, then fsyncs the directory.
pub(crate) fn commit(dir: &dyn DirHandle, pending: &str, name: &str) -> Result<(), WriteFailure> {
    dir.rename_noreplace(pending, name)
        .map_err(|source| WriteFailure {
            step: "rename (no replace)",
            source,
        })?;
    dir.sync().map_err(|source| WriteFailure {
        step: "fsync of the directory",
        source,
    })
}
