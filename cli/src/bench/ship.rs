//! Shipping and restoring against the local-directory remote (the embedded default) and, when
//! an S3-compatible server is given, against it, next to raw `object_store` calls on the same
//! store and the same bytes:
//!
//! - ship: `Shipper::ship_pending` of one committed snapshot (local verification, upload,
//!   read-back confirmation of size and BLAKE3, index update) against one `put` of the file's
//!   bytes (already in memory) to the same store;
//! - restore: `snapseal_ship::restore` into an empty store (index read, `head`, 8 MiB ranged
//!   gets into the store's ingest: pending file, fsync, full verification, rename, directory
//!   fsync) against two raw reads + BLAKE3 of the same object: the same ranged gets (the
//!   fastest raw read we know, and what restore itself does), and a plain streamed `get`.
//!
//! The `file://` remote fsyncs what it writes (as `Remote::open` configures it), for both
//! sides. The S3 rows use a fresh bucket on a test server (moto, s3rver), made with a plain
//! unsigned `PUT /bucket` (object_store does not create buckets), and sign with the access
//! key `S3RVER` (the only one s3rver knows; moto takes any).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload};
use snapseal_persist::fs::RealFs;
use snapseal_persist::internals::PersistRequest;
use snapseal_persist::receipt::Ed25519Verifier;
use snapseal_persist::Flags;
use snapseal_persist::{SnapshotStore, StoreOptions};
use snapseal_ship::{restore, Remote, RemoteOptions, RestoreOptions, ShipConfig, Shipper};

use super::fixture::{alternate, key, Fixture, WorkDir, EVIDENCE};
use super::floor::Floor;
use super::table::{BenchRow, Rate};
use super::BenchError;
use crate::units::bytes;

fn options() -> StoreOptions {
    StoreOptions::new(Arc::new(Ed25519Verifier::new(vec![key().verifying_key()])))
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

fn run_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Run(e.to_string())
}

/// Runs a raw peer's calls on the bench's own runtime, built once and sized like a remote's
/// (the library keeps its runtime internal), so no timed row pays for building one. The
/// chunked rows' raw download runs on it too.
pub(super) fn raw<T>(
    f: impl std::future::Future<Output = Result<T, object_store::Error>>,
) -> Result<T, BenchError> {
    static RT: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RemoteOptions::default().io_threads)
            .enable_all()
            .build()
            .map_err(|e| format!("the raw peers' runtime: {e}"))
    });
    match rt {
        Ok(rt) => rt.block_on(f).map_err(run_err),
        Err(e) => Err(BenchError::Setup(e.clone())),
    }
}

/// Reads `key` raw, as restore does: 8 MiB ranged gets, two in flight, each piece handed to
/// `each` in order.
fn read_ranged(
    remote: &Remote,
    key: &ObjPath,
    mut each: impl FnMut(Bytes),
) -> Result<(), BenchError> {
    raw(async {
        let size = remote.store().head(key).await?.size;
        let piece = 8u64 << 20;
        let ranges = (0..size.div_ceil(piece)).map(|i| i * piece..((i + 1) * piece).min(size));
        let mut stream = std::pin::pin!(futures::stream::iter(ranges)
            .map(|r| remote.store().get_range(key, r))
            .buffered(2));
        while let Some(piece) = stream.next().await {
            each(piece?);
        }
        Ok::<_, object_store::Error>(())
    })
}

/// A committed snapshot of `size` body bytes in a store of its own, and its bytes.
struct Local {
    work: WorkDir,
    store: Arc<SnapshotStore>,
    file: Bytes,
}

fn local(dir: &std::path::Path, what: &str, size: usize) -> Result<Local, BenchError> {
    let work = WorkDir::new(dir, what)?;
    let store = Arc::new(
        SnapshotStore::open(
            Arc::new(RealFs::new()),
            &work.path().join("local"),
            options(),
        )
        .map_err(setup)?,
    );
    let fx = Fixture::new(size)?;
    let receipt = fx.receipt_at(1)?;
    let committed = store
        .persist(&PersistRequest {
            idx: 1,
            evidence_idx: EVIDENCE,
            flags: Flags::NONE,
            raw_len: fx.body.len() as u64,
            body_digest: fx.digest,
            body: &fx.body,
            receipt: &receipt,
        })
        .map_err(run_err)?;
    drop(fx);
    let file = Bytes::from(
        std::fs::read(&committed.path).map_err(|e| BenchError::io(&committed.path, "read", e))?,
    );
    Ok(Local { work, store, file })
}

