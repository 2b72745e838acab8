//! Settings: built-in defaults, overridden by the `--config` TOML file, overridden by flags.
//!
//! The file has two tables, `[demo]` and `[store]`; unknown tables and keys are errors (a
//! typo must not silently fall back to a default). Every integer is checked against its
//! allowed range, and the message names the key (or the flag) and the range. The whole file
//! is validated whichever command reads it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use snapseal::persist::receipt::ReceiptVerifier;
use snapseal::{SnapshotterConfig, StoreOptions};
use snapseal_sim::node::SimConfig;

/// One bounded integer setting.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// Its key in the config file (`table.key`).
    pub key: &'static str,
    /// Its command-line flag, if it has one.
    pub flag: Option<&'static str>,
    /// Smallest allowed value.
    pub min: u64,
    /// Largest allowed value.
    pub max: u64,
    /// What leaving it out means, for settings that may be unset.
    pub unset: Option<&'static str>,
}

const fn limit(key: &'static str, flag: Option<&'static str>, min: u64, max: u64) -> Limit {
    Limit {
        key,
        flag,
        min,
        max,
        unset: None,
    }
}

const fn optional(
    key: &'static str,
    flag: Option<&'static str>,
    min: u64,
    max: u64,
    unset: &'static str,
) -> Limit {
    Limit {
        key,
        flag,
        min,
        max,
        unset: Some(unset),
    }
}

/// The largest integer a TOML file can hold.
const TOML_MAX: u64 = i64::MAX as u64;

/// `[demo] txs`: transactions the node appends.
pub const TXS: Limit = limit("demo.txs", Some("--txs"), 1, 10_000_000);
/// `[demo] tx_interval`: a snapshot is due every this many txs.
pub const TX_INTERVAL: Limit = limit("demo.tx_interval", Some("--tx-interval"), 1, 10_000_000);
/// `[demo] sig_every`: a signature tx every this many txs.
pub const SIG_EVERY: Limit = limit("demo.sig_every", Some("--sig-every"), 2, 1_000_000);
/// `[demo] value_size`: bytes per written value.
pub const VALUE_SIZE: Limit = limit("demo.value_size", Some("--value-size"), 0, 1 << 20);
/// `[demo] keys`: keys are drawn from `0 .. keys`.
pub const KEYS: Limit = limit("demo.keys", Some("--keys"), 1, 10_000_000);
/// `[demo] rollback_every`: roll the uncommitted tail back every this many txs.
pub const ROLLBACK_EVERY: Limit = optional(
    "demo.rollback_every",
    Some("--rollback-every"),
    1,
    10_000_000,
    "leave it out for no rollbacks",
);
/// `[demo] seed`: seed of the node key, keys and values.
pub const SEED: Limit = limit("demo.seed", Some("--seed"), 0, TOML_MAX);
/// `[demo] max_pending`: pending generations before due snapshots are skipped.
pub const MAX_PENDING: Limit = limit(
    "demo.max_pending",
    None,
    1,
    snapseal::actors::MAX_PENDING_LIMIT as u64,
);
/// `[demo] min_tx_count`: with `time_interval_ms`, txs needed before a timed snapshot.
pub const MIN_TX_COUNT: Limit = limit("demo.min_tx_count", None, 0, 10_000_000);
/// `[demo] compression`: zstd level of snapshot bodies.
pub const COMPRESSION: Limit = optional(
    "demo.compression",
    Some("--compression"),
    1,
    19,
    "leave it out to store bodies uncompressed",
);
/// `[demo] workers`: engine worker threads.
pub const WORKERS: Limit = optional(
    "demo.workers",
    Some("--workers"),
    1,
    snapseal::engine::MAX_WORKERS as u64,
    "leave it out for half the CPUs, at least 1",
);
/// `[demo] cooldown_ms`: minimum time between two serialisations.
pub const COOLDOWN_MS: Limit = optional(
    "demo.cooldown_ms",
    None,
    1,
    3_600_000,
    "leave it out for no cooldown",
);
/// `[demo] time_interval_ms`: a snapshot is also due after this long.
pub const TIME_INTERVAL_MS: Limit = optional(
    "demo.time_interval_ms",
    None,
    1,
    3_600_000,
    "leave it out for no timed snapshots",
);
/// `[store] keep_last`: committed snapshots retention keeps.
pub const KEEP_LAST: Limit = limit("store.keep_last", Some("--keep-last"), 1, 1_000_000);
/// `[store] max_bytes`: retention's byte budget.
pub const MAX_BYTES: Limit = optional(
    "store.max_bytes",
    Some("--max-bytes"),
    1,
    TOML_MAX,
    "leave it out for no byte limit",
);
/// `[store] max_quarantined`: quarantined files kept.
pub const MAX_QUARANTINED: Limit = limit("store.max_quarantined", None, 0, 1_000_000);

