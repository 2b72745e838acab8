//! The `archive_import` fuzz target: structure-aware mutations of genuine archives, imported
//! into a simulated filesystem.
//!
//! Two small runs of one node are made once (same key, indices, snapshot points and chunk
//! names; other writes, so every artifact of one verifies but none is the other's) and
//! exported. An input picks an archive of the first run (operational, replay, archival, or
//! the second run's archival), a target (a fresh directory, or one holding the first run's
//! artifacts with a chunk missing, imported into with repopulate) and a requested level,
//! then applies up to [`MAX_MUTATIONS`] mutations: bytes flipped, entries cut, dropped,
//! swapped, duplicated, renamed or given another size in their tar header; an entry of the
//! other run spliced in; manifest fields changed or the manifest rewritten to match the
//! entries (a forger who fixes it up); the stream cut or extended.
//!
//! Properties, whatever the input: no panic; after the import every committed snapshot and
//! chunk in the directory verifies, adjacent chunks continue each other's Merkle frontier and
//! the chunk holding a committed snapshot's receipt index signs the receipt's root; and an
//! import that fails has committed nothing (the directory holds exactly what it held).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use snapseal_actors::SnapshotterConfig;
use snapseal_archive::{
    export, import, Artifact, ArtifactKind, ChunkRef, ChunkVerifier, Dir, ExportOptions,
    ImportOptions, Level, Manifest, Missing, Target,
};
use snapseal_engine::TaskSystem;
use snapseal_persist::fs::{FileSystem, SimFs};
use snapseal_persist::internals::receipt::Receipt;
use snapseal_persist::internals::verify_bytes;
use snapseal_persist::receipt::SchemeId;
use snapseal_persist::{FileState, SnapshotName, SnapshotStore, StoreOptions};

use super::fuzz_entry::{fuzz_verifier, FuzzFailure, FUZZ_LEDGER_SEED};
use snapseal_ledger::disk_ledger::{ChunkKeys, DiskLedger, LedgerDir};
use snapseal_ledger::ledger::{Ledger, TxKind};
use snapseal_ledger::node::{SimConfig, SimNode};

/// Most mutations one input applies.
pub const MAX_MUTATIONS: usize = 16;

const TARGET: &str = "archive_import";

fn fail(detail: String) -> FuzzFailure {
    FuzzFailure::Property {
        target: TARGET,
        detail,
    }
}

/// One tar entry as the fuzzer shapes it: the header's size may differ from the data's.
#[derive(Clone, Debug)]
struct Entry {
    path: Vec<u8>,
    data: Vec<u8>,
    size: Option<u64>,
}

/// An archive being mutated: its entries (the manifest first) and the manifest they were
/// made with, which manifest mutations edit and write back into the first entry.
#[derive(Clone, Debug)]
struct Shaped {
    entries: Vec<Entry>,
    manifest: Manifest,
    cut: Option<usize>,
    trailer: Vec<u8>,
}

/// The genuine material every input starts from.
struct Genuine {
    /// The first run's archives: operational, replay, archival; then the second run's
    /// archival.
    archives: [Shaped; 4],
}

fn store_opts() -> StoreOptions {
    let mut o = StoreOptions::new(Arc::new(fuzz_verifier()));
    o.keep_last = 100;
    o
}

fn key() -> snapseal_persist::VerifyingKey {
    Ledger::seed_key(FUZZ_LEDGER_SEED).verifying_key()
}