/// The rows for a snapshot of `size` body bytes on the `file://` remote.
pub(crate) fn rows(
    dir: &std::path::Path,
    size: usize,
    reps: usize,
) -> Result<Vec<BenchRow>, BenchError> {
    let local = local(dir, "ship", size)?;
    let remote_dir = local.work.path().join("remote");
    let url = format!("file://{}", remote_dir.display());
    let remote = Arc::new(Remote::open(&url, &RemoteOptions::default()).map_err(setup)?);
    let clear = || -> Result<(), BenchError> {
        let _ = std::fs::remove_dir_all(&remote_dir);
        std::fs::create_dir_all(&remote_dir).map_err(|e| BenchError::io(&remote_dir, "create", e))
    };
    compare(&local, &remote, &clear, "file:// remote", reps)
}

/// The rows for a snapshot of `size` body bytes on the S3-compatible test server at
/// `endpoint` (`http://host:port`), in a bucket the rows make.
pub(crate) fn s3_rows(
    dir: &std::path::Path,
    size: usize,
    reps: usize,
    endpoint: &str,
) -> Result<Vec<BenchRow>, BenchError> {
    let local = local(dir, "ship-s3", size)?;
    let remote = s3_remote(endpoint, "ship")?;
    let rows = compare(&local, &remote, &|| clear(&remote), "S3 remote", reps);
    let _ = clear(&remote);
    rows
}

/// A remote on a fresh bucket (named for `what` and this process) of the S3-compatible test
/// server at `endpoint`.
pub(crate) fn s3_remote(endpoint: &str, what: &str) -> Result<Arc<Remote>, BenchError> {
    let bucket = format!("snapseal-bench-{what}-{}", std::process::id());
    create_bucket(endpoint, &bucket)?;
    let mut opts = RemoteOptions::default();
    for (k, v) in [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "S3RVER"),
        ("aws_secret_access_key", "S3RVER"),
        ("aws_region", "us-east-1"),
    ] {
        opts.options.push((k.to_string(), v.to_string()));
    }
    opts.request_timeout = Duration::from_secs(300);
    Ok(Arc::new(
        Remote::open(&format!("s3://{bucket}"), &opts).map_err(setup)?,
    ))
}

/// Deletes every object in `remote`'s bucket, whatever the layout wrote.
pub(crate) fn clear(remote: &Remote) -> Result<(), BenchError> {
    raw(async {
        let all: Vec<ObjectMeta> = remote.store().list(None).try_collect().await?;
        for meta in all {
            remote.store().delete(&meta.location).await?;
        }
        Ok::<_, object_store::Error>(())
    })
}

/// Creates `bucket` on the test server with a plain unsigned `PUT /bucket`.
fn create_bucket(endpoint: &str, bucket: &str) -> Result<(), BenchError> {
    use std::io::{Read, Write};
    let hp = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| setup(format!("{endpoint}: an http:// test server is expected")))?
        .trim_end_matches('/');
    let mut answer = String::new();
    std::net::TcpStream::connect(hp)
        .and_then(|mut s| {
            write!(
                s,
                "PUT /{bucket} HTTP/1.1\r\nHost: {hp}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            s.read_to_string(&mut answer)
        })
        .map_err(|e| setup(format!("creating bucket {bucket} at {endpoint}: {e}")))?;
    if !answer.starts_with("HTTP/1.1 200") {
        let status = answer.lines().next().unwrap_or("no answer");
        return Err(setup(format!(
            "creating bucket {bucket} at {endpoint}: {status}"
        )));
    }
    Ok(())
}

