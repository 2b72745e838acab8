//! Figures, not a regular test (ignored by default; a few minutes and 4+ GiB of disk): peak
//! RSS and throughput of `export --level archival` and `import --level archival` on a demo
//! store of about 2 GiB (ledger chunks plus snapshots). Peak RSS must stay under 64 MiB above
//! the baseline (the same command on a tiny store). Run:
//!
//! ```sh
//! cargo test --release -p snapseal-cli --test cli archive_rss -- --ignored --nocapture
//! ```
//!
//! `SNAPSEAL_ARCHIVE_MIB` sets the store size (default 2048). Each measured command runs under
//! a fresh copy of this test binary that has it as its only child, so `RUSAGE_CHILDREN`'s
//! peak is that command's own.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const CHILD_ENV: &str = "SNAPSEAL_RSS_CHILD";
const BIN: &str = env!("CARGO_BIN_EXE_snapseal");

/// Runs `snapseal args` under a measuring intermediate; returns (peak RSS KiB, seconds).
fn measured(args: &[&str]) -> (u64, f64) {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "archive_rss::export_and_import_of_a_2_gib_store_stay_within_64_mib_of_rss",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, args.join("\u{1f}"))
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .unwrap_or_else(|| panic!("no figure in:\n{text}"))
        .trim()
        .parse()
        .unwrap();
    (kib, secs)
}

fn demo(dir: &Path, args: &[&str]) {
    let mut a = vec!["demo", "--quiet", "--dir", dir.to_str().unwrap()];
    a.extend_from_slice(args);
    let out = Command::new(BIN).args(&a).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

#[test]
#[ignore = "figures: minutes and 4+ GiB of disk; see the module docs"]
fn export_and_import_of_a_2_gib_store_stay_within_64_mib_of_rss() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        // The intermediate: run the one command, report its peak.
        let args: Vec<&str> = args.split('\u{1f}').collect();
        let status = Command::new(BIN).args(&args).status().unwrap();
        assert!(status.success(), "snapseal {args:?}");
        let usage =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
        println!("maxrss_kib={}", usage.max_rss());
        return;
    }
    let mib: u64 = std::env::var("SNAPSEAL_ARCHIVE_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2048);
    let tmp = tempfile::tempdir().unwrap();
    let (small, big) = (tmp.path().join("small"), tmp.path().join("big"));
    demo(&small, &["--txs", "3000", "--tx-interval", "500"]);
    // 64 KiB values: about one MiB of ledger per 16 writes.
    let txs = (mib * 16).to_string();
    let interval = (mib * 4).to_string();
    let started = Instant::now();
    demo(
        &big,
        &[
            "--txs",
            &txs,
            "--value-size",
            "65536",
            "--keys",
            "256",
            "--tx-interval",
            &interval,
        ],
    );
    let demo_secs = started.elapsed().as_secs_f64();
    let store = du(&big);
    let base_tar = tmp.path().join("base.tar");
    let (base_kib, _) = measured(&[
        "export",
        "--quiet",
        "--level",
        "archival",
        small.to_str().unwrap(),
        base_tar.to_str().unwrap(),
    ]);
    let tar = tmp.path().join("big.tar");
    let (export_kib, export_secs) = measured(&[
        "export",
        "--quiet",
        "--level",
        "archival",
        big.to_str().unwrap(),
        tar.to_str().unwrap(),
    ]);
    let archive = std::fs::metadata(&tar).unwrap().len();
    let fresh = tmp.path().join("fresh");
    let key = big.join("node.pub");
    let (import_kib, import_secs) = measured(&[
        "import",
        "--quiet",
        "--level",
        "archival",
        "--key",
        key.to_str().unwrap(),
        tar.to_str().unwrap(),
        fresh.to_str().unwrap(),
    ]);
    let m = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "store {:.0} MiB (demo {demo_secs:.1} s); archive {:.0} MiB\n\
         baseline (archival export of a {:.1} MiB store): peak RSS {:.1} MiB\n\
         export: {export_secs:.1} s, {:.0} MiB/s, peak RSS {:.1} MiB ({:+.1} MiB)\n\
         import: {import_secs:.1} s, {:.0} MiB/s, peak RSS {:.1} MiB ({:+.1} MiB)",
        m(store),
        m(archive),
        m(du(&small)),
        base_kib as f64 / 1024.0,
        m(archive) / export_secs,
        export_kib as f64 / 1024.0,
        (export_kib as f64 - base_kib as f64) / 1024.0,
        m(archive) / import_secs,
        import_kib as f64 / 1024.0,
        (import_kib as f64 - base_kib as f64) / 1024.0,
    );
    assert!(store >= mib << 20, "the store is as large as asked");
    assert!(
        export_kib < base_kib + 64 * 1024,
        "export peak {export_kib} KiB, baseline {base_kib} KiB"
    );
    assert!(
        import_kib < base_kib + 64 * 1024,
        "import peak {import_kib} KiB, baseline {base_kib} KiB"
    );
}
