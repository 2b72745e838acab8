//! What the crash tests (`kill9`, `ext4_crash`) share: running the demo as a child process,
//! and checking a snapshot directory after the child died at a random instant.
//!
//! The check ([`inspect`]) is the crash contract seen from outside the process:
//! - every `.committed` file verifies (header, receipt against the node's key, body digest);
//! - every line of `committed.log` (an acknowledged commit) names a file that is still there
//!   with the logged digest, unless retention may have deleted it: retention keeps the newest
//!   `keep_last` committed files, so a logged file may be gone only if at least `keep_last`
//!   newer committed files are on disk;
//! - nothing else of ours is there but stale uncommitted and pending files (no quarantined
//!   `.corrupt` file: a crash must never leave a committed file that fails verification), and
//!   no name that is not the demo's;
//! - the newest committed file that verifies (what a restarting node recovers from) is at
//!   least the newest acknowledged commit;
//! - `snapseal verify DIR` agrees (exit 0, or 1 with nothing to verify when no file was ever
//!   committed).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::VerifyingKey;
use snapseal::persist::fs::FileSystem;
use snapseal::persist::fs::RealFs;
use snapseal::persist::internals::open_snapshot;
use snapseal::persist::internals::PendingName;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{FileState, SnapshotName};
use snapseal_ledger::ledger::Ledger;

/// The `snapseal` binary cargo built for this test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_snapseal");

/// Held for the whole of each crash test, so they run one after the other even though they
/// share a binary (libtest runs tests on parallel threads). Each one first times an
/// uninterrupted run of the demo and spreads its kills over that time: a second torture test
/// running beside it would load the machine during only part of that, and the kills would no
/// longer land where the calibration says.
pub(crate) fn alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one still runs, alone.
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Prints a line on stderr even under libtest's output capture (which only catches the
/// `print!` family): seeds, figures and skips must be seen without `--nocapture`.
pub(crate) fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// An integer from the environment, or `default` when unset; a value that does not parse
/// is a mistake worth stopping for.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
        Err(_) => default,
    }
}

/// The seed from `name`, or a new one from the clock (printed by the caller so a failing run
/// can be repeated).
pub(crate) fn seed_from_env(name: &str) -> u64 {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    env_u64(name, clock)
}

/// SplitMix64 (`rand_xoshiro`): small, seeded, reproducible.
#[derive(Debug)]
pub(crate) struct Rng(rand_xoshiro::SplitMix64);

impl Rng {
    /// A generator from `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(rand_core::SeedableRng::seed_from_u64(seed))
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        rand_core::RngCore::next_u64(&mut self.0)
    }

    /// Uniform in `lo ..= hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The size of the demo's state, so of its snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// About 1.3 MB snapshots every 2000 txs, a signature every 50: many snapshots are
    /// written per second, so a random crash often lands in the middle of one.
    Small,
    /// Up to 40 MB of state (10 000 keys of 4 KiB), a snapshot every 5000 txs: once a
    /// run's state passes the Snapshotter's default spill threshold (32 MiB, after about
    /// 15 000 txs: a resumed ledger starts from an empty state), bodies are streamed into
    /// pending files while they wait for their proof, so crashes also land in spilled bodies
    /// and in their commit (a rename of the pending file). Slow in a debug build.
    Spill,
}

impl Shape {
    /// `SNAPSEAL_CRASH_SPILL=1` picks [`Shape::Spill`].
    pub(crate) fn from_env() -> Shape {
        if env_u64("SNAPSEAL_CRASH_SPILL", 0) == 1 {
            Shape::Spill
        } else {
            Shape::Small
        }
    }

    /// (txs per run, keys, value size, tx interval).
    fn params(self) -> (u64, u64, u64, u64) {
        match self {
            Shape::Small => (50_000, 10_000, 128, 2_000),
            Shape::Spill => (60_000, 10_000, 4_096, 5_000),
        }
    }
}

/// How the demo child is run (see [`Shape`]).
#[derive(Clone, Debug)]
pub(crate) struct Demo {
    /// The snapshot directory (the same one every round: each run resumes the last).
    pub dir: PathBuf,
    /// The demo's `--seed` (its node key).
    pub seed: u64,
    /// `--txs` of each run.
    pub txs: u64,
    /// The state's size.
    pub shape: Shape,
    /// The config file setting `[store] keep_last`.
    pub config: PathBuf,
    /// The retention setting written to `config`.
    pub keep_last: usize,
}

