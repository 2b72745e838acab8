//! openraft's own storage test suite, run against the adapter (with an in-memory log).

use crate::support::{self, Cfg, Kv, MemLog, NodeId};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use snapseal_openraft::SealedStateMachine;

struct Builder;

impl StoreBuilder<Cfg, MemLog, SealedStateMachine<Cfg, Kv>, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, MemLog, SealedStateMachine<Cfg, Kv>), StorageError<NodeId>>
    {
        let dir = tempfile::tempdir().unwrap();
        let sm = SealedStateMachine::open(dir.path(), support::options(0, 3)).unwrap();
        Ok((dir, MemLog::default(), sm))
    }
}

#[test]
fn openraft_suite_test_all() {
    Suite::test_all(Builder).unwrap();
}
