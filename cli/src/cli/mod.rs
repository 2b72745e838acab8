//! The command line: argument definitions (clap) and dispatch to one module per subcommand.
//!
//! Shared pieces: [`config`] (TOML file + flags, validated), [`exit`] (the one place errors
//! become exit codes), [`output`] (text or JSON on stdout), [`progress`] (indicatif bars),
//! [`logging`] (tracing-subscriber), [`keys`] (`node.pub`, and the one "no trusted key"
//! message), [`check`] (verifying one file), [`safe_open`] (the CLI's own files, opened through
//! persist's `Untrusted`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench;
mod check;
mod committed_log;
mod config;
mod demo;
mod exit;
mod export;
mod gc;
mod import;
mod inspect;
mod keys;
mod latest;
mod list;
mod logging;
mod metrics;
mod output;
mod progress;
mod remote;
mod restore;
mod retention;
mod safe_open;
mod ship;
mod verify;

/// The exit-code table, one text for the top-level `--help` and every subcommand's.
macro_rules! exit_codes {
    () => {
        "\
Exit codes (stable, for scripts):
  0  success
  1  verification failed, or nothing usable (no snapshot verifies, nothing to verify)
  2  usage or I/O error: bad arguments or config, missing directory, unreadable file,
     no trusted key, snapshot directory locked by another process, failed write to stdout
  3  inspect without a key: every check that needs no key passed, but the signature was
     not checked, so the file is not verified
  4  bench --compare: a row regressed beyond the noise both runs measured (bench exits 1
     when a row missed its goal and none regressed)
A panic (101) or a death by a signal is a bug or an outside kill, never an answer."
    };
}

/// What `--help` says about exit codes (the mapping itself is in [`exit`]).
pub(crate) const EXIT_CODES: &str = exit_codes!();

/// The top-level `--help` epilogue: exit codes, file names, logging.
const AFTER_HELP: &str = concat!(
    exit_codes!(),
    "\n\nFiles in a snapshot directory:
  snapshot_<idx>_<evidence_idx>            being written (stale if left by a crash)
  snapshot_<idx>_<evidence_idx>.committed  committed: header | body | receipt
  <committed name>.corrupt                 quarantined after failing verification
  snapshot_<idx>.g<generation>.pending     a body spilled to disk, waiting for its proof
  .lock                                    the store's lock
  node.pub, committed.log                  written by `snapseal demo` (node.pub also by
                                           import with --key)
  node.pub.pending                         node.pub being written (stale after a crash)
  ledger/                                  the demo's ledger: ledger_<start> (open chunk),
                                           ledger_<start>-<end>.committed (sealed chunks)
Any other name is not snapseal's and is never touched. Names read from a directory, file or
archive are printed escaped: control characters and bytes that are not UTF-8 as \\xNN, a
backslash doubled.

Logging: diagnostics go to stderr; the level comes from RUST_LOG (default `warn`)."
);

