//! Writing through the seam: whole buffers (short writes looped, `EINTR` retried a bounded
//! number of times), and the crash-safe sequence for a new file that is not a snapshot
//! (a ledger chunk, an archive member): a pending name removed if stale and created
//! exclusively, written, fsynced and closed, then renamed without replacing to its final name
//! and the directory fsynced. The snapshot writer has its own, finer-grained sequence with
//! typed steps; these helpers are for the other crates' files, so the sequence is written once.

use std::io::{self, Read};

use thiserror::Error;

use super::{DirHandle, WritableFile};

/// Most bytes handed to one `write(2)`: large enough that syscall overhead vanishes, small
/// enough that one call does not pin gigabytes of page cache at once.
const MAX_WRITE: usize = 8 << 20;

/// Consecutive `EINTR`s after which a write gives up. Real interrupts are transient; this only
/// stops a pathological signal storm (or an always-failing fault) from spinning forever.
const MAX_INTERRUPTS: u32 = 1024;

/// Copy buffer of [`write_pending`].
const COPY_BUF: usize = 1 << 16;

/// A step of [`write_pending`] or [`publish`] failed.
#[derive(Debug, Error)]
#[error("{step}")]
#[non_exhaustive]
pub struct DurableError {
    /// What was being done: `removing a stale pending file`, `creating (O_EXCL)`, `reading
    /// the source`, `writing`, `fsync`, `close`, `rename (no replace)`, `fsync of the
    /// directory`.
    pub step: &'static str,
    /// The error.
    #[source]
    pub source: io::Error,
}

fn at(step: &'static str) -> impl FnOnce(io::Error) -> DurableError {
    move |source| DurableError { step, source }
}

/// Streams `src` into a new file `pending` in `dir`: a stale file of that name is removed
/// first, then the name is created exclusively (`O_EXCL`, mode 0600); every block read is
/// handed to `each` (e.g. a hasher) and written; more than `limit` bytes fails with
/// `InvalidData` at `reading the source`. Then `fsync` and `close`: a failure of either is
/// final (never retried). Returns the bytes written. On error the pending file may remain; the
/// caller removes it or leaves it to its own stale-file cleanup.
pub fn write_pending(
    dir: &dyn DirHandle,
    pending: &str,
    src: &mut dyn Read,
    limit: u64,
    each: &mut dyn FnMut(&[u8]),
) -> Result<u64, DurableError> {
    match dir.unlink(pending) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(at("removing a stale pending file")(e)),
    }
    let mut file = dir
        .create_new(pending, 0o600)
        .map_err(at("creating (O_EXCL)"))?;
    let mut buf = vec![0u8; COPY_BUF];
    let mut n = 0u64;
    loop {
        let k = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(at("reading the source")(e)),
        };
        n += k as u64;
        if n > limit {
            return Err(at("reading the source")(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more than the {limit} bytes expected"),
            )));
        }
        each(&buf[..k]);
        write_all(&mut *file, &buf[..k]).map_err(at("writing"))?;
    }
    file.sync().map_err(at("fsync"))?;
    file.close().map_err(at("close"))?;
    Ok(n)
}

/// Gives the durable `pending` file its final `name`: `renameat2(RENAME_NOREPLACE)` (an
/// existing `name` fails with `EEXIST`; nothing is replaced), then `fsync` of the directory.
pub fn publish(dir: &dyn DirHandle, pending: &str, name: &str) -> Result<(), DurableError> {
    dir.rename_noreplace(pending, name)
        .map_err(at("rename (no replace)"))?;
    dir.sync().map_err(at("fsync of the directory"))
}

/// Writes all of `buf` at `offset` with `pwrite`: the same loop as [`write_all`].
pub(crate) fn write_all_at(
    file: &mut dyn WritableFile,
    mut buf: &[u8],
    mut offset: u64,
) -> io::Result<()> {
    let mut interrupts = 0;
    while !buf.is_empty() {
        let chunk = &buf[..buf.len().min(MAX_WRITE)];
        match file.write_at(chunk, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "pwrite accepted 0 bytes of a non-empty buffer",
                ))
            }
            Ok(n) if n > chunk.len() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("pwrite claimed {n} bytes of a {} byte buffer", chunk.len()),
                ))
            }
            Ok(n) => {
                interrupts = 0;
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < MAX_INTERRUPTS => {
                interrupts += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf`: loops on short writes, retries `EINTR`, hands the kernel at most
/// 8 MiB per call, straight from the caller's slice. After 1024 `EINTR`s in a row it gives up
/// with the last one.
pub fn write_all(file: &mut dyn WritableFile, mut buf: &[u8]) -> io::Result<()> {
    let mut interrupts = 0;
    while !buf.is_empty() {
        let chunk = &buf[..buf.len().min(MAX_WRITE)];
        match file.write(chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write accepted 0 bytes of a non-empty buffer",
                ))
            }
            Ok(n) => {
                interrupts = 0;
                // A broken implementation claiming more than it was given is an error, not
                // a panic.
                if n > chunk.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("write claimed {n} bytes of a {} byte buffer", chunk.len()),
                    ));
                }
                buf = &buf[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupts < MAX_INTERRUPTS => {
                interrupts += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
