//! `demo --ship-to`, `ship`, `restore` and `remote` on the local-directory remote.

mod cli_support;

use std::path::Path;

use cli_support::{committed, snapseal, SMALL_DEMO};

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fname(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn demo_ship_to_then_restore_gives_the_newest_snapshot_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote, new) = (
        tmp.path().join("snap"),
        tmp.path().join("remote"),
        tmp.path().join("new"),
    );
    let url = format!("file://{}", remote.display());
    let mut args = vec!["demo", "--dir", arg(&dir), "--ship-to", &url];
    args.extend(SMALL_DEMO);
    snapseal(&args).expect(0);
    let files = committed(&dir);
    let newest = fname(files.last().unwrap());
    assert!(files.len() >= 4, "{files:?}");
    let key = dir.join("node.pub");
    let run = snapseal(&[
        "restore",
        "--json",
        "--from",
        &url,
        arg(&new),
        "--key",
        arg(&key),
    ])
    .expect(0);
    let report = run.json();
    assert_eq!(report["restored"].as_str(), Some(newest.as_str()));
    assert_eq!(report["latest"].as_str(), Some(newest.as_str()));
    assert_eq!(
        std::fs::read(new.join(&newest)).unwrap(),
        std::fs::read(dir.join(&newest)).unwrap()
    );
    snapseal(&["verify", arg(&new), "--key", arg(&key)]).expect(0);

    // Shipping again uploads nothing; the listing names every file, indexed.
    let again = snapseal(&["ship", "--json", arg(&dir), "--to", &url, "--node", "demo"]).expect(0);
    assert_eq!(again.json()["shipped"].as_array().unwrap().len(), 0);
    let listed = snapseal(&["remote", "list", "--json", &url])
        .expect(0)
        .json();
    assert_eq!(listed.as_array().unwrap().len(), files.len());
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["indexed"] == true));

    // Remote gc keeps the newest two and the held one.
    let oldest = fname(&files[0]);
    snapseal(&["remote", "hold", &url, "--node", "demo", &oldest]).expect(0);
    let gc = snapseal(&["remote", "gc", "--json", &url, "--keep-last", "2"])
        .expect(0)
        .json();
    assert_eq!(gc["kept"].as_array().unwrap().len(), 3);
    assert!(remote.join("demo").join(&oldest).exists());
    assert_eq!(gc["deleted"].as_array().unwrap().len(), files.len() - 3);
    assert!(!remote.join("demo").join(fname(&files[1])).exists());
    snapseal(&["remote", "release", &url, "--node", "demo", &oldest]).expect(0);
}

#[test]
fn restore_from_an_empty_remote_fails_with_exit_2_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.pub");
    let public = snapseal::persist::SigningKey::from_bytes(&[7; 32]).verifying_key();
    std::fs::write(
        &key,
        format!("{}\n", snapseal::persist::to_hex(public.as_bytes())),
    )
    .unwrap();
    let url = format!("file://{}", tmp.path().join("empty").display());
    let new = tmp.path().join("new");
    let run = snapseal(&["restore", "--from", &url, arg(&new), "--key", arg(&key)]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no snapshot restored"),
        "{}",
        run.stderr
    );
    assert!(committed(&new).is_empty());
}
