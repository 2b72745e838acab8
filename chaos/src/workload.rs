//! The clients: each issues random put / get / cas on a handful of keys, with values unique
//! across the run, to the leader it believes in (following a 409's hint), and records every op
//! with its invoke and completion times and what it learnt.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::SplitMix64;
use serde_json::{json, Value};

use crate::check::{Call, Op, Outcome};
use crate::http;

/// How long a client waits for an answer before it records the op as unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

/// What clients share with each other and with the driver.
pub(crate) struct Shared {
    start: Instant,
    /// Node id → client address of every member the driver knows.
    pub(crate) nodes: RwLock<BTreeMap<u64, SocketAddr>>,
    /// The last leader a client heard of (0: none).
    leader: AtomicU64,
    pub(crate) history: Mutex<Vec<Op>>,
    /// Latency of each op that got an answer (ok or 409), nanoseconds.
    pub(crate) latencies: Mutex<Vec<u64>>,
    pub(crate) stop: AtomicBool,
    pub(crate) keys: Vec<String>,
}

impl Shared {
    pub(crate) fn new(keys: usize) -> Shared {
        Shared {
            start: Instant::now(),
            nodes: RwLock::new(BTreeMap::new()),
            leader: AtomicU64::new(0),
            history: Mutex::new(Vec::new()),
            latencies: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            keys: (0..keys).map(|k| format!("k{k}")).collect(),
        }
    }

    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn set_node(&self, id: u64, addr: Option<SocketAddr>) {
        let mut nodes = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        match addr {
            Some(a) => nodes.insert(id, a),
            None => nodes.remove(&id),
        };
    }

    pub(crate) fn record(&self, op: Op) {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
    }

    /// Where to send the next op: the leader heard of, else a random known node.
    fn target(&self, rng: &mut SplitMix64) -> Option<SocketAddr> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        let leader = self.leader.load(Ordering::Relaxed);
        if let Some(addr) = nodes.get(&leader) {
            return Some(*addr);
        }
        let n = nodes.len();
        if n == 0 {
            return None;
        }
        let pick = usize::try_from(rng.next_u64() % n as u64).unwrap_or(0);
        nodes.values().nth(pick).copied()
    }
}

/// One client until `shared.stop`.
pub(crate) async fn client(id: u32, seed: u64, shared: Arc<Shared>, http: reqwest::Client) {
    let mut rng =
        SplitMix64::seed_from_u64(seed ^ (u64::from(id) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut seq: u64 = 0;
    let mut last_seen: HashMap<String, Option<String>> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(addr) = shared.target(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let key = shared.keys
            [usize::try_from(rng.next_u64() % shared.keys.len() as u64).unwrap_or(0)]
        .clone();
        seq += 1;
        let fresh = format!("c{id}-{seq}");
        let roll = rng.next_u64() % 100;
        let (call, path, body) = if roll < 40 {
            (Call::Get, "/kv/get", json!({ "key": key }))
        } else if roll < 75 {
            let body = json!({ "key": key, "value": fresh });
            (Call::Put { value: fresh }, "/kv/put", body)
        } else {
            let from = last_seen.get(&key).cloned().flatten();
            let body = json!({ "key": key, "from": from, "to": fresh });
            (Call::Cas { from, to: fresh }, "/kv/cas", body)
        };
        let invoke_ns = shared.now_ns();
        let reply = http::post(&http, addr, path, &body, OP_TIMEOUT).await;
        let complete_ns = shared.now_ns();
        let outcome = match &reply {
            Ok(r) if r.status == 200 => outcome_of(&call, &r.body),
            Ok(r) if r.status == 409 => {
                let leader = r.leader().map_or(0, |(id, _)| id);
                shared.leader.store(leader, Ordering::Relaxed);
                if leader == 0 {
                    // No leader yet (an election): do not spin on 409s.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Outcome::Failed
            }
            _ => {
                shared.leader.store(0, Ordering::Relaxed);
                Outcome::Unknown
            }
        };
        match &outcome {
            Outcome::Read { value } | Outcome::Swapped { prev: value, .. } => {
                let now = match (&outcome, &call) {
                    (Outcome::Swapped { ok: true, .. }, Call::Cas { to, .. }) => Some(to.clone()),
                    _ => value.clone(),
                };
                last_seen.insert(key.clone(), now);
            }
            _ => {}
        }
        if !matches!(outcome, Outcome::Unknown) {
            shared
                .latencies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(complete_ns.saturating_sub(invoke_ns));
        }
        let settled = !matches!(outcome, Outcome::Unknown);
        shared.record(Op {
            client: id,
            key,
            call,
            outcome,
            invoke_ns,
            complete_ns: settled.then_some(complete_ns),
        });
        if !settled {
            // Do not hammer a node that is down or a cluster without a leader.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a 200 says, read leniently: a body that does not have the promised shape is an
/// unknown outcome (the op may have happened), never a panic.
pub(crate) fn outcome_of(call: &Call, body: &Value) -> Outcome {
    let value_of = |v: Option<&Value>| -> Option<Option<String>> {
        match v? {
            Value::Null => Some(None),
            Value::String(s) => Some(Some(s.clone())),
            _ => None,
        }
    };
    match call {
        Call::Put { .. } => match body.get("ok") {
            Some(Value::Bool(true)) => Outcome::Written,
            _ => Outcome::Unknown,
        },
        Call::Get => match value_of(body.get("value")) {
            Some(value) => Outcome::Read { value },
            None => Outcome::Unknown,
        },
        Call::Cas { .. } => match (
            body.get("ok").and_then(Value::as_bool),
            value_of(body.get("value")),
        ) {
            (Some(ok), Some(prev)) => Outcome::Swapped { ok, prev },
            _ => Outcome::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_200_with_the_promised_shape_is_a_definite_outcome() {
        let put = Call::Put { value: "v".into() };
        let cas = Call::Cas {
            from: None,
            to: "v".into(),
        };
        assert_eq!(outcome_of(&put, &json!({"ok": true})), Outcome::Written);
        assert_eq!(
            outcome_of(&Call::Get, &json!({"value": null})),
            Outcome::Read { value: None }
        );
        assert_eq!(
            outcome_of(&Call::Get, &json!({"value": "x"})),
            Outcome::Read {
                value: Some("x".into())
            }
        );
        assert_eq!(
            outcome_of(&cas, &json!({"ok": false, "value": "y"})),
            Outcome::Swapped {
                ok: false,
                prev: Some("y".into())
            }
        );
    }

    #[test]
    fn a_200_of_any_other_shape_is_unknown_never_a_panic() {
        let put = Call::Put { value: "v".into() };
        let cas = Call::Cas {
            from: None,
            to: "v".into(),
        };
        for body in [
            Value::Null,
            json!([1, 2]),
            json!({"ok": "yes"}),
            json!({"value": 7}),
            json!("text"),
        ] {
            assert_eq!(outcome_of(&put, &body), Outcome::Unknown, "{body}");
            assert_eq!(outcome_of(&Call::Get, &body), Outcome::Unknown, "{body}");
            assert_eq!(outcome_of(&cas, &body), Outcome::Unknown, "{body}");
        }
        // A cas answer without the previous value says nothing checkable.
        assert_eq!(outcome_of(&cas, &json!({"ok": true})), Outcome::Unknown);
    }
}
