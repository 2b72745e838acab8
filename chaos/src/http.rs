//! HTTP to the nodes. Nodes are hostile: bodies are capped, parsed leniently (a body that is
//! not JSON is `Value::Null`), and every request has a timeout.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

/// The most of a response body read.
const MAX_BODY: usize = 256 * 1024;

/// A node's answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

impl Reply {
    /// The leader a 409 names, if it names one.
    pub(crate) fn leader(&self) -> Option<(u64, Option<SocketAddr>)> {
        let id = self.body.get("leader")?.as_u64()?;
        let addr = self
            .body
            .get("leader_addr")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok());
        Some((id, addr))
    }
}

/// The shared client. A pooled connection to a killed node fails fast; the op that used it is
/// recorded as unknown and the next op opens a new one.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

/// POSTs `body` (JSON) to `addr` + `path`.
pub(crate) async fn post(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Reply, String> {
    let req = http.post(format!("http://{addr}{path}")).json(body);
    send(req, timeout).await
}

/// GETs `addr` + `path`.
pub(crate) async fn get(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<Reply, String> {
    send(http.get(format!("http://{addr}{path}")), timeout).await
}

async fn send(req: reqwest::RequestBuilder, timeout: Duration) -> Result<Reply, String> {
    let work = async {
        let mut resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(format!("a body over {MAX_BODY} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply { status, body })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
