//! `snapseal export --level L DIR OUT`: a node's artifacts (snapshot directory and its
//! `ledger/`) into one tar archive at a strict level (`snapseal_archive::export`).
//!
//! OUT is created new (never overwritten), written in bounded memory, fsynced and closed; on
//! any failure it is removed, so an archive that exists is a whole one.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde::Serialize;
use snapseal::persist::fs::{EntryKind, RealFs};
use snapseal::persist::SnapshotName;
use snapseal_archive::{
    export, ArtifactSource, ChunkRef, ExportError, ExportOptions, Level, Manifest, SourceError,
    LEDGER_DIR,
};
use snapseal_sim::disk_ledger::LedgerDir;

use crate::cli::exit::Status;
use crate::cli::keys::Trusted;
use crate::cli::output::{text, Out};
use crate::cli::progress::{Progress, Unit};
use crate::cli::safe_open;

/// An artifact level, as the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LevelArg {
    /// The newest snapshot that verifies and the public keys: enough to start a node.
    Operational,
    /// Operational plus every ledger chunk from the snapshot to the commit index; fails
    /// naming a missing range.
    Replay,
    /// Every snapshot that verifies and every chunk available; gaps listed, never fails
    /// for one.
    Archival,
    /// Archival plus every other file of DIR and DIR/ledger (quarantined, pending, logs),
    /// under debug/; never imported.
    Debug,
}

impl LevelArg {
    pub(super) fn level(self) -> Level {
        match self {
            LevelArg::Operational => Level::Operational,
            LevelArg::Replay => Level::Replay,
            LevelArg::Archival => Level::Archival,
            LevelArg::Debug => Level::Debug,
        }
    }
}

/// `export` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct ExportArgs {
    /// The level: what the archive must hold (see `snapseal export --help`).
    #[arg(long, value_enum)]
    pub level: LevelArg,
    /// The snapshot directory (its ledger is DIR/ledger).
    pub dir: PathBuf,
    /// The archive to write (a tar stream); must not exist.
    pub out: PathBuf,
    /// Public key file the snapshots must verify against and the archive carries (hex
    /// Ed25519 key per line); may be repeated. Default: DIR/node.pub. A regular file of at
    /// most 64 KiB; a symbolic link is refused.
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
}

/// What `export --json` prints.
#[derive(Debug, Serialize)]
struct ExportSummary {
    archive: PathBuf,
    archive_bytes: u64,
    artifact_bytes: u64,
    secs: f64,
    manifest: Manifest,
}

/// A ledger that is not there (an operational export of a directory without `ledger/`).
struct NoLedger;

impl ArtifactSource for NoLedger {
    fn chunks(&self) -> Result<Vec<ChunkRef>, SourceError> {
        Ok(Vec::new())
    }
    fn open_chunk(&self, chunk: &ChunkRef) -> Result<Box<dyn io::Read + '_>, SourceError> {
        Err(SourceError {
            what: chunk.file_name(),
            source: io::Error::new(io::ErrorKind::NotFound, "no ledger directory"),
        })
    }
}

/// Counts the bytes written and moves the bar.
struct Counting<W> {
    inner: W,
    n: u64,
    bar: Progress,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        self.bar.set_position(self.n);
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// About how many bytes the archive will hold (for the bar): the newest committed snapshot
/// by name, and the chunks after it (or everything, for archival and debug).
fn estimate(dir: &Path, source: &dyn ArtifactSource, level: Level) -> u64 {
    let Ok(handle) = RealFs::new().open_dir_unmapped(dir) else {
        return 0;
    };
    let Ok(list) = handle.list() else { return 0 };
    let snaps: Vec<(SnapshotName, u64)> = list
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| Some((SnapshotName::parse(e.name.to_str()?)?, e.len)))
        .filter(|(n, _)| n.state == snapseal::persist::FileState::Committed)
        .collect();
    let newest = snaps.iter().max_by_key(|(n, _)| (n.idx, n.evidence_idx));
    let chunks = source.chunks().unwrap_or_default();
    match level {
        Level::Operational => newest.map_or(0, |s| s.1),
        Level::Replay => {
            let from = newest.map_or(0, |s| s.0.idx);
            newest.map_or(0, |s| s.1)
                + chunks
                    .iter()
                    .filter(|c| c.end > from)
                    .map(|c| c.len)
                    .sum::<u64>()
        }
        _ => snaps.iter().map(|s| s.1).sum::<u64>() + chunks.iter().map(|c| c.len).sum::<u64>(),
    }
}

