//! `snapseal_sim::crash`: its checks are live (a node that gets its side wrong is caught, with
//! the seed to replay) and a seed replays exactly. The seed list over a correct node is
//! `examples/seeded_crash.rs`'s test.

use std::error::Error;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use snapseal::{CaptureError, StateSource, StateView};
use snapseal_sim::crash::{CrashFailure, CrashNode, CrashTest};

/// A running total; `Flaw` says what its restore gets wrong.
#[derive(Default)]
struct Total<F: Flaw> {
    live: Arc<Mutex<u64>>,
    flaw: std::marker::PhantomData<F>,
}

trait Flaw: Default + 'static {
    /// What the restore makes of the total the body holds.
    fn restored(total: u64) -> Result<u64, Box<dyn Error + Send + Sync>>;
}

#[derive(Default)]
struct Faithful;
impl Flaw for Faithful {
    fn restored(total: u64) -> Result<u64, Box<dyn Error + Send + Sync>> {
        Ok(total)
    }
}

/// Loses the last write's worth of state: an off-by-something restore.
#[derive(Default)]
struct Lossy;
impl Flaw for Lossy {
    fn restored(total: u64) -> Result<u64, Box<dyn Error + Send + Sync>> {
        Ok(total.saturating_sub(1))
    }
}

/// Refuses every body (a format the node no longer reads).
#[derive(Default)]
struct Refusing;
impl Flaw for Refusing {
    fn restored(_total: u64) -> Result<u64, Box<dyn Error + Send + Sync>> {
        Err("unsupported snapshot version".into())
    }
}

impl<F: Flaw> Total<F> {
    fn value(&self) -> u64 {
        *self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<F: Flaw> PartialEq for Total<F> {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl<F: Flaw> std::fmt::Debug for Total<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Total({})", self.value())
    }
}

/// Keeps the total captured at each point until released (what a correct source does).
struct Kept {
    live: Arc<Mutex<u64>>,
    kept: Mutex<Vec<(u64, u64)>>,
}

impl StateSource for Kept {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let value = match kept.iter().find(|(at, _)| *at == idx) {
            Some(&(_, value)) => value,
            None => {
                let value = *self.live.lock().unwrap_or_else(PoisonError::into_inner);
                kept.push((idx, value));
                value
            }
        };
        Ok(Box::new(Frozen(value)))
    }

    fn release(&self, idx: u64) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|(at, _)| *at != idx);
    }
}

struct Frozen(u64);
impl StateView for Frozen {
    fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.0.to_le_bytes())
    }
}

impl<F: Flaw> CrashNode for Total<F> {
    fn apply(&mut self, _idx: u64, write: u64) {
        *self.live.lock().unwrap_or_else(PoisonError::into_inner) += 1 + write % 100;
    }

    fn state_source(&self) -> Arc<dyn StateSource> {
        Arc::new(Kept {
            live: Arc::clone(&self.live),
            kept: Mutex::default(),
        })
    }

    fn restore(body: &mut dyn Read) -> Result<Self, Box<dyn Error + Send + Sync>> {
        let mut bytes = [0; 8];
        body.read_exact(&mut bytes)?;
        let total = F::restored(u64::from_le_bytes(bytes))?;
        Ok(Total {
            live: Arc::new(Mutex::new(total)),
            flaw: std::marker::PhantomData,
        })
    }
}

/// The first failure over seeds 1 ..= 100 (a recovery from a snapshot comes within a few).
fn first_failure<F: Flaw>() -> CrashFailure {
    (1..=100)
        .find_map(|seed| CrashTest::<Total<F>>::new(seed).run(200).err())
        .expect("some seed recovers from a snapshot")
}

#[test]
fn a_restore_that_loses_state_is_caught_with_its_seed() {
    let failure = first_failure::<Lossy>();
    assert!(failure.detail.contains("restores to"), "{failure}");
    // The failure replays: the same seed fails the same way at the same step.
    let again = CrashTest::<Total<Lossy>>::new(failure.seed).run(200);
    assert_eq!(again.err(), Some(failure));
}

#[test]
fn a_restore_that_refuses_a_verified_body_is_caught() {
    let failure = first_failure::<Refusing>();
    assert!(failure.detail.contains("could not restore"), "{failure}");
    assert!(
        failure.detail.contains("unsupported snapshot version"),
        "{failure}"
    );
}

#[test]
fn a_seed_replays_to_the_same_report() {
    for seed in [3, 8, 21] {
        let first = CrashTest::<Total<Faithful>>::new(seed).run(150);
        let second = CrashTest::<Total<Faithful>>::new(seed).run(150);
        let first = first.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Ok(first), second, "seed {seed}");
    }
}

#[test]
fn without_faults_none_is_injected_and_recoveries_still_use_snapshots() {
    let reports: Vec<_> = (1..=8)
        .map(|seed| {
            CrashTest::<Total<Faithful>>::new(seed)
                .with_faults(false)
                .run(200)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    assert!(reports.iter().all(|r| r.faults == 0), "{reports:?}");
    assert!(
        reports.iter().any(|r| r.restored_from_snapshot > 0),
        "{reports:?}"
    );
    assert!(reports.iter().any(|r| r.acked > 0), "{reports:?}");
}
