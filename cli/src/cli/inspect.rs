//! `snapseal inspect FILE`: everything a snapshot file says about itself — header, lengths,
//! digests, receipt fields, signer — and each check's result. Read-only.
//!
//! Unlike `verify`, it goes on after a failed check wherever the rest still makes sense, so an
//! operator sees as much of a damaged file as can be decoded. Every check that needs no key is
//! always made (docs/FORMAT.md §7: all but the signature of step 6); the signature is checked
//! when a key is available (`--key`, or `node.pub` next to the file). The verdict is `ok`
//! (exit 0) only when every check passed *and* a trusted key verified the signature; without a
//! key a file that passes everything else is "consistent, signature NOT checked" (exit 3), and
//! any failed check is `FAILED` (exit 1).
//!
//! The file is read with `pread` through [`Untrusted`] (no link followed, regular files only,
//! never mapped: a file truncated meanwhile is an error, not `SIGBUS`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use snapseal::persist::internals::check_body_encoding;
use snapseal::persist::internals::format;
use snapseal::persist::internals::format::{Header, HEADER_LEN};
use snapseal::persist::internals::fs::{Expect, Untrusted};
use snapseal::persist::internals::receipt::{scheme_of, Receipt, SignedStatement};
use snapseal::persist::receipt::{Expected, SchemeId};
use snapseal::persist::Flags;
use snapseal::persist::{Check, SnapshotName};
use snapseal_ledger::node::decode_kv;

use crate::cli::check;
use crate::cli::exit::{self, Status};
use crate::cli::keys::{Trusted, NODE_PUB};
use crate::cli::list::state_word;
use crate::cli::output::{self, hex, text, Escaped, Out};
use crate::cli::progress::Progress;

/// Most bytes `inspect` reads of a file whose header does not give its exact length: a damaged
/// file is worth looking at, a huge (say sparse) junk file is not worth its size in memory.
const UNPROVEN_READ_CAP: u64 = 64 << 20;

/// `inspect` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct InspectArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// Trusted public key file (as node.pub); may be repeated. Default: node.pub next to the
    /// file, if there is one; otherwise the signature is not checked (verdict "consistent,
    /// signature NOT checked", exit 3). A regular file of at most 64 KiB; a symbolic link is
    /// refused (give the target's path).
    #[arg(long = "key", value_name = "K")]
    pub keys: Vec<PathBuf>,
}

#[derive(Debug, Serialize)]
struct HeaderView {
    format_version: u16,
    flags: u32,
    compressed: bool,
    idx: u64,
    evidence_idx: u64,
    body_len: u64,
    receipt_len: u64,
    raw_len: u64,
    body_digest: String,
    receipt_digest: String,
    /// Recomputed from the fields above (docs/FORMAT.md §3): what the receipt must prove.
    claims_digest: String,
}

impl HeaderView {
    fn new(h: &Header) -> HeaderView {
        HeaderView {
            format_version: format::FORMAT_VERSION,
            flags: h.flags.bits(),
            compressed: h.flags.contains(Flags::ZSTD),
            idx: h.idx,
            evidence_idx: h.evidence_idx,
            body_len: h.body_len,
            receipt_len: h.receipt_len,
            raw_len: h.raw_len,
            body_digest: hex(&h.body_digest),
            receipt_digest: hex(&h.receipt_digest),
            claims_digest: hex(&h.claims().digest()),
        }
    }
}

#[derive(Debug, Serialize)]
struct ReceiptView {
    /// The scheme the receipt names in its protected header: `merkle` or `statement`.
    scheme: String,
    /// The evidence index the receipt binds (a statement's commit index).
    evidence_idx: u64,
    claims_digest: String,
    signer_key_id: String,
    signature: String,
    /// Merkle receipts only.
    evidence_tx_digest: Option<String>,
    proof_path_len: Option<usize>,
    sig_idx: Option<u64>,
    signed_root: Option<String>,
    /// Signed statements only.
    statement_idx: Option<u64>,
    term: Option<u64>,
}

impl ReceiptView {
    fn merkle(r: &Receipt) -> ReceiptView {
        ReceiptView {
            scheme: SchemeId::MERKLE.name(),
            evidence_idx: r.evidence_idx,
            claims_digest: hex(&r.claims_digest),
            signer_key_id: hex(&r.signed.key_id),
            signature: hex(&r.signed.signature),
            evidence_tx_digest: Some(hex(&r.evidence_tx_digest)),
            proof_path_len: Some(r.path.len()),
            sig_idx: Some(r.signed.sig_idx),
            signed_root: Some(hex(&r.signed.root)),
            statement_idx: None,
            term: None,
        }
    }

