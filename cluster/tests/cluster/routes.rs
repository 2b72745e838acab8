//! The `--routes` file: Raft RPCs to a peer go where it says, and a rewrite (temporary file +
//! rename) takes effect while the node runs.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use crate::support::Cluster;

/// A loopback TCP proxy to `target`; counts the connections it forwarded.
async fn proxy(target: String) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::Relaxed);
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}

/// Replaces the routes file atomically.
fn write_routes(path: &Path, routes: &serde_json::Value) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, routes.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_rpcs_follow_the_routes_file_and_its_atomic_rewrite() {
    let mut c = Cluster::configure(3, &[]);
    let routes = c.root.path().join("routes-1.json");
    let (a, via_a) = proxy(c.addr(2)).await;
    let (b, via_b) = proxy(c.addr(3)).await;
    write_routes(&routes, &serde_json::json!({"2": a, "3": b}));
    let flag = format!("--routes={}", routes.display());
    c.nodes.get_mut(&1).unwrap().flags.push(flag);
    c.launch();
    let all = [1, 2, 3];
    for i in 0..5 {
        c.put(&all, &format!("k{i}"), "v").await;
    }
    c.converged(&all, 0).await;
    assert!(
        via_a.load(Ordering::Relaxed) >= 1,
        "node 1 reached node 2 through proxy a"
    );
    assert!(
        via_b.load(Ordering::Relaxed) >= 1,
        "node 1 reached node 3 through proxy b"
    );

    // Node 2 now through a new proxy c: node 1's next connections to it go there.
    let (d, via_d) = proxy(c.addr(2)).await;
    write_routes(&routes, &serde_json::json!({"2": d, "3": b}));
    c.wait("a connection through the new route", || async {
        c.put(&all, "again", "v").await;
        (via_d.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;
    let last = c.get(c.leader_among(&all).await, "/status").await.unwrap()["last_applied"]
        .as_u64()
        .unwrap();
    assert_eq!(c.converged(&all, last).await["len"], 6);
}
