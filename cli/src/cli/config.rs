//! Settings: built-in defaults, overridden by the `--config` TOML file, overridden by flags.
//!
//! The file has two tables, `[demo]` and `[store]`; unknown tables and keys are errors (a
//! typo must not silently fall back to a default). The `[demo]` settings are one struct,
//! [`DemoValues`], read from the file by serde and from the flags by clap; their ranges are
//! those of the `validate()` of the library config each one ends up in
//! ([`SnapshotterConfig::validate`], [`SimConfig::validate`], the engine's worker check), run
//! once on the merged values, and an error names the key (or the flag), where it came from and
//! the allowed range. The whole file is checked whichever command reads it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use snapseal::engine::{EngineConfig, EngineError};
use snapseal::persist::receipt::ReceiptVerifier;
use snapseal::{SnapshotterConfig, StoreOptions};
use snapseal_ledger::node::SimConfig;

use crate::cli::output::{escaped_lines, Escaped};
use crate::cli::safe_open;

/// Largest `--seed` / `demo.seed`: the largest TOML integer, so any seed a flag takes can be
/// written in a config file too.
pub(super) const SEED_MAX: u64 = i64::MAX as u64;

/// The `[demo]` settings as the config file or the flags give them (`None`: not given).
///
/// One definition serves both sources: serde reads the file's `[demo]` table into it (unknown
/// keys refused), clap reads the `demo` flags into it (settings without a flag are skipped).
/// Ranges are not checked here; see [`demo_settings`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub(crate) struct DemoValues {
    /// Transactions to append: writes, and a signature every --sig-every [default: 200000]
    #[arg(long, value_name = "N")]
    pub txs: Option<u64>,
    /// A snapshot is due every this many txs [default: 20000]
    #[arg(long, value_name = "K")]
    pub tx_interval: Option<u64>,
    /// A signature tx every this many txs [default: 100]
    #[arg(long, value_name = "S")]
    pub sig_every: Option<u64>,
    /// Bytes per written value [default: 128]
    #[arg(long, value_name = "B")]
    pub value_size: Option<u64>,
    /// Keys are drawn from 0 .. N (bounds the state, so each snapshot's size) [default: 10000]
    #[arg(long, value_name = "N")]
    pub keys: Option<u64>,
    /// Roll the uncommitted tail back every R txs, as after a leader change [default: never]
    #[arg(long, value_name = "R")]
    pub rollback_every: Option<u64>,
    /// Seed of the node key (node.pub) and of the written keys and values, in
    /// 0 ..= 9223372036854775807 (the largest TOML integer). The same seed always gives the
    /// same key and the same writes and signatures. Without --deterministic, when a
    /// serialisation finishes depends on the worker threads, so the positions of evidence txs,
    /// and with them snapshot indices, file names and contents and committed.log, differ from
    /// run to run [default: 1]
    #[arg(long, value_name = "X", value_parser = clap::value_parser!(u64).range(..=SEED_MAX))]
    pub seed: Option<u64>,
    /// zstd level (1-19) for snapshot bodies [default: uncompressed]
    #[arg(long, value_name = "LEVEL")]
    pub compression: Option<u64>,
    /// Engine worker threads [default: half the CPUs, at least 1]
    #[arg(long, value_name = "N")]
    pub workers: Option<u64>,
    /// Pending generations before due snapshots are skipped (file only).
    #[arg(skip)]
    pub max_pending: Option<u64>,
    /// With `time_interval_ms`, txs needed before a timed snapshot (file only).
    #[arg(skip)]
    pub min_tx_count: Option<u64>,
    /// Minimum time between two serialisations, in ms (file only).
    #[arg(skip)]
    pub cooldown_ms: Option<u64>,
    /// A snapshot is also due after this long, in ms (file only).
    #[arg(skip)]
    pub time_interval_ms: Option<u64>,
}

impl DemoValues {
    /// `self`'s value of `key` (a field name), if given.
    fn get(&self, key: &str) -> Option<u64> {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get(key).and_then(serde_json::Value::as_u64))
    }

    /// Each value of `over` that is given, else `self`'s.
    fn or(&self, over: &DemoValues) -> DemoValues {
        let mut merged = serde_json::to_value(self).unwrap_or_default();
        if let (Some(base), Ok(serde_json::Value::Object(top))) =
            (merged.as_object_mut(), serde_json::to_value(over))
        {
            base.extend(top.into_iter().filter(|(_, v)| !v.is_null()));
        }
        serde_json::from_value(merged).unwrap_or_else(|_| over.clone())
    }
}

/// One bounded integer `[store]` setting (the store's own validation covers only part of
/// these ranges).
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
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

