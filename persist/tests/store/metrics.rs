//! The store's counters reach a `metrics` recorder the process installs (here a Prometheus
//! recorder local to the test thread, where `persist` and `latest` run).

use crate::fixture::*;
use metrics_exporter_prometheus::PrometheusBuilder;
use snapseal_persist::fs::SimFs;

#[test]
fn persist_and_quarantine_are_counted_through_the_metrics_facade() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let sim = SimFs::new(1);
        let store = open(&sim, opts());
        for idx in [10, 20] {
            store.persist(&Snap::new(idx, 64).request()).unwrap();
        }
        // A corrupt newest file is quarantined by `latest`.
        let mut bad = Snap::new(30, 64).file_bytes();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        sim.plant_file(
            dir(),
            &Snap::new(30, 64).file_name(snapseal_persist::FileState::Committed),
            &bad,
            true,
        );
        assert_eq!(store.latest().unwrap().unwrap().name().idx, 20);
        assert_eq!(store.stats().persisted, 2);
    });
    let text = handle.render();
    assert!(text.contains("snapseal_store_persisted_total 2"), "{text}");
    assert!(
        text.contains("snapseal_store_quarantined_total 1"),
        "{text}"
    );
}
