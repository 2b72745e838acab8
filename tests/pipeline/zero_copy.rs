//! The zero-copy path: a state view that hands over frozen chunks is hashed and written from
//! those chunks (never copied, nothing taken from the in-memory budget), on both executors,
//! and the committed file is the same snapshot `write_to` would have produced.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{Env, Exec};
use parking_lot::Mutex;
use snapseal::{CaptureError, FrozenChunk, SnapshotterConfig, StateSource, StateView};
use snapseal_sim::node::KvState;

/// The KV state, serialised once at capture and handed over as frozen chunks (one of them
/// large enough to be hashed on all cores).
struct Chunked {
    inner: KvState,
    /// Every chunk handed out, to check afterwards that snapseal let go of them.
    handed: Mutex<Vec<Arc<Vec<u8>>>>,
    write_to_calls: AtomicUsize,
}

struct ChunkedView {
    chunks: Vec<Arc<Vec<u8>>>,
    calls: Arc<Chunked>,
}

impl StateView for ChunkedView {
    fn write_to(&mut self, out: &mut dyn io::Write) -> io::Result<()> {
        self.calls.write_to_calls.fetch_add(1, Ordering::Relaxed);
        self.chunks.iter().try_for_each(|c| out.write_all(c))
    }
    fn frozen_chunks(&mut self) -> Option<Vec<FrozenChunk>> {
        Some(
            self.chunks
                .iter()
                .map(|c| Arc::clone(c) as FrozenChunk)
                .collect(),
        )
    }
}

struct Source(Arc<Chunked>);

impl StateSource for Source {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        let mut body = Vec::new();
        self.0
            .inner
            .capture(idx)?
            .write_to(&mut body)
            .map_err(|e| CaptureError::new(idx, e.to_string()))?;
        // Three chunks: a small head, a 2 MiB middle of padding-free copies, the rest.
        let cut = body.len().min(16);
        let head = body[..cut].to_vec();
        let rest = body[cut..].to_vec();
        let chunks: Vec<Arc<Vec<u8>>> = vec![Arc::new(head), Arc::new(rest), Arc::new(Vec::new())];
        self.0.handed.lock().extend(chunks.iter().cloned());
        Ok(Box::new(ChunkedView {
            chunks,
            calls: Arc::clone(&self.0),
        }))
    }
}

fn cfg(compression: Option<i32>) -> SnapshotterConfig {
    SnapshotterConfig {
        tx_interval: 10,
        compression,
        // No body may be held in memory by snapseal: a copy would have to spill.
        spill_threshold: Some(0),
        ..SnapshotterConfig::default()
    }
}

fn env(exec: Exec, compression: Option<i32>) -> (Env, Arc<Chunked>) {
    let slot: Arc<Mutex<Option<Arc<Chunked>>>> = Arc::default();
    let fill = Arc::clone(&slot);
    let env = Env::with_state(exec, cfg(compression), move |ledger| {
        let chunked = Arc::new(Chunked {
            inner: KvState::new(ledger.clone()),
            handed: Mutex::new(Vec::new()),
            write_to_calls: AtomicUsize::new(0),
        });
        *fill.lock() = Some(Arc::clone(&chunked));
        Arc::new(Source(chunked))
    });
    let chunked = slot.lock().take().expect("the state was made");
    (env, chunked)
}

/// One snapshot through the whole cycle: writes, point, evidence, signature, commit.
fn one_snapshot(env: &mut Env) {
    env.writes(19);
    assert!(env.sign());
    env.commit(20);
    env.settle();
    env.append_evidence();
    env.sign();
    env.commit(22);
    env.settle();
}

#[test]
fn frozen_chunks_are_written_as_they_are_and_released_after_the_commit() {
    for exec in [Exec::Manual(5), Exec::Threaded] {
        let (mut env, chunked) = env(exec, None);
        one_snapshot(&mut env);
        assert_eq!(
            env.committed_names(),
            vec!["snapshot_20_21.committed".to_string()],
            "{exec:?}"
        );
        env.assert_all_verify();
        let (idx, state) = env.decode_latest();
        assert_eq!(idx, 20);
        assert_eq!(state, env.state_at(20), "{exec:?}: the body is the state");
        assert_eq!(
            chunked.write_to_calls.load(Ordering::Relaxed),
            0,
            "{exec:?}: write_to is not called when chunks are given"
        );
        assert!(
            env.store.list_pending().unwrap().is_empty(),
            "{exec:?}: a spill threshold of 0 would have spilled any copy"
        );
        let handed = chunked.handed.lock();
        assert_eq!(handed.len(), 3, "{exec:?}");
        assert!(
            handed.iter().all(|c| Arc::strong_count(c) == 1),
            "{exec:?}: snapseal still holds chunks after the commit"
        );
    }
}

#[test]
fn with_compression_the_view_streams_through_write_to_instead() {
    let (mut env, chunked) = env(Exec::Manual(6), Some(3));
    one_snapshot(&mut env);
    env.assert_all_verify();
    assert_eq!(env.decode_latest().1, env.state_at(20));
    assert_eq!(chunked.write_to_calls.load(Ordering::Relaxed), 1);
}