/// The largest integer a TOML file can hold.
const TOML_MAX: u64 = i64::MAX as u64;

/// `[store] keep_last`: committed snapshots retention keeps.
pub(super) const KEEP_LAST: Limit = Limit {
    key: "store.keep_last",
    flag: Some("--keep-last"),
    min: 1,
    max: 1_000_000,
    unset: None,
};
/// `[store] max_bytes`: retention's byte budget.
pub(super) const MAX_BYTES: Limit = Limit {
    key: "store.max_bytes",
    flag: Some("--max-bytes"),
    min: 1,
    max: TOML_MAX,
    unset: Some("leave it out for no byte limit"),
};
/// `[store] max_quarantined`: quarantined files kept.
pub(super) const MAX_QUARANTINED: Limit = Limit {
    key: "store.max_quarantined",
    flag: None,
    min: 0,
    max: 1_000_000,
    unset: None,
};

/// Where a value came from, for the error message.
#[derive(Clone, Copy, Debug)]
enum Origin<'a> {
    File(&'a Path),
    Flag,
}

/// "out of range" for `key` = `value` from `origin`; `allowed` says what would do.
fn out_of_range(
    key: &str,
    flag: Option<&str>,
    value: impl std::fmt::Display,
    allowed: &str,
    origin: Origin<'_>,
) -> anyhow::Error {
    match origin {
        Origin::Flag => anyhow::anyhow!(
            "{} {value} is out of range: {allowed} (config key `{key}`)",
            flag.unwrap_or(key),
        ),
        Origin::File(path) => anyhow::anyhow!(
            "{}: `{}` = {value} is out of range: {allowed}",
            Escaped::path(path),
            Escaped::str(key),
        ),
    }
}

impl Limit {
    fn check(&self, value: i128, origin: Origin<'_>) -> anyhow::Result<u64> {
        if value >= i128::from(self.min) && value <= i128::from(self.max) {
            // In range, and the range lies within u64.
            return u64::try_from(value).context("range check");
        }
        let unset = self.unset.map(|u| format!("; {u}")).unwrap_or_default();
        let allowed = format!("allowed {} ..= {}{unset}", self.min, self.max);
        Err(out_of_range(self.key, self.flag, value, &allowed, origin))
    }

    /// Checks a command-line value.
    pub(super) fn flag(&self, value: u64) -> anyhow::Result<u64> {
        self.check(i128::from(value), Origin::Flag)
    }

    fn file(&self, value: Option<i64>, path: &Path) -> anyhow::Result<Option<u64>> {
        value
            .map(|v| self.check(i128::from(v), Origin::File(path)))
            .transpose()
    }
}

/// The file as written: unknown tables refused; `[demo]` is checked key by key first (so a
/// negative or non-integer value is reported with its key), then read into [`DemoValues`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    demo: toml::Table,
    #[serde(default)]
    store: RawStore,
}

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    keep_last: Option<i64>,
    max_bytes: Option<i64>,
    max_quarantined: Option<i64>,
}

/// The store's settings (defaults, then the file, then flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StoreSettings {
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
    pub(super) fn options(&self, verifier: Arc<dyn ReceiptVerifier>) -> StoreOptions {
        let mut opts = StoreOptions::new(verifier);
        opts.keep_last = self.keep_last;
        opts.max_bytes = self.max_bytes;
        opts.max_quarantined = self.max_quarantined;
        opts
    }

    /// These settings with `--keep-last` / `--max-bytes` applied (checked like the file's).
    pub(super) fn with_flags(
        mut self,
        keep_last: Option<u64>,
        max_bytes: Option<u64>,
    ) -> anyhow::Result<Self> {
        if let Some(n) = keep_last {
            self.keep_last = to_usize(KEEP_LAST.flag(n)?, KEEP_LAST.key)?;
        }
        if let Some(n) = max_bytes {
            self.max_bytes = Some(MAX_BYTES.flag(n)?);
        }
        Ok(self)
    }
}

/// The config file, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct FileConfig {
    /// The file it came from (`None`: no `--config`, built-in defaults).
    pub path: Option<PathBuf>,
    /// `[demo]` (each value in range on its own; combinations are checked by
    /// [`demo_settings`]).
    pub demo: DemoValues,
    /// `[store]`, over the defaults.
    pub store: StoreSettings,
}

fn to_usize(v: u64, key: &str) -> anyhow::Result<usize> {
    usize::try_from(v).with_context(|| format!("`{key}` = {v} does not fit this platform"))
}

/// Reads and validates `--config FILE` (built-in defaults without one).
pub(super) fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let bytes = safe_open::read_path(path, safe_open::CONFIG_FILE)?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("config file {} is not UTF-8 text", Escaped::path(path)))?;
    parse(&text, path)
}

