//! The functions the `fuzz/` targets call, one per target, in the library so that
//! `tests/simulation/fuzz_corpus.rs` runs the checked-in corpus through exactly the same code
//! with plain `cargo test`.
//!
//! Each returns `Err` when a property fails (the fuzz target turns that into a crash); a panic
//! anywhere below is a bug in its own right, since no input may make snapseal panic.

use std::path::Path;
use std::sync::Arc;

use snapseal_persist::fs::SimFs;
use snapseal_persist::internals::format;
use snapseal_persist::internals::format::{Header, HEADER_LEN};
use snapseal_persist::internals::receipt::{root_from_proof, verify_signed_root, Receipt};
use snapseal_persist::internals::verify_bytes;
use snapseal_persist::internals::{OurFile, PendingName};
use snapseal_persist::receipt::{leaf_hash, Ed25519Verifier, Expected, ReceiptVerifier};
use snapseal_persist::{FileState, SnapshotName, SnapshotStore, StoreOptions};

use super::{Harness, HarnessConfig, Op, Violation, KNOWN_BUGS};
use snapseal_ledger::ledger::Ledger;

/// Ledger seed whose key the file and receipt targets trust: the seed corpus holds files and
/// receipts genuinely signed by it, so mutations start from inputs that verify.
pub const FUZZ_LEDGER_SEED: u64 = 0xF022;

/// Most operations one `event_order` input runs (keeps each execution fast).
pub const MAX_EVENT_OPS: usize = 256;

