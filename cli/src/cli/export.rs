//! `snapseal export --level L DIR OUT`: a node's artifacts (snapshot directory and its
//! `ledger/`) into one tar archive at a strict level (`snapseal_archive::export`).
//!
//! OUT is written under `OUT.pending` in OUT's directory (created `O_EXCL`), fsynced, closed
//! and renamed without replacing to OUT, then the directory fsynced: OUT either does not
//! exist or is a whole archive, even if the process is killed. An existing OUT is never
//! overwritten; a failed export removes its pending file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;
use snapseal::persist::internals::fs::DirHandle;
use snapseal::persist::internals::{classify_dir, Escaped, ListedEntry};
use snapseal::persist::{FileState, SnapshotEntry};
use snapseal_archive::{
    ensure_free, export, ArtifactSource, ChunkRef, Dir, ExportOptions, Level, Manifest,
    PendingFile, SourceError, Stale, LEDGER_DIR,
};
use snapseal_ledger::disk_ledger::{ChunkKeys, LedgerDir};

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
    /// Operational plus every ledger chunk from the snapshot to the commit index (at least
    /// the index the snapshot's receipt proves); fails naming a missing range.
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
    /// The archive to write (a tar stream); must not exist. Written as OUT.pending in the
    /// same directory, then renamed: a killed export leaves no OUT.
    pub out: PathBuf,
    /// Public key file the snapshots and chunks must verify against and the archive carries
    /// (hex Ed25519 key per line); may be repeated. Default: DIR/node.pub. A regular file of
    /// at most 64 KiB; a symbolic link is refused.
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
}

/// What `export --json` prints.
#[derive(Debug, Serialize)]
struct ExportSummary {
    #[serde(serialize_with = "crate::cli::output::escaped_path")]
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
    fn read_chunk(&self, chunk: &ChunkRef, _max_len: u64) -> Result<Vec<u8>, SourceError> {
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
fn estimate(dir: &dyn DirHandle, source: &dyn ArtifactSource, level: Level) -> u64 {
    let Ok(listed) = classify_dir(dir) else {
        return 0;
    };
    let snaps: Vec<SnapshotEntry> = listed
        .iter()
        .filter_map(ListedEntry::snapshot)
        .filter(|e| e.name.state == FileState::Committed)
        .collect();
    let newest = snaps
        .iter()
        .max_by_key(|e| (e.name.idx, e.name.evidence_idx));
    let chunks = source.chunks().unwrap_or_default();
    match level {
        Level::Operational => newest.map_or(0, |s| s.len),
        Level::Replay => {
            let from = newest.map_or(0, |s| s.name.idx);
            newest.map_or(0, |s| s.len)
                + chunks
                    .iter()
                    .filter(|c| c.end > from)
                    .map(|c| c.len)
                    .sum::<u64>()
        }
        _ => snaps.iter().map(|s| s.len).sum::<u64>() + chunks.iter().map(|c| c.len).sum::<u64>(),
    }
}

/// OUT's directory and file name.
fn split_out(out: &Path) -> anyhow::Result<(Dir, String)> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|_| !out.as_os_str().as_encoded_bytes().ends_with(b"/"))
        .with_context(|| {
            format!(
                "{}: not a path to a file with a UTF-8 name",
                Escaped::path(out)
            )
        })?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = Dir::open(parent)
        .with_context(|| format!("opening directory {}", Escaped::path(parent)))?;
    Ok((dir, name.to_string()))
}

/// Runs `export`.
pub(super) fn run(args: &ExportArgs, out: &Out) -> anyhow::Result<Status> {
    let level = args.level.level();
    let trusted = Trusted::load(&args.keys, &args.dir)?;
    let dir = safe_open::open_dir(&args.dir)?;
    let ledger_path = args.dir.join(LEDGER_DIR);
    // By the snapshot directory's fd: what was checked is what is read, and never a link.
    let ledger_dir = match dir.open_subdir(LEDGER_DIR, false) {
        Ok(handle) => Some(LedgerDir::from_dir(handle)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "opening {} (a directory, not a link)",
                Escaped::path(&ledger_path)
            )))
        }
    };
    let source: &dyn ArtifactSource = match &ledger_dir {
        Some(ledger) => ledger,
        None if level == Level::Operational => &NoLedger,
        None => anyhow::bail!(
            "{} has no {LEDGER_DIR}/ directory: a {} export needs the ledger (an operational \
             one does not)",
            Escaped::path(&args.dir),
            level.name()
        ),
    };
    let (out_dir, out_name) = split_out(&args.out)?;
    ensure_free(&out_dir, &out_name)?;
    let pending = format!("{out_name}.pending");
    let file = PendingFile::create(&out_dir, &pending, 0o644, Stale::Refuse)?;
    let started = std::time::Instant::now();
    let bar = Progress::new(
        out.bars(),
        estimate(&*dir, source, level),
        Unit::Bytes,
        "exporting",
    );
    let mut w = Counting {
        inner: io::BufWriter::with_capacity(1 << 16, file),
        n: 0,
        bar,
    };
    let opts = ExportOptions {
        level,
        keys: trusted.keys.clone(),
        verifier: trusted.verifier(),
    };
    let report = match export(
        &Dir::from_handle(dir.clone()),
        source,
        &ChunkKeys(trusted.keys.clone()),
        &opts,
        &mut w,
    ) {
        Ok(r) => r,
        // Dropping the pending file removes it: no partial archive is left anywhere.
        Err(e) if e.is_refusal() => {
            crate::cli::progress::suspend(|| eprintln!("error: {}", crate::cli::exit::causes(&e)));
            return Ok(Status::Failed);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("exporting {}", Escaped::path(&args.dir)))
        }
    };
    w.flush()
        .with_context(|| format!("writing {}", Escaped::path(&args.out)))?;
    let archive_bytes = w.n;
    let file = w
        .inner
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", Escaped::path(&args.out)))?;
    file.seal()?.publish(&out_name)?;
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
        "exported {} at level {}: snapshot at idx {}, ledger to idx {}; {} key(s), {} snapshot(s){}, {} chunk(s){}; {} bytes in {:.2} s",
        Escaped::path(&args.out),
        m.level.name(),
        m.snapshot_idx,
        m.commit_idx,
        count(K::Key),
        count(K::Snapshot),
        if count(K::Chunk) > 0 {
            format!(", {} snapshot chunk(s)", count(K::Chunk))
        } else {
            String::new()
        },
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
