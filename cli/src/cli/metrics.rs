//! `demo --metrics`: the run's counters and latency summaries in Prometheus text format,
//! recorded through the `metrics` facade into the Prometheus exporter's recorder (no
//! hand-formatting, so the output is whatever a scraper of a real node would see).

use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use snapseal::actors::SnapshotCounters;
use snapseal::engine::Counters as EngineCounters;
use snapseal::persist::StoreStats;

/// Everything the demo measured that is exported.
#[derive(Debug)]
pub(super) struct DemoMetrics<'a> {
    /// Transactions the node appended.
    pub txs: u64,
    /// The Snapshotter's counters.
    pub snapshots: SnapshotCounters,
    /// The store's counters.
    pub store: StoreStats,
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

/// Renders `m` in the Prometheus text exposition format.
pub(super) fn render(m: &DemoMetrics<'_>) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let counters: [(&'static str, &'static str, u64); 14] = [
            (
                "snapseal_demo_txs_total",
                "Transactions the demo node appended",
                m.txs,
            ),
            (
                "snapseal_snapshots_scheduled_total",
                "Generations created (serialisation scheduled)",
                m.snapshots.scheduled,
            ),
            (
                "snapseal_snapshots_committed_total",
                "Generations persisted as .committed files",
                m.snapshots.persisted,
            ),
            (
                "snapseal_snapshots_skipped_total",
                "Due snapshots skipped because max_pending generations were pending",
                m.snapshots.skipped,
            ),
            (
                "snapseal_snapshots_deferred_total",
                "Due snapshots deferred (cooldown or no free slot)",
                m.snapshots.deferred,
            ),
            (
                "snapseal_snapshots_dropped_total",
                "Generations dropped by a rollback",
                m.snapshots.dropped,
            ),
            (
                "snapseal_snapshots_failed_total",
                "Generations that failed",
                m.snapshots.failed,
            ),
            (
                "snapseal_snapshot_bytes_written_total",
                "Bytes of committed snapshot files written",
                m.bytes_written,
            ),
            (
                "snapseal_store_retention_deleted_total",
                "Committed snapshots deleted by retention",
                m.store.retention_deleted,
            ),
            (
                "snapseal_store_stale_removed_total",
                "Stale uncommitted files removed at open",
                m.store.stale_removed,
            ),
            (
                "snapseal_store_quarantined_total",
                "Files moved to quarantine",
                m.store.quarantined,
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
    });
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_summaries_in_prometheus_text() {
        let m = DemoMetrics {
            txs: 3000,
            snapshots: SnapshotCounters {
                persisted: 4,
                ..SnapshotCounters::default()
            },
            store: StoreStats::default(),
            engine: EngineCounters::default(),
            bytes_written: 1234,
            files_on_disk: 4,
            persist_latencies: &[Duration::from_millis(2), Duration::from_millis(4)],
            call_latencies: &[Duration::from_micros(3)],
        };
        let text = render(&m);
        assert!(
            text.contains("# TYPE snapseal_snapshots_committed_total counter"),
            "{text}"
        );
        assert!(
            text.contains("snapseal_snapshots_committed_total 4"),
            "{text}"
        );
        assert!(
            text.contains("snapseal_snapshot_bytes_written_total 1234"),
            "{text}"
        );
        assert!(
            text.contains("snapseal_persist_latency_seconds_count 2"),
            "{text}"
        );
        assert!(
            text.contains("snapseal_consensus_call_latency_seconds{quantile=\"0.5\"}"),
            "{text}"
        );
    }
}