/// A property a fuzz entry checks did not hold.
#[derive(Debug, thiserror::Error)]
pub enum FuzzFailure {
    /// A parser, reader or verifier property failed.
    #[error("{target}: {detail}")]
    Property {
        /// Which entry.
        target: &'static str,
        /// What was seen.
        detail: String,
    },
    /// The simulation broke an invariant.
    #[error(transparent)]
    Violation(#[from] Violation),
}

fn fail(target: &'static str, detail: String) -> FuzzFailure {
    FuzzFailure::Property { target, detail }
}

/// The verifier trusting [`FUZZ_LEDGER_SEED`]'s key.
pub fn fuzz_verifier() -> Ed25519Verifier {
    Ed25519Verifier::new(vec![Ledger::from_seed(FUZZ_LEDGER_SEED).verifying_key()])
}

/// Event-order target: the input is decoded with `arbitrary` into a seed and a list of
/// operations (at most [`MAX_EVENT_OPS`]), which run through the [`Harness`] with every
/// invariant checked, then settle.
#[cfg(feature = "fuzzing")]
pub fn event_order(data: &[u8]) -> Result<(), FuzzFailure> {
    use arbitrary::{Arbitrary, Unstructured};
    let mut u = Unstructured::new(data);
    let Ok(seed) = u64::arbitrary(&mut u) else {
        return Ok(());
    };
    let mut ops = Vec::new();
    while ops.len() < MAX_EVENT_OPS && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    event_order_ops(seed, &ops)
}

/// The event-order run for an already decoded input. A violation of one of the
/// [`KNOWN_BUGS`] ends the run without failing it, so fuzzing keeps looking for new ones.
pub fn event_order_ops(seed: u64, ops: &[Op]) -> Result<(), FuzzFailure> {
    let mut h = Harness::new(seed, HarnessConfig::from_seed(seed))?;
    h.set_repro(format!(
        "run snapseal_sim::harness::fuzz_entry::event_order_ops({seed}, &{ops:?})"
    ));
    match h.run(ops) {
        Ok(_) => Ok(()),
        Err(v) if KNOWN_BUGS.contains(&v.invariant) => Ok(()),
        Err(v) => Err(v.into()),
    }
}

/// File target: the header parser, `split`, `verify_bytes` and the store's `latest()` on the
/// input as a committed file. Properties: a header that decodes re-encodes to the same bytes;
/// a file that verifies is consistent (lengths, `idx < evidence_idx`, its receipt proves the
/// claims digest of its header, its body decodes to exactly `raw_len` bytes); and `latest()` returns
/// the file exactly when `verify_bytes` accepts it under its name (else quarantines it).
pub fn file_reader(data: &[u8]) -> Result<(), FuzzFailure> {
    const T: &str = "file_reader";
    if let Ok(h) = Header::decode(data) {
        if data.get(..HEADER_LEN) != Some(&h.encode()[..]) {
            return Err(fail(
                T,
                format!("header {h:?} does not re-encode to its bytes"),
            ));
        }
    }
    let _ = format::split(data);
    let verifier = fuzz_verifier();
    let unnamed = verify_bytes(data, None, &verifier).ok().map(|v| {
        let proven = Receipt::decode(v.receipt).map(|r| r.claims_digest).ok();
        // Bounded: a verified body is at most the input's length times zstd's ratio.
        let decoded = v
            .body_reader()
            .ok()
            .and_then(|mut r| std::io::copy(&mut r, &mut std::io::sink()).ok());
        (
            v.header.clone(),
            v.body.len(),
            v.receipt.len(),
            v.verified.sig_idx,
            proven,
            decoded,
        )
    });
    if let Some((header, body_len, receipt_len, sig_idx, proven, decoded)) = &unnamed {
        let consistent = header.body_len == *body_len as u64
            && header.receipt_len == *receipt_len as u64
            && *sig_idx > header.evidence_idx
            && header.idx < header.evidence_idx
            && *proven == Some(header.claims().digest())
            && *decoded == Some(header.raw_len)
            && data.len() == HEADER_LEN + body_len + receipt_len;
        if !consistent {
            return Err(fail(T, format!("verified but inconsistent: {header:?}")));
        }
    }
    // The name the file would be committed under, if it has a header at all.
    let name = match Header::decode(data) {
        Ok(h) => SnapshotName {
            idx: h.idx,
            evidence_idx: h.evidence_idx,
            state: FileState::Committed,
        },
        Err(_) => SnapshotName {
            idx: 1,
            evidence_idx: 2,
            state: FileState::Committed,
        },
    };
    let accepted = verify_bytes(data, Some(&name), &verifier).is_ok();
    let sim = SimFs::new(0);
    let dir = Path::new("/fuzz");
    sim.plant_file(dir, &name.file_name(), data, true);
    let opts = StoreOptions::new(Arc::new(verifier));
    let store = SnapshotStore::open(Arc::new(sim.clone()), dir, opts)
        .map_err(|e| fail(T, format!("store open: {e}")))?;
    let latest = store
        .latest()
        .map_err(|e| fail(T, format!("latest(): {e}")))?;
    match (&latest, accepted) {
        (Some(f), true)
            if *f.name() == name
                && f.read_body()
                    .is_ok_and(|b| b.len() as u64 == f.header().body_len) => {}
        (None, false) => {
            if sim.names(dir).contains(&name.file_name()) {
                return Err(fail(T, "a failing file was not quarantined".into()));
            }
        }
        (got, _) => {
            return Err(fail(
                T,
                format!(
                    "latest() gave {:?}, verify_bytes accepted: {accepted}",
                    got.as_ref().map(|f| f.name())
                ),
            ))
        }
    }
    Ok(())
}

/// Receipt target: the decoder and the verifier. Properties: a receipt that decodes
/// re-encodes to the same bytes (one meaning, one encoding); a receipt the verifier accepts
/// decodes, and its proof and signature check out independently against the trusted key.
pub fn receipt(data: &[u8]) -> Result<(), FuzzFailure> {
    const T: &str = "receipt";
    let decoded = Receipt::decode(data).ok();
    if let Some(r) = &decoded {
        match r.encode() {
            Ok(bytes) if bytes == data => {}
            other => {
                return Err(fail(
                    T,
                    format!("decoded receipt re-encodes differently: {other:?}"),
                ))
            }
        }
    }
    // Ask the verifier about what the receipt itself claims (the interesting case), and
    // about a file that claims something else (must always fail).
    let claims = decoded.as_ref().map_or(
        Expected {
            idx: 1,
            evidence_idx: 2,
            body_digest: [0; 32],
            claims_digest: [0; 32],
        },
        |r| Expected {
            idx: r.evidence_idx.saturating_sub(1),
            evidence_idx: r.evidence_idx,
            body_digest: [0; 32],
            claims_digest: r.claims_digest,
        },
    );
    let verifier = fuzz_verifier();
    if let Ok(v) = verifier.verify(data, &claims) {
        let Some(r) = decoded else {
            return Err(fail(T, "verified a receipt that does not decode".into()));
        };
        let key = Ledger::from_seed(FUZZ_LEDGER_SEED).verifying_key();
        let leaf = leaf_hash(&r.evidence_tx_digest, &r.claims_digest);
        let sound = v.sig_idx == r.signed.sig_idx
            && r.signed.sig_idx > r.evidence_idx
            && r.evidence_idx >= 1
            && verify_signed_root(&key, &r.signed).is_ok()
            && root_from_proof(&leaf, r.evidence_idx - 1, r.signed.sig_idx - 1, &r.path)
                == Some(r.signed.root);
        if !sound {
            return Err(fail(
                T,
                format!("verifier accepted an unsound receipt: {r:?}"),
            ));
        }
        let other = Expected {
            claims_digest: flip(claims.claims_digest),
            ..claims
        };
        if verifier.verify(data, &other).is_ok() {
            return Err(fail(T, "verified against another claims digest".into()));
        }
    }
    Ok(())
}

fn flip(mut digest: [u8; 32]) -> [u8; 32] {
    digest[0] ^= 1;
    digest
}

/// Name target: the file-name grammar. Properties: a name parses as at most one of {snapshot
/// name (any state), pending name, lock file}; a name that parses is canonical (its
/// `file_name()` is the input, and parses back to itself), pending names included; `OurFile`
/// agrees with the snapshot grammar and never claims a pending name; the three states of a
/// parsed snapshot name all round-trip; non-UTF-8 is never ours.
pub fn names(data: &[u8]) -> Result<(), FuzzFailure> {
    const T: &str = "names";
    let os = bytes_as_os(data);
    let parsed = SnapshotName::parse_os(&os);
    let pending = PendingName::parse_os(&os);
    let Ok(text) = std::str::from_utf8(data) else {
        if parsed.is_some() || pending.is_some() || OurFile::parse_os(&os).is_some() {
            return Err(fail(T, "a non-UTF-8 name parsed as ours".into()));
        }
        return Ok(());
    };
    if parsed != SnapshotName::parse(text) || pending != PendingName::parse(text) {
        return Err(fail(T, format!("{text:?}: parse and parse_os disagree")));
    }
    let is_lock = text == snapseal_persist::internals::LOCK_FILE;
    let readings =
        usize::from(parsed.is_some()) + usize::from(pending.is_some()) + usize::from(is_lock);
    if readings > 1 {
        return Err(fail(
            T,
            format!(
                "{text:?} reads as more than one kind: {parsed:?}, {pending:?}, lock {is_lock}"
            ),
        ));
    }
    if let Some(p) = pending {
        if p.file_name() != text || PendingName::parse(&p.file_name()) != Some(p) {
            return Err(fail(
                T,
                format!(
                    "{text:?} parses as pending but is spelled {}",
                    p.file_name()
                ),
            ));
        }
        // A pending file is never a snapshot under any of its spellings.
        if SnapshotName::parse(&p.file_name()).is_some() {
            return Err(fail(T, format!("{p} also parses as a snapshot name")));
        }
    }
    match (parsed, OurFile::parse(text)) {
        (Some(n), Some(OurFile::Snapshot(m))) if n == m => {
            if n.file_name() != text {
                return Err(fail(
                    T,
                    format!("{text:?} parses but is spelled {}", n.file_name()),
                ));
            }
            for state in [
                FileState::Uncommitted,
                FileState::Committed,
                FileState::Corrupt,
            ] {
                let s = n.with_state(state);
                if SnapshotName::parse(&s.file_name()) != Some(s)
                    || PendingName::parse(&s.file_name()).is_some()
                {
                    return Err(fail(T, format!("{s:?} does not round-trip")));
                }
            }
            // The pending name of the same index (any generation) is not a snapshot name.
            let p = PendingName {
                idx: n.idx,
                generation: n.evidence_idx,
            };
            if SnapshotName::parse(&p.file_name()).is_some()
                || PendingName::parse(&p.file_name()) != Some(p)
            {
                return Err(fail(T, format!("{p}: pending and snapshot names overlap")));
            }
        }
        (None, Some(OurFile::Lock)) if is_lock => {}
        (None, None) => {}
        (p, o) => return Err(fail(T, format!("{text:?}: parse {p:?}, OurFile {o:?}"))),
    }
    Ok(())
}

#[cfg(unix)]
fn bytes_as_os(data: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(data).to_os_string()
}

#[cfg(not(unix))]
fn bytes_as_os(data: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(data).into_owned().into()
}

/// A genuine committed file and what it claims, for [`forge`].
#[derive(Clone, Debug)]
pub struct GenuineFile {
    /// The committed name it was written under.
    pub name: SnapshotName,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// The genuine committed files [`forge`] starts from: written by a simulated node over the
/// reference ledger of [`FUZZ_LEDGER_SEED`] (so [`fuzz_verifier`] trusts them), one with a
/// plain body and one with a zstd body. Built once per process.
pub fn genuine_files() -> Result<&'static [GenuineFile], FuzzFailure> {
    static FILES: std::sync::OnceLock<Vec<GenuineFile>> = std::sync::OnceLock::new();
    if let Some(files) = FILES.get() {
        return Ok(files);
    }
    let mut files = Vec::new();
    for compression in [None, Some(3)] {
        let cfg = HarnessConfig {
            compression,
            ..HarnessConfig::default()
        };
        let mut h = Harness::new(FUZZ_LEDGER_SEED, cfg)?;
        // 9 writes, a signature at 10 (a snapshot point), evidence at 11, a signature at 12.
        for op in [
            Op::Append(7),
            Op::Append(0),
            Op::Sign,
            Op::Commit(0),
            Op::RunAll,
            Op::Evidence,
            Op::Sign,
            Op::Commit(0),
            Op::RunAll,
        ] {
            h.apply(&op)?;
        }
        let name = *h
            .committed_files()
            .first()
            .ok_or_else(|| fail("forge", "the reference run committed nothing".into()))?;
        let bytes = h
            .sim()
            .read(h.dir(), &name.file_name())
            .ok_or_else(|| fail("forge", format!("{name} vanished")))?;
        files.push(GenuineFile { name, bytes });
    }
    Ok(FILES.get_or_init(|| files))
}

/// Reads the fuzzer's choices; zeros once the input is used up.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |v, i| v | (u64::from(self.byte()) << (8 * i)))
    }

    /// A new value for a field: either a small step from `old` or any value.
    fn value(&mut self, old: u64) -> u64 {
        match self.byte() % 4 {
            0 => old.wrapping_add(1),
            1 => old.wrapping_sub(1),
            2 => old.wrapping_add(u64::from(self.byte())),
            _ => self.u64(),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Most mutations one [`forge`] input applies.
pub const MAX_FORGE_STEPS: usize = 64;

/// Forgery target: starting from a genuine committed file ([`genuine_files`], chosen by the
/// first byte), the input picks up to [`MAX_FORGE_STEPS`] mutations — header fields set with the
/// checksum recomputed, lengths and digests recomputed to match, receipt bytes, body bytes, a
/// receipt or body spliced in from the other genuine file, a rename, raw byte edits,
/// truncation and extension. Property: whatever verifies (under the name it is given, and
/// unnamed) is byte-for-byte a genuine file, under that file's name; and even short of that,
/// it never claims anything (idx, evidence_idx, flags, raw_len, body) a genuine file does not.
pub fn forge(data: &[u8]) -> Result<(), FuzzFailure> {
    const T: &str = "forge";
    let genuine = genuine_files()?;
    let mut c = Choices(data);
    let start = &genuine[usize::from(c.byte()) % genuine.len()];
    let other = &genuine[(genuine
        .iter()
        .position(|g| g.name == start.name)
        .unwrap_or(0)
        + 1)
        % genuine.len()];
    let parts = |g: &GenuineFile| {
        format::split(&g.bytes)
            .map(|(h, b, r)| (h, b.to_vec(), r.to_vec()))
            .map_err(|e| fail(T, format!("genuine {} does not split: {e}", g.name)))
    };
    let (mut header, mut body, mut receipt) = parts(start)?;
    let (other_header, other_body, other_receipt) = parts(other)?;
    let mut name = start.name;
    // Edits of the assembled file: (offset, xor) and a final length.
    let mut raw_edits: Vec<(u64, u8)> = Vec::new();
    let mut resize: Option<(u64, u8)> = None;
    let mut steps = 0;
    while !c.is_empty() && steps < MAX_FORGE_STEPS {
        steps += 1;
        match c.byte() % 10 {
            0 => match c.byte() % 8 {
                0 => header.idx = c.value(header.idx),
                1 => header.evidence_idx = c.value(header.evidence_idx),
                2 => {
                    if let Some(f) = format::Flags::from_bits(c.byte().into()) {
                        header.flags = f;
                    }
                }
                3 => header.body_len = c.value(header.body_len),
                4 => header.receipt_len = c.value(header.receipt_len),
                5 => header.raw_len = c.value(header.raw_len),
                6 => header.body_digest[usize::from(c.byte()) % 32] ^= c.byte() | 1,
                _ => header.receipt_digest[usize::from(c.byte()) % 32] ^= c.byte() | 1,
            },
            // Make the file self-consistent again, as a forger would.
            1 => {
                header.body_len = body.len() as u64;
                header.receipt_len = receipt.len() as u64;
                header.body_digest = format::body_digest(&body);
                header.receipt_digest = *blake3::hash(&receipt).as_bytes();
            }
            2 => {
                if !receipt.is_empty() {
                    let at = usize::from(c.byte()) * 256 + usize::from(c.byte());
                    let len = receipt.len();
                    receipt[at % len] ^= c.byte() | 1;
                }
            }
            3 => receipt.clone_from(&other_receipt),
            4 => {
                if !body.is_empty() {
                    let at = usize::from(c.byte()) * 256 + usize::from(c.byte());
                    let len = body.len();
                    body[at % len] ^= c.byte() | 1;
                }
            }
            5 => match c.byte() % 3 {
                0 => body.clone_from(&other_body),
                1 => body.push(c.byte()),
                _ => {
                    body.pop();
                }
            },
            6 => match c.byte() % 3 {
                // Renamed to what the header now says, to the other file's name, or anything.
                0 => {
                    name.idx = header.idx;
                    name.evidence_idx = header.evidence_idx;
                }
                1 => name = other.name,
                _ => {
                    name.idx = c.value(name.idx);
                    name.evidence_idx = c.value(name.evidence_idx);
                }
            },
            7 => header = other_header.clone(),
            8 => raw_edits.push((c.u64() % 4096, c.byte() | 1)),
            _ => resize = Some((c.u64() % 4096, c.byte())),
        }
    }
    let mut file = header.encode().to_vec();
    file.extend_from_slice(&body);
    file.extend_from_slice(&receipt);
    for (at, x) in raw_edits {
        let len = file.len() as u64;
        if len > 0 {
            file[(at % len) as usize] ^= x;
        }
    }
    if let Some((len, fill)) = resize {
        file.resize(len as usize, fill);
    }
    let verifier = fuzz_verifier();
    for given in [Some(&name), None] {
        let Ok(v) = verify_bytes(&file, given, &verifier) else {
            continue;
        };
        let claims =
            |h: &Header, body: &[u8]| (h.idx, h.evidence_idx, h.flags, h.raw_len, body.to_vec());
        let got = claims(&v.header, v.body);
        let matching = genuine
            .iter()
            .find(|g| format::split(&g.bytes).is_ok_and(|(h, b, _)| claims(&h, b) == got));
        let Some(g) = matching else {
            return Err(fail(
                T,
                format!(
                    "forged file verifies (name {given:?}): idx {}, evidence_idx {}, flags {:?}, \
                     raw_len {}, {} body bytes",
                    got.0,
                    got.1,
                    got.2,
                    got.3,
                    got.4.len()
                ),
            ));
        };
        if file != g.bytes || given.is_some_and(|n| *n != g.name) {
            return Err(fail(
                T,
                format!(
                    "a file that is not byte-for-byte {} verifies (name {given:?}, {} bytes, \
                     genuine {} bytes); its claims are the genuine ones",
                    g.name,
                    file.len(),
                    g.bytes.len()
                ),
            ));
        }
    }
    Ok(())
}
