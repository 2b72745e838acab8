//! The `snapseal` command through the built binary, in one test binary (each module was once a
//! binary of its own, linking the whole dependency graph again) over the fixtures in
//! [`support`]: each command's behaviour, output and exit codes, damaged and hostile input,
//! shipping and archives, and what the production binary depends on. The crash tests, which
//! must run alone, are the `crash` binary.
//!
//! `cargo test -p snapseal-cli --test cli [module::]` runs them (all, or one module's);
//! `archive_rss` is ignored by default (figures, minutes: see its docs).

mod support;

mod archive_rss;
mod cli_archive;
mod cli_bench;
mod cli_damage;
mod cli_demo;
mod cli_deterministic;
mod cli_gc;
mod cli_hostile;
mod cli_output;
mod cli_repair;
mod cli_scheme;
mod cli_ship;
mod cli_ship_chunked;
mod production_deps;
