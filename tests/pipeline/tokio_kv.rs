//! The tokio KV node of `examples/tokio_kv.rs`, killed with SIGKILL mid-run and restarted: no
//! file named committed is corrupt, the restart restores the newest snapshot that verifies,
//! resumes its schedule from it, and serves reads.
//!
//! The node runs as a child process: this test binary again, running the ignored test
//! `tokio_kv::the_node` (the example's `run`), so no prebuilt example is needed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use snapseal::persist::FileState;
use snapseal::{RealFs, SnapshotStore};

#[path = "../../examples/tokio_kv.rs"]
#[allow(dead_code)] // its `main` is the example's, not the test's
mod example;

/// The child reads its snapshot directory from here.
const DIR_ENV: &str = "SNAPSEAL_TOKIO_KV_DIR";
/// Only a guard against a hang (a node that stopped talking): no outcome depends on it.
const HANG: Duration = Duration::from_secs(300);

/// The node, when this binary runs as the child.
#[test]
#[ignore = "the node the kill test runs as its child process"]
fn the_node() {
    let dir = std::env::var_os(DIR_ENV).expect("run by the kill test, which sets the directory");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(example::run(dir.into())).unwrap();
}

/// A running node and the lines it prints.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Node {
    fn start(dir: &Path) -> Node {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tokio_kv::the_node", "--ignored", "--nocapture"])
            .env(DIR_ENV, dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node { child, lines }
    }

    /// The rest of the next line that starts with `prefix` (earlier lines are skipped).
    fn expect(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(HANG)
                .unwrap_or_else(|e| panic!("the node ended before printing {prefix:?}: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
    }

    fn committed(&self) -> u64 {
        self.expect("committed ").parse().unwrap()
    }
}

impl Drop for Node {
    /// A SIGKILL (a no-op for a child that exited): no node outlives its test, failed or not.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one command to the node at `addr`, returns its answer.
fn ask(conn: &mut BufReader<TcpStream>, command: &str) -> String {
    writeln!(conn.get_mut(), "{command}").unwrap();
    let mut answer = String::new();
    conn.read_line(&mut answer).unwrap();
    answer.trim_end().to_string()
}

/// What a kill left in `dir`: every file named committed verifies, and the newest of them is
/// the snapshot a restart finds. Returns its index and how many keys its state holds.
fn after_the_kill(dir: &Path) -> (u64, usize) {
    let store = SnapshotStore::open(Arc::new(RealFs), dir, example::store_options()).unwrap();
    let committed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .filter(|e| e.name.state == FileState::Committed)
        .collect();
    assert!(!committed.is_empty());
    for entry in &committed {
        if let Err(e) = store.read(&entry.name) {
            panic!(
                "{} is named committed but does not verify: {e}",
                entry.name.file_name()
            );
        }
    }
    let latest = store.latest().unwrap().expect("a snapshot that verifies");
    assert_eq!(latest.name(), &committed.last().unwrap().name);
    let map = example::decode(latest.body_reader().unwrap()).unwrap();
    (latest.name().idx, map.len())
}

#[test]
fn a_tokio_kv_node_killed_with_sigkill_restarts_from_its_newest_verified_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snapshots");

    // Five runs, each killed while it writes snapshots (about 50 a second), each restarted
    // from what the previous kill left.
    let (mut newest, mut keys) = (0, 0);
    for run in 0..5 {
        let node = Node::start(&dir);
        assert_eq!(
            node.expect("restored "),
            format!("{newest} {keys}"),
            "run {run}"
        );
        for _ in 0..3 {
            node.committed();
        }
        drop(node); // SIGKILL
        (newest, keys) = after_the_kill(&dir);
    }

    // A last run restores the newest snapshot, resumes its schedule from it, serves reads.
    let mut last = Node::start(&dir);
    assert_eq!(last.expect("restored "), format!("{newest} {keys}"));
    let addr = last.expect("listening ");
    assert_eq!(
        last.committed(),
        newest + 2000,
        "the first snapshot after the restart comes one interval after the restored one"
    );
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    let value: u64 = ask(&mut conn, "GET k7").parse().unwrap();
    let applied: u64 = ask(&mut conn, "APPLIED").parse().unwrap();
    assert!(
        value % 4096 == 7 && value <= applied,
        "k7 = {value}, applied {applied}"
    );
    assert!(applied > newest + 2000);
    assert_eq!(ask(&mut conn, "QUIT"), "bye");
    let closed: u64 = last.expect("closed ").parse().unwrap();
    assert!(last.child.wait().unwrap().success());

    // A clean close frees the directory; the newest snapshot is from the last run.
    let store = SnapshotStore::open(Arc::new(RealFs), &dir, example::store_options()).unwrap();
    let latest = store.latest().unwrap().unwrap().name().idx;
    assert!(latest > newest + 2000 && latest <= closed, "{latest}");
}
