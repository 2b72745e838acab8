//! `snapseal remote list|gc|hold|release|repair URL`: the remote's snapshots, its retention
//! (keep the newest N per node, a TTL for older ones), holds that remote gc never deletes, and
//! the repair of node indexes from what verifies.
//!
//! None of them creates a missing `file://` directory (an empty remote is listed as empty).
//! Readers never write an index: a node index that is missing, torn or disagrees with a
//! listing is worked around (with a warning) and rewritten only by `repair`. Errors print each
//! cause once ([`ship_error`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;
use snapseal::persist::internals::Escaped;
use snapseal::persist::SnapshotName;
use snapseal_ship::repair::{self, LegacyRepair, RepairOptions};
use snapseal_ship::retention::{self, GcPolicy, RemoteObject};

use crate::cli::exit::Status;
use crate::cli::keys::Trusted;
use crate::cli::output::{self, text, Out};
use crate::cli::ship::{open_remote, ship_error, RemoteArgs};

/// `remote` arguments.
#[derive(Debug, Args)]
#[command(after_help = crate::cli::EXIT_CODES)]
pub(crate) struct RemoteCmd {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// The `remote` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Action {
    /// Every snapshot object, per node, with whether the index names it and any hold.
    List {
        /// file:///abs/dir or s3://bucket[/prefix].
        url: String,
        /// How the remote is reached.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Keep the newest --keep-last per node (and, with --ttl, younger ones) and held ones;
    /// delete the rest. The index is rewritten before anything is deleted. On a file://
    /// remote, also remove the staging files of uploads interrupted (killed) more than
    /// --stale-upload-secs ago.
    Gc {
        /// file:///abs/dir or s3://bucket[/prefix].
        url: String,
        /// Snapshot objects kept per node, newest first (at least 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep_last: u32,
        /// Also keep older ones younger than this many seconds (any u64; 2^63 and more mean
        /// "keep all", never a negative age).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// file:// remotes: staging files not written for this many seconds are leftovers
        /// of interrupted uploads (younger ones may belong to a running upload).
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        stale_upload_secs: u64,
        /// How the remote is reached.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Put a hold on one node's snapshot: remote gc never deletes it.
    Hold {
        /// file:///abs/dir or s3://bucket[/prefix].
        url: String,
        /// The node that shipped it.
        #[arg(long)]
        node: String,
        /// The committed file name (snapshot_<idx>_<evidence_idx>.committed).
        file: String,
        /// How the remote is reached.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Rewrite node indexes from what verifies: every snapshot object of each node (or of
    /// --node) is read whole and checked (header, receipt under a trusted --key, body, BLAKE3);
    /// the node's index then names exactly those that verified. Holds are kept (holds only in
    /// the legacy index become hold objects); once every node is done the legacy index.json is
    /// deleted. Do not run it while a shipper of a node it repairs runs: that shipper stops
    /// when it sees the repaired index (restart it afterwards).
    Repair {
        /// file:///abs/dir or s3://bucket[/prefix].
        url: String,
        /// Only this node (the legacy index is then kept for the others).
        #[arg(long)]
        node: Option<String>,
        /// Trusted public key file (as node.pub); may be repeated; at least one.
        #[arg(long = "key", value_name = "K", required = true)]
        keys: Vec<PathBuf>,
        /// The largest object verified, in bytes (1 to 2^62; default 64 GiB).
        #[arg(long, value_name = "BYTES",
              value_parser = clap::value_parser!(u64).range(1..=1 << 62))]
        max_file_bytes: Option<u64>,
        /// Delete a legacy index.json that does not parse (its holds cannot be read) instead
        /// of keeping it and exiting 1.
        #[arg(long)]
        discard_unusable_legacy: bool,
        /// How the remote is reached.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Remove a hold.
    Release {
        /// file:///abs/dir or s3://bucket[/prefix].
        url: String,
        /// The node that shipped it.
        #[arg(long)]
        node: String,
        /// The committed file name.
        file: String,
        /// How the remote is reached.
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Debug, Serialize)]
struct Object {
    node: String,
    file: String,
    size: u64,
    modified_unix: i64,
    indexed: bool,
    held: bool,
}

fn object(o: &RemoteObject) -> Object {
    Object {
        node: o.node.clone(),
        file: o.name.file_name(),
        size: o.size,
        modified_unix: o.modified_unix,
        indexed: o.indexed,
        held: o.held,
    }
}

fn committed_name(file: &str) -> anyhow::Result<SnapshotName> {
    match SnapshotName::parse(file) {
        Some(n) if n.file_name() == file && file.ends_with(".committed") => Ok(n),
        _ => bail!(
            "\"{}\" is not a committed snapshot file name",
            Escaped::str(file)
        ),
    }
}

/// Runs `remote`.
pub(super) fn run(args: &RemoteCmd, out: &Out) -> anyhow::Result<Status> {
    match &args.action {
        Action::List { url, remote } => {
            let remote = open_remote(url, remote)?;
            let objects = retention::list(&remote)
                .map_err(ship_error)
                .context("listing the remote")?;
            let objects: Vec<Object> = objects.iter().map(object).collect();
            out.json(&objects)?;
            for o in &objects {
                text!(
                    out,
                    "{:<16} {:<40} {:>10}{}{}",
                    o.node,
                    o.file,
                    output::bytes(o.size),
                    if o.indexed { "  indexed" } else { "" },
                    if o.held { "  held" } else { "" }
                );
            }
            Ok(Status::Ok)
        }
        Action::Gc {
            url,
            keep_last,
            ttl,
            dry_run,
            stale_upload_secs,
            remote,
        } => {
            let remote = open_remote(url, remote)?;
            // u32 fits usize on every target we build for.
            let mut policy = GcPolicy::new(*keep_last as usize);
            policy.ttl = ttl.map(Duration::from_secs);
            policy.dry_run = *dry_run;
            policy.stale_upload_age = Duration::from_secs(*stale_upload_secs);
            let report = retention::gc(&remote, &policy)
                .map_err(ship_error)
                .context("remote gc")?;
            #[derive(Serialize)]
            struct Report {
                dry_run: bool,
                kept: Vec<Object>,
                deleted: Vec<Object>,
                stale_uploads: Vec<PathBuf>,
                /// Chunk objects no snapshot object of their node names.
                chunks_deleted: usize,
                chunk_bytes_deleted: u64,
            }
            let r = Report {
                dry_run: *dry_run,
                kept: report.kept.iter().map(object).collect(),
                deleted: report.deleted.iter().map(object).collect(),
                stale_uploads: report
                    .stale_uploads
                    .iter()
                    .map(|s| s.path.clone())
                    .collect(),
                chunks_deleted: report.chunks_deleted,
                chunk_bytes_deleted: report.chunk_bytes_deleted,
            };
            out.json(&r)?;
            let verb = if *dry_run { "would delete" } else { "deleted" };
            for o in &r.deleted {
                text!(out, "{verb} {}/{}", o.node, o.file);
            }
            for p in &r.stale_uploads {
                text!(
                    out,
                    "{verb} the staging file of an interrupted upload: {}",
                    Escaped::path(p)
                );
            }
            if r.chunks_deleted > 0 {
                text!(
                    out,
                    "{verb} {} chunk object(s) no snapshot names ({} bytes)",
                    r.chunks_deleted,
                    r.chunk_bytes_deleted
                );
            }
            text!(out, "kept {}, {verb} {}", r.kept.len(), r.deleted.len());
            Ok(Status::Ok)
        }
        Action::Hold {
            url,
            node,
            file,
            remote,
        } => {
            let name = committed_name(file)?;
            let remote = open_remote(url, remote)?;
            retention::hold(&remote, node, &name)
                .map_err(ship_error)
                .context("remote hold")?;
            text!(out, "held {node}/{file}");
            Ok(Status::Ok)
        }
        Action::Repair {
            url,
            node,
            keys,
            max_file_bytes,
            discard_unusable_legacy,
            remote,
        } => run_repair(
            url,
            node,
            keys,
            *max_file_bytes,
            *discard_unusable_legacy,
            remote,
            out,
        ),
        Action::Release {
            url,
            node,
            file,
            remote,
        } => {
            let name = committed_name(file)?;
            let remote = open_remote(url, remote)?;
            let had = retention::release(&remote, node, &name)
                .map_err(ship_error)
                .context("remote release")?;
            text!(
                out,
                "{} {node}/{file}",
                if had { "released" } else { "no hold on" }
            );
            Ok(Status::failed_if(!had))
        }
    }
}

/// `remote repair`: prints, per node, what it kept, dropped (with the reason) and rewrote, and
/// the holds; exits 1 when it kept an unusable legacy index.
fn run_repair(
    url: &str,
    node: &Option<String>,
    keys: &[PathBuf],
    max_file_bytes: Option<u64>,
    discard_unusable_legacy: bool,
    remote: &RemoteArgs,
    out: &Out,
) -> anyhow::Result<Status> {
    // `--key` is required: the default directory is never consulted.
    let trusted = Trusted::load(keys, std::path::Path::new("."))?;
    let remote = open_remote(url, remote)?;
    let mut opts = RepairOptions::default();
    opts.node = node.clone();
    opts.discard_unusable_legacy = discard_unusable_legacy;
    if let Some(max) = max_file_bytes {
        opts.max_file_bytes = max;
    }
    let report = repair::repair(&remote, &*trusted.verifier(), &opts)
        .map_err(ship_error)
        .context("remote repair")?;
    #[derive(Serialize)]
    struct Dropped {
        file: String,
        reason: String,
    }
    #[derive(Serialize)]
    struct Node {
        node: String,
        previous: String,
        kept: Vec<String>,
        dropped: Vec<Dropped>,
        holds: Vec<String>,
        holds_migrated: Vec<String>,
    }
    #[derive(Serialize)]
    struct Report {
        nodes: Vec<Node>,
        legacy: String,
    }
    let files = |names: &[SnapshotName]| names.iter().map(|n| n.file_name()).collect::<Vec<_>>();
    let (legacy, kept_unusable) = match &report.legacy {
        LegacyRepair::Absent => ("absent".to_string(), false),
        LegacyRepair::Deleted => ("migrated and deleted".to_string(), false),
        LegacyRepair::KeptForOtherNodes => ("kept for the other nodes".to_string(), false),
        LegacyRepair::Unusable { reason, deleted } => (
            format!(
                "unusable ({}): its holds could not be read; {}",
                Escaped::str(reason),
                if *deleted {
                    "deleted"
                } else {
                    "kept (--discard-unusable-legacy deletes it)"
                }
            ),
            !deleted,
        ),
        _ => ("unknown".to_string(), false),
    };
    let r = Report {
        nodes: report
            .nodes
            .iter()
            .map(|n| Node {
                node: n.node.clone(),
                previous: n.previous.clone(),
                kept: files(&n.kept),
                dropped: n
                    .dropped
                    .iter()
                    .map(|d| Dropped {
                        file: d.name.file_name(),
                        reason: d.reason.clone(),
                    })
                    .collect(),
                holds: files(&n.holds),
                holds_migrated: files(&n.holds_migrated),
            })
            .collect(),
        legacy,
    };
    out.json(&r)?;
    for n in &r.nodes {
        for f in &n.kept {
            text!(out, "kept {}/{f}", n.node);
        }
        for d in &n.dropped {
            text!(
                out,
                "dropped {}/{}: {}",
                n.node,
                d.file,
                Escaped::str(&d.reason)
            );
        }
        for f in &n.holds_migrated {
            text!(
                out,
                "migrated the hold on {}/{f} from the legacy index",
                n.node
            );
        }
        for f in &n.holds {
            text!(out, "held {}/{f}", n.node);
        }
        text!(
            out,
            "rewrote {}/index.json: {} snapshots, {} dropped, {} holds (it was {})",
            n.node,
            n.kept.len(),
            n.dropped.len(),
            n.holds.len(),
            Escaped::str(&n.previous)
        );
    }
    text!(out, "legacy index.json: {}", r.legacy);
    Ok(Status::failed_if(kept_unusable))
}
