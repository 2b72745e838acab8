//! Chunked snapshots through openraft's one-way transport: the leader's `SnapshotData` is the
//! file followed by every chunk it names; a follower writes only the chunks it lacks, checks
//! each against its hash, and commits the file only once it verified with them.

use std::io::{self, Read, Write};
use std::path::Path;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use snapseal_openraft::{SealOptions, SealedData, SealedState, SealedStateMachine};
use snapseal_persist::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

openraft::declare_raft_types!(
    pub Cfg: D = u64, R = u64, SnapshotData = SealedData,
);

/// Bytes of state: about sixteen 64 KiB chunks.
const STATE: usize = 1 << 20;

/// A megabyte of pseudo-random bytes; each entry patches 8 of them.
#[derive(Clone, PartialEq)]
struct Blob(Vec<u8>);

impl Default for Blob {
    fn default() -> Self {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        Blob(
            (0..STATE)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect(),
        )
    }
}

impl SealedState<Cfg> for Blob {
    fn apply(&mut self, _: &LogId<u64>, n: &u64) -> u64 {
        let at = (*n % (STATE as u64 - 8)) as usize;
        self.0[at..at + 8].copy_from_slice(&n.to_le_bytes());
        *n
    }
    fn no_data_response(&self, _: &LogId<u64>) -> u64 {
        0
    }
    fn serialise(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.0)
    }
    fn restore(input: &mut dyn Read) -> io::Result<Self> {
        let mut state = Vec::new();
        input.read_to_end(&mut state)?;
        Ok(Blob(state))
    }
}

type Machine = SealedStateMachine<Cfg, Blob>;

fn entry(index: u64, n: u64) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(n),
    }
}

fn open(dir: &Path, key: u8) -> Machine {
    open_with(dir, key, |_| {})
}

/// [`open`] with `edit` applied to the options.
fn open_with(dir: &Path, key: u8, edit: impl FnOnce(&mut SealOptions)) -> Machine {
    let leader = SigningKey::from_bytes(&[1; 32]);
    let own = SigningKey::from_bytes(&[key; 32]);
    let mut opts = SealOptions::new(
        own.clone(),
        vec![leader.verifying_key(), own.verifying_key()],
    );
    opts.chunked = true;
    edit(&mut opts);
    Machine::open(dir, opts).unwrap()
}

/// Bytes of chunk packs in `dir`.
fn pack_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().into_string().unwrap();
            name.starts_with("chunks_") && name.ends_with(".pack")
        })
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// The leader applies `entries` and builds a snapshot.
async fn build(leader: &mut Machine, entries: Vec<Entry<Cfg>>) {
    leader.apply(entries).await.unwrap();
    leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
}

/// [`build`], then what the leader sends (below).
async fn snapshot_after(
    leader: &mut Machine,
    entries: Vec<Entry<Cfg>>,
) -> (Snapshot<Cfg>, Vec<u8>, u64) {
    build(leader, entries).await;
    sent(leader).await
}

/// What the leader sends: its current snapshot's whole stream, and the file's length.
async fn sent(leader: &mut Machine) -> (Snapshot<Cfg>, Vec<u8>, u64) {
    let mut snapshot = leader.get_current_snapshot().await.unwrap().unwrap();
    let file_len = {
        let file = snapshot.snapshot.file().unwrap();
        std::fs::metadata(file.path()).unwrap().len()
    };
    let mut bytes = Vec::new();
    snapshot.snapshot.read_to_end(&mut bytes).await.unwrap();
    (snapshot, bytes, file_len)
}

