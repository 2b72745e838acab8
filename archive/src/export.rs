//! Export: one tar stream at a level, holding only what an import would accept.
//!
//! Two passes over the artifacts. The first verifies each one (snapshots streamed through
//! [`SnapshotCheck`], chunks whole through the [`ChunkVerifier`]) and hashes it, then the
//! chain between them is checked ([`crate::chain`]) and the manifest built and checked as an
//! importer would. The second copies each artifact after the manifest, re-hashing it; one
//! that changed in between fails the export. Every local file is opened through
//! [`Untrusted`] and read with `pread`: a file truncated meanwhile is an error naming it,
//! never a `SIGBUS`.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use snapseal_persist::internals::chunks::{chunk_list, decode_list, read_chunk, DirChunks};
use snapseal_persist::internals::format::{body_digest, HEADER_LEN, MAGIC};
use snapseal_persist::internals::fs::{DirHandle, EntryKind, Expect, Untrusted, UntrustedError};
use snapseal_persist::internals::receipt::key_id;
use snapseal_persist::internals::{classify_dir, verify_file_in, Escaped};
use snapseal_persist::receipt::ReceiptVerifier;
use snapseal_persist::{to_hex, FileState, Hash, SnapshotFile, SnapshotName, SnapshotStore};

use crate::chain::{check_anchor, check_links, Origin, View};
use crate::container::{append, Hashing, BUF};
use crate::dir::Dir;
use crate::manifest::{
    self, gaps, is_debug_name, Artifact, ArtifactKind, Level, Manifest, FORMAT, MANIFEST_PATH,
    MAX_CHUNK, MAX_DEBUG, MAX_MANIFEST, MAX_SNAPSHOT,
};
use crate::snapshot::{SnapshotCheck, SnapshotProof};
use crate::source::{cover, ArtifactSource, ChunkRef, ChunkVerifier, OtherFile, SourceError};

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// The level.
    pub level: Level,
    /// The public keys a node needs (written under `keys/`).
    pub keys: Vec<VerifyingKey>,
    /// Verifies snapshots (only ones that verify are exported).
    pub verifier: Arc<dyn ReceiptVerifier>,
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    /// The manifest written first.
    pub manifest: Manifest,
    /// Bytes of artifacts copied (the archive is slightly larger: tar headers, manifest).
    pub artifact_bytes: u64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// No committed snapshot in the directory verifies.
    #[error("{}: no committed snapshot verifies; nothing to start a node from", Escaped::path(.dir))]
    NoSnapshot {
        /// The snapshot directory.
        dir: PathBuf,
    },
    /// The ledger lacks entries the level needs.
    #[error("replay export: ledger entries {from}..={to} are missing (the snapshot is at {snapshot_idx}; its receipt and the ledger put the commit index at {commit_idx})")]
    Missing {
        /// First missing index.
        from: u64,
        /// Last missing index.
        to: u64,
        /// The snapshot the replay starts from.
        snapshot_idx: u64,
        /// Where it must reach.
        commit_idx: u64,
    },
    /// An artifact does not verify, or does not chain with the others: an import would
    /// refuse the archive, so it is not written.
    #[error("{}: refused: {why}", Escaped::str(.what))]
    Refused {
        /// The artifact (its path in the archive).
        what: String,
        /// What is wrong.
        why: String,
    },
    /// Listing the snapshot directory failed.
    #[error("{}: {source}", Escaped::path(.dir))]
    Store {
        /// The snapshot directory.
        dir: PathBuf,
        /// The error.
        #[source]
        source: snapseal_persist::StoreError,
    },
    /// Reading the ledger failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A local file was refused or could not be read (the error names it).
    #[error(transparent)]
    File(io::Error),
    /// An artifact changed between the two passes.
    #[error("{}: changed while being exported", Escaped::str(.0))]
    Changed(String),
    /// Writing the archive failed.
    #[error("writing the archive: {0}")]
    Write(#[source] io::Error),
}