    fn statement(s: &SignedStatement) -> ReceiptView {
        ReceiptView {
            scheme: SchemeId::STATEMENT.name(),
            evidence_idx: s.commit_idx,
            claims_digest: hex(&s.claims_digest),
            signer_key_id: hex(&s.key_id),
            signature: hex(&s.signature),
            evidence_tx_digest: None,
            proof_path_len: None,
            sig_idx: None,
            signed_root: None,
            statement_idx: Some(s.idx),
            term: s.term,
        }
    }

    /// Decodes `receipt` by the scheme it names.
    fn decode(receipt: &[u8]) -> Result<ReceiptView, String> {
        match scheme_of(receipt).map_err(|e| exit::causes(&e))? {
            SchemeId::MERKLE => Receipt::decode(receipt).map(|r| ReceiptView::merkle(&r)),
            SchemeId::STATEMENT => {
                SignedStatement::decode(receipt).map(|s| ReceiptView::statement(&s))
            }
            other => {
                return Err(format!(
                    "receipt names scheme {other}, which this tool cannot show"
                ))
            }
        }
        .map_err(|e| exit::causes(&e))
    }
}

/// One check's outcome.
#[derive(Debug, Serialize)]
struct CheckResult {
    check: String,
    /// `ok`, `failed` or `skipped`.
    status: &'static str,
    detail: String,
}

/// What the checks add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    /// Every check passed, the signature against a trusted key included.
    Ok,
    /// Every check that needs no key passed; there was no key to check the signature with.
    SignatureUnchecked,
    /// A check failed.
    Failed,
}

#[derive(Debug, Serialize)]
struct Inspection {
    #[serde(serialize_with = "output::escaped_path")]
    file: PathBuf,
    size: u64,
    /// The file's name parsed as a snapshot name (null: not a snapseal name).
    name_state: Option<&'static str>,
    header: Option<HeaderView>,
    receipt: Option<ReceiptView>,
    /// What the body holds, when it can tell.
    body: Option<String>,
    #[serde(serialize_with = "output::escaped_paths")]
    key_files: Vec<PathBuf>,
    checks: Vec<CheckResult>,
    /// Whether a trusted key checked the signature.
    signature_checked: bool,
    verdict: Verdict,
    /// True only for the verdict `ok`: every check passed, the signature included.
    ok: bool,
}

impl Inspection {
    fn push(&mut self, check: impl ToString, result: Result<String, String>) {
        let (status, detail) = match result {
            Ok(d) => ("ok", d),
            Err(d) => ("failed", d),
        };
        self.checks.push(CheckResult {
            check: check.to_string(),
            status,
            detail,
        });
    }

    fn skip(&mut self, check: impl ToString, why: &str) {
        self.checks.push(CheckResult {
            check: check.to_string(),
            status: "skipped",
            detail: why.to_string(),
        });
    }

    fn verdict(&self) -> Verdict {
        if self.checks.iter().any(|c| c.status == "failed") {
            Verdict::Failed
        } else if self.signature_checked {
            Verdict::Ok
        } else {
            Verdict::SignatureUnchecked
        }
    }
}

/// The row that says the signature was not checked.
const SIGNATURE: &str = "signature";

/// Runs `inspect`.
pub(super) fn run(args: &InspectArgs, out: &Out) -> anyhow::Result<Status> {
    let bytes = read_file(&args.file)?;
    let (dir, _) = check::split_path(&args.file)
        .with_context(|| format!("inspecting {}", Escaped::path(&args.file)))?;
    // A key is optional here: without one, every check but the signature's is still made. A
    // node.pub that is there but unusable (a link, a FIFO, empty) is an error, never a
    // silent "no key".
    let trusted = Trusted::optional(&args.keys, &dir)?;
    let name = args.file.file_name().and_then(SnapshotName::parse_os);
    let mut ins = Inspection {
        file: args.file.clone(),
        size: bytes.len() as u64,
        name_state: name.map(|n| state_word(n.state)),
        header: None,
        receipt: None,
        body: None,
        key_files: trusted
            .as_ref()
            .map(|t| t.files.clone())
            .unwrap_or_default(),
        checks: Vec::new(),
        signature_checked: false,
        verdict: Verdict::Failed,
        ok: false,
    };
    let spinner = Progress::spinner(out.bars(), "checking");
    inspect_bytes(
        &bytes,
        &args.file,
        name.as_ref(),
        trusted.as_ref(),
        &mut ins,
    )
    .with_context(|| format!("inspecting {}", Escaped::path(&args.file)))?;
    drop(spinner);
    ins.verdict = ins.verdict();
    ins.ok = ins.verdict == Verdict::Ok;
    out.json(&ins)?;
    print_text(&ins, out)?;
    Ok(match ins.verdict {
        Verdict::Ok => Status::Ok,
        Verdict::SignatureUnchecked => Status::SignatureUnchecked,
        Verdict::Failed => Status::Failed,
    })
}

