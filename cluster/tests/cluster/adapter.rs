//! A snapseal-openraft limitation this crate works around (src/inbox.rs), as the smallest
//! failing test: openraft's own chunk receiver cannot take a snapshot re-sent from offset 0
//! under the same id, because the adapter's receiving `SealedData` refuses to seek back.
//! Ignored so the suite stays green; `cargo test -p snapseal-cluster --test cluster -- --ignored`
//! shows it failing.

use std::io::{Read, Write};
use std::sync::Arc;

use openraft::raft::InstallSnapshotRequest;
use openraft::storage::RaftStateMachine;
use openraft::{
    CommittedLeaderId, Config, Entry, EntryPayload, LogId, Raft, RaftSnapshotBuilder, Vote,
};
use snapseal_openraft::testing::{MemLog, Router};
use snapseal_openraft::{SealOptions, SealedData, SealedState, SealedStateMachine};
use snapseal_persist::SigningKey;
use tokio::io::AsyncReadExt;

openraft::declare_raft_types!(
    pub(crate) Sums: D = u64, R = u64, SnapshotData = SealedData,
);

#[derive(Clone, Default)]
struct Sum(u64);

impl SealedState<Sums> for Sum {
    fn apply(&mut self, _: &LogId<u64>, d: &u64) -> u64 {
        self.0 += d;
        self.0
    }
    fn no_data_response(&self, _: &LogId<u64>) -> u64 {
        self.0
    }
    fn serialise(&self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(&self.0.to_le_bytes())
    }
    fn restore(input: &mut dyn Read) -> std::io::Result<Self> {
        let mut b = [0u8; 8];
        input.read_exact(&mut b)?;
        Ok(Sum(u64::from_le_bytes(b)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "snapseal-openraft: a receiving SealedData cannot seek back to 0, so openraft's receiver fails a re-sent snapshot"]
async fn openraft_receiver_accepts_a_snapshot_resent_from_offset_0_after_a_timeout() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let opts = SealOptions::new(key.clone(), vec![key.verifying_key()]);
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a: SealedStateMachine<Sums, Sum> =
        SealedStateMachine::open(a_dir.path(), opts.clone()).unwrap();
    let log_id = LogId::new(CommittedLeaderId::new(1, 1), 1);
    let entry = Entry::<Sums> {
        log_id,
        payload: EntryPayload::Normal(5),
    };
    a.apply([entry]).await.unwrap();
    let mut built = a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut bytes = Vec::new();
    built.snapshot.read_to_end(&mut bytes).await.unwrap();

    let b: SealedStateMachine<Sums, Sum> = SealedStateMachine::open(b_dir.path(), opts).unwrap();
    let config = Arc::new(Config::default().validate().unwrap());
    let raft = Raft::new(2, config, Router::default(), MemLog::default(), b)
        .await
        .unwrap();
    let first = InstallSnapshotRequest::<Sums> {
        vote: Vote::new_committed(1, 1),
        meta: built.meta.clone(),
        offset: 0,
        data: bytes[..bytes.len() / 2].to_vec(),
        done: false,
    };
    raft.install_snapshot(first.clone()).await.unwrap();
    // What openraft 0.9's sender does after a chunk timed out: the snapshot again from 0.
    let resent = raft.install_snapshot(first).await;
    raft.shutdown().await.unwrap();
    assert!(resent.is_ok(), "{resent:?}");
}