/// snapseal: ordered, crash-safe snapshot persistence for replicated service nodes.
///
/// `demo` runs a simulated node (the reference ledger) that snapshots into a real directory;
/// the other commands inspect and maintain such a directory. Only `gc` and `latest --repair`
/// ever change it, and only files whose names are snapseal's.
#[derive(Debug, Parser)]
#[command(name = "snapseal", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true, display_order = 900)]
    pub json: bool,
    /// No progress bars and no informational chatter (results and errors are still printed).
    #[arg(long, short, global = true, display_order = 901)]
    pub quiet: bool,
    /// Format of the diagnostics on stderr.
    #[arg(
        long,
        value_enum,
        default_value_t = logging::LogFormat::Pretty,
        global = true,
        display_order = 902
    )]
    pub log_format: logging::LogFormat,
    /// TOML config file: a `[demo]` table (the demo node) and a `[store]` table (retention and
    /// quarantine, used by demo, list, latest and gc). Unknown keys are errors; flags override
    /// the file. See demo.example.toml. FILE must be a regular file of at most 1 MiB; a
    /// symbolic link is refused (give the target's path).
    #[arg(long, global = true, value_name = "FILE", display_order = 903)]
    pub config: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the simulated node against a real directory, then verify what it committed.
    ///
    /// The node appends key-value writes and a signature tx every --sig-every txs to the
    /// reference ledger, and drives a Snapshotter on the threaded engine: a snapshot is due
    /// every --tx-interval txs, its digest goes into the ledger as evidence, and the file is
    /// committed once a signature covering the evidence is committed. At the end it flushes
    /// pending snapshots, verifies every committed file against the node's key and prints a
    /// summary. It writes `node.pub` (hex Ed25519 public key, the default --key of the other
    /// commands) and `committed.log` (one line per acknowledged commit:
    /// `idx evidence_idx file digest`) next to the snapshots, and keeps the ledger on disk in
    /// `ledger/` (chunk files, fsynced at every commit; memory stays bounded at any --txs).
    /// With --resume it carries on in a directory an earlier (possibly killed) demo with the
    /// same --seed left behind, reopening that ledger.
    Demo(demo::DemoArgs),
    /// List every snapshot file in DIR with its state and what retention would do with it.
    ///
    /// Reads the directory listing only: no key needed, no lock taken, nothing verified
    /// (`committed` means "named committed"; use `verify` to check contents).
    List(list::ListArgs),
    /// Show one snapshot file: header, lengths, digests, receipt fields and signer.
    ///
    /// Read-only. Every check that needs no key is always made (header, name, lengths,
    /// receipt digest, claims digest, receipt decoding, indices, Merkle proof, body digest and
    /// encoding); the signature is checked when a key is available (--key, or node.pub next to
    /// the file). Without a key the verdict is "consistent, signature NOT checked" and the exit
    /// status 3, never 0; a file that fails any check exits 1.
    Inspect(inspect::InspectArgs),
    /// Fully verify one file, or every committed file in a directory.
    ///
    /// Checks header, name, lengths, receipt digest, receipt (Merkle proof and Ed25519
    /// signature against the trusted keys) and body digest. Read-only: nothing is renamed or
    /// quarantined. Prints the reason for each failure; exits 1 if any file fails.
    Verify(verify::VerifyArgs),
    /// Show which snapshot a node would start from, and why newer ones were passed over.
    ///
    /// Read-only by default: files that fail verification are reported as the ones a node
    /// would quarantine. With --repair, opens the store (taking its lock, removing stale
    /// uncommitted files) and quarantines them as a node would.
    Latest(latest::LatestArgs),
    /// Apply retention and remove stale uncommitted files, printing the plan first.
    ///
    /// Takes the store's lock. Keeps the newest --keep-last committed snapshots (and, with
    /// [store] max_bytes, drops the oldest kept ones over that size, never the newest).
    /// --dry-run prints the plan and changes nothing (and takes no lock).
    Gc(gc::GcArgs),
    /// Measure snapseal against the floor and its peers, side by side in one run.
    ///
    /// Persist vs bare write+fsync+rename+dir-fsync, serialise and `latest()` verification vs
    /// `b3sum` (if installed), peak RSS while snapshotting a large state with spilling on,
    /// consensus-call latency with generations in flight, and the engine vs a plain crossbeam
    /// pool. Prints our figure, the floor or peer, the ratio, the target and pass/fail.
    Bench(bench::BenchArgs),
    /// Write a node's artifacts into one tar archive at a strict level.
    ///
    /// operational: the newest snapshot that verifies and the public key(s); replay: plus
    /// every sealed ledger chunk from that snapshot to the commit index, or exit 1 naming the
    /// missing range; archival: every snapshot that verifies and every chunk, gaps listed in
    /// the manifest; debug: archival plus every other file (quarantined, pending, logs).
    /// Operational and replay archives are byte-identical for the same directory. Streamed in
    /// bounded memory; OUT is created new and removed if the export fails. Read-only on DIR.
    Export(export::ExportArgs),
    /// Verify an archive and bring its artifacts into a snapshot directory.
    ///
    /// Refuses (exit 1) an archive below --level, one with a missing ledger range, a tampered
    /// artifact (BLAKE3, receipt, signed roots, Merkle chain) or a key not trusted; every
    /// artifact is verified before it gets a committed name, nothing is overwritten, and a
    /// rerun after a crash completes the import.
    Import(import::ImportArgs),
    /// Ship committed snapshots that verify to object storage, oldest first.
    ///
    /// URL is file:///abs/dir (a local directory: no server needed) or s3://bucket[/prefix]
    /// (AWS_* environment, --remote-opt). Each file is uploaded once (a conditional create, or
    /// a multipart upload visible only complete), read back and confirmed by size and BLAKE3,
    /// then named in the remote index. Takes the store's lock. See docs/SHIPPING.md.
    Ship(ship::ShipArgs),
    /// Restore the newest remote snapshot that verifies into DIR.
    ///
    /// Candidates come from the remote index, newest first; each is streamed into the store's
    /// ingest and verified completely against the trusted keys before it gets a committed
    /// name. Relabelled, forged, missing or damaged objects are passed over for older ones.
    Restore(restore::RestoreArgs),
    /// The remote's snapshots: list, gc (keep last N per node, TTL), hold and release.
    Remote(remote::RemoteCmd),
}

