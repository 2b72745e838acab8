//! The `snapseal` command: a demo node that drives the snapshot pipeline against a real
//! directory, and operator tools to list, inspect, verify, pick and clean up snapshot files.
//!
//! Everything lives in [`cli`]; this file only hands the process exit code back.
#![deny(missing_docs)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