/// Parses and validates config text (`path` names it in messages).
pub(super) fn parse(text: &str, path: &Path) -> anyhow::Result<FileConfig> {
    // toml's message shows the offending line and key (unknown table, wrong type): text from
    // the file, so escaped.
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "config file {}: {}",
            Escaped::path(path),
            escaped_lines(&e.to_string())
        )
    })?;
    for (key, value) in &raw.demo {
        match value.as_integer() {
            Some(v) if v < 0 => {
                let allowed = "must not be negative";
                return Err(out_of_range(
                    &format!("demo.{key}"),
                    None,
                    v,
                    allowed,
                    Origin::File(path),
                ));
            }
            Some(_) => {}
            None => bail!(
                "{}: `demo.{}` = {} must be an integer",
                Escaped::path(path),
                Escaped::str(key),
                escaped_lines(&value.to_string())
            ),
        }
    }
    // Unknown keys are refused here, by name.
    let demo: DemoValues = toml::Value::Table(raw.demo).try_into().map_err(|e| {
        anyhow::anyhow!(
            "config file {}: [demo]: {}",
            Escaped::path(path),
            escaped_lines(&e.to_string())
        )
    })?;
    let file = Sources {
        file: &demo,
        flags: &DemoValues::default(),
        path: Some(path),
    };
    file.validate(&file.merged())?;
    let s = raw.store;
    let mut store = StoreSettings::default();
    if let Some(n) = KEEP_LAST.file(s.keep_last, path)? {
        store.keep_last = to_usize(n, KEEP_LAST.key)?;
    }
    store.max_bytes = MAX_BYTES.file(s.max_bytes, path)?;
    if let Some(n) = MAX_QUARANTINED.file(s.max_quarantined, path)? {
        store.max_quarantined = to_usize(n, MAX_QUARANTINED.key)?;
    }
    Ok(FileConfig {
        path: Some(path.to_path_buf()),
        demo,
        store,
    })
}

/// Everything the demo runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DemoSettings {
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
pub(super) mod defaults {
    /// Transactions.
    pub(crate) const TXS: u64 = 200_000;
    /// Snapshot interval.
    pub(crate) const TX_INTERVAL: u64 = 20_000;
    /// Signature interval.
    pub(crate) const SIG_EVERY: u64 = 100;
    /// Value size.
    pub(crate) const VALUE_SIZE: u64 = 128;
    /// Key space.
    pub(crate) const KEYS: u64 = 10_000;
    /// Seed.
    pub(crate) const SEED: u64 = 1;
}

/// The `[demo]` values of one run and where each came from.
struct Sources<'a> {
    file: &'a DemoValues,
    flags: &'a DemoValues,
    path: Option<&'a Path>,
}

impl Sources<'_> {
    fn merged(&self) -> DemoValues {
        self.file.or(self.flags)
    }

    /// The library configs for `v` (defaults where unset), each `validate()`d; the first
    /// failure names the key or flag it came from.
    fn validate(
        &self,
        v: &DemoValues,
    ) -> anyhow::Result<(SimConfig, SnapshotterConfig, Option<usize>)> {
        // Values too large for the field's type saturate, so validate() reports the range.
        let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let sim = SimConfig {
            txs: v.txs.unwrap_or(defaults::TXS),
            sig_every: v.sig_every.unwrap_or(defaults::SIG_EVERY),
            value_size: usize_of(v.value_size.unwrap_or(defaults::VALUE_SIZE)),
            keys: v.keys.unwrap_or(defaults::KEYS),
            rollback_every: v.rollback_every,
            seed: v.seed.unwrap_or(defaults::SEED),
        };
        let base = SnapshotterConfig::default();
        let snap = SnapshotterConfig {
            tx_interval: v.tx_interval.unwrap_or(defaults::TX_INTERVAL),
            min_tx_count: v.min_tx_count.unwrap_or(base.min_tx_count),
            time_interval: v.time_interval_ms.map(Duration::from_millis),
            max_pending: v.max_pending.map_or(base.max_pending, usize_of),
            cooldown: v.cooldown_ms.map(Duration::from_millis),
            compression: v.compression.map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            // Anything the file cannot set keeps the Snapshotter's default.
            ..base
        };
        sim.validate()
            .and_then(|()| snap.validate())
            .map_err(|e| self.explain(e.field, e.allowed))?;
        let workers = v.workers.map(usize_of);
        if workers.is_some() {
            match (EngineConfig {
                workers,
                ..EngineConfig::default()
            })
            .resolved_workers()
            {
                Ok(_) => {}
                Err(EngineError::InvalidConfig { field, reason }) => {
                    return Err(self.explain(field, &reason))
                }
                Err(e) => return Err(e.into()),
            }
        }
        // A seed past the range can only come from a caller that skipped clap and TOML.
        if sim.seed > SEED_MAX {
            return Err(self.explain("seed", "must be in 0 ..= 9223372036854775807"));
        }
        Ok((sim, snap, workers))
    }

    /// The message for library field `field` failing with `allowed`.
    fn explain(&self, field: &str, allowed: &str) -> anyhow::Error {
        let key = match field {
            "cooldown" => "cooldown_ms",
            "time_interval" => "time_interval_ms",
            other => other,
        };
        let name = format!("demo.{key}");
        let flag = format!("--{}", key.replace('_', "-"));
        match (self.flags.get(key), self.file.get(key), self.path) {
            (Some(v), _, _) => out_of_range(&name, Some(&flag), v, allowed, Origin::Flag),
            (None, Some(v), Some(path)) => {
                out_of_range(&name, None, v, allowed, Origin::File(path))
            }
            _ => anyhow::anyhow!("built-in default of `{name}` is invalid: {allowed}"),
        }
    }
}

