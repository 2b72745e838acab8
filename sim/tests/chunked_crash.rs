//! The seeded crash driver over a chunked store: power losses in pack writes and retention
//! sweeps, rollbacks, faults, and chunks shared across generations; after every recovery no
//! retained committed snapshot names a chunk the store lost.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use snapseal_actors::{CaptureError, StateSource, StateView};
use snapseal_sim::crash::{CrashNode, CrashTest};

/// Blocks in the state.
const BLOCKS: usize = 32;
/// Bytes per block: the state is 256 KiB, a handful of 16–256 KiB chunks.
const BLOCK: usize = 8 << 10;
const STATE: usize = BLOCKS * BLOCK;

/// States captured (bodies snapseal built), over every run of the test.
static CAPTURED: AtomicU64 = AtomicU64::new(0);

/// A node whose state is a byte array that each write patches in one place, mostly near the
/// start, so consecutive snapshots differ in a chunk or two and share the rest.
struct Blocks(Arc<Mutex<Vec<u8>>>);

impl Default for Blocks {
    /// Pseudo-random bytes (the same every time), so FastCDC cuts chunks of varied sizes.
    fn default() -> Self {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let state = (0..STATE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Blocks(Arc::new(Mutex::new(state)))
    }
}

impl fmt::Debug for Blocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.lock().unwrap();
        write!(f, "Blocks(blake3 {})", blake3::hash(&state).to_hex())
    }
}

impl PartialEq for Blocks {
    fn eq(&self, other: &Self) -> bool {
        *self.0.lock().unwrap() == *other.0.lock().unwrap()
    }
}

impl CrashNode for Blocks {
    /// Writes the 8 bytes of `write` into a block and offset it picks: seven writes in eight
    /// into the first block (a hot spot, as real states have), the rest anywhere.
    fn apply(&mut self, _idx: u64, write: u64) {
        let block = if write & 7 == 0 {
            ((write >> 3) % BLOCKS as u64) as usize
        } else {
            0
        };
        let offset = ((write >> 8) % (BLOCK as u64 - 8)) as usize;
        let at = block * BLOCK + offset;
        self.0.lock().unwrap()[at..at + 8].copy_from_slice(&write.to_le_bytes());
    }

    fn state_source(&self) -> Arc<dyn StateSource> {
        Arc::new(Versions {
            live: Arc::clone(&self.0),
            kept: Mutex::default(),
        })
    }

    fn restore(body: &mut dyn Read) -> Result<Self, Box<dyn Error + Send + Sync>> {
        let mut state = Vec::with_capacity(STATE);
        body.read_to_end(&mut state)?;
        if state.len() != STATE {
            return Err(format!("a body of {} bytes, not {STATE}", state.len()).into());
        }
        Ok(Blocks(Arc::new(Mutex::new(state))))
    }
}

/// Keeps the state captured at each point until snapseal releases it (a rollback can make it
/// capture the same point again later).
struct Versions {
    live: Arc<Mutex<Vec<u8>>>,
    kept: Mutex<BTreeMap<u64, Arc<Vec<u8>>>>,
}

impl StateSource for Versions {
    fn capture(&self, idx: u64) -> Result<Box<dyn StateView>, CaptureError> {
        let mut kept = self.kept.lock().unwrap();
        let state = kept.entry(idx).or_insert_with(|| {
            CAPTURED.fetch_add(1, Ordering::Relaxed);
            Arc::new(self.live.lock().unwrap().clone())
        });
        Ok(Box::new(Frozen(Arc::clone(state))))
    }

    fn release(&self, idx: u64) {
        self.kept.lock().unwrap().remove(&idx);
    }
}

struct Frozen(Arc<Vec<u8>>);

impl StateView for Frozen {
    fn write_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        // In uneven pieces, as a node streams its state.
        for piece in self.0.chunks(10_007) {
            out.write_all(piece)?;
        }
        Ok(())
    }
}

/// Seeds the test runs; each is a different run (settings, schedule, faults, crash points).
const SEEDS: u64 = 200;
const STEPS: usize = 120;

#[test]
fn no_retained_chunked_snapshot_names_a_missing_chunk_across_seeded_crashes() {
    let mut checked = 0;
    let mut chunk_bytes = 0;
    let mut mid_job = 0;
    let mut rollbacks = 0;
    for seed in 0..SEEDS {
        let report = CrashTest::<Blocks>::new(seed)
            .with_chunked(true)
            .run(STEPS)
            .unwrap_or_else(|e| panic!("{e}"));
        checked += report.retained_checked;
        chunk_bytes += report.chunk_bytes_written;
        mid_job += report.crashes_mid_job;
        rollbacks += report.rollbacks;
    }
    // The runs did what they are for: snapshots retained and checked after power losses cut
    // jobs short, rollbacks drawn.
    assert!(checked > SEEDS, "{checked} retained snapshots checked");
    assert!(mid_job > SEEDS / 2, "{mid_job} power losses mid-job");
    assert!(rollbacks > SEEDS, "{rollbacks} rollbacks");
    // Chunks were shared across snapshots: the bodies snapseal built wrote fewer chunk bytes
    // than they hold. A loose bound: the state is a handful of chunks, each run's first body
    // writes all of them, and a power loss takes an unsealed pack with it.
    let captured = CAPTURED.load(Ordering::Relaxed);
    let bodies = captured * STATE as u64;
    assert!(
        chunk_bytes * 4 < bodies * 3,
        "{chunk_bytes} chunk bytes written for {captured} bodies of {STATE} bytes"
    );
}