/// The follower receives `bytes` (in 64 KiB pieces, as openraft's chunks) and installs them.
async fn receive(
    follower: &mut Machine,
    snapshot: &Snapshot<Cfg>,
    bytes: &[u8],
) -> Result<(), String> {
    let mut data = follower.begin_receiving_snapshot().await.unwrap();
    for piece in bytes.chunks(64 << 10) {
        data.write_all(piece)
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
    follower
        .install_snapshot(&snapshot.meta, data)
        .await
        .map_err(|e| format!("install: {e:?}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_fresh_follower_installs_a_chunked_snapshot_sent_with_its_chunks() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), 1);
    let mut follower = open(follower_dir.path(), 2);
    runtime().block_on(async {
        let (snapshot, bytes, file_len) =
            snapshot_after(&mut leader, (1..=20).map(|i| entry(i, i * 7919)).collect()).await;
        assert!(
            bytes.len() as u64 > file_len + STATE as u64 / 2,
            "the stream carries the chunks: {} bytes, the file {file_len}",
            bytes.len()
        );
        receive(&mut follower, &snapshot, &bytes).await.unwrap();
    });
    assert!(*follower.state_handle().read() == *leader.state_handle().read());
    assert!(
        pack_bytes(follower_dir.path()) >= STATE as u64,
        "the follower stored every chunk"
    );
    // After a restart the follower recovers the same state from its chunked snapshot.
    drop(follower);
    let again = open(follower_dir.path(), 2);
    assert!(*again.state_handle().read() == *leader.state_handle().read());
}

#[test]
fn a_follower_holding_an_older_chunked_snapshot_writes_only_the_chunks_it_lacks() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), 1);
    let mut follower = open(follower_dir.path(), 2);
    let written = runtime().block_on(async {
        let (snapshot, bytes, _) =
            snapshot_after(&mut leader, (1..=10).map(|i| entry(i, i * 7919)).collect()).await;
        receive(&mut follower, &snapshot, &bytes).await.unwrap();
        let before = pack_bytes(follower_dir.path());

        // One more entry: 8 bytes of the state change, one chunk of it.
        let (snapshot, bytes, _) = snapshot_after(&mut leader, vec![entry(11, 12_345)]).await;
        assert!(
            bytes.len() > STATE,
            "the one-way stream still carries the whole state"
        );
        receive(&mut follower, &snapshot, &bytes).await.unwrap();
        pack_bytes(follower_dir.path()) - before
    });
    assert!(*follower.state_handle().read() == *leader.state_handle().read());
    assert!(
        written > 0 && written <= 2 * (256 << 10),
        "the follower wrote {written} bytes of packs for a one-entry change"
    );
}

#[test]
fn a_chunk_damaged_in_transit_is_refused_and_nothing_is_committed() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), 1);
    let mut follower = open(follower_dir.path(), 2);
    let before = follower.state_handle().read().clone();
    runtime().block_on(async {
        let (snapshot, mut bytes, file_len) =
            snapshot_after(&mut leader, (1..=5).map(|i| entry(i, i * 7919)).collect()).await;
        // One bit of the third chunk's bytes (the chunks start right after the file).
        let at = file_len as usize + (200 << 10);
        bytes[at] ^= 1;
        let err = receive(&mut follower, &snapshot, &bytes).await.unwrap_err();
        assert!(err.contains("hash to"), "{err}");
        assert!(follower.get_current_snapshot().await.unwrap().is_none());
    });
    assert!(
        *follower.state_handle().read() == before,
        "the state is untouched"
    );
    assert!(
        follower.store().list().unwrap().is_empty(),
        "no snapshot file committed"
    );
}

#[test]
fn a_chunked_snapshot_installed_from_another_machine_s_data_brings_its_chunks() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), 1);
    let mut follower = open(follower_dir.path(), 2);
    runtime().block_on(async {
        build(&mut leader, (1..=3).map(|i| entry(i, i)).collect()).await;
        // The leader's own reading data handed to the follower's install (no transport).
        let snapshot = leader.get_current_snapshot().await.unwrap().unwrap();
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
    });
    assert!(*follower.state_handle().read() == *leader.state_handle().read());
    assert!(pack_bytes(follower_dir.path()) >= STATE as u64);
}

#[test]
fn a_chunked_snapshot_sent_again_from_the_start_is_received() {
    use tokio::io::AsyncSeekExt;
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), 1);
    let mut follower = open(follower_dir.path(), 2);
    runtime().block_on(async {
        let (snapshot, bytes, file_len) =
            snapshot_after(&mut leader, (1..=4).map(|i| entry(i, i)).collect()).await;
        let mut data = follower.begin_receiving_snapshot().await.unwrap();
        // Cut off inside the chunks (a chunk timed out), then openraft re-sends from 0.
        let cut = file_len as usize + (300 << 10);
        data.write_all(&bytes[..cut]).await.unwrap();
        data.seek(std::io::SeekFrom::Start(0)).await.unwrap();
        data.write_all(&bytes).await.unwrap();
        follower
            .install_snapshot(&snapshot.meta, data)
            .await
            .unwrap();
    });
    assert!(*follower.state_handle().read() == *leader.state_handle().read());
}

#[test]
fn a_chunked_snapshot_over_the_size_limit_is_refused_before_any_chunk_is_written() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), 1);
    // The limit bounds a plain file; for a chunked one, the state its chunks add up to.
    let mut follower = open_with(follower_dir.path(), 2, |o| {
        o.max_snapshot_bytes = STATE as u64 / 2
    });
    runtime().block_on(async {
        let (snapshot, bytes, _) =
            snapshot_after(&mut leader, (1..=2).map(|i| entry(i, i)).collect()).await;
        let err = receive(&mut follower, &snapshot, &bytes).await.unwrap_err();
        assert!(err.contains("more than the"), "{err}");
    });
    assert_eq!(pack_bytes(follower_dir.path()), 0, "no chunk written");
    assert!(follower.store().list().unwrap().is_empty());
}
