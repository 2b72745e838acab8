//! `snapseal remote repair` on a `file://` remote: a node's index torn, a forged object and a
//! hold — repair names every object that verifies, drops the forged one saying why, keeps the
//! hold, and says so; a legacy shared index is migrated (its hold with it) and deleted.

use std::path::Path;

use crate::cli_ship::shipped_demo;
use crate::support::{committed, snapseal};

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fname(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn remote_repair_rewrites_a_torn_index_from_what_verifies_and_keeps_the_hold() {
    let (_tmp, dir, remote, url) = shipped_demo();
    let files: Vec<String> = committed(&dir).iter().map(|p| fname(p)).collect();
    snapseal(&["remote", "hold", &url, "--node", "demo", &files[0]]).expect(0);
    std::fs::write(
        remote.join("demo").join("index.json"),
        b"{\"format\": 2, \"no",
    )
    .unwrap();
    std::fs::write(
        remote
            .join("demo")
            .join("snapshot_999999_1000000.committed"),
        b"forged",
    )
    .unwrap();
    let key = dir.join("node.pub");
    // Without a trusted key, nothing is done.
    snapseal(&["remote", "repair", &url]).expect(2);

    let report = snapseal(&["remote", "repair", "--json", &url, "--key", arg(&key)])
        .expect(0)
        .json();
    let node = &report["nodes"][0];
    assert_eq!(node["node"], "demo");
    assert!(
        node["previous"].as_str().unwrap().starts_with("unusable"),
        "{report}"
    );
    let kept: Vec<&str> = node["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(kept, files);
    assert_eq!(
        node["dropped"][0]["file"],
        "snapshot_999999_1000000.committed"
    );
    assert!(
        node["dropped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("shorter than a header"),
        "{report}"
    );
    assert_eq!(node["holds"][0].as_str(), Some(files[0].as_str()));

    let text = snapseal(&["remote", "repair", &url, "--key", arg(&key)]).expect(0);
    assert!(
        text.stdout
            .contains("dropped demo/snapshot_999999_1000000.committed"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("rewrote demo/index.json"),
        "{}",
        text.stdout
    );
    let listed = snapseal(&["remote", "list", "--json", &url])
        .expect(0)
        .json();
    for o in listed.as_array().unwrap() {
        let file = o["file"].as_str().unwrap();
        assert_eq!(o["indexed"], files.iter().any(|f| f == file), "{o}");
        assert_eq!(o["held"], file == files[0], "{o}");
    }
}

#[test]
fn remote_repair_migrates_a_legacy_index_with_its_hold_and_deletes_it() {
    let (_tmp, dir, remote, url) = shipped_demo();
    let files: Vec<String> = committed(&dir).iter().map(|p| fname(p)).collect();
    // The layout the previous version left: one shared index naming the node's snapshots
    // and its hold, no index of the node's own.
    let node_index = remote.join("demo").join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&node_index).unwrap()).unwrap();
    let legacy = serde_json::json!({
        "format": 1,
        "nodes": { "demo": { "snapshots": index["snapshots"], "holds": [files[0]] } }
    });
    std::fs::remove_file(&node_index).unwrap();
    std::fs::write(remote.join("index.json"), legacy.to_string()).unwrap();
    // A hold only the legacy index holds cannot be released before the migration.
    snapseal(&["remote", "release", &url, "--node", "demo", &files[0]]).expect(2);

    let key = dir.join("node.pub");
    let report = snapseal(&["remote", "repair", "--json", &url, "--key", arg(&key)])
        .expect(0)
        .json();
    assert_eq!(report["legacy"], "migrated and deleted", "{report}");
    assert_eq!(
        report["nodes"][0]["holds_migrated"][0].as_str(),
        Some(files[0].as_str())
    );
    assert!(!remote.join("index.json").exists());
    assert!(remote.join("demo").join("holds").join(&files[0]).exists());
    snapseal(&["remote", "release", &url, "--node", "demo", &files[0]]).expect(0);
}
