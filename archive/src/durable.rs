//! Reading hostile files and writing new ones through the crash-safe sequence.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub(crate) use snapseal_persist::fs::{publish, DurableError};
use snapseal_persist::fs::{write_pending as durable_write, DirHandle};

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

/// Streams `src` (at most `limit` bytes) into a new `pending` file through persist's
/// crash-safe sequence (a stale one removed first, then `O_EXCL`, fsync, close); returns the
/// BLAKE3 and length written. The caller verifies, then calls [`publish`] or removes the
/// pending file.
pub(crate) fn write_pending(
    dir: &dyn DirHandle,
    pending: &str,
    src: &mut dyn Read,
    limit: u64,
) -> Result<(blake3::Hash, u64), DurableError> {
    let mut h = blake3::Hasher::new();
    let n = durable_write(dir, pending, src, limit, &mut |block| {
        h.update(block);
    })?;
    Ok((h.finalize(), n))
}