/// The demo keeps its whole ledger in memory; this bounds `txs × value_size`.
const MAX_LEDGER_BYTES: u64 = 4 << 30;

/// Where a value came from, for the error message.
#[derive(Clone, Copy, Debug)]
enum Origin<'a> {
    File(&'a Path),
    Flag,
}

impl Limit {
    fn check(&self, value: i128, origin: Origin<'_>) -> anyhow::Result<u64> {
        if value >= i128::from(self.min) && value <= i128::from(self.max) {
            // In range, and the range lies within u64.
            return u64::try_from(value).context("range check");
        }
        let unset = self.unset.map(|u| format!("; {u}")).unwrap_or_default();
        let (min, max, key) = (self.min, self.max, self.key);
        match origin {
            Origin::Flag => bail!(
                "{} {value} is out of range: allowed {min} ..= {max}{unset} (config key `{key}`)",
                self.flag.unwrap_or(key),
            ),
            Origin::File(path) => bail!(
                "{}: `{key}` = {value} is out of range: allowed {min} ..= {max}{unset}",
                path.display(),
            ),
        }
    }

    /// Checks a command-line value.
    pub fn flag(&self, value: u64) -> anyhow::Result<u64> {
        self.check(i128::from(value), Origin::Flag)
    }

    fn file(&self, value: Option<i64>, path: &Path) -> anyhow::Result<Option<u64>> {
        value
            .map(|v| self.check(i128::from(v), Origin::File(path)))
            .transpose()
    }
}

/// The file as written: every key optional, unknown ones refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    demo: RawDemo,
    #[serde(default)]
    store: RawStore,
}

/// `[demo]` as written. TOML integers are i64; ranges are checked after parsing so the
/// message can name the range.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDemo {
    txs: Option<i64>,
    tx_interval: Option<i64>,
    sig_every: Option<i64>,
    value_size: Option<i64>,
    keys: Option<i64>,
    rollback_every: Option<i64>,
    seed: Option<i64>,
    max_pending: Option<i64>,
    min_tx_count: Option<i64>,
    compression: Option<i64>,
    workers: Option<i64>,
    cooldown_ms: Option<i64>,
    time_interval_ms: Option<i64>,
}

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    keep_last: Option<i64>,
    max_bytes: Option<i64>,
    max_quarantined: Option<i64>,
}

/// `[demo]` after range checks; `None` means "not in the file".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoFile {
    /// `txs`.
    pub txs: Option<u64>,
    /// `tx_interval`.
    pub tx_interval: Option<u64>,
    /// `sig_every`.
    pub sig_every: Option<u64>,
    /// `value_size`.
    pub value_size: Option<u64>,
    /// `keys`.
    pub keys: Option<u64>,
    /// `rollback_every`.
    pub rollback_every: Option<u64>,
    /// `seed`.
    pub seed: Option<u64>,
    /// `max_pending`.
    pub max_pending: Option<u64>,
    /// `min_tx_count`.
    pub min_tx_count: Option<u64>,
    /// `compression`.
    pub compression: Option<u64>,
    /// `workers`.
    pub workers: Option<u64>,
    /// `cooldown_ms`.
    pub cooldown_ms: Option<u64>,
    /// `time_interval_ms`.
    pub time_interval_ms: Option<u64>,
}

/// The store's settings (defaults, then the file, then flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreSettings {
    /// Committed snapshots retention keeps.
    pub keep_last: usize,
    /// Retention's byte budget.
    pub max_bytes: Option<u64>,
    /// Quarantined files kept.
    pub max_quarantined: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            keep_last: StoreOptions::DEFAULT_KEEP_LAST,
            max_bytes: None,
            max_quarantined: StoreOptions::DEFAULT_MAX_QUARANTINED,
        }
    }
}

impl StoreSettings {
    /// Store options with these settings and `verifier`.
    pub fn options(&self, verifier: Arc<dyn ReceiptVerifier>) -> StoreOptions {
        StoreOptions {
            keep_last: self.keep_last,
            max_bytes: self.max_bytes,
            max_quarantined: self.max_quarantined,
            verifier,
        }
    }

    /// These settings with `--keep-last` / `--max-bytes` applied (checked like the file's).
    pub fn with_flags(
        mut self,
        keep_last: Option<u64>,
        max_bytes: Option<u64>,
    ) -> anyhow::Result<Self> {
        if let Some(n) = keep_last {
            self.keep_last = to_usize(KEEP_LAST.flag(n)?, &KEEP_LAST)?;
        }
        if let Some(n) = max_bytes {
            self.max_bytes = Some(MAX_BYTES.flag(n)?);
        }
        Ok(self)
    }
}

