//! The S3 test server: where it is, buckets, client options.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use snapseal_ship::RemoteOptions;

/// The endpoint, or why the test cannot run.
pub(crate) fn endpoint(test: &str) -> Option<String> {
    let reason = match std::env::var("SNAPSEAL_S3_ENDPOINT") {
        Err(_) => "SNAPSEAL_S3_ENDPOINT is not set".to_string(),
        Ok(url) => match host_port(&url).and_then(|hp| {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&hp).ok()?.next()?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()
        }) {
            Some(_) => return Some(url),
            None => format!("no S3 server answers at {url}"),
        },
    };
    if std::env::var("SNAPSEAL_REQUIRE_S3").is_ok_and(|v| v == "1") {
        panic!("{test}: SNAPSEAL_REQUIRE_S3=1 but {reason}");
    }
    println!("{test}: SKIPPED (did not run): {reason}");
    None
}

pub(crate) fn host_port(url: &str) -> Option<String> {
    Some(
        url.strip_prefix("http://")?
            .trim_end_matches('/')
            .to_string(),
    )
}

/// Creates `bucket` with a plain HTTP request (object_store does not create buckets; the
/// test server does not check signatures on this call).
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
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
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