impl Demo {
    /// Writes the config file into `scratch` (outside the snapshot directory, which must
    /// hold only the demo's files).
    pub(crate) fn new(
        scratch: &Path,
        dir: PathBuf,
        seed: u64,
        keep_last: usize,
        shape: Shape,
    ) -> Demo {
        let config = scratch.join("crash-demo.toml");
        std::fs::write(&config, format!("[store]\nkeep_last = {keep_last}\n")).unwrap();
        Demo {
            dir,
            seed,
            txs: shape.params().0,
            shape,
            config,
            keep_last,
        }
    }

    /// Txs for a short run that still commits snapshots.
    pub(crate) fn short_run(&self) -> u64 {
        self.shape.params().3 * 2 + 1_000
    }

    /// The node's public key (what `node.pub` must hold).
    pub(crate) fn key(&self) -> VerifyingKey {
        Ledger::seed_key(self.seed).verifying_key()
    }

    fn args(&self, txs: u64) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["demo", "--resume", "--dir"].map(Into::into).to_vec();
        args.push(self.dir.clone().into());
        args.push("--config".into());
        args.push(self.config.clone().into());
        let (_, keys, value_size, tx_interval) = self.shape.params();
        for (flag, value) in [
            ("--seed", self.seed),
            ("--txs", txs),
            ("--keys", keys),
            ("--value-size", value_size),
            ("--tx-interval", tx_interval),
            ("--sig-every", 50),
        ] {
            args.push(flag.into());
            args.push(value.to_string().into());
        }
        args
    }

    /// Starts a run of `txs` txs (stdout discarded; stderr kept for the resume line and to
    /// spot a panic).
    pub(crate) fn spawn(&self, txs: u64) -> Child {
        let mut child = Command::new(BIN)
            .args(self.args(txs))
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the snapseal demo");
        let stderr = child.stderr.take().expect("piped stderr");
        // Read on a thread: a full pipe would block the child, skewing where kills land.
        let reader = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        Child {
            child: Some(child),
            reader: Some(reader),
        }
    }
}

/// A running demo. Dropping it kills it: a failing test never leaves a child behind.
#[derive(Debug)]
pub(crate) struct Child {
    child: Option<std::process::Child>,
    reader: Option<JoinHandle<Vec<String>>>,
}

/// How a child ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stderr lines.
    pub stderr: Vec<String>,
}

impl Ended {
    /// Died of our SIGKILL.
    pub(crate) fn killed(&self) -> bool {
        self.status.signal() == Some(9)
    }