/// Reads the whole file with `pread` (see the module docs). A file whose header gives its
/// exact length is read whole; any other only when it is at most [`UNPROVEN_READ_CAP`] bytes.
fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file = Untrusted::open_path(path, Expect::new("snapshot file", u64::MAX))?;
    let head_len = usize::try_from(file.len()).map_or(HEADER_LEN, |len| len.min(HEADER_LEN));
    let head = file.read_range(0, head_len)?;
    let described = Header::decode(&head)
        .and_then(|h| h.file_len())
        .is_ok_and(|len| len == file.len());
    if !described && file.len() > UNPROVEN_READ_CAP {
        bail!(
            "snapshot file {}: {} bytes, and its header does not give that length; not read \
             (at most {} of such a file are)",
            Escaped::path(path),
            file.len(),
            output::bytes(UNPROVEN_READ_CAP)
        );
    }
    Ok(file.read_all()?)
}

fn inspect_bytes(
    bytes: &[u8],
    path: &Path,
    name: Option<&SnapshotName>,
    trusted: Option<&Trusted>,
    ins: &mut Inspection,
) -> anyhow::Result<()> {
    let header = match Header::decode(bytes) {
        Ok(h) => h,
        Err(e) => {
            ins.push(Check::Header, Err(exit::causes(&e)));
            return Ok(());
        }
    };
    ins.push(
        Check::Header,
        Ok(format!(
            "magic, version {}, checksum, flags",
            format::FORMAT_VERSION
        )),
    );
    ins.header = Some(HeaderView::new(&header));
    let by_header = format!("snapshot_{}_{}.committed", header.idx, header.evidence_idx);
    match name {
        Some(n) if (n.idx, n.evidence_idx) == (header.idx, header.evidence_idx) => {
            ins.push(Check::Name, Ok("name and header agree".into()));
        }
        Some(n) => ins.push(
            Check::Name,
            Err(format!(
                "name says idx {} evidence {}, header says idx {} evidence {}",
                n.idx, n.evidence_idx, header.idx, header.evidence_idx
            )),
        ),
        // `verify` refuses such a file too: a node never reads it under this name.
        None => ins.push(
            Check::Name,
            Err(format!(
                "`{}` is not a snapshot name (a node never reads it); the header says {by_header}",
                path.file_name()
                    .map_or_else(String::new, |n| Escaped::bytes(n.as_encoded_bytes())
                        .to_string())
            )),
        ),
    }
    let expected_len = header.file_len()?;
    let actual_len = bytes.len() as u64;
    if actual_len != expected_len {
        ins.push(
            Check::Length,
            Err(format!(
                "file is {actual_len} bytes, header says {HEADER_LEN} + {} + {} = {expected_len}",
                header.body_len, header.receipt_len
            )),
        );
        return Ok(());
    }
    ins.push(Check::Length, Ok(format!("{actual_len} bytes")));
    let (_, body, receipt) = match format::split(bytes) {
        Ok(parts) => parts,
        Err(e) => {
            ins.push(Check::ReceiptDigest, Err(exit::causes(&e)));
            return Ok(());
        }
    };
    ins.push(Check::ReceiptDigest, Ok("matches the header".into()));
    match ReceiptView::decode(receipt) {
        Ok(r) => ins.receipt = Some(r),
        Err(e) => ins.push(Check::Receipt, Err(e)),
    }
    if ins.receipt.is_some() {
        let expected = Expected::of(&header);
        match trusted {
            Some(t) => {
                let result = t
                    .verifier()
                    .verify(receipt, &expected)
                    .map(|v| match v.scheme {
                        SchemeId::STATEMENT => format!(
                            "statement signature verifies; commit index {}, signer {}",
                            v.sig_idx, v.signer
                        ),
                        _ => format!(
                            "proof and signature verify; signature {}, signer {}",
                            v.sig_idx, v.signer
                        ),
                    })
                    .map_err(|e| exit::causes(&e));
                ins.signature_checked = result.is_ok();
                ins.push(Check::Receipt, result);
            }
            None => {
                let result = check::receipt_without_key(receipt, &expected)
                    .map(|signer| {
                        format!(
                            "consistent with the header (claims digest, indices, proof); \
                             signed by key id {signer}, not checked"
                        )
                    })
                    .map_err(|e| exit::causes(&e));
                ins.push(Check::Receipt, result);
                ins.skip(
                    SIGNATURE,
                    &format!(
                        "NOT checked: no key (pass --key FILE, or put {NODE_PUB} next to the \
                         file); a consistent receipt is not proof: anyone can sign one"
                    ),
                );
            }
        }
    }
    let body_result = format::verify_body(&header, body)
        .map(|()| "matches the header".to_string())
        .map_err(|e| exit::causes(&e));
    let body_ok = body_result.is_ok();
    ins.push(Check::BodyDigest, body_result);
    if body_ok {
        ins.body = Some(describe_body(&header, body));
    }
    if header.flags.contains(Flags::ZSTD) {
        // The whole body streams through the decoder (bounded memory), as `verify` does.
        let result = match check_body_encoding(&header, body) {
            Ok(()) => Ok(format!(
                "one zstd frame of exactly {} bytes",
                header.raw_len
            )),
            Err(e) => Err(exit::causes(&e)),
        };
        ins.push(Check::BodyEncoding, result);
    } else {
        ins.push(
            Check::BodyEncoding,
            Ok("uncompressed (raw_len = body_len)".into()),
        );
    }
    Ok(())
}

