//! The `demo` command end to end, and how bad input to it is refused.

mod cli_support;

use cli_support::{committed, demo_dir, key_file_text, names, snapseal, SMALL_DEMO};

#[test]
fn demo_then_verify_succeeds() {
    let (_tmp, dir) = demo_dir();
    let files = committed(&dir);
    assert!(files.len() >= 2, "several snapshots committed: {files:?}");
    let run = snapseal(&["verify".as_ref(), dir.as_os_str()]).expect(0);
    for f in &files {
        assert!(
            run.stdout.contains(&f.display().to_string()),
            "{}",
            run.stdout
        );
    }
    // The demo's public key file is the one for its (default) seed.
    let key = std::fs::read_to_string(dir.join("node.pub")).unwrap();
    assert_eq!(key, key_file_text(1));
}

#[test]
fn committed_log_has_one_line_per_acknowledged_snapshot() {
    let (_tmp, dir) = demo_dir();
    let log = std::fs::read_to_string(dir.join("committed.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "idx evidence_idx file digest: {line}");
        assert_eq!(
            fields[2],
            format!("snapshot_{}_{}.committed", fields[0], fields[1])
        );
        assert_eq!(fields[3].len(), 64);
    }
    // Retention may have deleted older ones, never one the log does not know.
    for f in committed(&dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            lines.iter().any(|l| l.contains(&name)),
            "{name} not in the log"
        );
    }
}

#[test]
fn json_summary_and_prometheus_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let mut args = vec![
        "demo",
        "--json",
        "--metrics",
        "--dir",
        dir.to_str().unwrap(),
    ];
    args.extend(SMALL_DEMO);
    let run = snapseal(&args).expect(0);
    let doc = run.json();
    let committed_n = doc["snapshots"]["committed"].as_u64().unwrap();
    assert!(committed_n >= 2);
    assert_eq!(
        doc["verified"].as_u64().unwrap(),
        committed(&dir).len() as u64
    );
    assert!(doc["persist_latency"]["samples"].as_u64().unwrap() >= 1);
    assert!(doc["latest"].as_str().unwrap().ends_with(".committed"));
    let metrics = doc["metrics"].as_str().unwrap();
    assert!(metrics.contains("# TYPE snapseal_snapshots_committed_total counter"));
    assert!(metrics.contains(&format!("snapseal_snapshots_committed_total {committed_n}")));
    assert!(metrics.contains("snapseal_persist_latency_seconds{quantile=\"0.99\"}"));
}

#[test]
fn demo_refuses_a_non_empty_directory_and_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), b"mine").unwrap();
    let before = names(tmp.path());
    let mut args = vec!["demo", "--dir", tmp.path().to_str().unwrap()];
    args.extend(SMALL_DEMO);
    let run = snapseal(&args).expect(2);
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    assert_eq!(names(tmp.path()), before);
}

#[test]
fn a_bad_config_value_is_named_with_its_range_and_nothing_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("demo.toml");
    std::fs::write(&config, "[demo]\ntxs = 3000\nsig_every = 1\n").unwrap();
    let dir = tmp.path().join("snap");
    let run = snapseal(&[
        "--config",
        config.to_str().unwrap(),
        "demo",
        "--dir",
        dir.to_str().unwrap(),
    ])
    .expect(2);
    assert!(
        run.stderr.contains("`demo.sig_every` = 1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("2 ..= 1000000"), "{}", run.stderr);
    assert!(!dir.exists(), "no directory for a refused config");
}

#[test]
fn an_unknown_config_key_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("demo.toml");
    std::fs::write(&config, "[store]\nkeep_lats = 3\n").unwrap();
    let run = snapseal(&["demo", "--config", config.to_str().unwrap()]).expect(2);
    assert!(run.stderr.contains("keep_lats"), "{}", run.stderr);
}

#[test]
fn a_bad_flag_names_the_flag_and_the_key() {
    let run = snapseal(&["demo", "--txs", "0"]).expect(2);
    assert!(
        run.stderr.contains("--txs 0") && run.stderr.contains("demo.txs"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_config_file_drives_the_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("demo.toml");
    std::fs::write(
        &config,
        "[demo]\ntxs = 2000\ntx_interval = 400\nsig_every = 40\ncompression = 3\n\
         [store]\nkeep_last = 2\n",
    )
    .unwrap();
    let dir = tmp.path().join("snap");
    let run = snapseal(&[
        "demo",
        "--json",
        "--config",
        config.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
    ])
    .expect(0);
    let doc = run.json();
    assert_eq!(doc["txs"].as_u64(), Some(2000));
    assert_eq!(doc["keep_last"].as_u64(), Some(2));
    assert_eq!(committed(&dir).len(), 2, "keep_last 2 from the file");
    // Compressed bodies: inspect says so.
    let newest = committed(&dir).pop().unwrap();
    let run = snapseal(&["inspect".as_ref(), "--json".as_ref(), newest.as_os_str()]).expect(0);
    assert_eq!(run.json()["header"]["compressed"].as_bool(), Some(true));
}

#[test]
fn help_documents_the_exit_codes() {
    let run = snapseal(&["--help"]).expect(0);
    for line in [
        "0  success",
        "1  verification failed",
        "2  usage or I/O error",
    ] {
        assert!(run.stdout.contains(line), "{}", run.stdout);
    }
    let run = snapseal(&["verify", "--help"]).expect(0);
    assert!(
        run.stdout.contains("1  verification failed"),
        "{}",
        run.stdout
    );
    // clap's own usage errors exit 2 as documented.
    snapseal(&["no-such-command"]).expect(2);
}
