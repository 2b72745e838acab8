//! The consensus row's peer: the background work snapseal does for `generations` snapshots,
//! done without snapseal, at the same priority, so the consensus thread's p99 beside it is the
//! floor any snapshotting of that state costs the node's core (cache, memory bandwidth, the
//! other vCPU), and only what snapseal adds on top is judged.
//!
//! Per generation, as snapseal's serialise and persist do it: the state view generates its
//! bytes into a [`SPILL_BUFFER`]-sized buffer; each full buffer is hashed with BLAKE3 on
//! persist's hashing pool (its threads, its nice) while the same buffer is written to the
//! file; then fsync, close, rename without replacing, directory fsync ([`Floor`]). The
//! generations are shared among as many threads as snapseal's engine has workers, each
//! lowered to the rig's worker nice. Left out: the header, receipt and retention (a few KiB
//! and a directory listing), the actors' bookkeeping (what is judged).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use snapseal_actors::StateSource;
use snapseal_persist::internals::{on_hashing_thread, SPILL_BUFFER};

use super::fixture::GeneratedState;
use super::floor::Floor;
use super::rig::WORKER_NICE;
use super::BenchError;

/// Does the background work of `generations` states of `body` bytes into `dir` (existing,
/// empty) from the engine's default number of threads at [`WORKER_NICE`]; returns once all
/// are durable.
pub(crate) fn run(dir: &Path, generations: u64, body: u64) -> Result<(), BenchError> {
    let floor = Floor::open(dir)?;
    let workers = snapseal_engine::EngineConfig::default()
        .resolved_workers()
        .unwrap_or(1);
    let next = AtomicU64::new(0);
    let work = || -> Result<(), BenchError> {
        snapseal_engine::lower_thread_priority(WORKER_NICE);
        loop {
            let idx = next.fetch_add(1, Ordering::Relaxed) + 1;
            if idx > generations {
                return Ok(());
            }
            one(&floor, idx, body)?;
        }
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(BenchError::Run("background peer thread panicked".into())))
        })
    })
}

/// One generation: generate, hash while writing, make durable.
fn one(floor: &Floor, idx: u64, body: u64) -> Result<(), BenchError> {
    let mut view = GeneratedState { len: body }
        .capture(idx)
        .map_err(|e| BenchError::Run(format!("background peer capture: {e}")))?;
    let mut hasher = blake3::Hasher::new();
    floor
        .write_streamed(
            &format!("peer_{idx}.tmp"),
            &format!("peer_{idx}"),
            |write| {
                let mut out = HashWhileWriting {
                    buf: Vec::with_capacity(SPILL_BUFFER),
                    hasher: &mut hasher,
                    write,
                };
                view.write_to(&mut out)?;
                out.flush_buf()
            },
        )
        .map_err(|(step, e)| BenchError::Run(format!("background peer {step}: {e}")))?;
    // The digest is what snapseal would record; computing it is part of the work.
    std::hint::black_box(hasher.finalize());
    Ok(())
}

/// Gathers the view's writes into full buffers, each hashed on the hashing pool while it is
/// written to the file (as persist's body builder overlaps them).
struct HashWhileWriting<'a> {
    buf: Vec<u8>,
    hasher: &'a mut blake3::Hasher,
    write: &'a mut dyn FnMut(&[u8]) -> io::Result<()>,
}

impl HashWhileWriting<'_> {
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (buf, hasher, write) = (&self.buf, &mut *self.hasher, &mut *self.write);
        let written = std::thread::scope(|s| {
            let hashing = s.spawn(|| {
                // The helper thread only waits for the pool; lowered all the same.
                snapseal_engine::lower_thread_priority(WORKER_NICE);
                if on_hashing_thread(|| {
                    hasher.update_rayon(buf);
                })
                .is_none()
                {
                    hasher.update(buf);
                }
            });
            let written = write(buf);
            hashing
                .join()
                .map_err(|_| io::Error::other("background peer hash panicked"))?;
            written
        });
        self.buf.clear();
        written
    }
}

impl io::Write for HashWhileWriting<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(SPILL_BUFFER - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == SPILL_BUFFER {
            self.flush_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