/// Runs a simulated node (`sim`, `snap`) on the manual executor, snapshotting into `dir` on
/// `fs` with `store`, and mirrors its ledger tx by tx into the disk ledger `dir/ledger`
/// (sealed at `chunk_bytes`, committed at every signature, sealed at the end): a node's
/// snapshot directory as `snapseal demo` leaves it, for the archive tests and this target.
/// Returns the commit index.
pub fn node_with_disk_ledger(
    fs: Arc<dyn FileSystem>,
    dir: &Path,
    store: StoreOptions,
    sim: SimConfig,
    snap: SnapshotterConfig,
    chunk_bytes: u64,
) -> Result<u64, String> {
    let seed = sim.seed;
    let store = SnapshotStore::open(Arc::clone(&fs), dir, store).map_err(|e| e.to_string())?;
    let tasks = TaskSystem::manual(seed);
    let mut node =
        SimNode::new(sim, snap, tasks.clone(), Arc::new(store)).map_err(|e| e.to_string())?;
    while node.step() {
        tasks.run_until_idle();
    }
    if !node.finish(1000) {
        return Err("the node did not flush its snapshots".into());
    }
    let disk = DiskLedger::open(
        &*fs,
        &dir.join("ledger"),
        Ledger::seed_key(seed),
        chunk_bytes,
    )
    .map_err(|e| e.to_string())?;
    let mut commit = 0;
    for idx in 1..=node.ledger().last_idx() {
        let tx = node.ledger().tx(idx).ok_or("a tx the ledger lost")?;
        let is_sig = matches!(tx, TxKind::Signature(_));
        disk.append(tx);
        if is_sig {
            disk.commit(idx).map_err(|e| e.to_string())?;
            commit = idx;
        }
    }
    disk.seal().map_err(|e| e.to_string())?;
    Ok(commit)
}

/// Runs a small node into `dir` on `fs`, drawing writes from `keys` keys.
fn run(fs: &SimFs, dir: &Path, keys: u64) -> Result<u64, String> {
    let sim = SimConfig {
        txs: 300,
        sig_every: 10,
        value_size: 8,
        keys,
        rollback_every: None,
        seed: FUZZ_LEDGER_SEED,
    };
    let snap = SnapshotterConfig {
        tx_interval: 100,
        ..SnapshotterConfig::default()
    };
    node_with_disk_ledger(Arc::new(fs.clone()), dir, store_opts(), sim, snap, 1024)
}

fn exported(fs: &SimFs, dir: &Path, level: Level) -> Result<Shaped, String> {
    let handle = Dir::open_on(fs, dir, false).map_err(|e| e.to_string())?;
    let source = LedgerDir::open(fs, &dir.join("ledger")).map_err(|e| e.to_string())?;
    let opts = ExportOptions {
        level,
        keys: vec![key()],
        verifier: Arc::new(fuzz_verifier()),
    };
    let mut out = Vec::new();
    let report = export(&handle, &source, &ChunkKeys(vec![key()]), &opts, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(Shaped {
        entries: untar(&out),
        manifest: report.manifest,
        cut: None,
        trailer: Vec::new(),
    })
}

fn genuine() -> Result<&'static Genuine, FuzzFailure> {
    static GENUINE: OnceLock<Result<Genuine, String>> = OnceLock::new();
    GENUINE
        .get_or_init(|| {
            let fs = SimFs::new(FUZZ_LEDGER_SEED);
            let (a, b) = (Path::new("/a"), Path::new("/b"));
            run(&fs, a, 40)?;
            run(&fs, b, 70)?;
            Ok(Genuine {
                archives: [
                    exported(&fs, a, Level::Operational)?,
                    exported(&fs, a, Level::Replay)?,
                    exported(&fs, a, Level::Archival)?,
                    exported(&fs, b, Level::Archival)?,
                ],
            })
        })
        .as_ref()
        .map_err(|e| fail(format!("building the genuine archives: {e}")))
}

// ---- the container, by hand: the fuzzer shapes what a tar library would not write -------

fn octal(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .fold(0u64, |n, &b| {
            n.wrapping_mul(8)
                .wrapping_add(u64::from(b.wrapping_sub(b'0')))
        })
}

