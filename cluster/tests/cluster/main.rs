//! The cluster as a user runs it: real `snapseal-cluster node` processes on loopback, killed
//! with SIGKILL, restarted, and rebuilt from object storage. Every wait is bounded
//! ([`support::DEADLINE`]); a node's stderr is in its directory's parent as `n<id>.log`.

mod crash;
mod kv;
mod rejoin;
mod routes;
mod s3;
mod support;