/// The config file, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileConfig {
    /// The file it came from (`None`: no `--config`, built-in defaults).
    pub path: Option<PathBuf>,
    /// `[demo]`.
    pub demo: DemoFile,
    /// `[store]`, over the defaults.
    pub store: StoreSettings,
}

fn to_usize(v: u64, limit: &Limit) -> anyhow::Result<usize> {
    usize::try_from(v).with_context(|| format!("`{}` = {v} does not fit this platform", limit.key))
}

/// Reads and validates `--config FILE` (built-in defaults without one).
pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    parse(&text, path)
}

/// Parses and validates config text (`path` names it in messages).
pub fn parse(text: &str, path: &Path) -> anyhow::Result<FileConfig> {
    // toml's message shows the offending line and key (unknown key, wrong type).
    let raw: RawFile =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    let d = raw.demo;
    let demo = DemoFile {
        txs: TXS.file(d.txs, path)?,
        tx_interval: TX_INTERVAL.file(d.tx_interval, path)?,
        sig_every: SIG_EVERY.file(d.sig_every, path)?,
        value_size: VALUE_SIZE.file(d.value_size, path)?,
        keys: KEYS.file(d.keys, path)?,
        rollback_every: ROLLBACK_EVERY.file(d.rollback_every, path)?,
        seed: SEED.file(d.seed, path)?,
        max_pending: MAX_PENDING.file(d.max_pending, path)?,
        min_tx_count: MIN_TX_COUNT.file(d.min_tx_count, path)?,
        compression: COMPRESSION.file(d.compression, path)?,
        workers: WORKERS.file(d.workers, path)?,
        cooldown_ms: COOLDOWN_MS.file(d.cooldown_ms, path)?,
        time_interval_ms: TIME_INTERVAL_MS.file(d.time_interval_ms, path)?,
    };
    let s = raw.store;
    let mut store = StoreSettings::default();
    if let Some(n) = KEEP_LAST.file(s.keep_last, path)? {
        store.keep_last = to_usize(n, &KEEP_LAST)?;
    }
    store.max_bytes = MAX_BYTES.file(s.max_bytes, path)?;
    if let Some(n) = MAX_QUARANTINED.file(s.max_quarantined, path)? {
        store.max_quarantined = to_usize(n, &MAX_QUARANTINED)?;
    }
    Ok(FileConfig {
        path: Some(path.to_path_buf()),
        demo,
        store,
    })
}

