//! A snapshot build takes one frozen view of the state: a state without frozen chunks is
//! cloned exactly once per build (it was twice: for the builder, then again for the blocking
//! task), and a state with frozen chunks is not cloned at all, its chunks being the body.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use snapseal_openraft::{FrozenChunk, SealedState, SealedStateMachine};

use crate::example::{self, Cfg, Put};

/// Appends every value applied; counts its clones (all clones share the counter).
#[derive(Default)]
struct Counted {
    values: Vec<u8>,
    clones: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Counted {
            values: self.values.clone(),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl SealedState<Cfg> for Counted {
    fn apply(&mut self, _: &LogId<u64>, put: &Put) -> Option<String> {
        self.values.extend_from_slice(put.value.as_bytes());
        None
    }
    fn no_data_response(&self, _: &LogId<u64>) -> Option<String> {
        None
    }
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.values)
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        let mut values = Vec::new();
        input.read_to_end(&mut values)?;
        Ok(Counted {
            values,
            clones: Arc::default(),
        })
    }
}

/// The same state, kept as frozen pages (one per entry): it hands them out as its body.
#[derive(Default)]
struct Paged {
    pages: Vec<Arc<Vec<u8>>>,
    clones: Arc<AtomicUsize>,
}

impl Clone for Paged {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Paged {
            pages: self.pages.clone(),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl SealedState<Cfg> for Paged {
    fn apply(&mut self, _: &LogId<u64>, put: &Put) -> Option<String> {
        self.pages.push(Arc::new(put.value.clone().into_bytes()));
        None
    }
    fn no_data_response(&self, _: &LogId<u64>) -> Option<String> {
        None
    }
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        self.pages.iter().try_for_each(|p| out.write_all(p))
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        let mut all = Vec::new();
        input.read_to_end(&mut all)?;
        Ok(Paged {
            pages: vec![Arc::new(all)],
            clones: Arc::default(),
        })
    }
    fn frozen(&self) -> Option<Vec<FrozenChunk>> {
        Some(
            self.pages
                .iter()
                .map(|p| Arc::clone(p) as FrozenChunk)
                .collect(),
        )
    }
}

fn entries() -> Vec<Entry<Cfg>> {
    (0..10u64)
        .map(|i| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Normal(Put {
                key: format!("k{i}"),
                value: format!("value {i};"),
            }),
        })
        .collect()
}

fn expected() -> Vec<u8> {
    (0..10)
        .flat_map(|i| format!("value {i};").into_bytes())
        .collect()
}

/// Builds one snapshot of `entries()` with `compression`; returns the clones it took and the
/// state a fresh machine recovers from the directory.
async fn build_once<S: SealedState<Cfg>>(
    compression: Option<i32>,
    clones: impl Fn(&S) -> usize,
) -> (usize, S) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = example::options(1, 1);
    opts.compression = compression;
    let mut sm: SealedStateMachine<Cfg, S> =
        SealedStateMachine::open(dir.path(), opts.clone()).unwrap();
    sm.apply(entries()).await.unwrap();
    let before = clones(&sm.state_handle().read());
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(9));
    let taken = clones(&sm.state_handle().read()) - before;
    drop((snapshot, sm));
    let recovered = SealedStateMachine::<Cfg, S>::open(dir.path(), opts).unwrap();
    let state = recovered.state_handle().read().clone();
    (taken, state)
}

#[tokio::test]
async fn a_build_clones_the_state_once() {
    for compression in [None, Some(3)] {
        let (clones, state) =
            build_once::<Counted>(compression, |s| s.clones.load(Ordering::SeqCst)).await;
        assert_eq!(clones, 1, "compression {compression:?}");
        assert_eq!(state.values, expected());
    }
}

#[tokio::test]
async fn a_state_with_frozen_chunks_is_never_cloned_and_they_are_its_body() {
    for compression in [None, Some(3)] {
        let (clones, state) =
            build_once::<Paged>(compression, |s| s.clones.load(Ordering::SeqCst)).await;
        assert_eq!(clones, 0, "compression {compression:?}");
        assert_eq!(*state.pages[0], expected());
    }
}

#[tokio::test]
async fn a_built_snapshot_is_verified_when_first_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm: SealedStateMachine<Cfg, Counted> =
        SealedStateMachine::open(dir.path(), example::options(1, 1)).unwrap();
    sm.apply(entries()).await.unwrap();
    let mut built = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    // The committed file is damaged before anything read the built snapshot.
    let committed = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "committed"))
        .unwrap();
    let mut bytes = std::fs::read(&committed).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&committed, bytes).unwrap();

    let mut read = Vec::new();
    assert!(
        tokio::io::AsyncReadExt::read_to_end(&mut *built.snapshot, &mut read)
            .await
            .is_err()
    );
    assert!(read.is_empty());
    assert!(built.snapshot.file().is_none());
}