impl ExportError {
    /// True when the store or ledger does not hold what the level needs, or holds something
    /// that does not verify: a property of the data, not an I/O failure.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use snapseal_archive::{export, Dir, ExportError, ExportOptions, Level};
    /// use snapseal_ledger::disk_ledger::{ChunkKeys, LedgerDir};
    /// use snapseal_persist::fs::RealFs;
    /// use snapseal_persist::receipt::Ed25519Verifier;
    /// use snapseal_persist::SigningKey;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A node that has not committed a snapshot yet.
    /// let empty = tempfile::tempdir()?;
    /// std::fs::create_dir(empty.path().join("ledger"))?;
    /// let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
    /// let opts = ExportOptions {
    ///     level: Level::Operational,
    ///     keys: vec![key],
    ///     verifier: Arc::new(Ed25519Verifier::new(vec![key])),
    /// };
    /// let dir = Dir::open(empty.path())?;
    /// let ledger = LedgerDir::open(&RealFs, &empty.path().join("ledger"))?;
    /// let mut out = Vec::new();
    /// match export(&dir, &ledger, &ChunkKeys(vec![key]), &opts, &mut out) {
    ///     // Nothing to start a node from: the data's fault, not the disk's.
    ///     Err(e @ ExportError::NoSnapshot { .. }) => assert!(e.is_refusal()),
    ///     other => panic!("expected a refusal, got {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ExportError::NoSnapshot { .. }
                | ExportError::Missing { .. }
                | ExportError::Refused { .. }
        )
    }
}

/// Where an artifact's bytes come from (the second pass opens it again).
enum From {
    Bytes(Vec<u8>),
    /// A chunk of a chunked snapshot, read from the store's packs (checked against its hash).
    SnapshotChunk(Hash),
    /// A file of the snapshot directory, opened as this.
    File(String, Expect),
    Chunk(ChunkRef),
    Other(String),
}

struct Item {
    artifact: Artifact,
    from: From,
}

fn snapshot_expect() -> Expect {
    Expect::new("snapshot", MAX_SNAPSHOT).with_magic(&MAGIC)
}

fn opened(dir: &dyn DirHandle, name: &str, expect: Expect) -> Result<Local, ExportError> {
    Untrusted::open_in(dir, name, expect)
        .map_err(|e| ExportError::File(io::Error::other(e)))?
        .map(Local)
        .ok_or_else(|| ExportError::Changed(name.to_string()))
}

/// A file of the snapshot directory, read like the ledger's other files (its read errors
/// carry the [`UntrustedError`] naming it).
struct Local(Untrusted);

impl OtherFile for Local {
    fn size(&self) -> u64 {
        self.0.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(offset, buf).map_err(io::Error::other)
    }
}

