//! What a restart's read of the newest snapshot adds to the resident set: a store holding one
//! 256 MiB snapshot (incompressible state; plain and zstd) is opened, `latest()` verifies it,
//! and its body streams through `body_reader()` into a hasher (what a node's restore does).
//!
//! Each case runs in a fresh child process (this program again, with `--child`): the peak is
//! reset (`/proc/self/clear_refs`) just before the store is opened, so "peak above" is `VmHWM`
//! after each step minus `VmRSS` before the first — the memory the read itself costs, not
//! the file's size (the page cache is not part of the resident set; a mapping's pages are).
//!
//! `cargo bench -p snapseal-persist --bench restart_rss` (`-- --mib N` for another size).

#[path = "../tests/rss/mod.rs"]
mod rss;

use std::process::Command;
use std::time::Instant;

use rss::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        child(&args[at + 1]);
        return;
    }
    let mib: u64 = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|at| args.get(at + 1))
        .map_or(256, |v| v.parse().expect("--mib takes a number"));
    println!("restart: latest() then body_reader() to the end, {mib} MiB snapshot, child process per case");
    println!(
        "{:<28} {:>16} {:>22} {:>10} {:>10}",
        "case", "latest() peak", "+ body read, peak", "latest()", "body read"
    );
    for (what, compression) in [("plain", None), ("zstd (level 1)", Some(1))] {
        let tmp = tempfile::tempdir().unwrap();
        let store = open_store(tmp.path());
        commit_noise(&store, 10, mib << 20, compression);
        drop(store);
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--child", &tmp.path().display().to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        println!(
            "{:<28} {:>12.1} MiB {:>18.1} MiB {:>8.3} s {:>8.3} s",
            format!("{what}"),
            f[0] / 1024.0,
            f[1] / 1024.0,
            f[2],
            f[3]
        );
    }
}

/// Opens the store in `dir`, `latest()`, streams the body; prints the peak above the start
/// after each step (KiB) and the two times (s).
fn child(dir: &str) {
    let before = reset_peak();
    let t = Instant::now();
    let store = open_store(std::path::Path::new(dir));
    let latest = store.latest().unwrap().expect("the snapshot verifies");
    let t_latest = t.elapsed().as_secs_f64();
    let after_latest = rss_kib().1 - before;
    let t = Instant::now();
    digest_of(&mut latest.body_reader().unwrap()).unwrap();
    let t_body = t.elapsed().as_secs_f64();
    let after_body = rss_kib().1 - before;
    println!("{after_latest} {after_body} {t_latest} {t_body}");
}
