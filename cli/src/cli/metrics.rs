//! `demo --metrics`: the run's counters and latency summaries in Prometheus text format.
//!
//! The libraries count through the `metrics` facade themselves (`snapseal_snapshots_*` from
//! the Snapshotter, `snapseal_store_*` from the store), so [`install`] puts the Prometheus
//! exporter's recorder in place process-wide before the run, and [`render`] adds what only the
//! demo knows (transactions, bytes, the engine's counters, latencies) and renders the lot: the
//! output is whatever a scraper of a real node would see.

use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use snapseal::engine::Counters as EngineCounters;

/// Everything the demo measured that is exported.
#[derive(Debug)]
pub(super) struct DemoMetrics<'a> {
    /// Transactions the node appended.
    pub txs: u64,
    /// The engine's work counters.
    pub engine: EngineCounters,
    /// Bytes of committed snapshot files written.
    pub bytes_written: u64,
    /// Committed snapshot files on disk at the end.
    pub files_on_disk: u64,
    /// Gate-to-acknowledgement time of each committed snapshot.
    pub persist_latencies: &'a [Duration],
    /// Wall time of each consensus-thread call into the Snapshotter.
    pub call_latencies: &'a [Duration],
}

/// Installs the Prometheus recorder for the whole process (once, before the node starts), so
/// the libraries' own counters land in it.
pub(super) fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    describe_library_metrics();
    Ok(handle)
}

/// Help text for the counters the libraries emit.
fn describe_library_metrics() {
    for (name, help) in [
        (
            "snapseal_snapshots_scheduled_total",
            "Generations created (serialisation scheduled)",
        ),
        (
            "snapseal_snapshots_committed_total",
            "Generations persisted as .committed files",
        ),
        (
            "snapseal_snapshots_skipped_total",
            "Due snapshots skipped because max_pending generations were pending",
        ),
        (
            "snapseal_snapshots_deferred_total",
            "Due snapshots deferred (cooldown or no free slot)",
        ),
        (
            "snapseal_snapshots_dropped_total",
            "Generations dropped by a rollback",
        ),
        ("snapseal_snapshots_failed_total", "Generations that failed"),
        (
            "snapseal_store_persisted_total",
            "Snapshots the store committed",
        ),
        (
            "snapseal_store_retention_deleted_total",
            "Committed snapshots deleted by retention",
        ),
        (
            "snapseal_store_stale_removed_total",
            "Stale uncommitted and pending files removed at open",
        ),
        (
            "snapseal_store_quarantined_total",
            "Files moved to quarantine",
        ),
    ] {
        describe_counter!(name, help);
    }
}

/// Records what only the demo measured into the installed recorder and renders everything in
/// the Prometheus text exposition format.
pub(super) fn render(handle: &PrometheusHandle, m: &DemoMetrics<'_>) -> String {
    record(m);
    handle.render()
}

fn record(m: &DemoMetrics<'_>) {
    let counters: [(&'static str, &'static str, u64); 5] = [
        (
            "snapseal_demo_txs_total",
            "Transactions the demo node appended",
            m.txs,
        ),
        (
            "snapseal_snapshot_bytes_written_total",
            "Bytes of committed snapshot files written",
            m.bytes_written,
        ),
        (
            "snapseal_engine_work_done_total",
            "Engine tasks and actions that returned Ok",
            m.engine.done,
        ),
        (
            "snapseal_engine_work_failed_total",
            "Engine tasks and actions that failed or panicked",
            m.engine.failed,
        ),
        (
            "snapseal_engine_work_cancelled_total",
            "Engine work discarded without running",
            m.engine.cancelled,
        ),
    ];
    for (name, help, value) in counters {
        describe_counter!(name, help);
        counter!(name).increment(value);
    }
    describe_gauge!(
        "snapseal_snapshot_files",
        "Committed snapshot files in the directory at the end of the run"
    );
    gauge!("snapseal_snapshot_files").set(m.files_on_disk as f64);
    describe_histogram!(
        "snapseal_persist_latency_seconds",
        Unit::Seconds,
        "From the commit that opened a generation's gate to the node seeing it committed"
    );
    let persist = histogram!("snapseal_persist_latency_seconds");
    for d in m.persist_latencies {
        persist.record(d.as_secs_f64());
    }
    describe_histogram!(
        "snapseal_consensus_call_latency_seconds",
        Unit::Seconds,
        "Wall time of each consensus-thread call into the Snapshotter"
    );
    let calls = histogram!("snapseal_consensus_call_latency_seconds");
    for d in m.call_latencies {
        calls.record(d.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_demo_measurements_beside_the_library_counters_in_prometheus_text() {
        // A local recorder stands in for the global one `install` sets (a test process may
        // install only one); the library counter is what the Snapshotter would emit.
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_library_metrics();
            counter!("snapseal_snapshots_committed_total").increment(4);
            record(&DemoMetrics {
                txs: 3000,
                engine: EngineCounters::default(),
                bytes_written: 1234,
                files_on_disk: 4,
                persist_latencies: &[Duration::from_millis(2), Duration::from_millis(4)],
                call_latencies: &[Duration::from_micros(3)],
            });
        });
        let text = handle.render();
        for needle in [
            "# TYPE snapseal_snapshots_committed_total counter",
            "snapseal_snapshots_committed_total 4",
            "snapseal_snapshot_bytes_written_total 1234",
            "snapseal_persist_latency_seconds_count 2",
            "snapseal_consensus_call_latency_seconds{quantile=\"0.5\"}",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
