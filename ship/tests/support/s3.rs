//! The S3 test servers: which ones there are, buckets, client options, and [`s3_test!`], which
//! makes one test per server of a test function.
//!
//! CI runs two independent S3-compatible servers (see `.ci/run`) and names both in
//! `SNAPSEAL_S3_ENDPOINTS=moto=http://127.0.0.1:5055,s3rver=http://127.0.0.1:5056`:
//!
//! - **moto** (PyPI `moto[server]`) honours conditional requests (`If-None-Match`,
//!   `If-Match`), accepts any access key unless its IAM is switched on (a test doing that
//!   starts a moto of its own, `support::moto`);
//! - **s3rver** (npm `s3rver`) ignores conditional headers (a create overwrites, an update
//!   never fails), refuses an unknown access key (`InvalidAccessKeyId`; it knows only
//!   `S3RVER`) but does not check V4 signatures, and keeps its objects in a directory.
//!
//! A design that is correct only on one of them is a bug, so every test made with
//! [`s3_test!`] runs on both. `SNAPSEAL_S3_ENDPOINT=URL` alone (one server) still works: it
//! is the `moto` entry, whatever server answers there. A test whose server is not named, or
//! does not answer, prints `SKIPPED (did not run): reason`; under `SNAPSEAL_REQUIRE_S3=1` (CI)
//! that is a failure instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use snapseal_ship::{Remote, RemoteOptions};

/// The servers [`s3_test!`] makes a test for, in order.
pub(crate) const SERVERS: [&str; 2] = ["moto", "s3rver"];

/// The access key every test client signs with: the only one s3rver knows; moto, with its
/// IAM off, accepts any.
pub(crate) const ACCESS_KEY: &str = "S3RVER";

/// One S3-compatible server a test runs against.
#[derive(Clone, Debug)]
pub(crate) struct Server {
    /// `moto` or `s3rver`.
    pub(crate) name: &'static str,
    /// `http://host:port`.
    pub(crate) endpoint: String,
}

impl Server {
    /// The server called `name`, or `None` after printing why `test` is skipped (a panic
    /// under `SNAPSEAL_REQUIRE_S3=1`).
    pub(crate) fn named(name: &'static str, test: &str) -> Option<Server> {
        let reason = match configured(name) {
            Err(reason) => reason,
            Ok(endpoint) if answers(&endpoint) => return Some(Server { name, endpoint }),
            Ok(endpoint) => format!("no S3 server answers at {endpoint} ({name})"),
        };
        if required() {
            panic!("{test}: SNAPSEAL_REQUIRE_S3=1 but {reason}");
        }
        println!("{test}: SKIPPED (did not run): {reason}");
        None
    }

    /// A new, empty bucket of a unique name (tagged `tag`) on this server.
    pub(crate) fn bucket(&self, tag: &str) -> String {
        let bucket = unique_bucket(tag);
        create_bucket(&self.endpoint, &bucket);
        bucket
    }

    /// Client options for this server.
    pub(crate) fn options(&self) -> RemoteOptions {
        s3_options(&self.endpoint)
    }

    /// `s3://bucket[/prefix]` on this server.
    pub(crate) fn remote(&self, bucket_and_prefix: &str) -> Arc<Remote> {
        Arc::new(Remote::open(&format!("s3://{bucket_and_prefix}"), &self.options()).unwrap())
    }
}

/// One test per S3 server in [`SERVERS`] for each function named: `s3_test!(a, b)`, after
/// `fn a(server: &Server)` and `fn b(…)`, makes modules `a` and `b`, each with a test `moto`
/// and a test `s3rver` that run the function on that server (or skip as [`Server::named`]
/// says). So a failure names the server, and `cargo test --test s3 s3rver` runs one
/// server's.
#[allow(unused_macros)] // the `local` binary shares this module
macro_rules! s3_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn moto() {
                $crate::support::s3::run_on("moto", module_path!(), super::$name);
            }

            #[test]
            fn s3rver() {
                $crate::support::s3::run_on("s3rver", module_path!(), super::$name);
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use s3_test;

/// Runs `test` on the server called `name`, if there is one (see [`Server::named`]).
pub(crate) fn run_on(name: &'static str, test: &str, body: fn(&Server)) {
    if let Some(server) = Server::named(name, test) {
        println!("{test}: on {name} at {}", server.endpoint);
        body(&server);
    }
}

fn required() -> bool {
    std::env::var("SNAPSEAL_REQUIRE_S3").is_ok_and(|v| v == "1")
}

/// The endpoint `SNAPSEAL_S3_ENDPOINTS` (or, for `moto`, `SNAPSEAL_S3_ENDPOINT`) gives
/// `name`, or why there is none.
fn configured(name: &str) -> Result<String, String> {
    if let Ok(list) = std::env::var("SNAPSEAL_S3_ENDPOINTS") {
        return list
            .split(',')
            .filter_map(|entry| entry.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, url)| url.to_string())
            .ok_or_else(|| format!("SNAPSEAL_S3_ENDPOINTS ({list}) names no {name} server"));
    }
    match std::env::var("SNAPSEAL_S3_ENDPOINT") {
        Ok(url) if name == SERVERS[0] => Ok(url),
        Ok(_) => Err(format!(
            "SNAPSEAL_S3_ENDPOINT names one server (run as {}); SNAPSEAL_S3_ENDPOINTS names no {name} server",
            SERVERS[0]
        )),
        Err(_) => Err("neither SNAPSEAL_S3_ENDPOINTS nor SNAPSEAL_S3_ENDPOINT is set".into()),
    }
}

fn answers(endpoint: &str) -> bool {
    host_port(endpoint)
        .and_then(|hp| {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&hp).ok()?.next()?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()
        })
        .is_some()
}

/// The first server's endpoint (moto in CI), or why the test cannot run: for a test that
/// needs one server and no more.
pub(crate) fn endpoint(test: &str) -> Option<String> {
    Server::named(SERVERS[0], test).map(|s| s.endpoint)
}

pub(crate) fn host_port(url: &str) -> Option<String> {
    Some(
        url.strip_prefix("http://")?
            .trim_end_matches('/')
            .to_string(),
    )
}

/// Creates `bucket` with a plain unsigned HTTP request (object_store does not create
/// buckets; neither test server asks for a signature on this call).
pub(crate) fn create_bucket(endpoint: &str, bucket: &str) {
    let hp = host_port(endpoint).unwrap();
    let mut s = TcpStream::connect(&hp).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {hp}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {answer}"
    );
}

pub(crate) fn s3_options(endpoint: &str) -> RemoteOptions {
    let mut o = RemoteOptions::default();
    for (k, v) in [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", ACCESS_KEY),
        ("aws_secret_access_key", ACCESS_KEY),
        ("aws_region", "us-east-1"),
    ] {
        o.options.push((k.to_string(), v.to_string()));
    }
    o
}

pub(crate) fn unique_bucket(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("snapseal-{tag}-{}-{nanos}", std::process::id())
}