/// The demo's values given on the command line (each `None` when the flag is absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoFlags {
    /// `--txs`.
    pub txs: Option<u64>,
    /// `--tx-interval`.
    pub tx_interval: Option<u64>,
    /// `--sig-every`.
    pub sig_every: Option<u64>,
    /// `--value-size`.
    pub value_size: Option<u64>,
    /// `--keys`.
    pub keys: Option<u64>,
    /// `--rollback-every`.
    pub rollback_every: Option<u64>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--compression`.
    pub compression: Option<u64>,
    /// `--workers`.
    pub workers: Option<u64>,
}

/// Everything the demo runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoSettings {
    /// The simulated node.
    pub sim: SimConfig,
    /// The Snapshotter.
    pub snap: SnapshotterConfig,
    /// Engine workers (`None`: the engine's default).
    pub workers: Option<usize>,
    /// The store.
    pub store: StoreSettings,
}

/// The embedded default demo: finishes in seconds in a release build, yet commits about ten
/// snapshots of ~1.4 MiB each.
pub mod defaults {
    /// Transactions.
    pub const TXS: u64 = 200_000;
    /// Snapshot interval.
    pub const TX_INTERVAL: u64 = 20_000;
    /// Signature interval.
    pub const SIG_EVERY: u64 = 100;
    /// Value size.
    pub const VALUE_SIZE: u64 = 128;
    /// Key space.
    pub const KEYS: u64 = 10_000;
    /// Seed.
    pub const SEED: u64 = 1;
}

/// Merges defaults, the file and the flags (flags win), checking each flag's range and the
/// settings' combinations.
pub fn demo_settings(file: &FileConfig, flags: &DemoFlags) -> anyhow::Result<DemoSettings> {
    fn pick(flag: Option<u64>, limit: &Limit, file: Option<u64>) -> anyhow::Result<Option<u64>> {
        match flag {
            Some(v) => limit.flag(v).map(Some),
            None => Ok(file),
        }
    }
    let f = &file.demo;
    let txs = pick(flags.txs, &TXS, f.txs)?.unwrap_or(defaults::TXS);
    let tx_interval =
        pick(flags.tx_interval, &TX_INTERVAL, f.tx_interval)?.unwrap_or(defaults::TX_INTERVAL);
    let sig_every = pick(flags.sig_every, &SIG_EVERY, f.sig_every)?.unwrap_or(defaults::SIG_EVERY);
    let value_size =
        pick(flags.value_size, &VALUE_SIZE, f.value_size)?.unwrap_or(defaults::VALUE_SIZE);
    let keys = pick(flags.keys, &KEYS, f.keys)?.unwrap_or(defaults::KEYS);
    let rollback_every = pick(flags.rollback_every, &ROLLBACK_EVERY, f.rollback_every)?;
    // The seed flag takes any u64; the file only up to i64::MAX (all TOML can hold).
    let seed = flags.seed.or(f.seed).unwrap_or(defaults::SEED);
    let compression = pick(flags.compression, &COMPRESSION, f.compression)?;
    let workers = pick(flags.workers, &WORKERS, f.workers)?;

    if tx_interval >= txs {
        bail!(
            "`demo.tx_interval` (--tx-interval) = {tx_interval} must be less than `demo.txs` \
             (--txs) = {txs}, or no snapshot is ever due"
        );
    }
    if txs.saturating_mul(value_size) > MAX_LEDGER_BYTES {
        bail!(
            "`demo.txs` × `demo.value_size` = {txs} × {value_size} is over {} bytes: the demo \
             keeps its whole ledger in memory; lower --txs or --value-size",
            MAX_LEDGER_BYTES
        );
    }
    let value_size = to_usize(value_size, &VALUE_SIZE)?;
    let sim = SimConfig {
        txs,
        sig_every,
        value_size,
        keys,
        rollback_every,
        seed,
    };
    let defaults = SnapshotterConfig::default();
    let snap = SnapshotterConfig {
        tx_interval,
        min_tx_count: f.min_tx_count.unwrap_or(defaults.min_tx_count),
        time_interval: f.time_interval_ms.map(Duration::from_millis),
        max_pending: match f.max_pending {
            Some(n) => to_usize(n, &MAX_PENDING)?,
            None => defaults.max_pending,
        },
        cooldown: f.cooldown_ms.map(Duration::from_millis),
        // In 1 ..= 19 by the range check.
        compression: compression.map(i32::try_from).transpose()?,
        // Anything the file cannot set keeps the Snapshotter's default.
        ..defaults
    };
    // Backstops: the crates' own validation (same rules, their wording).
    sim.validate()?;
    snap.validate()?;
    let workers = workers.map(|w| to_usize(w, &WORKERS)).transpose()?;
    Ok(DemoSettings {
        sim,
        snap,
        workers,
        store: file.store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> anyhow::Result<FileConfig> {
        parse(text, Path::new("t.toml"))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = parse_str("").unwrap();
        let d = demo_settings(&c, &DemoFlags::default()).unwrap();
        assert_eq!(d.sim.txs, defaults::TXS);
        assert_eq!(d.snap.tx_interval, defaults::TX_INTERVAL);
        assert_eq!(d.store, StoreSettings::default());
    }

    #[test]
    fn unknown_keys_and_tables_are_errors_naming_them() {
        let e = parse_str("[demo]\ntxz = 5\n").unwrap_err().to_string();
        assert!(e.contains("txz"), "{e}");
        let e = parse_str("[dmeo]\ntxs = 5\n").unwrap_err().to_string();
        assert!(e.contains("dmeo"), "{e}");
    }

    #[test]
    fn out_of_range_values_name_the_key_and_the_range() {
        let e = parse_str("[demo]\nsig_every = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`demo.sig_every` = 1"), "{e}");
        assert!(e.contains("2 ..= 1000000"), "{e}");
        let e = parse_str("[store]\nkeep_last = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`store.keep_last` = 0") && e.contains("1 ..="),
            "{e}"
        );
        let e = parse_str("[demo]\ntxs = -3\n").unwrap_err().to_string();
        assert!(e.contains("`demo.txs` = -3"), "{e}");
    }

    #[test]
    fn flags_override_the_file_and_are_checked_by_name() {
        let c = parse_str("[demo]\ntxs = 5000\ntx_interval = 100\n").unwrap();
        let flags = DemoFlags {
            txs: Some(7000),
            ..DemoFlags::default()
        };
        let d = demo_settings(&c, &flags).unwrap();
        assert_eq!((d.sim.txs, d.snap.tx_interval), (7000, 100));
        let bad = DemoFlags {
            sig_every: Some(1),
            ..DemoFlags::default()
        };
        let e = demo_settings(&c, &bad).unwrap_err().to_string();
        assert!(
            e.contains("--sig-every 1") && e.contains("demo.sig_every"),
            "{e}"
        );
    }

    #[test]
    fn an_interval_not_below_txs_is_refused() {
        let c = parse_str("[demo]\ntxs = 100\ntx_interval = 100\n").unwrap();
        let e = demo_settings(&c, &DemoFlags::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("demo.tx_interval") && e.contains("demo.txs"),
            "{e}"
        );
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../../../demo.example.toml");
        let c = parse_str(text).unwrap();
        demo_settings(&c, &DemoFlags::default()).unwrap();
    }
}
