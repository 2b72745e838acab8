//! What a run found: printed, and written as report.json in the run's directory.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::Op;
use crate::world::Recovery;

#[derive(Debug, Default, Serialize)]
pub(crate) struct Ops {
    pub(crate) total: usize,
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    pub(crate) unknown: usize,
    /// Ops that took part in the linearizability search.
    pub(crate) checked: usize,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Snapshots {
    /// Lower bounds: summed from /status polls, so a process killed between a build and the
    /// next poll is not counted.
    pub(crate) built: u64,
    pub(crate) installed: u64,
    pub(crate) shipped: u64,
    /// Nodes whose /status reported a restore from object storage.
    pub(crate) restored: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Violation {
    pub(crate) key: String,
    pub(crate) witness: Vec<Op>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) seed: u64,
    pub(crate) duration_s: u64,
    pub(crate) nodes: u64,
    pub(crate) remote: String,
    pub(crate) faults: BTreeMap<String, u64>,
    pub(crate) faults_total: u64,
    pub(crate) ops: Ops,
    pub(crate) snapshots: Snapshots,
    pub(crate) violations: Vec<Violation>,
    pub(crate) undecided_keys: Vec<String>,
    pub(crate) converged: bool,
    pub(crate) convergence_ms: Option<u64>,
    pub(crate) recovery_samples: usize,
    pub(crate) recovery_p50_ms: Option<u64>,
    pub(crate) recovery_max_ms: Option<u64>,
    /// Recoveries that did not complete within the bound.
    pub(crate) not_recovered: usize,
    /// Every recovery measured, in order.
    pub(crate) recoveries: Vec<Recovery>,
    pub(crate) latency_p50_ms: Option<f64>,
    pub(crate) latency_p99_ms: Option<f64>,
    pub(crate) verified_local_files: usize,
    pub(crate) verified_remote_objects: usize,
    pub(crate) verify_failures: Vec<String>,
    pub(crate) notes: Vec<String>,
    pub(crate) reproduction: String,
}

impl Report {
    /// No violation, converged, everything verified.
    pub(crate) fn passed(&self) -> bool {
        self.violations.is_empty() && self.converged && self.verify_failures.is_empty()
    }

    pub(crate) fn print(&self) {
        println!(
            "== snapseal-chaos seed {} ({} s, {} nodes, remote {})",
            self.seed, self.duration_s, self.nodes, self.remote
        );
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("faults: {} ({})", self.faults_total, faults.join(", "));
        let o = &self.ops;
        println!(
            "ops: {} (ok {}, failed {}, unknown {}; {} checked)",
            o.total, o.ok, o.failed, o.unknown, o.checked
        );
        let s = &self.snapshots;
        println!(
            "snapshots: built {}, installed {}, shipped {}, nodes restored from the remote {}",
            s.built, s.installed, s.shipped, s.restored
        );
        println!(
            "recovery: {} samples, p50 {}, max {}, not recovered {}",
            self.recovery_samples,
            ms(self.recovery_p50_ms),
            ms(self.recovery_max_ms),
            self.not_recovered
        );
        println!(
            "client latency: p50 {}, p99 {}",
            self.latency_p50_ms
                .map_or("-".into(), |v| format!("{v:.1} ms")),
            self.latency_p99_ms
                .map_or("-".into(), |v| format!("{v:.1} ms"))
        );
        println!(
            "converged: {} ({})",
            self.converged,
            ms(self.convergence_ms)
        );
        println!(
            "verified: {} snapshot files, {} shipped objects",
            self.verified_local_files, self.verified_remote_objects
        );
        for f in &self.verify_failures {
            println!("VERIFY FAILURE: {f}");
        }
        for k in &self.undecided_keys {
            println!("undecided (work bound reached): key {k}");
        }
        for n in &self.notes {
            println!("note: {n}");
        }
        println!("violations: {}", self.violations.len());
        for v in &self.violations {
            println!(
                "NOT LINEARIZABLE: key {} — the ops around the first that no order can place:",
                v.key
            );
            for op in &v.witness {
                println!("  {op}");
            }
        }
        println!("{}", if self.passed() { "PASSED" } else { "FAILED" });
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| format!("{v} ms"))
}

/// The `p`-th percentile (0..=100) of `sorted`.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: usize) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let i = (sorted.len() - 1) * p / 100;
    sorted.get(i).copied()
}
