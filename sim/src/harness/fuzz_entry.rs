//! The functions the `fuzz/` targets call, one per target, in the library so that
//! `tests/fuzz_corpus.rs` runs the checked-in corpus through exactly the same code with plain
//! `cargo test`.
//!
//! Each returns `Err` when a property fails (the fuzz target turns that into a crash); a panic
//! anywhere below is a bug in its own right, since no input may make snapseal panic.

use std::path::Path;
use std::sync::Arc;

use snapseal_persist::format::{self, Header, HEADER_LEN};
use snapseal_persist::fs::SimFs;
use snapseal_persist::receipt::{
    leaf_hash, root_from_proof, verify_signed_root, Ed25519Verifier, Expected, Receipt,
    ReceiptVerifier,
};
use snapseal_persist::OurFile;
use snapseal_persist::{verify_bytes, FileState, SnapshotName, SnapshotStore, StoreOptions};

use super::{Harness, HarnessConfig, Op, Violation, KNOWN_BUGS};
use crate::ledger::Ledger;

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
        (Some(f), true) if *f.name() == name && f.body().len() as u64 == f.header().body_len => {}
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

/// Name target: the file-name grammar. Properties: a name that parses is canonical (its
/// `file_name()` is the input, and parses back to itself); `OurFile` agrees with it; and the
/// three states of a parsed name all round-trip.
pub fn names(data: &[u8]) -> Result<(), FuzzFailure> {
    const T: &str = "names";
    let os = bytes_as_os(data);
    let parsed = SnapshotName::parse_os(&os);
    let Ok(text) = std::str::from_utf8(data) else {
        if parsed.is_some() || OurFile::parse_os(&os).is_some() {
            return Err(fail(T, "a non-UTF-8 name parsed as ours".into()));
        }
        return Ok(());
    };
    if parsed != SnapshotName::parse(text) {
        return Err(fail(T, format!("{text:?}: parse and parse_os disagree")));
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
                if SnapshotName::parse(&s.file_name()) != Some(s) {
                    return Err(fail(T, format!("{s:?} does not round-trip")));
                }
            }
        }
        (None, Some(OurFile::Lock)) if text == snapseal_persist::LOCK_FILE => {}
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