/// The entries of a ustar/GNU stream with short names (what export writes for these
/// archives).
fn untar(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(h) = bytes.get(at..at + 512) {
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name_len = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let size = usize::try_from(octal(&h[124..136])).unwrap_or(usize::MAX);
        let data = bytes
            .get(at + 512..(at + 512).saturating_add(size))
            .unwrap_or_default();
        out.push(Entry {
            path: h[..name_len].to_vec(),
            data: data.to_vec(),
            size: None,
        });
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Appends one ustar entry to `out`: a header block for a regular file `path` (at most 100
/// bytes used) whose size field says `size`, then `data` padded to a block. `size` need not be
/// `data.len()`: for archives a tar library would not write (this target, the archive tests).
pub fn ustar_entry(path: &[u8], size: u64, data: &[u8], out: &mut Vec<u8>) {
    let mut h = [0u8; 512];
    let n = path.len().min(100);
    h[..n].copy_from_slice(&path[..n]);
    for (at, text) in [
        (100, "0000644\0".to_string()),
        (108, "0000000\0".to_string()),
        (116, "0000000\0".to_string()),
        (124, format!("{:011o}\0", size & 0o77_777_777_777)),
        (136, "00000000000\0".to_string()),
        (257, "ustar\0".to_string()),
        (263, "00".to_string()),
    ] {
        h[at..at + text.len()].copy_from_slice(text.as_bytes());
    }
    h[156] = b'0';
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// The end of a tar archive: two zero blocks.
pub const USTAR_END: [u8; 1024] = [0; 1024];

fn tar(a: &Shaped) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &a.entries {
        let size = e.size.unwrap_or(e.data.len() as u64);
        ustar_entry(&e.path, size, &e.data, &mut out);
    }
    out.extend_from_slice(&USTAR_END);
    if let Some(cut) = a.cut {
        out.truncate(cut % (out.len() + 1));
    }
    out.extend_from_slice(&a.trailer);
    out
}

// ---- the manifest, by hand (the same JSON export writes) --------------------------------

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn kind_name(k: ArtifactKind) -> &'static str {
    match k {
        ArtifactKind::Key => "key",
        ArtifactKind::Chunk => "chunk",
        ArtifactKind::Snapshot => "snapshot",
        ArtifactKind::Ledger => "ledger",
        ArtifactKind::Debug => "debug",
    }
}

fn manifest_json(m: &Manifest) -> Vec<u8> {
    let artifacts: Vec<String> = m
        .artifacts
        .iter()
        .map(|a| {
            format!(
                "{{\"path\":{},\"kind\":\"{}\",\"len\":{},\"blake3\":{}}}",
                json_str(&a.path),
                kind_name(a.kind),
                a.len,
                json_str(&a.blake3)
            )
        })
        .collect();
    let missing: Vec<String> = m
        .missing
        .iter()
        .map(|g| format!("{{\"from\":{},\"to\":{}}}", g.from, g.to))
        .collect();
    format!(
        "{{\"format\":{},\"level\":\"{}\",\"snapshot_idx\":{},\"commit_idx\":{},\"artifacts\":[{}],\"missing\":[{}]}}",
        json_str(&m.format),
        m.level.name(),
        m.snapshot_idx,
        m.commit_idx,
        artifacts.join(","),
        missing.join(",")
    )
    .into_bytes()
}

/// The manifest a forger writes for the entries as they are: every entry listed in order with
/// its length and digest, the missing ranges recomputed.
fn forge_manifest(a: &mut Shaped) {
    let mut artifacts = Vec::new();
    let mut chunks = Vec::new();
    for e in a.entries.iter().skip(1) {
        let path = String::from_utf8_lossy(&e.path).into_owned();
        let kind = [
            ArtifactKind::Key,
            ArtifactKind::Snapshot,
            ArtifactKind::Ledger,
            ArtifactKind::Debug,
        ]
        .into_iter()
        .find(|k| path.starts_with(k.prefix()))
        .unwrap_or(ArtifactKind::Debug);
        if let Some(r) = path.strip_prefix("ledger/").and_then(ChunkRef::parse_name) {
            chunks.push(r);
        }
        artifacts.push(Artifact {
            path,
            kind,
            len: e.data.len() as u64,
            blake3: blake3::hash(&e.data).to_hex().to_string(),
        });
    }
    let m = &mut a.manifest;
    m.artifacts = artifacts;
    m.missing.clear();
    if m.level >= Level::Archival {
        let mut next = 1u64;
        for (s, e) in chunks {
            if s > next {
                m.missing.push(Missing {
                    from: next,
                    to: s - 1,
                });
            }
            next = next.max(e.saturating_add(1));
        }
        if next <= m.commit_idx {
            m.missing.push(Missing {
                from: next,
                to: m.commit_idx,
            });
        }
    }
    write_manifest(a);
}

fn write_manifest(a: &mut Shaped) {
    let json = manifest_json(&a.manifest);
    if let Some(first) = a.entries.first_mut() {
        first.data = json;
    }
}

// ---- decoding an input ------------------------------------------------------------------

/// Reads an input as little-endian numbers; past its end, zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn index(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| usize::from(self.u8()) % len)
    }
}

