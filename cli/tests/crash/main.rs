//! The demo killed at random instants, by SIGKILL (`kill9`) and by a power cut on a real ext4
//! filesystem (`ext4_crash`), checked against the crash contract in [`support`]. A binary of
//! their own: they are long, own child processes and loop devices, and run one at a time
//! ([`support::alone`]) so that neither disturbs the other's timing.
//!
//! `cargo test -p snapseal-cli --test crash [kill9|ext4_crash] -- --nocapture`.

mod support;

mod ext4_crash;
mod kill9;
