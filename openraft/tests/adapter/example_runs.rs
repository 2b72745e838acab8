//! The `openraft_kv` example, run to the end: it checks every step it shows (PUTs, GETs from
//! the live state, a learner joining by snapshot, restart from the directories), so a change
//! that breaks it fails here.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openraft_kv_example_runs_to_the_end() {
    let root = tempfile::tempdir().unwrap();
    crate::example::run(root.path()).await.unwrap();
}