fn mutate(a: &mut Shaped, theirs: &Shaped, input: &mut Input<'_>) {
    let n = a.entries.len();
    match input.u8() % 14 {
        0 => {
            if let Some(i) = input.index(n) {
                let e = &mut a.entries[i];
                let (at, mask) = (usize::from(input.u16()), input.u8() | 1);
                if !e.data.is_empty() {
                    let at = at % e.data.len();
                    e.data[at] ^= mask;
                }
            }
        }
        1 => {
            if let Some(i) = input.index(n) {
                let keep = usize::from(input.u16()) % (a.entries[i].data.len() + 1);
                a.entries[i].data.truncate(keep);
            }
        }
        2 => {
            if let Some(i) = input.index(n) {
                a.entries.remove(i);
            }
        }
        3 => {
            if let (Some(i), Some(j)) = (input.index(n), input.index(n)) {
                a.entries.swap(i, j);
            }
        }
        4 => {
            if let Some(i) = input.index(n) {
                let copy = a.entries[i].clone();
                a.entries.insert(i, copy);
            }
        }
        5 => {
            if let Some(i) = input.index(n) {
                if let Some(t) = theirs.entries.iter().find(|t| t.path == a.entries[i].path) {
                    a.entries[i].data = t.data.clone();
                }
            }
        }
        6 => forge_manifest(a),
        7 => {
            let v = u64::from(input.u32());
            match input.u8() % 4 {
                0 => a.manifest.snapshot_idx = v,
                1 => a.manifest.commit_idx = v,
                2 => {
                    a.manifest.level = [
                        Level::Operational,
                        Level::Replay,
                        Level::Archival,
                        Level::Debug,
                    ][(v % 4) as usize]
                }
                _ => a.manifest.format = format!("snapseal-archive v{v}"),
            }
            write_manifest(a);
        }
        8 => {
            let len = a.manifest.artifacts.len();
            if let Some(k) = input.index(len) {
                match input.u8() % 4 {
                    0 => {
                        a.manifest.artifacts.remove(k);
                    }
                    1 => {
                        if let Some(j) = input.index(len) {
                            a.manifest.artifacts.swap(k, j);
                        }
                    }
                    2 => a.manifest.artifacts[k].len = u64::from(input.u32()),
                    _ => a.manifest.artifacts[k].kind = ArtifactKind::Ledger,
                }
                write_manifest(a);
            }
        }
        9 => forge_manifest(a),
        10 => a.cut = Some(input.u32() as usize),
        11 => {
            let (len, b) = (usize::from(input.u8()), input.u8());
            a.trailer.extend(std::iter::repeat_n(b, len));
        }
        12 => {
            if let Some(i) = input.index(n) {
                let b = input.u8();
                let e = &mut a.entries[i];
                match e.path.len() {
                    0 => e.path.push(b),
                    len => e.path[usize::from(b) % len] = b,
                }
            }
        }
        _ => {
            if let Some(i) = input.index(n) {
                a.entries[i].size = Some(u64::from(input.u32()));
            }
        }
    }
}

// ---- the oracle -------------------------------------------------------------------------

