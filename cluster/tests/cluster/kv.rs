//! The client API through the leader, and a follower's redirect.

use serde_json::json;

use crate::support::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_gets_and_cas_go_through_the_leader_and_a_follower_answers_409_naming_it() {
    let c = Cluster::start(3, &[]);
    let all = [1, 2, 3];
    let leader = c.leader_among(&all).await;
    c.put(&all, "a", "1").await;

    let ask = |path: &'static str, body| c.post(leader, path, body);
    let got = ask("/kv/get", json!({"key": "a"})).await.unwrap();
    assert_eq!(got, (200, json!({"value": "1"})));
    let got = ask("/kv/get", json!({"key": "nothing"})).await.unwrap();
    assert_eq!(got, (200, json!({"value": null})));

    let refused = ask("/kv/cas", json!({"key": "a", "from": "0", "to": "2"}))
        .await
        .unwrap();
    assert_eq!(refused, (200, json!({"ok": false, "value": "1"})));
    let done = ask("/kv/cas", json!({"key": "a", "from": "1", "to": "2"}))
        .await
        .unwrap();
    assert_eq!(done, (200, json!({"ok": true, "value": "1"})));
    let created = ask("/kv/cas", json!({"key": "b", "from": null, "to": "x"}))
        .await
        .unwrap();
    assert_eq!(created, (200, json!({"ok": true, "value": null})));
    let got = ask("/kv/get", json!({"key": "a"})).await.unwrap();
    assert_eq!(got, (200, json!({"value": "2"})));

    let follower = all.into_iter().find(|id| *id != leader).unwrap();
    let not_leader =
        json!({"error": "not_leader", "leader": leader, "leader_addr": c.addr(leader)});
    for (path, body) in [
        ("/kv/put", json!({"key": "a", "value": "3"})),
        ("/kv/get", json!({"key": "a"})),
        ("/kv/cas", json!({"key": "a", "from": "2", "to": "3"})),
    ] {
        let got = c.post(follower, path, body).await.unwrap();
        assert_eq!(got, (409, not_leader.clone()), "{path} on a follower");
    }
    let state = c.converged(&all, 0).await;
    assert_eq!(state["len"], 2);
}