/// Parses the command line, runs the subcommand and turns the outcome into the exit code.
pub(crate) fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `bench` re-runs this binary as a child to measure peak RSS in a clean process; its
    // arguments are ours (ASCII), so a lossy conversion loses nothing there.
    let raw: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if snapseal_cli::bench::rss::probe_requested(&raw) {
        return ExitCode::from(
            u8::try_from(snapseal_cli::bench::rss::probe_main(&raw)).unwrap_or(exit::ERROR),
        );
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return exit::clap(&e),
    };
    if let Err(e) = logging::init(cli.global.log_format) {
        return exit::report(Err(e));
    }
    let out = output::Out::new(cli.global.json, cli.global.quiet);
    let result = config::load(cli.global.config.as_deref()).and_then(|file| match cli.command {
        Command::Demo(args) => demo::run(&args, &file, &out),
        Command::List(args) => list::run(&args, &file, &out),
        Command::Inspect(args) => inspect::run(&args, &out),
        Command::Verify(args) => verify::run(&args, &out),
        Command::Latest(args) => latest::run(&args, &file, &out),
        Command::Gc(args) => gc::run(&args, &file, &out),
        Command::Bench(args) => bench::run(&args, &out),
        Command::Export(args) => export::run(&args, &out),
        Command::Import(args) => import::run(&args, &out),
        Command::Ship(args) => ship::run(&args, &file, &out),
        Command::Restore(args) => restore::run(&args, &file, &out),
        Command::Remote(args) => remote::run(&args, &out),
    });
    exit::report(result)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn the_exit_code_text_is_the_same_everywhere() {
        assert!(super::AFTER_HELP.starts_with(super::EXIT_CODES));
    }

    /// The demo's `--help` states the defaults by hand; they must be the embedded ones.
    #[test]
    fn demo_help_states_the_embedded_defaults() {
        use super::config::defaults;
        let mut cmd = super::Cli::command();
        let help = cmd
            .find_subcommand_mut("demo")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        for (flag, value) in [
            ("--txs", defaults::TXS),
            ("--tx-interval", defaults::TX_INTERVAL),
            ("--sig-every", defaults::SIG_EVERY),
            ("--value-size", defaults::VALUE_SIZE),
            ("--keys", defaults::KEYS),
            ("--seed", defaults::SEED),
        ] {
            let at = help
                .find(&format!("{flag} <"))
                .unwrap_or_else(|| panic!("{flag}"));
            let rest = &help[at..];
            let end = rest.find("]").unwrap_or(rest.len());
            assert!(
                rest[..end].ends_with(&format!("[default: {value}")),
                "{flag}: {}",
                &rest[..end]
            );
        }
    }
}
