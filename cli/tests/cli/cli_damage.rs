//! Damaged and foreign input: a flipped byte, a truncated file, foreign files, a wrong key, a
//! missing directory. Each gets a clear message and the documented exit code, and nothing that
//! is not snapseal's is ever deleted or renamed.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::support::{committed, demo_dir, flip_byte, key_file_text, names, snapseal};

/// Offset of the first body byte: right after the 160-byte header.
const BODY: usize = 160;

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_flipped_byte_fails_verify_naming_the_file_and_latest_falls_back() {
    let (_tmp, dir) = demo_dir();
    let files = committed(&dir);
    let (newest, previous) = (&files[files.len() - 1], &files[files.len() - 2]);
    flip_byte(newest, BODY + 100);
    let before = names(&dir);

    let run = snapseal(&["verify", arg(&dir)]).expect(1);
    let bad_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("FAILED"))
        .unwrap_or_else(|| panic!("no FAILED line:\n{}", run.stdout));
    assert!(bad_line.contains(arg(newest)), "{bad_line}");
    assert!(bad_line.contains("body digest"), "{bad_line}");
    // Only that file failed.
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("FAILED"))
            .count(),
        1
    );

    let run = snapseal(&["latest", "--json", arg(&dir)]).expect(0);
    let doc = run.json();
    assert_eq!(doc["latest"]["file"].as_str(), Some(arg(previous)));
    assert_eq!(doc["passed_over"][0]["file"].as_str(), Some(arg(newest)));
    assert_eq!(
        doc["passed_over"][0]["node_action"].as_str(),
        Some("quarantine")
    );
    // Read-only: verify and latest renamed nothing.
    assert_eq!(names(&dir), before);

    // --repair quarantines the failing file the way a starting node does.
    let run = snapseal(&["latest", "--repair", arg(&dir)]).expect(0);
    assert!(
        run.stdout.contains(&format!("latest: {}", arg(previous))),
        "{}",
        run.stdout
    );
    let corrupt = format!("{}.corrupt", newest.file_name().unwrap().to_string_lossy());
    assert!(names(&dir).contains(&corrupt), "{:?}", names(&dir));
    assert!(!newest.exists());
    // After quarantine the directory verifies again (quarantined files are not checked).
    snapseal(&["verify", arg(&dir)]).expect(0);
}

#[test]
fn a_truncated_file_fails_on_its_length_and_is_left_in_place() {
    let (_tmp, dir) = demo_dir();
    let files = committed(&dir);
    let newest = files.last().unwrap();
    let len = std::fs::metadata(newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let run = snapseal(&["verify", arg(newest)]).expect(1);
    assert!(run.stdout.contains(arg(newest)), "{}", run.stdout);
    assert!(run.stdout.contains("file length"), "{}", run.stdout);
    let run = snapseal(&["inspect", arg(newest)]).expect(1);
    assert!(
        run.stdout.contains("file length") && run.stdout.contains("FAILED"),
        "{}",
        run.stdout
    );
    let run = snapseal(&["latest", "--json", arg(&dir)]).expect(0);
    assert_eq!(
        run.json()["latest"]["file"].as_str(),
        Some(arg(&files[files.len() - 2]))
    );
    assert_eq!(
        std::fs::metadata(newest).unwrap().len(),
        len - 7,
        "never rewritten"
    );
}

#[test]
fn foreign_files_are_reported_skipped_and_never_touched() {
    let (tmp, dir) = demo_dir();
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"not in the dir").unwrap();
    std::fs::write(dir.join("notes.txt"), b"operator notes").unwrap();
    // Not canonical (leading zero): not ours.
    std::fs::write(dir.join("snapshot_01_2.committed"), b"junk").unwrap();
    // Our name, but a symlink: the store never follows or deletes it.
    symlink(&outside, dir.join("snapshot_999999_1000000.committed")).unwrap();
    std::fs::create_dir(dir.join("snapshot_5_6")).unwrap();
    let foreign = [
        "notes.txt",
        "snapshot_01_2.committed",
        "snapshot_999999_1000000.committed",
        "snapshot_5_6",
    ];

    let run = snapseal(&["list", "--json", arg(&dir)]).expect(0);
    let other: Vec<String> = run.json()["other"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    for f in foreign {
        assert!(other.iter().any(|o| o == f), "{f} not reported: {other:?}");
    }
    // verify names the .committed entry it does not recognise (and fails), touching nothing.
    let run = snapseal(&["verify", arg(&dir)]).expect(1);
    assert!(
        run.stdout.contains("UNRECOGNISED") && run.stdout.contains("snapshot_01_2.committed"),
        "{}",
        run.stdout
    );
    let run = snapseal(&["latest", "--repair", "--json", arg(&dir)]).expect(0);
    assert!(run.json()["latest"]["file"]
        .as_str()
        .unwrap()
        .ends_with(".committed"));
    snapseal(&["gc", "--keep-last", "1", arg(&dir)]).expect(0);

    let left = names(&dir);
    for f in foreign {
        assert!(left.contains(f), "{f} was touched: {left:?}");
    }
    assert!(left.contains("node.pub") && left.contains("committed.log"));
    assert_eq!(std::fs::read(&outside).unwrap(), b"not in the dir");
    assert_eq!(committed(&dir).len(), 1, "gc kept exactly one of ours");
}

#[test]
fn a_wrong_key_fails_verification_with_the_signer_named() {
    let (tmp, dir) = demo_dir();
    let wrong = tmp.path().join("other.pub");
    std::fs::write(&wrong, key_file_text(999)).unwrap();
    let run = snapseal(&["verify", "--key", arg(&wrong), arg(&dir)]).expect(1);
    assert!(
        run.stdout.contains("untrusted signing key"),
        "{}",
        run.stdout
    );
    let run = snapseal(&["latest", "--key", arg(&wrong), arg(&dir)]).expect(1);
    assert!(run.stdout.contains("no usable snapshot"), "{}", run.stdout);
    // A node with the wrong key set skips those files but never quarantines them.
    let before = names(&dir);
    snapseal(&["latest", "--repair", "--key", arg(&wrong), arg(&dir)]).expect(1);
    assert_eq!(
        names(&dir),
        before,
        "good snapshots must survive a wrong key"
    );
    // A key file that is not a key is a usage error naming the file and line.
    std::fs::write(&wrong, "hello\n").unwrap();
    let run = snapseal(&["verify", "--key", arg(&wrong), arg(&dir)]).expect(2);
    assert!(run.stderr.contains("other.pub:1"), "{}", run.stderr);
    // No key at all: clear message.
    std::fs::remove_file(dir.join("node.pub")).unwrap();
    let run = snapseal(&["verify", arg(&dir)]).expect(2);
    assert!(run.stderr.contains("no trusted key"), "{}", run.stderr);
}

#[test]
fn a_missing_directory_is_an_io_error_and_is_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let key = tmp.path().join("k.pub");
    std::fs::write(&key, key_file_text(1)).unwrap();
    for args in [
        vec!["list", arg(&missing)],
        vec!["verify", "--key", arg(&key), arg(&missing)],
        vec!["latest", "--key", arg(&key), arg(&missing)],
        vec!["latest", "--repair", "--key", arg(&key), arg(&missing)],
        vec!["gc", arg(&missing)],
        vec!["gc", "--dry-run", arg(&missing)],
        vec!["inspect", arg(&missing.join("snapshot_1_2.committed"))],
    ] {
        let run = snapseal(&args).expect(2);
        assert!(run.stderr.contains("nope"), "{args:?}: {}", run.stderr);
        assert!(!missing.exists(), "{args:?} created the directory");
    }
}