/// Streams `file` through `f` in [`BUF`]-sized blocks.
fn stream(
    file: &dyn OtherFile,
    f: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut buf = vec![0u8; BUF];
    let mut at = 0u64;
    while at < file.size() {
        let n = usize::try_from(file.size() - at).map_or(BUF, |left| left.min(BUF));
        file.read_exact_at(at, &mut buf[..n])
            .map_err(|e| e.to_string())?;
        f(&buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// Verifies the committed snapshot `name` of `dir` as an import would; returns what its
/// receipt proves and its artifact entry.
fn check_snapshot(
    dir: &dyn DirHandle,
    name: &SnapshotName,
    verifier: &dyn ReceiptVerifier,
) -> Result<(SnapshotProof, Artifact), String> {
    let file_name = name.file_name();
    let file = Untrusted::open_in(dir, &file_name, snapshot_expect())
        .map_err(|e| e.to_string())?
        .map(Local)
        .ok_or("vanished")?;
    let mut check = SnapshotCheck::new(*name, file.size(), verifier);
    let mut hash = blake3::Hasher::new();
    stream(&file, &mut |block| {
        hash.update(block);
        check.update(block)
    })?;
    let proof = check.finish()?;
    Ok((
        proof,
        Artifact {
            path: format!("snapshots/{file_name}"),
            kind: ArtifactKind::Snapshot,
            len: file.size(),
            blake3: hash.finalize().to_hex().to_string(),
        },
    ))
}

/// The committed snapshots of `dir` that verify, newest first; only the newest unless
/// `all`. A file that does not verify is passed over with a warning.
fn snapshots(
    dir: &dyn DirHandle,
    verifier: &dyn ReceiptVerifier,
    all: bool,
) -> Result<Vec<(SnapshotProof, Artifact)>, ExportError> {
    let mut names: Vec<SnapshotName> = classify_dir(dir)
        .map_err(|source| ExportError::Store {
            dir: dir.path().to_path_buf(),
            source,
        })?
        .iter()
        .filter_map(|e| e.snapshot())
        .map(|s| s.name)
        .filter(|n| n.state == FileState::Committed)
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut out = Vec::new();
    for name in &names {
        match check_snapshot(dir, name, verifier) {
            Ok(ok) => {
                out.push(ok);
                if !all {
                    break;
                }
            }
            Err(why) => tracing::warn!(file = %name, %why, "not exported: does not verify"),
        }
    }
    Ok(out)
}

/// The chunks the level takes, and the missing ranges to list.
fn select_chunks(
    all: &[ChunkRef],
    level: Level,
    snapshot_idx: u64,
    commit_idx: u64,
) -> Result<Vec<ChunkRef>, ExportError> {
    match level {
        Level::Operational => Ok(Vec::new()),
        Level::Replay => {
            cover(all, snapshot_idx.saturating_add(1), commit_idx).map_err(|(from, to)| {
                ExportError::Missing {
                    from,
                    to,
                    snapshot_idx,
                    commit_idx,
                }
            })
        }
        Level::Archival | Level::Debug => Ok(all.to_vec()),
    }
}

/// First pass over the chunks: each read whole, checked, verified, hashed; their links.
fn check_chunks(
    source: &dyn ArtifactSource,
    verifier: &dyn ChunkVerifier,
    chunks: &[ChunkRef],
    wanted: &[u64],
) -> Result<(Vec<Item>, View), ExportError> {
    let mut items = Vec::new();
    let mut view = View::new();
    for c in chunks {
        let path = format!("ledger/{}", c.file_name());
        let refused = |why: String| ExportError::Refused {
            what: path.clone(),
            why,
        };
        let bytes = source.read_chunk(c, MAX_CHUNK)?;
        let mut checked = verifier
            .verify_chunk(&mut &bytes[..], bytes.len() as u64, c.start, c.end)
            .map_err(|e| refused(e.to_string()))?;
        checked.signed.retain(|(i, _)| wanted.contains(i));
        view.insert((c.start, c.end), (checked, Origin::Archive));
        items.push(Item {
            artifact: Artifact {
                path,
                kind: ArtifactKind::Ledger,
                len: bytes.len() as u64,
                blake3: blake3::hash(&bytes).to_hex().to_string(),
            },
            from: From::Chunk(*c),
        });
    }
    Ok((items, view))
}

/// The chunks the chunked snapshots among `snaps` name, each once, sorted by hash, as
/// artifacts whose bytes the second pass reads from the directory's packs; and, when `dir`
/// has the store open on it ([`with_store`](Dir::with_store)), the snapshots opened through
/// it, whose holds keep retention off those chunks until they are dropped. Each snapshot is
/// verified again with its chunks (every one against its hash: a missing or damaged chunk
/// refuses the export, naming it) and its list read; the list is the one the receipt proves
/// (its digest is the body digest).
fn snapshot_chunks(
    dir: &Dir,
    verifier: &dyn ReceiptVerifier,
    snaps: &[(SnapshotProof, Artifact)],
) -> Result<(Vec<Item>, Vec<SnapshotFile>), ExportError> {
    let mut chunks = std::collections::BTreeMap::new();
    let mut held = Vec::new();
    for (proof, artifact) in snaps.iter().filter(|(p, _)| p.chunked) {
        let refused = |why: String| ExportError::Refused {
            what: artifact.path.clone(),
            why,
        };
        let list = match dir.store() {
            Some(store) => {
                let file = store
                    .read(&proof.name)
                    .map_err(|e| refused(snapseal_persist::ErrorChain(&e).to_string()))?;
                let list = chunk_list(&file)
                    .map_err(|e| refused(snapseal_persist::ErrorChain(&e).to_string()))?
                    .ok_or_else(|| refused("read back unchunked".into()))?;
                held.push(file);
                list
            }
            None => list_without_store(dir.fd(), verifier, &proof.name).map_err(refused)?,
        };
        for (len, hash) in list {
            chunks.insert(hash, len);
        }
    }
    let items = chunks
        .into_iter()
        .map(|(hash, len)| {
            let hex = to_hex(&hash);
            Item {
                artifact: Artifact {
                    path: format!("chunks/{hex}"),
                    kind: ArtifactKind::Chunk,
                    len: u64::from(len),
                    blake3: hex,
                },
                from: From::SnapshotChunk(hash),
            }
        })
        .collect();
    Ok((items, held))
}

/// The chunk list of the chunked snapshot `name` of `dir`, read without a store (no lock: a
/// node may be running on the directory): the file verified with its chunks against the
/// directory's sealed packs ([`verify_file_in`]), then its list read again and checked
/// against the body digest it verified with before it is decoded. Nothing holds the chunks
/// against the node's retention: one swept before the second pass copies it fails the export
/// as changed.
fn list_without_store(
    dir: &dyn DirHandle,
    verifier: &dyn ReceiptVerifier,
    name: &SnapshotName,
) -> Result<Vec<(u32, Hash)>, String> {
    let chain = |e: &(dyn std::error::Error + 'static)| snapseal_persist::ErrorChain(e).to_string();
    let file = Untrusted::open_in(dir, &name.file_name(), snapshot_expect())
        .map_err(|e| chain(&e))?
        .ok_or("vanished")?;
    let header = verify_file_in(dir, &file, Some(name), verifier, &mut |_| {})
        .map_err(|e| chain(&e))?
        .header;
    let len = usize::try_from(header.body_len).map_err(|_| "a chunk list too long to read")?;
    let list = file
        .read_range(HEADER_LEN as u64, len)
        .map_err(|e| chain(&e))?;
    if body_digest(&list) != header.body_digest {
        return Err("its chunk list changed after it verified".into());
    }
    decode_list(&list, header.raw_len).map_err(|e| chain(&e))
}

/// Every other regular file of the snapshot directory and the ledger (debug level), hashed.
fn debug_items(
    dir: &dyn DirHandle,
    source: &dyn ArtifactSource,
    exported: &[String],
) -> Result<Vec<Item>, ExportError> {
    let mut items = Vec::new();
    let listed = dir.list().map_err(|e| {
        ExportError::Source(SourceError {
            what: dir.path().display().to_string(),
            source: e,
        })
    })?;
    let expect = Expect::new("file", MAX_DEBUG);
    let mut found: Vec<(String, From)> = Vec::new();
    for e in listed.iter().filter(|e| e.kind == EntryKind::File) {
        match e.name.to_str().filter(|n| is_debug_name(n)) {
            Some(n) if exported.iter().any(|x| x == n) => {}
            Some(n) => found.push((format!("debug/{n}"), From::File(n.to_string(), expect))),
            None => {
                tracing::warn!(file = %Escaped::bytes(e.name.as_encoded_bytes()), "not exported: not a printable file name")
            }
        }
    }
    for (n, _) in source.other_files()? {
        if is_debug_name(&n) {
            found.push((format!("debug/ledger/{n}"), From::Other(n)));
        } else {
            tracing::warn!(file = %Escaped::str(&n), "not exported: not a printable file name");
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, from) in found {
        let (hash, len) = match &from {
            From::File(name, expect) => {
                let f = opened(dir, name, *expect)?;
                (hash_file(&f, &path)?, f.size())
            }
            From::Other(name) => {
                let f = source.open_other(name, MAX_DEBUG)?;
                (hash_file(&*f, &path)?, f.size())
            }
            From::Bytes(_) | From::Chunk(_) | From::SnapshotChunk(_) => continue,
        };
        items.push(Item {
            artifact: Artifact {
                path,
                kind: ArtifactKind::Debug,
                len,
                blake3: hash.to_hex().to_string(),
            },
            from,
        });
    }
    Ok(items)
}

fn hash_file(f: &dyn OtherFile, path: &str) -> Result<blake3::Hash, ExportError> {
    let mut h = blake3::Hasher::new();
    stream(f, &mut |b| {
        h.update(b);
        Ok(())
    })
    .map_err(|why| ExportError::Refused {
        what: path.to_string(),
        why,
    })?;
    Ok(h.finalize())
}

/// Exports the snapshot directory `dir` and the ledger `source` at `opts.level` into `out`
/// as a tar stream; every chunk is verified by `chunks`. Operational and replay archives are
/// deterministic: the same store and ledger give the same bytes.
///
/// The reference ledger (`snapseal-ledger`) provides the [`ArtifactSource`] and the
/// [`ChunkVerifier`] of a ledger directory; a node with its own ledger implements them.
///
/// ```
/// use std::sync::Arc;
/// use snapseal_archive::{export, Dir, ExportOptions, Level};
/// use snapseal_ledger::disk_ledger::{ChunkKeys, LedgerDir};
/// use snapseal_persist::fs::RealFs;
/// use snapseal_persist::receipt::Ed25519Verifier;
/// # use std::path::Path;
/// # use snapseal_actors::SnapshotterConfig;
/// # use snapseal_ledger::ledger::Ledger;
/// # use snapseal_ledger::node::SimConfig;
/// # use snapseal_persist::{SnapshotStore, StoreOptions, VerifyingKey};
/// # /// Runs a small simulated node into `dir` (snapshots, and its ledger in `dir/ledger`).
/// # fn run_node(dir: &Path) -> Result<VerifyingKey, String> {
/// #     let key = Ledger::seed_key(3).verifying_key();
/// #     let opts = StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key])));
/// #     let sim = SimConfig { txs: 300, sig_every: 10, value_size: 8, keys: 20, seed: 3,
/// #         ..SimConfig::default() };
/// #     let snap = SnapshotterConfig { tx_interval: 60, ..SnapshotterConfig::default() };
/// #     snapseal_sim::harness::fuzz_archive::node_with_disk_ledger(
/// #         Arc::new(RealFs), dir, opts, sim, snap, 2048)?;
/// #     Ok(key)
/// # }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = tempfile::tempdir()?;
/// # let key = run_node(node.path())?;
/// // `node` holds a node's snapshots, and its ledger in `ledger/`; `key` signs the ledger.
/// let snapshots = Dir::open(node.path())?;
/// let ledger = LedgerDir::open(&RealFs, &node.path().join("ledger"))?;
/// let opts = ExportOptions {
///     level: Level::Replay,
///     keys: vec![key],
///     verifier: Arc::new(Ed25519Verifier::new(vec![key])),
/// };
/// let mut archive = Vec::new();
/// let report = export(&snapshots, &ledger, &ChunkKeys(vec![key]), &opts, &mut archive)?;
///
/// // The newest snapshot, and every ledger entry after it up to the commit index.
/// let manifest = &report.manifest;
/// assert_eq!(manifest.level, Level::Replay);
/// assert!(manifest.snapshot_idx > 0 && manifest.commit_idx > manifest.snapshot_idx);
/// assert!(manifest.missing.is_empty());
///
/// // Deterministic: the same store and ledger give the same bytes.
/// let mut again = Vec::new();
/// export(&snapshots, &ledger, &ChunkKeys(vec![key]), &opts, &mut again)?;
/// assert_eq!(archive, again);
/// # Ok(()) }
/// ```
pub fn export(
    dir: &Dir,
    source: &dyn ArtifactSource,
    chunks: &dyn ChunkVerifier,
    opts: &ExportOptions,
    out: &mut dyn Write,
) -> Result<ExportReport, ExportError> {
    let dir_ref = dir;
    let dir = dir.fd();
    let all_snapshots = opts.level >= Level::Archival;
    let mut snaps = snapshots(dir, &*opts.verifier, all_snapshots)?;
    let Some((newest, _)) = snaps.first().cloned() else {
        return Err(ExportError::NoSnapshot {
            dir: dir.path().to_path_buf(),
        });
    };
    snaps.reverse();
    // The newest snapshot's receipt proves its ledger committed at least to its sig_idx: a
    // ledger that stops before that lost entries, which a replay archive must name.
    let commit_idx = source.commit_idx()?.max(newest.sig_idx);
    let listed = source.chunks()?;
    let selected = select_chunks(&listed, opts.level, newest.name.idx, commit_idx)?;
    let wanted: Vec<u64> = snaps
        .iter()
        .filter(|(p, _)| p.root.is_some())
        .map(|(p, _)| p.sig_idx)
        .collect();
    let (chunk_items, view) = check_chunks(source, chunks, &selected, &wanted)?;
    let refused = |b: crate::chain::Broken| ExportError::Refused {
        what: format!("ledger/{}", b.chunk),
        why: b.why,
    };
    check_links(&view).map_err(refused)?;
    for (proof, _) in &snaps {
        let anchored = check_anchor(&view, proof).map_err(refused)?;
        if opts.level == Level::Replay && proof.root.is_some() && !anchored {
            return Err(ExportError::Refused {
                what: format!("snapshots/{}", proof.name.file_name()),
                why: format!(
                    "no exported chunk holds its receipt's index {}",
                    proof.sig_idx
                ),
            });
        }
    }

    // Held until the export is written: retention keeps off their chunks meanwhile.
    let (snapshot_chunk_items, _held) = snapshot_chunks(dir_ref, &*opts.verifier, &snaps)?;

    let mut keys = opts.keys.clone();
    keys.sort_by_key(key_id);
    keys.dedup();
    let mut items: Vec<Item> = keys
        .iter()
        .map(|k| {
            let bytes = k.to_bytes().to_vec();
            Item {
                artifact: Artifact {
                    path: format!("keys/{}.pub", to_hex(&key_id(k))),
                    kind: ArtifactKind::Key,
                    len: bytes.len() as u64,
                    blake3: blake3::hash(&bytes).to_hex().to_string(),
                },
                from: From::Bytes(bytes),
            }
        })
        .collect();
    items.extend(snapshot_chunk_items);
    let exported: Vec<String> = snaps.iter().map(|(p, _)| p.name.file_name()).collect();
    for ((_, artifact), file) in snaps.into_iter().zip(&exported) {
        items.push(Item {
            artifact,
            from: From::File(file.clone(), snapshot_expect()),
        });
    }
    items.extend(chunk_items);
    if opts.level >= Level::Debug {
        items.extend(debug_items(dir, source, &exported)?);
    }
    let manifest = Manifest {
        format: FORMAT.to_string(),
        level: opts.level,
        snapshot_idx: newest.name.idx,
        commit_idx,
        artifacts: items.iter().map(|i| i.artifact.clone()).collect(),
        missing: if opts.level >= Level::Archival {
            gaps(&selected, commit_idx)
        } else {
            Vec::new()
        },
    };
    manifest::check(&manifest).map_err(|why| ExportError::Refused {
        what: MANIFEST_PATH.into(),
        why: why.to_string(),
    })?;
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ExportError::Write(io::Error::other(e)))?;
    if manifest_bytes.len() as u64 > MAX_MANIFEST {
        return Err(ExportError::Refused {
            what: MANIFEST_PATH.into(),
            why: format!(
                "{} bytes, more than an importer reads ({MAX_MANIFEST})",
                manifest_bytes.len()
            ),
        });
    }

    let mut tar = tar::Builder::new(out);
    append(
        &mut tar,
        MANIFEST_PATH,
        manifest_bytes.len() as u64,
        &mut &manifest_bytes[..],
    )
    .map_err(ExportError::Write)?;
    // Without a store, the directory's packs are scanned once for every snapshot chunk.
    let dir_chunks = match dir_ref.store() {
        None if items
            .iter()
            .any(|i| matches!(i.from, From::SnapshotChunk(_))) =>
        {
            Some(DirChunks::scan(dir).map_err(|e| ExportError::Refused {
                what: "chunks".into(),
                why: e.to_string(),
            })?)
        }
        _ => None,
    };
    let mut artifact_bytes = 0;
    for item in &items {
        copy(
            &mut tar,
            dir,
            dir_ref.store(),
            dir_chunks.as_ref(),
            source,
            item,
        )?;
        artifact_bytes += item.artifact.len;
    }
    tar.into_inner()
        .and_then(|w| w.flush())
        .map_err(ExportError::Write)?;
    Ok(ExportReport {
        manifest,
        artifact_bytes,
    })
}

/// Second pass: copies one artifact into the archive, re-hashing it against the first.
fn copy(
    tar: &mut tar::Builder<&mut dyn Write>,
    dir: &dyn DirHandle,
    store: Option<&Arc<SnapshotStore>>,
    dir_chunks: Option<&DirChunks<'_>>,
    source: &dyn ArtifactSource,
    item: &Item,
) -> Result<(), ExportError> {
    let a = &item.artifact;
    let changed = || ExportError::Changed(a.path.clone());
    let mut put = |src: &mut dyn Read| -> Result<blake3::Hash, ExportError> {
        let mut h = Hashing {
            inner: src,
            hasher: blake3::Hasher::new(),
        };
        append(tar, &a.path, a.len, &mut h).map_err(|e| read_or_write(e, &a.path))?;
        Ok(h.hasher.finalize())
    };
    let hash = match &item.from {
        From::Bytes(b) => put(&mut &b[..])?,
        From::SnapshotChunk(hash) => {
            // Through the open store when there is one (its index, and the snapshot's hold
            // keeps retention off the chunk); else the directory's packs, scanned once.
            let bytes = match (store, dir_chunks) {
                (Some(s), _) => read_chunk(s, hash),
                (None, Some(c)) => c.read(hash),
                (None, None) => Ok(None),
            }
            .map_err(|e| ExportError::Refused {
                what: a.path.clone(),
                why: e.to_string(),
            })?
            .ok_or_else(changed)?;
            if bytes.len() as u64 != a.len {
                return Err(changed());
            }
            put(&mut &bytes[..])?
        }
        From::File(name, expect) => {
            let f = opened(dir, name, *expect)?;
            if f.size() != a.len {
                return Err(changed());
            }
            put(&mut f.0.reader())?
        }
        From::Other(name) => {
            let f = source.open_other(name, MAX_DEBUG)?;
            if f.size() != a.len {
                return Err(changed());
            }
            put(&mut OtherReader { file: &*f, at: 0 })?
        }
        From::Chunk(c) => {
            let bytes = source.read_chunk(c, MAX_CHUNK)?;
            if bytes.len() as u64 != a.len {
                return Err(changed());
            }
            put(&mut &bytes[..])?
        }
    };
    if hash.to_hex().as_str() != a.blake3 {
        return Err(changed());
    }
    Ok(())
}

/// Reads an [`OtherFile`] from its start with `pread`s, up to its size.
struct OtherReader<'a> {
    file: &'a dyn OtherFile,
    at: u64,
}

/// A read error of an [`OtherFile`], told apart from the archive's write errors (an
/// implementation's errors need not carry an [`UntrustedError`]).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct OtherRead(io::Error);

impl Read for OtherReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.file.size().saturating_sub(self.at);
        let n = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        if n == 0 {
            return Ok(0);
        }
        self.file
            .read_exact_at(self.at, &mut buf[..n])
            .map_err(|e| io::Error::other(OtherRead(e)))?;
        self.at += n as u64;
        Ok(n)
    }
}

/// An error of appending an entry: the file's (it names itself), the file's end coming early
/// (it changed), or the archive's.
fn read_or_write(e: io::Error, path: &str) -> ExportError {
    if e.get_ref().is_some_and(|i| i.is::<UntrustedError>()) {
        return ExportError::File(e);
    }
    if e.get_ref().is_some_and(|i| i.is::<OtherRead>()) {
        if let Some(Ok(read)) = e.into_inner().map(|i| i.downcast::<OtherRead>()) {
            return ExportError::File(read.0);
        }
        return ExportError::Changed(path.to_string());
    }
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return ExportError::Changed(path.to_string());
    }
    ExportError::Write(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An [`OtherFile`] of a source whose reads fail with a plain error (no
    /// `UntrustedError` inside, as another ledger's implementation may give).
    struct Failing;

    impl OtherFile for Failing {
        fn size(&self) -> u64 {
            8
        }

        fn read_exact_at(&self, _: u64, _: &mut [u8]) -> io::Result<()> {
            Err(io::Error::other("ledger/x: disk on fire"))
        }
    }

    #[test]
    fn a_read_error_of_another_ledger_file_is_the_file_s_not_the_archive_s() {
        let mut buf = [0u8; 8];
        let e = OtherReader {
            file: &Failing,
            at: 0,
        }
        .read(&mut buf)
        .unwrap_err();
        match read_or_write(e, "debug/ledger/x") {
            ExportError::File(e) => assert_eq!(e.to_string(), "ledger/x: disk on fire"),
            other => panic!("expected ExportError::File, got {other:?}"),
        }
    }
}