/// Merges defaults, the file and the flags (flags win) and validates the result: each value
/// by the library config it goes to, then the combinations the demo needs.
pub(super) fn demo_settings(file: &FileConfig, flags: &DemoValues) -> anyhow::Result<DemoSettings> {
    let sources = Sources {
        file: &file.demo,
        flags,
        path: file.path.as_deref(),
    };
    let (sim, snap, workers) = sources.validate(&sources.merged())?;
    let (txs, tx_interval) = (sim.txs, snap.tx_interval);
    if tx_interval >= txs {
        bail!(
            "`demo.tx_interval` (--tx-interval) = {tx_interval} must be less than `demo.txs` \
             (--txs) = {txs}, or no snapshot is ever due"
        );
    }
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
        let d = demo_settings(&c, &DemoValues::default()).unwrap();
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
        let flags = DemoValues {
            txs: Some(7000),
            ..DemoValues::default()
        };
        let d = demo_settings(&c, &flags).unwrap();
        assert_eq!((d.sim.txs, d.snap.tx_interval), (7000, 100));
        let bad = DemoValues {
            sig_every: Some(1),
            ..DemoValues::default()
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
        let e = demo_settings(&c, &DemoValues::default())
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
        demo_settings(&c, &DemoValues::default()).unwrap();
    }

    /// The ranges are the library configs' own: each message carries the `validate()` text
    /// and names the file key (with the file's unit) it came from.
    #[test]
    fn file_values_are_checked_by_the_library_validation_under_their_key() {
        for (text, key, allowed) in [
            (
                "[demo]\nmax_pending = 2000\n",
                "`demo.max_pending` = 2000",
                "1 ..= 1024",
            ),
            (
                "[demo]\ncompression = 22\n",
                "`demo.compression` = 22",
                "1 ..= 19",
            ),
            (
                "[demo]\ncooldown_ms = 0\n",
                "`demo.cooldown_ms` = 0",
                "must be positive",
            ),
            (
                "[demo]\ntime_interval_ms = 0\n",
                "`demo.time_interval_ms` = 0",
                "must be positive",
            ),
            ("[demo]\nworkers = 0\n", "`demo.workers` = 0", "at least 1"),
            (
                "[demo]\nvalue_size = 2000000\n",
                "`demo.value_size` = 2000000",
                "0 ..= 1048576",
            ),
        ] {
            let e = parse_str(text).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains(allowed) && e.contains("t.toml"),
                "{e}"
            );
        }
        let e = parse_str("[demo]\ntxs = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`demo.txs`") && e.contains("integer"), "{e}");
    }

    /// A bad value is blamed on the flag when a flag gave it, on the file otherwise.
    #[test]
    fn a_bad_merged_value_names_where_it_came_from() {
        let c = parse_str("[demo]\nkeys = 5\n").unwrap();
        let flags = DemoValues {
            keys: Some(0),
            ..DemoValues::default()
        };
        let e = demo_settings(&c, &flags).unwrap_err().to_string();
        assert!(
            e.starts_with("--keys 0 is out of range") && e.contains("`demo.keys`"),
            "{e}"
        );
        let flags = DemoValues {
            workers: Some(100_000),
            ..DemoValues::default()
        };
        let e = demo_settings(&c, &flags).unwrap_err().to_string();
        assert!(e.starts_with("--workers 100000"), "{e}");
        let d = demo_settings(&c, &DemoValues::default()).unwrap();
        assert_eq!(d.sim.keys, 5);
    }
}
