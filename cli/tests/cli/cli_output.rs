//! How the command writes and exits: help and results to a full device, non-UTF-8 arguments,
//! the `--seed` and `gc` ranges, the demo's directory line, and each documented exit code.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{committed, key_file_text, snapseal, SMALL_DEMO};

/// Runs `snapseal args...` with stdout on `/dev/full`: (exit code, stderr).
fn to_full_device(args: &[&str]) -> (i32, String) {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full (Linux)");
    let out = Command::new(env!("CARGO_BIN_EXE_snapseal"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(full))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_results_written_to_a_full_device_exit_2_with_a_message() {
    let (_tmp, dir) = crate::support::demo_dir();
    let dir = dir.to_str().unwrap();
    for args in [
        &["help"][..],
        &["--help"],
        &["demo", "--help"],
        &["--version"],
        &["list", dir],
        &["list", "--json", dir],
    ] {
        let (code, stderr) = to_full_device(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("writing to stdout") && stderr.contains("No space left"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_non_utf8_argument_is_a_usage_error_or_a_path_never_a_panic() {
    let bad = OsStr::from_bytes(b"\xff\xfe");
    let run = snapseal(&[OsStr::new("demo"), OsStr::new("--txs"), bad]).expect(2);
    assert!(run.stderr.contains("UTF-8"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    // A path may be any bytes: it is taken as given (and here does not exist).
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join(bad);
    let run = snapseal(&[OsStr::new("list"), missing.as_os_str()]).expect(2);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn the_seed_range_is_the_documented_one_for_flags_and_files() {
    // Wrapped at whatever width clap picks: compare with whitespace collapsed.
    let help = snapseal(&["demo", "--help"]).expect(0).stdout;
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("0 ..= 9223372036854775807"), "{help}");
    assert!(help.contains("--deterministic"), "{help}");
    let run = snapseal(&["demo", "--seed", "9223372036854775808"]).expect(2);
    assert!(run.stderr.contains("--seed"), "{}", run.stderr);
    assert!(run.stderr.contains("9223372036854775807"), "{}", run.stderr);
    // The largest seed is taken, from the flag and from a file.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, "[demo]\nseed = 9223372036854775807\n").unwrap();
    for (name, extra) in [("a", vec!["--seed", "9223372036854775807"]), ("b", vec![])] {
        let dir = tmp.path().join(name);
        let mut args = vec!["--config", config.to_str().unwrap(), "demo", "--quiet"];
        args.extend(["--dir", dir.to_str().unwrap()]);
        args.extend(SMALL_DEMO);
        args.extend(extra);
        snapseal(&args).expect(0);
    }
    std::fs::write(&config, "[demo]\nseed = -1\n").unwrap();
    let run = snapseal(&["--config", config.to_str().unwrap(), "list", "."]).expect(2);
    assert!(run.stderr.contains("`demo.seed` = -1"), "{}", run.stderr);
}

#[test]
fn demo_names_its_directory_once_before_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("snap");
    let mut args = vec!["demo", "--dir", dir.to_str().unwrap()];
    args.extend(SMALL_DEMO);
    let run = snapseal(&args).expect(0);
    let heads: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|l| l.starts_with("snapseal demo:"))
        .collect();
    assert_eq!(
        heads,
        [format!("snapseal demo: {}", dir.display())],
        "{run:?}"
    );
    assert!(run.stdout.starts_with("snapseal demo: "), "{}", run.stdout);
    assert!(Path::new(&dir).is_dir());
}

/// Each code in the `--help` table is the one a command in that situation exits with.
#[test]
fn every_documented_exit_code_is_the_one_commands_exit_with() {
    let help = snapseal(&["--help"]).expect(0).stdout;
    let (tmp, dir) = crate::support::demo_dir();
    let newest = committed(&dir).pop().unwrap();
    let no_key = tmp.path().join("no-key");
    std::fs::create_dir(&no_key).unwrap();
    let alone = no_key.join(newest.file_name().unwrap());
    std::fs::copy(&newest, &alone).unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("node.pub"), key_file_text(1)).unwrap();
    let missing = tmp.path().join("missing");
    let [d, alone, empty, no_key, missing] =
        [&dir, &alone, &empty, &no_key, &missing].map(|p| p.to_str().unwrap().to_string());
    let cases: [(i32, &str, Vec<&str>); 8] = [
        (0, "success", vec!["verify", &d]),
        (
            1,
            "verification failed, or nothing usable",
            vec!["verify", &empty],
        ),
        (
            1,
            "verification failed, or nothing usable",
            vec!["latest", &empty],
        ),
        (
            2,
            "usage or I/O error",
            vec!["verify", "--no-such-flag", &d],
        ),
        (2, "usage or I/O error", vec!["list", &missing]),
        (2, "usage or I/O error", vec!["verify", &no_key]),
        (2, "usage or I/O error", vec!["gc", "--keep-last", "0", &d]),
        (3, "inspect without a key", vec!["inspect", &alone]),
    ];
    for (code, meaning, args) in cases {
        assert!(
            help.contains(&format!("\n  {code}  {meaning}")),
            "{code} {meaning}: {help}"
        );
        snapseal(&args).expect(code);
    }
}

#[test]
fn gc_numeric_options_out_of_range_are_usage_errors_naming_the_range() {
    for (flag, value, allowed) in [
        ("--keep-last", "0", "allowed 1 ..= 1000000"),
        ("--keep-last", "1000001", "allowed 1 ..= 1000000"),
        ("--max-bytes", "0", "allowed 1 ..= 9223372036854775807"),
        (
            "--max-bytes",
            "9223372036854775808",
            "allowed 1 ..= 9223372036854775807",
        ),
    ] {
        let run = snapseal(&["gc", "--dry-run", flag, value, "."]).expect(2);
        assert!(
            run.stderr
                .contains(&format!("{flag} {value} is out of range: {allowed}")),
            "{flag} {value}: {}",
            run.stderr
        );
    }
    let help = snapseal(&["gc", "--help"]).expect(0).stdout;
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("1 ..= 1000000"), "{help}");
    assert!(help.contains("1 ..= 9223372036854775807"), "{help}");
}