/// Every committed file of the directory, with its bytes.
fn committed(fs: &SimFs, dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, FuzzFailure> {
    let io = |e: std::io::Error| fail(format!("reading the target: {e}"));
    let mut out = BTreeMap::new();
    let handle = fs.open_dir(dir, true).map_err(io)?;
    for e in handle.list().map_err(io)? {
        let name = e.name.to_string_lossy().into_owned();
        if SnapshotName::parse(&name).is_some_and(|n| n.state == FileState::Committed) {
            out.insert(name.clone(), handle.open_read(&name).map_err(io)?.to_vec());
        }
    }
    if let Ok(ledger) = fs.open_dir(&dir.join("ledger"), false) {
        for e in ledger.list().map_err(io)? {
            let name = e.name.to_string_lossy().into_owned();
            if ChunkRef::parse_name(&name).is_some() {
                let bytes = ledger.open_read(&name).map_err(io)?.to_vec();
                out.insert(format!("ledger/{name}"), bytes);
            }
        }
    }
    Ok(out)
}

/// What a directory holds verifies and chains: each snapshot, each chunk, adjacent chunks'
/// frontiers, and each snapshot's receipt root against the chunk holding its index.
fn check_holdings(files: &BTreeMap<String, Vec<u8>>) -> Result<(), FuzzFailure> {
    let verifier = fuzz_verifier();
    let mut chunks = BTreeMap::new();
    for (name, bytes) in files {
        let Some(file) = name.strip_prefix("ledger/") else {
            continue;
        };
        let (s, e) = ChunkRef::parse_name(file).ok_or_else(|| fail(name.clone()))?;
        let checked = ChunkKeys(vec![key()])
            .verify_chunk(&mut &bytes[..], bytes.len() as u64, s, e)
            .map_err(|e| fail(format!("committed {name} does not verify: {e}")))?;
        chunks.insert((s, e), checked);
    }
    let ranges: Vec<&(u64, u64)> = chunks.keys().collect();
    for w in ranges.windows(2) {
        let (p, q) = (w[0], w[1]);
        if p.1 >= q.0 {
            return Err(fail(format!("committed chunks overlap: {p:?} {q:?}")));
        }
        if p.1 + 1 == q.0 && chunks[p].links.end != chunks[q].links.start {
            return Err(fail(format!(
                "committed chunks {p:?} and {q:?} do not chain"
            )));
        }
    }
    for (name, bytes) in files.iter().filter(|(n, _)| !n.starts_with("ledger/")) {
        let parsed = SnapshotName::parse(name).ok_or_else(|| fail(name.clone()))?;
        let v = verify_bytes(bytes, Some(&parsed), &verifier)
            .map_err(|e| fail(format!("committed {name} does not verify: {e}")))?;
        if v.verified.scheme != SchemeId::MERKLE {
            continue;
        }
        let receipt = Receipt::decode(v.receipt).map_err(|e| fail(e.to_string()))?;
        let sig = receipt.signed.sig_idx;
        let holding = chunks.iter().find(|(r, _)| r.0 <= sig && sig <= r.1);
        if let Some((r, c)) = holding {
            if !c.signed.contains(&(sig, receipt.signed.root)) {
                return Err(fail(format!(
                    "committed {name} is not of the ledger of the committed chunk {r:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The `archive_import` entry: see the module docs.
pub fn archive_import(data: &[u8]) -> Result<(), FuzzFailure> {
    run_input(data).map(|_| ())
}

/// [`archive_import`], telling whether the import went through.
fn run_input(data: &[u8]) -> Result<bool, FuzzFailure> {
    let genuine = genuine()?;
    let mut input = Input(data);
    let mode = input.u8();
    let mut shaped = genuine.archives[usize::from(mode % 4)].clone();
    let repopulate = mode & 4 != 0;
    let want = [
        Level::Operational,
        Level::Replay,
        Level::Archival,
        Level::Debug,
    ][usize::from((mode >> 3) % 4)];
    let mutations = usize::from(input.u8()) % (MAX_MUTATIONS + 1);
    for _ in 0..mutations {
        mutate(&mut shaped, &genuine.archives[3], &mut input);
    }

    let fs = SimFs::new(u64::from(mode));
    let dir = Path::new("/node");
    let import_into = |archive: &[u8], level: Level, repopulate: bool| {
        let store = SnapshotStore::open(Arc::new(fs.clone()), dir, store_opts())
            .map_err(|e| fail(format!("opening the target store: {e}")))?;
        let io = |e: std::io::Error| fail(format!("opening the target: {e}"));
        let handle = Dir::open_on(&fs, dir, false).map_err(io)?;
        let ledger = Dir::open_on(&fs, &dir.join("ledger"), true).map_err(io)?;
        let target = Target {
            store: &store,
            dir: &handle,
            ledger: &ledger,
        };
        let opts = ImportOptions {
            level,
            trusted_keys: vec![key()],
            repopulate,
        };
        Ok::<_, FuzzFailure>(
            import(&mut &archive[..], &target, &ChunkKeys(vec![key()]), &opts).is_ok(),
        )
    };
    if repopulate {
        // The first run's archive with its middle chunk taken out again.
        let mut base = genuine.archives[2].clone();
        let chunks: Vec<usize> = (0..base.entries.len())
            .filter(|&i| base.entries[i].path.starts_with(b"ledger/"))
            .collect();
        if let Some(&i) = chunks.get(chunks.len() / 2) {
            base.entries.remove(i);
            forge_manifest(&mut base);
        }
        if !import_into(&tar(&base), Level::Archival, false)? {
            return Err(fail("the genuine base archive does not import".into()));
        }
    }
    let before = committed(&fs, dir)?;
    let imported = import_into(&tar(&shaped), want, repopulate)?;
    let after = committed(&fs, dir)?;
    if !imported && after != before {
        let added: Vec<&String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        return Err(fail(format!(
            "a refused import committed something: {added:?}"
        )));
    }
    check_holdings(&after)?;
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::SplitMix64;

    #[test]
    fn genuine_archives_import_and_spliced_ones_are_refused() {
        // (input, whether it imports): see fuzz/corpus/archive_import for the same inputs.
        let cases: &[(&[u8], bool)] = &[
            (&[0, 0], true),
            (&[1 | 8, 0], true),
            (&[2 | 16, 0], true),
            (&[3 | 16, 0], true),
            (&[2 | 4 | 16, 0], true),
            (&[3 | 4 | 16, 0], false),
            (&[2 | 16, 2, 5, 12, 6], false),
            (&[2 | 4 | 16, 2, 5, 12, 6], false),
            (&[1 | 8, 2, 0, 2, 0x40, 0x00, 0x10, 6], false),
        ];
        for (input, imports) in cases {
            assert_eq!(run_input(input).unwrap(), *imports, "{input:?}");
        }
    }

    #[test]
    fn the_oracle_refuses_chunks_that_do_not_chain_and_a_snapshot_of_another_ledger() {
        let g = genuine().unwrap();
        let files = |a: &Shaped| -> BTreeMap<String, Vec<u8>> {
            a.entries
                .iter()
                .filter_map(|e| {
                    let p = String::from_utf8(e.path.clone()).ok()?;
                    let name = p
                        .strip_prefix("snapshots/")
                        .map(str::to_string)
                        .or_else(|| p.starts_with("ledger/").then(|| p.clone()))?;
                    Some((name, e.data.clone()))
                })
                .collect()
        };
        let (ours, theirs) = (files(&g.archives[2]), files(&g.archives[3]));
        check_holdings(&ours).unwrap();
        check_holdings(&theirs).unwrap();
        let chunk = ours
            .keys()
            .find(|k| k.starts_with("ledger/"))
            .unwrap()
            .clone();
        let mut mixed = ours.clone();
        mixed.insert(chunk.clone(), theirs[&chunk].clone());
        assert!(check_holdings(&mixed).is_err(), "{chunk} of the other run");
        let mut only_snapshots_theirs = theirs.clone();
        only_snapshots_theirs.retain(|k, _| !k.starts_with("ledger/"));
        only_snapshots_theirs.extend(
            ours.iter()
                .filter(|(k, _)| k.starts_with("ledger/"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        assert!(check_holdings(&only_snapshots_theirs).is_err());
    }

    /// Random inputs, for a quick local run without cargo-fuzz:
    /// `cargo test -p snapseal-sim --lib fuzz_archive -- --ignored`.
    #[test]
    #[ignore]
    fn random_inputs_hold_the_properties() {
        let mut rng = SplitMix64::new(20);
        for _ in 0..500 {
            let len = rng.below(64) as usize;
            let input: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let Err(e) = archive_import(&input) {
                panic!("{input:?}: {e}");
            }
        }
    }
}