/// What the body is, when it can tell without decompressing.
fn describe_body(header: &Header, body: &[u8]) -> String {
    if header.flags.contains(Flags::ZSTD) {
        return format!(
            "zstd frame, {} compressed, {} raw",
            output::bytes(header.body_len),
            output::bytes(header.raw_len)
        );
    }
    match decode_kv(body) {
        Some((idx, map)) => format!("reference KV state at idx {idx}: {} keys", map.len()),
        None => format!("{} of opaque state", output::bytes(header.body_len)),
    }
}

fn print_text(ins: &Inspection, out: &Out) -> anyhow::Result<()> {
    text!(
        out,
        "file              {} ({} bytes)",
        Escaped::path(&ins.file),
        ins.size
    );
    match ins.name_state {
        Some(state) => text!(out, "name              snapseal snapshot name, {state}"),
        None => text!(out, "name              not a snapseal snapshot name"),
    }
    if let Some(h) = &ins.header {
        text!(out, "header");
        text!(out, "  format_version  {}", h.format_version);
        text!(
            out,
            "  flags           {:#x}{}",
            h.flags,
            if h.compressed {
                " (zstd)"
            } else {
                " (uncompressed)"
            }
        );
        text!(out, "  idx             {}", h.idx);
        text!(out, "  evidence_idx    {}", h.evidence_idx);
        text!(out, "  body_len        {}", h.body_len);
        text!(out, "  receipt_len     {}", h.receipt_len);
        text!(out, "  raw_len         {}", h.raw_len);
        text!(out, "  body_digest     {}", h.body_digest);
        text!(out, "  receipt_digest  {}", h.receipt_digest);
        text!(out, "  claims_digest   {}", h.claims_digest);
    }
    if let Some(r) = &ins.receipt {
        text!(out, "receipt (COSE_Sign1)");
        text!(out, "  scheme          {}", r.scheme);
        if let Some(idx) = r.statement_idx {
            text!(out, "  idx             {idx}");
            text!(out, "  commit_idx      {}", r.evidence_idx);
        } else {
            text!(out, "  evidence_idx    {}", r.evidence_idx);
        }
        if let Some(term) = r.term {
            text!(out, "  term            {term}");
        }
        if let Some(tx) = &r.evidence_tx_digest {
            text!(out, "  evidence tx     {tx}");
        }
        text!(out, "  claims digest   {}", r.claims_digest);
        if let Some(n) = r.proof_path_len {
            text!(out, "  proof path      {n} hashes");
        }
        if let Some(sig_idx) = r.sig_idx {
            text!(out, "  sig_idx         {sig_idx}");
        }
        if let Some(root) = &r.signed_root {
            text!(out, "  signed root     {root}");
        }
        text!(out, "  signer key id   {}", r.signer_key_id);
        text!(out, "  signature       {}", r.signature);
    }
    if let Some(b) = &ins.body {
        text!(out, "body              {b}");
    }
    text!(out, "checks");
    for c in &ins.checks {
        text!(out, "  {:<22} {:<7} {}", c.check, c.status, c.detail);
    }
    let verdict = match ins.verdict {
        Verdict::Ok => "ok: every check passed, the signature included",
        Verdict::SignatureUnchecked => {
            "consistent, signature NOT checked (no key): not verified; every check that \
             needs no key passed"
        }
        Verdict::Failed => "FAILED",
    };
    text!(out, "verdict           {verdict}");
    Ok(())
}
