//! SIGKILL: a node's log survives it, and a killed leader loses no acknowledged write.

use serde_json::json;

use crate::support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_comes_back_alone_with_its_log_past_a_torn_tail_and_then_catches_up(
) {
    // No snapshot in this test (one every 100 entries): what the node has after the restart
    // can only come from its Raft log on disk.
    let mut c = Cluster::start(3, &[]);
    let all = [1, 2, 3];
    for i in 0..30 {
        c.put(&all, &format!("k{i}"), &format!("v{i}")).await;
    }
    let leader = c.leader_among(&all).await;
    let last = c.get(leader, "/status").await.unwrap()["last_log_index"]
        .as_u64()
        .unwrap();
    c.converged(&all, last).await;
    let follower = all.into_iter().find(|id| *id != leader).unwrap();
    let before = c.get(follower, "/status").await.unwrap();
    assert_eq!(before["last_log_index"].as_u64(), Some(last));
    assert_eq!(
        before["snapshot_index"],
        json!(null),
        "no snapshot: the log is all there is"
    );

    for id in all {
        c.kill9(id);
    }
    // A crash in the middle of a write leaves a torn frame at the end of the newest segment:
    // recovery cuts it.
    let raft_dir = c.nodes[&follower].dir.join("raft");
    let newest = std::fs::read_dir(&raft_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .max()
        .unwrap();
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    std::io::Write::write_all(&mut torn, &[200, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(torn);
    // Alone, the follower can learn nothing from anyone: its log and vote are its disk's.
    c.spawn(follower, &[]);
    let after = c
        .wait("the restarted follower's status", || async {
            c.get(follower, "/status").await
        })
        .await;
    assert_eq!(after["last_log_index"].as_u64(), Some(last), "{after}");
    assert!(after["term"].as_u64() >= before["term"].as_u64(), "{after}");

    for id in all.into_iter().filter(|id| *id != follower) {
        c.spawn(id, &[]);
    }
    c.put(&all, "after", "restart").await;
    let state = c.converged(&all, last + 1).await;
    assert_eq!(state["len"], 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_with_sigkill_gives_way_to_a_new_leader_that_lost_no_acknowledged_write()
{
    let flags = ["--snapshot-every", "20", "--keep-logs", "5"];
    let mut c = Cluster::start(3, &flags);
    let all = [1, 2, 3];
    for i in 0..60 {
        c.put(&all, &format!("k{i}"), &format!("v{i}")).await;
    }
    let old = c.leader_among(&all).await;
    c.kill9(old);
    let rest: Vec<u64> = all.into_iter().filter(|id| *id != old).collect();
    let new = c.leader_among(&rest).await;
    assert_ne!(new, old);
    for i in 0..60 {
        let key = format!("k{i}");
        let got = c
            .wait("a linearizable read on the new leader", || async {
                let leader = c.leader_among(&rest).await;
                let (code, body) = c.post(leader, "/kv/get", json!({"key": key})).await?;
                (code == 200).then_some(body)
            })
            .await;
        assert_eq!(
            got,
            json!({"value": format!("v{i}")}),
            "acknowledged write {key}"
        );
    }
    c.spawn(old, &[]);
    c.put(&all, "after", "failover").await;
    let last = c.get(new, "/status").await.unwrap()["last_applied"]
        .as_u64()
        .unwrap();
    let state = c.converged(&all, last).await;
    assert_eq!(state["len"], 61);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stops_cleanly_on_sigterm_or_when_its_stdin_ends_and_restarts_on_its_directory() {
    let mut c = Cluster::start(3, &[]);
    let all = [1, 2, 3];
    c.put(&all, "a", "1").await;
    let leader = c.leader_among(&all).await;
    let status = c.stop(leader).await;
    assert!(status.success(), "exit status {status}");
    // Restarted as `up` and the chaos driver start nodes: stdin a pipe from the parent.
    c.spawn(leader, &["--stop-with-stdin"]);
    c.put(&all, "b", "2").await;
    let last = c.get(c.leader_among(&all).await, "/status").await.unwrap()["last_applied"]
        .as_u64()
        .unwrap();
    assert_eq!(c.converged(&all, last).await["len"], 2);
    // The parent goes (its end of the pipe closes): the node stops as on SIGTERM.
    c.close_stdin(leader);
    let status = c.exited(leader).await;
    assert!(status.success(), "exit status {status}");
    assert!(c.log(leader).contains("standard input closed: stopping"));
}

/// A 1 MiB tmpfs mounted for the test's lifetime (needs root and a kernel that lets this
/// process mount; `None` otherwise).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_disk_fills_exits_non_zero_with_one_fatal_line_and_the_others_go_on() {
    let Some(disk) = SmallDisk::mount() else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    };
    let mut c = Cluster::configure(3, &[]);
    c.nodes.get_mut(&3).unwrap().dir = disk.dir.path().join("n3");
    c.launch();
    let all = [1, 2, 3];
    let big = "x".repeat(20_000);
    // 2 MB of values: node 3's log cannot hold them.
    for i in 0..100 {
        c.put(&all, &format!("k{i}"), &big).await;
    }
    let status = c.exited(3).await;
    assert_eq!(status.code(), Some(2), "{status}");
    let log = c.log(3);
    let fatal: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("snapseal-cluster node: fatal:"))
        .collect();
    assert_eq!(fatal.len(), 1, "{log}");
    assert!(fatal[0].contains("No space left on device"), "{}", fatal[0]);
    let rest = [1, 2];
    c.put(&rest, "after", "full disk").await;
    let last = c.get(c.leader_among(&rest).await, "/status").await.unwrap()["last_applied"]
        .as_u64()
        .unwrap();
    assert_eq!(c.converged(&rest, last).await["len"], 101);
    drop(c);
}