/// Runs `export`.
pub(super) fn run(args: &ExportArgs, out: &Out) -> anyhow::Result<Status> {
    let level = args.level.level();
    let trusted = Trusted::load(&args.keys, &args.dir)?;
    let has_ledger = safe_open::check_subdir(&args.dir, LEDGER_DIR)?;
    let ledger_path = args.dir.join(LEDGER_DIR);
    let ledger_dir;
    let source: &dyn ArtifactSource = if has_ledger {
        ledger_dir = LedgerDir::open(&RealFs::new(), &ledger_path)
            .with_context(|| format!("opening {}", ledger_path.display()))?;
        &ledger_dir
    } else if level == Level::Operational {
        &NoLedger
    } else {
        bail!(
            "{} has no {LEDGER_DIR}/ directory: a {} export needs the ledger (an operational \
             one does not)",
            args.dir.display(),
            level.name()
        );
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(&args.out)
        .with_context(|| {
            format!(
                "creating {} (an existing file is never overwritten)",
                args.out.display()
            )
        })?;
    let started = std::time::Instant::now();
    let bar = Progress::new(
        out.bars(),
        estimate(&args.dir, source, level),
        Unit::Bytes,
        "exporting",
    );
    let mut w = Counting {
        inner: io::BufWriter::with_capacity(1 << 16, &file),
        n: 0,
        bar,
    };
    let opts = ExportOptions {
        level,
        keys: trusted.keys.clone(),
        verifier: trusted.verifier(),
    };
    let exported = export(&args.dir, source, &opts, &mut w)
        .map_err(Failure::Export)
        .and_then(|report| {
            w.flush().map_err(Failure::Io)?;
            Ok((report, w.n))
        });
    drop(w);
    let result = exported.and_then(|r| finish(file).map(|()| r).map_err(Failure::Io));
    let (report, archive_bytes) = match result {
        Ok(r) => r,
        Err(failure) => {
            // Never leave a partial archive behind that looks like a whole one.
            let _ = std::fs::remove_file(&args.out);
            return match failure {
                Failure::Export(
                    e @ (ExportError::Missing { .. } | ExportError::NoSnapshot { .. }),
                ) => {
                    // Not an I/O error: the store does not reach the level (exit 1).
                    crate::cli::progress::suspend(|| eprintln!("error: {e}"));
                    Ok(Status::Failed)
                }
                Failure::Export(e) => Err(anyhow::Error::new(e))
                    .with_context(|| format!("exporting {}", args.dir.display())),
                Failure::Io(e) => Err(e).with_context(|| format!("writing {}", args.out.display())),
            };
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let m = &report.manifest;
    let summary = ExportSummary {
        archive: args.out.clone(),
        archive_bytes,
        artifact_bytes: report.artifact_bytes,
        secs,
        manifest: report.manifest.clone(),
    };
    out.json(&summary)?;
    let count = |k| m.artifacts.iter().filter(|a| a.kind == k).count();
    use snapseal_archive::ArtifactKind as K;
    text!(
        out,
        "exported {} at level {}: snapshot at idx {}, ledger to idx {}; {} key(s), {} snapshot(s), {} chunk(s){}; {} bytes in {:.2} s",
        args.out.display(),
        m.level.name(),
        m.snapshot_idx,
        m.commit_idx,
        count(K::Key),
        count(K::Snapshot),
        count(K::Ledger),
        if count(K::Debug) > 0 {
            format!(", {} debug file(s)", count(K::Debug))
        } else {
            String::new()
        },
        archive_bytes,
        secs
    );
    for gap in &m.missing {
        text!(out, "  missing ledger entries {}..={}", gap.from, gap.to);
    }
    Ok(Status::Ok)
}

enum Failure {
    Export(ExportError),
    Io(io::Error),
}

/// fsync and close, a close error being a failure like any other.
fn finish(file: File) -> io::Result<()> {
    file.sync_all()?;
    let fd = std::os::fd::OwnedFd::from(file);
    nix::unistd::close(std::os::fd::IntoRawFd::into_raw_fd(fd)).map_err(io::Error::from)
}
