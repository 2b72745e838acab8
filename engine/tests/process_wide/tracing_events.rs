//! The tracing side of the contract: every action runs in a span carrying its queue and
//! action names, every task in a span carrying its name, and a failure emits an `error!`
//! event naming the queue and the action. One test, with a minimal recording subscriber set as
//! the default for the test's thread (manual mode runs every action on that thread). It runs
//! alone ([`crate::alone`]): a callsite first hit on another test's thread while this
//! subscriber is being set could keep an interest that leaves it out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use snapseal_engine::TaskSystem;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

type Fields = Vec<(String, String)>;

#[derive(Default)]
struct Recorded {
    spans: Mutex<Vec<(String, Fields)>>,
    events: Mutex<Vec<(Level, Fields)>>,
    next_id: AtomicU64,
}

struct Recorder(Arc<Recorded>);

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Vec::new();
        span.record(&mut Collect(&mut fields));
        self.0
            .spans
            .lock()
            .push((span.metadata().name().to_owned(), fields));
        Id::from_u64(self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Collect(&mut fields));
        self.0
            .events
            .lock()
            .push((*event.metadata().level(), fields));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn has(fields: &Fields, name: &str, value: &str) -> bool {
    fields.iter().any(|(n, v)| n == name && v == value)
}

#[test]
fn actions_and_tasks_run_in_named_spans_and_failures_emit_error_events() {
    let _alone = crate::alone();
    let recorded = Arc::new(Recorded::default());
    tracing::subscriber::with_default(Recorder(Arc::clone(&recorded)), || {
        let system = TaskSystem::manual_fifo();
        let queue = system.ordered("gen-7");
        assert!(queue.add_action("serialise", || Ok(())));
        assert!(queue.add_action("persist", || Err("disk full".into())));
        system.spawn("housekeeping", || Ok(()));
        system.run_until_idle();
    });

    let spans = recorded.spans.lock();
    for action in ["serialise", "persist"] {
        assert!(
            spans.iter().any(|(name, fields)| name == "action"
                && has(fields, "queue", "gen-7")
                && has(fields, "action", action)),
            "no span for action {action}: {spans:?}"
        );
    }
    assert!(
        spans
            .iter()
            .any(|(name, fields)| name == "task" && has(fields, "task", "housekeeping")),
        "no span for the task: {spans:?}"
    );

    let events = recorded.events.lock();
    let errors: Vec<_> = events
        .iter()
        .filter(|(level, _)| *level == Level::ERROR)
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly the one failure is reported: {events:?}"
    );
    let fields = &errors[0].1;
    assert!(has(fields, "queue", "gen-7"));
    assert!(has(fields, "action", "persist"));
    assert!(has(fields, "message", "disk full"));
    assert!(has(fields, "panicked", "false"));
}
