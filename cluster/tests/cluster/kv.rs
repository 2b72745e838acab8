//! The client API through the leader, and a follower's redirect.

use serde_json::{json, Value};

use crate::support::Cluster;

/// `body` to `path` on the leader, again after a 409 (leadership moved: nothing was done).
async fn on_leader(c: &Cluster, path: &str, body: Value) -> (u16, Value) {
    c.wait("an answer from the leader", || async {
        let leader = c.leader_among(&[1, 2, 3]).await;
        let got = c.post(leader, path, body.clone()).await?;
        (got.0 != 409).then_some(got)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_gets_and_cas_go_through_the_leader_and_a_follower_answers_409_naming_it() {
    let c = Cluster::start(3, &[]);
    let all = [1, 2, 3];
    c.put(&all, "a", "1").await;

    let got = on_leader(&c, "/kv/get", json!({"key": "a"})).await;
    assert_eq!(got, (200, json!({"value": "1"})));
    let got = on_leader(&c, "/kv/get", json!({"key": "nothing"})).await;
    assert_eq!(got, (200, json!({"value": null})));

    let cas = json!({"key": "a", "from": "0", "to": "2"});
    let refused = on_leader(&c, "/kv/cas", cas).await;
    assert_eq!(refused, (200, json!({"ok": false, "value": "1"})));
    let cas = json!({"key": "a", "from": "1", "to": "2"});
    let done = on_leader(&c, "/kv/cas", cas).await;
    assert_eq!(done, (200, json!({"ok": true, "value": "1"})));
    let cas = json!({"key": "b", "from": null, "to": "x"});
    let created = on_leader(&c, "/kv/cas", cas).await;
    assert_eq!(created, (200, json!({"ok": true, "value": null})));
    let got = on_leader(&c, "/kv/get", json!({"key": "a"})).await;
    assert_eq!(got, (200, json!({"value": "2"})));

    // Requests that change nothing even if leadership moved meanwhile and the "follower"
    // took them as the leader.
    for (path, body) in [
        ("/kv/put", json!({"key": "a", "value": "2"})),
        ("/kv/get", json!({"key": "a"})),
        ("/kv/cas", json!({"key": "a", "from": "9", "to": "3"})),
    ] {
        c.wait("a follower's 409 naming the leader", || async {
            let leader = c.leader_among(&all).await;
            let follower = all.into_iter().find(|id| *id != leader)?;
            let not_leader =
                json!({"error": "not_leader", "leader": leader, "leader_addr": c.addr(leader)});
            let got = c.post(follower, path, body.clone()).await?;
            (got == (409, not_leader)).then_some(())
        })
        .await;
    }
    let state = c.converged(&all, 0).await;
    assert_eq!(state["len"], 2);
}
