//! openraft's own storage test suite, run against the adapter (with an in-memory log).

use crate::example::{self, Cfg, Kv, NodeId};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use snapseal_openraft::testing::MemLog;
use snapseal_openraft::SealedStateMachine;

struct Builder;

impl StoreBuilder<Cfg, MemLog<Cfg>, SealedStateMachine<Cfg, Kv>, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, MemLog<Cfg>, SealedStateMachine<Cfg, Kv>), StorageError<NodeId>>
    {
        let dir = tempfile::tempdir().unwrap();
        let sm = SealedStateMachine::open(dir.path(), example::options(0, 3)).unwrap();
        Ok((dir, MemLog::default(), sm))
    }
}

#[test]
fn openraft_suite_test_all() {
    Suite::test_all(Builder).unwrap();
}