#[test]
fn an_empty_directory_has_nothing_usable() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("node.pub"), key_file_text(1)).unwrap();
    snapseal(&["verify", arg(tmp.path())]).expect(1);
    snapseal(&["latest", arg(tmp.path())]).expect(1);
    snapseal(&["list", arg(tmp.path())]).expect(0);
}

/// `verify DIR` names every `*.committed` entry that is not a snapshot name, and fails.
#[test]
fn verify_dir_lists_unrecognised_committed_names() {
    let (_tmp, dir) = demo_dir();
    let first = committed(&dir)[0].clone();
    std::fs::copy(&first, dir.join("snapshot_01_5.committed")).unwrap();
    std::fs::write(dir.join("foo.committed"), b"x").unwrap();
    let run = snapseal(&["verify", "--json", arg(&dir)]).expect(1);
    let doc = run.json();
    let listed: Vec<String> = doc["unrecognised"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 2, "{doc}");
    assert!(listed[0].ends_with("foo.committed") && listed[1].ends_with("snapshot_01_5.committed"));
    let text = snapseal(&["verify", arg(&dir)]).expect(1);
    assert!(text.stdout.contains("UNRECOGNISED"), "{}", text.stdout);
    assert!(
        text.stdout.contains("snapshot_01_5.committed"),
        "{}",
        text.stdout
    );
}

/// `verify FILE` with a name that is not a snapshot name reports it, even for a good file.
#[test]
fn verify_file_with_a_foreign_name_is_reported() {
    let (_tmp, dir) = demo_dir();
    let first = committed(&dir)[0].clone();
    let copy = dir.join("copy.bin");
    std::fs::copy(&first, &copy).unwrap();
    let key = dir.join("node.pub");
    let run = snapseal(&["verify", "--key", arg(&key), arg(&copy)]).expect(1);
    let expected_name = first.file_name().unwrap().to_string_lossy().into_owned();
    assert!(run.stdout.contains("not a snapshot name"), "{}", run.stdout);
    assert!(run.stdout.contains(&expected_name), "{}", run.stdout);
    // The same bytes under their own name verify.
    snapseal(&["verify", "--key", arg(&key), arg(&first)]).expect(0);
}

/// Bug: import and restore into a new DIR without `--key` said "ENOENT" (opening DIR to look
/// for node.pub). Every command that needs a key and has none says the same thing.
#[test]
fn every_command_without_a_key_says_no_trusted_key_the_same_way() {
    let tmp = tempfile::tempdir().unwrap();
    let new = tmp.path().join("new");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let remote = format!("file://{}", tmp.path().join("remote").display());
    let archive = tmp.path().join("a.tar");
    std::fs::write(&archive, b"").unwrap();
    let out = tmp.path().join("o.tar");
    for (args, dir) in [
        (
            vec!["import", "--level", "operational", arg(&archive), arg(&new)],
            &new,
        ),
        (vec!["restore", "--from", &remote, arg(&new)], &new),
        (vec!["verify", arg(&empty)], &empty),
        (vec!["latest", arg(&empty)], &empty),
        (vec!["gc", arg(&empty)], &empty),
        (vec!["gc", "--dry-run", arg(&empty)], &empty),
        (
            vec!["export", "--level", "operational", arg(&empty), arg(&out)],
            &empty,
        ),
    ] {
        let run = snapseal(&args).expect(2);
        assert_eq!(
            run.stderr.trim_end(),
            format!(
                "error: no trusted key: pass --key FILE or put node.pub in {}",
                dir.display()
            ),
            "{args:?}"
        );
        assert!(!new.exists(), "{args:?} created {}", new.display());
    }
}