    /// The base the run resumed after, if it got past recovery (`resuming after idx N`).
    pub(crate) fn resumed_after(&self) -> Option<u64> {
        self.stderr.iter().find_map(|l| {
            let rest = l.split("resuming after idx ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
    }

    /// It got past the point where it opened the store and recovered (a fresh run says
    /// where its snapshots go before it opens the store, so only the resume line counts).
    pub(crate) fn recovered(&self) -> bool {
        self.resumed_after().is_some()
    }

    /// A panic message, if the child printed one (Rust's `thread '…' panicked at …`; the
    /// engine's own `panicked=false` log field is not one).
    pub(crate) fn panic(&self) -> Option<&String> {
        self.stderr
            .iter()
            .find(|l| l.contains("' panicked at ") || l.contains("panicked=true"))
    }

    /// Everything it printed, for failure messages.
    pub(crate) fn output(&self) -> String {
        self.stderr.join("\n")
    }
}

impl Child {
    /// SIGKILL (if still running), then reap it. A child that already exited keeps its own
    /// status.
    pub(crate) fn kill(mut self) -> Ended {
        let mut child = self.child.take().expect("child present until ended");
        // `Child::kill` is SIGKILL on Unix; on an exited, unreaped child it is harmless.
        let _ = child.kill();
        self.reap(child)
    }

    /// Waits for it to exit by itself, killing it after `limit` (a hang is a failure, not
    /// a test that never ends).
    pub(crate) fn wait(mut self, limit: Duration) -> Ended {
        let mut child = self.child.take().expect("child present until ended");
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        while child.try_wait().expect("poll the child").is_none() {
            if waited >= limit {
                let _ = child.kill();
                let ended = self.reap(child);
                panic!(
                    "the demo did not finish within {limit:?}; killed it. stderr:\n{}",
                    ended.output()
                );
            }
            std::thread::sleep(step);
            waited += step;
        }
        self.reap(child)
    }

    fn reap(&mut self, mut child: std::process::Child) -> Ended {
        let status = child.wait().expect("reap the child");
        let stderr = self
            .reader
            .take()
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default();
        Ended { status, stderr }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One acknowledged commit from `committed.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Acked {
    /// The file it names.
    pub name: SnapshotName,
    /// The body digest the node was told.
    pub digest: [u8; 32],
    /// The line as written.
    pub text: String,
}

/// `committed.log` as found.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Complete lines, in order.
    pub lines: Vec<Acked>,
    /// Bytes after the last newline (a write cut short: never acknowledged).
    pub partial: usize,
}

/// Parses one log line `idx evidence_idx file digest`.
fn parse_line(line: &str) -> Result<Acked, String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let [idx, evidence_idx, file, digest] = fields.as_slice() else {
        return Err(format!("not 4 fields: {line:?}"));
    };
    let name = SnapshotName::parse(file)
        .filter(|n| n.state == FileState::Committed)
        .ok_or_else(|| format!("not a committed name: {line:?}"))?;
    if idx.parse::<u64>().ok() != Some(name.idx)
        || evidence_idx.parse::<u64>().ok() != Some(name.evidence_idx)
    {
        return Err(format!("indices do not match the name: {line:?}"));
    }
    if digest.len() != 64 {
        return Err(format!("digest is not 64 hex digits: {line:?}"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digest[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("digest is not hex: {line:?}"))?;
    }
    Ok(Acked {
        name,
        digest: out,
        text: line.to_string(),
    })
}

/// Reads `dir/committed.log` (empty when missing); malformed complete lines are returned as
/// errors.
pub(crate) fn read_log(dir: &Path) -> Result<Log, String> {
    let bytes = match std::fs::read(dir.join("committed.log")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Log::default()),
        Err(e) => return Err(format!("reading committed.log: {e}")),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = std::str::from_utf8(&bytes[..complete])
        .map_err(|e| format!("committed.log is not text: {e}"))?;
    let lines = text
        .lines()
        .map(parse_line)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Log {
        lines,
        partial: bytes.len() - complete,
    })
}

/// What [`inspect`] found in the directory.
#[derive(Debug, Default)]
pub(crate) struct DirState {
    /// Committed files that verified, with their body digests.
    pub committed: BTreeMap<SnapshotName, [u8; 32]>,
    /// Stale uncommitted and pending files (a write in progress when the process died).
    pub stale: BTreeSet<String>,
    /// The log.
    pub log: Log,
    /// Logged commits whose files retention had (legitimately) deleted.
    pub retired: usize,
    /// The newest logged commit was gone: allowed only with `keep_last` newer committed files
    /// on disk (committed by runs killed before they logged them), which retention keeps
    /// instead.
    pub newest_acked_missing: bool,
    /// Broken promises, one sentence each.
    pub violations: Vec<String>,
}

/// The largest ledger index a snapshot or pending name carries.
fn name_index(name: &str) -> Option<u64> {
    SnapshotName::parse(name)
        .map(|n| n.idx.max(n.evidence_idx))
        .or_else(|| PendingName::parse(name).map(|p| p.idx))
}

impl DirState {
    /// The largest index a committed file or a logged commit carries.
    pub(crate) fn max_committed_index(&self) -> u64 {
        self.committed
            .keys()
            .chain(self.log.lines.iter().map(|l| &l.name))
            .map(|n| n.idx.max(n.evidence_idx))
            .max()
            .unwrap_or(0)
    }
}

/// Checks `demo.dir` after its writer died (see the module docs).
pub(crate) fn inspect(demo: &Demo) -> DirState {
    let dir = &demo.dir;
    let mut state = DirState::default();
    let mut v = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return state,
        Err(e) => {
            state
                .violations
                .push(format!("cannot list {}: {e}", dir.display()));
            return state;
        }
    };
    let handle = RealFs::new()
        .open_dir(dir, false)
        .expect("open the snapshot directory");
    let verifier = Ed25519Verifier::new(vec![demo.key()]);
    for entry in entries {
        let entry = entry.expect("list the snapshot directory");
        let os = entry.file_name();
        let name = os.to_string_lossy().into_owned();
        if let Some(snap) = SnapshotName::parse(&name) {
            match snap.state {
                FileState::Committed => match open_snapshot(&*handle, &snap, &verifier) {
                    Ok(file) => {
                        state.committed.insert(snap, file.header().body_digest);
                    }
                    Err(e) => v.push(format!("{name} does not verify: {e}")),
                },
                FileState::Uncommitted => {
                    state.stale.insert(name);
                }
                FileState::Corrupt => v.push(format!(
                    "{name}: a quarantined file, so a committed file failed verification"
                )),
            }
        } else if PendingName::parse(&name).is_some() {
            state.stale.insert(name);
        } else if name == "ledger" {
            // The demo's ledger on disk (its own recovery is tested in snapseal-sim).
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                v.push(format!("{name}: not a directory"));
            }
        } else if ![".lock", "node.pub", "committed.log"].contains(&name.as_str()) {
            v.push(format!("{name}: not a file the demo writes"));
        }
    }
    match read_log(dir) {
        Ok(log) => state.log = log,
        Err(e) => v.push(e),
    }
    let newest = state.log.lines.iter().map(|l| l.name).max();
    // What a node restarting now recovers from is never older than the newest commit it
    // acknowledged (retention never deletes the newest file on disk, and verified files are
    // what `latest()` takes).
    if let Some(newest) = newest {
        let latest = state.committed.keys().next_back();
        if latest < Some(&newest) {
            v.push(format!(
                "the newest verifying file is {latest:?}, older than the newest acknowledged \
                 commit {newest}"
            ));
        }
    }
    for acked in &state.log.lines {
        match state.committed.get(&acked.name) {
            Some(d) if *d == acked.digest => {}
            Some(_) => v.push(format!(
                "{}: body digest differs from the acknowledged one",
                acked.name
            )),
            None => {
                let newer = state.committed.range(acked.name..).count();
                if newer >= demo.keep_last {
                    state.retired += 1;
                    if Some(acked.name) == newest {
                        state.newest_acked_missing = true;
                    }
                } else {
                    v.push(format!(
                        "acknowledged {} is gone, but only {newer} newer committed file(s) are \
                         on disk and retention keeps {}",
                        acked.name, demo.keep_last
                    ));
                }
            }
        }
    }
    let verify = Command::new(BIN)
        .arg("verify")
        .arg(dir)
        .env("RUST_LOG", "error")
        .output()
        .expect("run snapseal verify");
    let expected = if state.committed.is_empty() { 1 } else { 0 };
    if dir.join("node.pub").exists() && verify.status.code() != Some(expected) {
        v.push(format!(
            "`snapseal verify` exited {:?}, expected {expected}:\n{}{}",
            verify.status.code(),
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        ));
    }
    state.violations = v;
    state
}

/// What the crash tests carry from one round to the next: every committed name and digest
/// ever seen (a name must never come back with other contents), every acknowledged line
/// (acknowledgements are never lost), and last round's stale files (the next recovery must
/// remove them).
///
/// A resumed run must start its ledger above every committed or logged name ever seen, and
/// above the stale names in the directory when it started. A stale name that an earlier
/// recovery removed (that recovery's run then killed before it said so) is no longer
/// visible, so a later run may use that name again: harmless, as it never named a committed
/// file.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// Every committed name seen, with its digest.
    pub seen: BTreeMap<SnapshotName, [u8; 32]>,
    /// The log lines so far (each round's log must start with them).
    pub acked: Vec<String>,
    /// Stale files left by the previous round.
    pub stale: BTreeSet<String>,
    /// The largest index of a committed file or logged commit seen so far.
    pub max_committed: u64,
    /// Committed files never logged (their run died between commit and log line).
    pub unlogged: BTreeSet<SnapshotName>,
}

/// Figures of a crash run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Figures {
    /// Rounds run.
    pub rounds: u64,
    /// Children ended by our SIGKILL.
    pub kills: u64,
    /// Children that finished before the kill (exit 0 expected).
    pub finished_first: u64,
    /// Children that stopped with an error exit after the filesystem was shut down under
    /// them (they saw EIO: expected, as long as nothing panicked).
    pub stopped_on_io_error: u64,
    /// Rounds whose crash left a new stale uncommitted or pending file (the crash landed
    /// between the create and the rename of a snapshot, or during a spilled body).
    pub mid_persist: u64,
    /// Of those, rounds whose crash left a new pending (spilled body) file.
    pub mid_spill: u64,
    /// Rounds whose child got past recovery (so the previous round's stale files had to be
    /// gone).
    pub recovered: u64,
    /// Stale files removed by a later recovery.
    pub stale_cleaned: u64,
    /// Acknowledged commits (log lines) at the end.
    pub acknowledged: usize,
    /// Committed files whose log line never got written (committed, then the crash).
    pub committed_unacknowledged: u64,
    /// Times the newest acknowledged file was gone (retention, with `keep_last` newer,
    /// unacknowledged files on disk).
    pub newest_acked_missing: u64,
    /// Broken promises found.
    pub violations: Vec<String>,
}

impl History {
    /// Folds one round's end into the history; returns that round's violations.
    /// `io_errors` says the filesystem was shut down under the child, so an error exit (not
    /// a panic, not another signal) is expected.
    pub(crate) fn round(
        &mut self,
        state: &DirState,
        ended: &Ended,
        io_errors: bool,
        figures: &mut Figures,
    ) -> Vec<String> {
        let mut v = state.violations.clone();
        if let Some(p) = ended.panic() {
            v.push(format!("the demo panicked: {p}"));
        }
        let code = ended.status.code();
        if ended.killed() {
            figures.kills += 1;
        } else if ended.status.success() {
            figures.finished_first += 1;
        } else if io_errors && matches!(code, Some(1 | 2)) {
            figures.stopped_on_io_error += 1;
        } else {
            v.push(format!(
                "the demo ended with {:?} before the kill:\n{}",
                ended.status,
                ended.output()
            ));
        }
        if let Some(base) = ended.resumed_after() {
            figures.recovered += 1;
            let stale_max = self.stale.iter().filter_map(|s| name_index(s)).max();
            let floor = self.max_committed.max(stale_max.unwrap_or(0));
            if base < floor {
                v.push(format!(
                    "resumed after idx {base}, below idx {floor} that a committed, logged or \
                     stale name in the directory already used (stale: {:?})",
                    self.stale
                ));
            }
            for s in &self.stale {
                if state.stale.contains(s) {
                    v.push(format!("{s}: stale file survived the restart's recovery"));
                } else {
                    figures.stale_cleaned += 1;
                }
            }
        }
        let new_stale: Vec<&String> = state
            .stale
            .iter()
            .filter(|s| !self.stale.contains(*s))
            .collect();
        if !new_stale.is_empty() {
            figures.mid_persist += 1;
        }
        if new_stale.iter().any(|s| PendingName::parse(s).is_some()) {
            figures.mid_spill += 1;
        }
        for (name, digest) in &state.committed {
            if let Some(before) = self.seen.insert(*name, *digest) {
                if before != *digest {
                    v.push(format!("{name} came back with other contents"));
                }
            }
        }
        let logged: BTreeSet<SnapshotName> = state.log.lines.iter().map(|l| l.name).collect();
        self.unlogged
            .extend(state.committed.keys().filter(|n| !logged.contains(n)));
        figures.committed_unacknowledged = self.unlogged.len() as u64;
        let now: Vec<String> = state.log.lines.iter().map(|l| l.text.clone()).collect();
        if !now.starts_with(&self.acked) {
            v.push(format!(
                "committed.log lost or changed acknowledged lines: had {}, now {}",
                self.acked.len(),
                now.len()
            ));
        }
        if state.newest_acked_missing {
            figures.newest_acked_missing += 1;
        }
        self.acked = now;
        self.stale = state.stale.clone();
        self.max_committed = self.max_committed.max(state.max_committed_index());
        figures.rounds += 1;
        figures.acknowledged = self.acked.len();
        figures.violations.extend(v.iter().cloned());
        v
    }
}

/// A directory tree to keep for debugging when a round fails: copied next to the system temp
/// dir's other files and named in the failure message.
pub(crate) fn keep_for_debugging(dir: &Path, tag: &str) -> PathBuf {
    let to = std::env::temp_dir().join(format!("snapseal-crash-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&to);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::copy(e.path(), to.join(e.file_name()));
        }
    }
    to
}

/// An uncommitted or pending (spilled body) file other than last round's leftovers is in
/// the directory: a write is under way.
pub(crate) fn write_in_progress(dir: &Path, leftovers: &BTreeSet<String>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let ours = SnapshotName::parse_os(&name).is_some_and(|n| n.state == FileState::Uncommitted)
            || PendingName::parse_os(&name).is_some();
        ours && !leftovers.contains(name.to_string_lossy().as_ref())
    })
}

/// Watches `dir` until a write other than `leftovers` is under way (checking every 200 µs),
/// or `limit` passed; then waits `lag`. Returns whether a write was seen.
pub(crate) fn wait_for_write(
    dir: &Path,
    leftovers: &BTreeSet<String>,
    limit: Duration,
    lag: Duration,
) -> bool {
    let started = std::time::Instant::now();
    let seen = loop {
        if write_in_progress(dir, leftovers) {
            break true;
        }
        if started.elapsed() > limit {
            break false;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    std::thread::sleep(lag);
    seen
}
