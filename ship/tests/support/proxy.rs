//! A small loopback TCP proxy in front of the S3 test server that misbehaves on a script:
//! connection `n` is forwarded, reset, stalled, answered with 503, or forwarded until the
//! stall point. Every stall is bounded in time, so no test can hang on it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// What the proxy does with one accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Pass bytes both ways.
    Forward,
    /// Close at once, before any byte.
    Reset,
    /// Read and hold, answering nothing, for this long, then close.
    Stall(Duration),
    /// Answer `503 Slow Down` (S3's throttling) and close.
    SlowDown,
    /// Forward until the client→server bytes of all `CutAfter` connections together pass
    /// `n`; from then on hold (bounded by the duration) and close.
    CutAfter(u64, Duration),
    /// Answer `403 Forbidden` with S3's `InvalidAccessKeyId` and close.
    Forbidden,
}

/// A running proxy.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    pub(crate) connections: Arc<AtomicUsize>,
    /// Client→server bytes forwarded on `CutAfter` connections.
    pub(crate) sent: Arc<AtomicU64>,
    /// Set once a `CutAfter` limit was reached.
    pub(crate) tripped: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`host:port`); `script(n)` decides connection `n`.
    pub(crate) fn start(
        upstream: String,
        script: impl Fn(usize) -> Action + Send + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let tripped = Arc::new(AtomicBool::new(false));
        let count = Arc::clone(&connections);
        let cut = Cut {
            sent: Arc::clone(&sent),
            tripped: Arc::clone(&tripped),
        };
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let action = script(n);
                let upstream = upstream.clone();
                let cut = cut.clone();
                thread::spawn(move || serve(client, &upstream, action, &cut));
            }
        });
        Proxy {
            port,
            connections,
            sent,
            tripped,
        }
    }

    /// The endpoint URL clients use.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[derive(Clone)]
struct Cut {
    sent: Arc<AtomicU64>,
    tripped: Arc<AtomicBool>,
}

fn serve(mut client: TcpStream, upstream: &str, action: Action, cut: &Cut) {
    match action {
        Action::Reset => {
            let _ = client.shutdown(Shutdown::Both);
        }
        Action::Stall(d) => hold(client, d),
        Action::SlowDown => {
            let mut buf = [0u8; 65536];
            let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = client.read(&mut buf);
            let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(Shutdown::Both);
        }
        Action::Forbidden => {
            let mut buf = [0u8; 65536];
            let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = client.read(&mut buf);
            let body = "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(Shutdown::Both);
        }
        Action::Forward => forward(client, upstream, None, cut),
        Action::CutAfter(n, d) => forward(client, upstream, Some((n, d)), cut),
    }
}

/// Reads and discards for at most `d`, then closes.
fn hold(mut client: TcpStream, d: Duration) {
    let _ = client.set_read_timeout(Some(Duration::from_millis(100)));
    let until = std::time::Instant::now() + d;
    let mut buf = [0u8; 65536];
    while std::time::Instant::now() < until {
        match client.read(&mut buf) {
            Ok(0) => break,
            _ => continue,
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

fn forward(client: TcpStream, upstream: &str, cut_after: Option<(u64, Duration)>, cut: &Cut) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut s_read, mut c_write) = (server, client);
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    let mut buf = [0u8; 16384];
    loop {
        let n = match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((limit, d)) = cut_after {
            let total = cut.sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if total > limit || cut.tripped.load(Ordering::SeqCst) {
                cut.tripped.store(true, Ordering::SeqCst);
                let _ = s_write.shutdown(Shutdown::Both);
                hold(c_read, d);
                return;
            }
        }
        if s_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
    let _ = back.join();
}
