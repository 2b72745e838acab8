//! A snapshot proven by a signed statement (no Merkle tree) verifies through the command with
//! the node's key, and the command says which scheme proved it.

use std::sync::Arc;

use crate::support::snapseal;
use snapseal::persist::fs::RealFs;
use snapseal::persist::internals::format::body_digest;
use snapseal::persist::internals::receipt::SignedStatement;
use snapseal::persist::internals::PersistRequest;
use snapseal::persist::receipt::Ed25519Verifier;
use snapseal::persist::{to_hex, SigningKey, SnapshotStore, StoreOptions};
use snapseal::persist::{Claims, Flags};

#[test]
fn verify_accepts_a_statement_signed_by_the_node_key_and_names_the_scheme() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = SigningKey::from_bytes(&[21; 32]);
    let body = b"state at 7".to_vec();
    let claims = Claims {
        idx: 7,
        flags: Flags::NONE,
        body_len: body.len() as u64,
        raw_len: body.len() as u64,
        body_digest: body_digest(&body),
    };
    let receipt = SignedStatement::sign(&key, &claims, 8, None)
        .unwrap()
        .encode()
        .unwrap();
    {
        let verifier =
            Ed25519Verifier::new(Vec::new()).with_statement_keys(vec![key.verifying_key()]);
        let store = SnapshotStore::open(
            Arc::new(RealFs::new()),
            dir,
            StoreOptions::new(Arc::new(verifier)),
        )
        .unwrap();
        store
            .persist(&PersistRequest {
                idx: 7,
                evidence_idx: 8,
                flags: Flags::NONE,
                raw_len: body.len() as u64,
                body_digest: claims.body_digest,
                body: &body,
                receipt: &receipt,
            })
            .unwrap();
    }
    std::fs::write(
        dir.join("node.pub"),
        format!("{}\n", to_hex(key.verifying_key().as_bytes())),
    )
    .unwrap();
    let run = snapseal(&["verify", dir.to_str().unwrap()]).expect(0);
    assert!(run.stdout.contains("scheme statement"), "{}", run.stdout);

    // Another key: the statement is not trusted, and verify fails.
    let other = SigningKey::from_bytes(&[22; 32]).verifying_key();
    std::fs::write(
        dir.join("node.pub"),
        format!("{}\n", to_hex(other.as_bytes())),
    )
    .unwrap();
    snapseal(&["verify", dir.to_str().unwrap()]).expect(1);
}
