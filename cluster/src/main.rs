//! `snapseal-cluster`: a small replicated key-value service on openraft, whose Raft snapshots
//! are snapseal files (`snapseal-openraft`) shipped to object storage (`snapseal-ship`).
//!
//! - `snapseal-cluster node ...` runs one node: a durable Raft log ([`journal`]), the sealed
//!   state machine ([`machine`]) over a sorted map ([`kv`]), an HTTP transport
//!   ([`network`]) and API ([`api`]), and shipping of its snapshots ([`outbox`]).
//! - `snapseal-cluster up` starts a local cluster of such nodes ([`up`]).
//!
//! See cluster/README.md for the API and what is durable.
#![deny(missing_docs)]

mod api;
mod journal;
mod kv;
mod machine;
mod network;
mod node;
mod outbox;
mod up;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "snapseal-cluster",
    about = "A replicated KV service on openraft + snapseal"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one node.
    Node(node::NodeArgs),
    /// Start a local cluster of nodes and keep it running until Ctrl-C.
    Up(up::UpArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("snapseal-cluster: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Node(args) => node::run(args).await,
            Cmd::Up(args) => up::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snapseal-cluster: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