/// Ours against the raw calls on `remote`, which `clear` empties; `what` names the remote
/// in the rows.
fn compare(
    local: &Local,
    remote: &Arc<Remote>,
    clear: &dyn Fn() -> Result<(), BenchError>,
    what: &str,
    reps: usize,
) -> Result<Vec<BenchRow>, BenchError> {
    let (work, store, file) = (&local.work, &local.store, &local.file);
    let n = file.len() as f64;
    let raw_key = ObjPath::from("raw").join("snapshot");

    let mut ship = || -> Result<Duration, BenchError> {
        clear()?;
        let shipper = Shipper::new(
            Arc::clone(remote),
            Arc::clone(store),
            ShipConfig::new("bench").with_max_attempts(5),
        )
        .map_err(setup)?;
        let start = Instant::now();
        let report = shipper.ship_pending().map_err(run_err)?;
        let t = start.elapsed();
        if report.uploaded.len() != 1 {
            return Err(BenchError::Run("ship uploaded nothing".into()));
        }
        Ok(t)
    };
    let mut raw_put = || -> Result<Duration, BenchError> {
        clear()?;
        let start = Instant::now();
        raw(remote
            .store()
            .put(&raw_key, PutPayload::from_bytes(file.clone())))?;
        Ok(start.elapsed())
    };
    let ship_put = alternate(reps, &mut ship, &mut raw_put)?;
    // The floor of a confirmed upload: the same put, then the object read back as the
    // shipper reads it (ranged gets) and compared with the bytes.
    let mut confirmed_put = || -> Result<Duration, BenchError> {
        let start = Instant::now();
        raw_put()?;
        let mut at = 0;
        let mut same = true;
        read_ranged(remote, &raw_key, |piece| {
            same &= file.get(at..at + piece.len()) == Some(&piece[..]);
            at += piece.len();
        })?;
        if !same || at != file.len() {
            return Err(BenchError::Run("the object read back differs".into()));
        }
        Ok(start.elapsed())
    };
    let ship_confirmed = alternate(reps, &mut ship, &mut confirmed_put)?;

    // Restore: the remote holds the shipped snapshot (and the raw copy for the peer).
    clear()?;
    ship()?;
    raw(remote
        .store()
        .put(&raw_key, PutPayload::from_bytes(file.clone())))?;
    let target = work.path().join("target");
    let mut ours = || -> Result<Duration, BenchError> {
        let _ = std::fs::remove_dir_all(&target);
        let into =
            SnapshotStore::open(Arc::new(RealFs::new()), &target, options()).map_err(setup)?;
        let start = Instant::now();
        let restored = restore(remote, &into, &RestoreOptions::default()).map_err(run_err)?;
        let t = start.elapsed();
        if !restored.written {
            return Err(BenchError::Run("restore wrote nothing".into()));
        }
        Ok(t)
    };
    let mut raw_ranged = || -> Result<Duration, BenchError> {
        let start = Instant::now();
        let mut hasher = blake3::Hasher::new();
        read_ranged(remote, &raw_key, |piece| {
            hasher.update_rayon(&piece);
        })?;
        hasher.finalize();
        Ok(start.elapsed())
    };
    // The floor of any durable restore: the same ranged gets + BLAKE3, then the bare
    // write + fsync + close + rename + directory fsync of those bytes.
    let floor_dir = work.path().join("floor");
    std::fs::create_dir_all(&floor_dir).map_err(|e| BenchError::io(&floor_dir, "create", e))?;
    let floor = Floor::open(&floor_dir)?;
    let mut round = 0u32;
    let mut raw_durable = || -> Result<Duration, BenchError> {
        round += 1;
        let start = Instant::now();
        let mut hasher = blake3::Hasher::new();
        let mut pieces = Vec::new();
        read_ranged(remote, &raw_key, |piece| {
            hasher.update_rayon(&piece);
            pieces.push(piece);
        })?;
        hasher.finalize();
        let parts: Vec<&[u8]> = pieces.iter().map(|p| &p[..]).collect();
        floor
            .write(
                &format!("r{round}.tmp"),
                &format!("r{round}.committed"),
                &parts,
            )
            .map_err(|(step, e)| BenchError::Run(format!("floor {step}: {e}")))?;
        let t = start.elapsed();
        drop(pieces);
        let _ = std::fs::remove_file(floor_dir.join(format!("r{round}.committed")));
        Ok(t)
    };
    let mut raw_get = || -> Result<Duration, BenchError> {
        let start = Instant::now();
        let hash = raw(async {
            let got = remote.store().get(&raw_key).await?;
            let mut stream = got.into_stream();
            let mut hasher = blake3::Hasher::new();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk?);
            }
            Ok::<_, object_store::Error>(hasher.finalize())
        });
        let t = start.elapsed();
        hash?;
        Ok(t)
    };
    let restore_ranged = alternate(reps, &mut ours, &mut raw_ranged)?;
    let restore_get = alternate(reps, &mut ours, &mut raw_get)?;
    let restore_durable = alternate(reps, &mut ours, &mut raw_durable)?;
    let size_text = bytes(file.len() as u64);
    Ok(vec![
        BenchRow::throughputs(format!("ship {size_text} ({what})"), n, &ship_put, 0.9, Rate::Bytes)
            .with_note("ours also verifies the local file (beside the upload) and confirms what the remote holds before indexing it; peer: one object_store put of the bytes in memory"),
        BenchRow::throughputs(format!("ship {size_text} ({what}) vs put + read back"), n, &ship_confirmed, 0.9, Rate::Bytes)
            .with_note("peer: the same put, then the object read back in the same ranged gets and compared: the floor of an upload confirmed by reading it"),
        BenchRow::throughputs(format!("restore {size_text} ({what}) vs ranged get"), n, &restore_ranged, 0.9, Rate::Bytes)
            .with_note("ours also writes + fsyncs the file and verifies it (receipt, body digest) before the rename; peer: the same 8 MiB ranged gets (2 in flight) + BLAKE3"),
        BenchRow::throughputs(format!("restore {size_text} ({what}) vs streamed get"), n, &restore_get, 0.9, Rate::Bytes)
            .with_note("peer: object_store's streamed get (8 KiB reads on the local store) + BLAKE3"),
        BenchRow::throughputs(format!("restore {size_text} ({what}) vs ranged get + durable write"), n, &restore_durable, 0.9, Rate::Bytes)
            .with_note("peer: the same ranged gets + BLAKE3, then bare write + fsync + close + rename + dir fsync of the bytes: what any crash-safe restore must do"),
    ])
}
