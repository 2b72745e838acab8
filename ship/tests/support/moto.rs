//! A moto S3 server process owned by one test (the server CI installs, see `.ci/run`): started
//! on a free loopback port, killed with SIGKILL, restarted *with its state*, and switched to
//! checking credentials.
//!
//! moto keeps its state in memory. To restart it the way a real server restarts (buckets,
//! complete objects and incomplete multipart uploads kept; in-flight requests lost), it runs
//! with moto's request recorder on: every request it accepted is appended to a log, and the
//! restarted process replays that log before any client reaches it. A request cut off by the
//! kill leaves at most a torn last line, which is dropped, like a torn log tail.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub(crate) struct Moto {
    child: Option<Child>,
    port: u16,
    recording: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// Whether python3 can run moto's server and boto3 (the credential setup), or why not.
fn available() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("python3 does not run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python3 cannot import moto.server and boto3 (pip install 'moto[server]'): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ))
    }
}

/// One HTTP/1.1 request with a bounded wait: the status code and the body.
pub(crate) fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(body).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

impl Moto {
    /// Starts a server (with the recorder when `recording`), or `None` after printing why the
    /// test is skipped; under `SNAPSEAL_REQUIRE_S3=1` a missing moto fails the test instead.
    pub(crate) fn start(test: &str, recording: bool) -> Option<Moto> {
        if let Err(reason) = available() {
            if std::env::var("SNAPSEAL_REQUIRE_S3").is_ok_and(|v| v == "1") {
                panic!("{test}: SNAPSEAL_REQUIRE_S3=1 but {reason}");
            }
            println!("{test}: SKIPPED (did not run): {reason}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let recording = recording.then(|| dir.path().join("recording.jsonl"));
        let mut moto = Moto {
            child: None,
            port: 0,
            recording,
            _dir: dir,
        };
        // A free port can be taken between the probe and the bind: try a few.
        for _ in 0..5 {
            moto.port = free_port();
            if moto.spawn() {
                return Some(moto);
            }
        }
        panic!("{test}: moto did not start on loopback");
    }

    /// The endpoint URL.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The recorder's log (grows with every request the server accepts).
    pub(crate) fn recording(&self) -> &Path {
        self.recording.as_deref().unwrap()
    }

    /// SIGKILL, and reaped.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and replays the recorded requests into it
    /// (dropping a torn last line first), so it holds what the killed one held.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let log = self.recording().to_path_buf();
        let mut bytes = std::fs::read(&log).unwrap();
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(whole);
        std::fs::write(&log, &bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "moto did not restart");
        }
        let (status, body) = http(
            self.port,
            "POST",
            "/moto-api/recorder/replay-recording",
            b"",
        )
        .expect("replaying moto's recording");
        assert_eq!(status, 200, "replaying moto's recording: {body}");
    }

    /// Runs a Python script with boto3 against this server (`ENDPOINT` in its environment);
    /// its standard output.
    pub(crate) fn python(&self, script: &str) -> String {
        let out = Command::new("python3")
            .args(["-c", script])
            .env("ENDPOINT", self.endpoint())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// From now on every request must be signed by a key the server's IAM knows, with a
    /// policy allowing it.
    pub(crate) fn require_auth(&self) {
        let (status, body) = http(self.port, "POST", "/moto-api/reset-auth", b"0").unwrap();
        assert_eq!(status, 200, "turning moto's authentication on: {body}");
    }

    /// Spawns the process and waits (bounded) until it answers; false if it exited first.
    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(log) = &self.recording {
            cmd.env("MOTO_ENABLE_RECORDING", "true")
                .env("MOTO_RECORDER_FILEPATH", log);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if http(self.port, "GET", "/moto-api/data.json", b"").is_some_and(|(s, _)| s == 200) {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
