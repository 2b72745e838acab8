//! Chunked snapshots on `file://` remotes through the command: `remote gc` says how many
//! chunk objects (and bytes) it deleted, and `restore --chunk-source` takes the chunks the
//! first remote lacks from another.

use std::path::{Path, PathBuf};

use crate::support::{committed, snapseal, SMALL_DEMO};

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A chunked demo in `<tmp>/snap` shipped to `<tmp>/remote` as node `demo`; its file:// URL.
fn shipped_chunked_demo(tmp: &Path) -> (PathBuf, PathBuf, String) {
    let (dir, remote) = (tmp.join("snap"), tmp.join("remote"));
    let url = format!("file://{}", remote.display());
    let mut args = vec![
        "demo",
        "--quiet",
        "--chunked",
        "--dir",
        arg(&dir),
        "--ship-to",
        &url,
    ];
    args.extend(SMALL_DEMO);
    snapseal(&args).expect(0);
    (dir, remote, url)
}

/// The chunk objects of node `demo` on the file:// remote at `remote`, sorted.
fn chunk_objects(remote: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(remote.join("demo").join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

/// The chunk hashes (hex) the committed chunked snapshot `file` lists, in order: its body
/// after the 160-byte header (docs/FORMAT.md §2.2).
fn chunks_of(file: &Path) -> Vec<String> {
    use snapseal_persist::internals::format::{Header, HEADER_LEN};
    let bytes = std::fs::read(file).unwrap();
    let header = Header::decode(&bytes[..HEADER_LEN]).unwrap();
    let list = &bytes[HEADER_LEN..HEADER_LEN + header.body_len as usize];
    snapseal_persist::internals::chunks::decode_list(list, header.raw_len)
        .unwrap()
        .iter()
        .map(|(_, h)| snapseal_persist::to_hex(h))
        .collect()
}

/// The file name of the newest committed snapshot of `dir`.
fn newest_name(dir: &Path) -> String {
    let newest = committed(dir).pop().unwrap();
    newest.file_name().unwrap().to_str().unwrap().to_string()
}

/// A copy of the directory `from` at `to` (a second file:// remote).
fn copy_dir(from: &Path, to: &Path) {
    let copied = std::process::Command::new("cp")
        .args(["-a", arg(from), arg(to)])
        .status()
        .unwrap();
    assert!(copied.success());
}

/// `snapseal restore --json --from url [extra] new --key dir/node.pub`.
fn restore(url: &str, dir: &Path, new: &Path, extra: &[&str]) -> crate::support::Run {
    let key = dir.join("node.pub");
    let mut args = vec!["restore", "--json", "--from", url];
    args.extend(extra);
    args.extend([arg(new), "--key", arg(&key)]);
    snapseal(&args)
}

#[test]
fn remote_gc_reports_the_chunk_objects_it_deleted_and_the_newest_still_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote, url) = shipped_chunked_demo(tmp.path());
    let before = chunk_objects(&remote).len();
    // On a copy of the remote, the text says how many chunk objects gc deleted. (A dry run
    // counts only chunks dead already: those of the snapshot objects it would delete are
    // still named.)
    let copy = tmp.path().join("copy");
    copy_dir(&remote, &copy);
    let copy_url = format!("file://{}", copy.display());
    let text = snapseal(&["remote", "gc", &copy_url, "--keep-last", "1"]).expect(0);
    let said = text
        .stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("deleted ")?
                .split_once(" chunk object(s) no snapshot names (")
        })
        .map(|(n, _)| n.parse::<usize>().unwrap())
        .unwrap_or_else(|| panic!("no chunk line: {}", text.stdout));
    let gc = snapseal(&["remote", "gc", "--json", &url, "--keep-last", "1"])
        .expect(0)
        .json();
    let deleted = gc["chunks_deleted"].as_u64().unwrap() as usize;
    assert!(deleted > 0, "older snapshots' own chunks are dead: {gc}");
    assert_eq!(deleted, said, "{gc}");
    assert_eq!(before - chunk_objects(&remote).len(), deleted);
    assert!(
        gc["chunk_bytes_deleted"].as_u64().unwrap() >= deleted as u64,
        "{gc}"
    );
    let newest = newest_name(&dir);
    let r = restore(&url, &dir, &tmp.path().join("new"), &[])
        .expect(0)
        .json();
    assert_eq!(r["restored"].as_str(), Some(newest.as_str()));
}

#[test]
fn restore_takes_the_chunks_one_remote_lacks_from_a_chunk_source() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, remote, url) = shipped_chunked_demo(tmp.path());
    // A second remote, a copy of the first.
    let other = tmp.path().join("other");
    copy_dir(&remote, &other);
    // The newest snapshot's chunks: the first only on the second remote, the others only
    // on the first.
    let named = chunks_of(committed(&dir).last().unwrap());
    assert!(named.len() >= 2, "{named:?}");
    let objects = |r: &Path| r.join("demo").join("chunks");
    std::fs::remove_file(objects(&remote).join(&named[0])).unwrap();
    for hash in &named[1..] {
        std::fs::remove_file(objects(&other).join(hash)).unwrap();
    }
    let newest = newest_name(&dir);
    // Alone, the first remote cannot give the newest snapshot.
    let alone = restore(&url, &dir, &tmp.path().join("alone"), &[]);
    assert!(
        alone.code != 0 || alone.json()["restored"].as_str() != Some(newest.as_str()),
        "{}",
        alone.stdout
    );
    // With the second as a chunk source it does, and the result verifies.
    let other_url = format!("file://{}", other.display());
    let new = tmp.path().join("new");
    let r = restore(&url, &dir, &new, &["--chunk-source", &other_url])
        .expect(0)
        .json();
    assert_eq!(r["restored"].as_str(), Some(newest.as_str()), "{r}");
    let key = dir.join("node.pub");
    snapseal(&["verify", arg(&new), "--key", arg(&key)]).expect(0);
}
