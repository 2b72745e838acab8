//! After a run: every committed snapshot file in every node's directory, and every object
//! shipped to the remote, verifies against the cluster's key.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStoreExt;
use snapseal_persist::fs::{FileSystem, RealFs};
use snapseal_persist::internals::{classify_dir, open_snapshot, verify_bytes, Escaped};
use snapseal_persist::receipt::{ReceiptVerifier, Schemes, StatementScheme};
use snapseal_persist::{ErrorChain, FileState, SigningKey};
use snapseal_ship::Remote;

/// The largest shipped object read into memory to verify it.
const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// What verified and what did not.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    pub(crate) local_files: usize,
    pub(crate) remote_objects: usize,
    pub(crate) failures: Vec<String>,
}

/// The verifier every node uses: statements signed by the cluster's key (see
/// `snapseal_openraft::SealOptions`: the cluster's nodes share one key).
pub(crate) fn verifier(key_seed: &[u8; 32]) -> Arc<dyn ReceiptVerifier> {
    let key = SigningKey::from_bytes(key_seed).verifying_key();
    Arc::new(Schemes::new().with(Arc::new(StatementScheme::new(vec![key]))))
}

/// Verifies every committed file in `dir` (a node's `DIR/snapshots`; absent is fine: a node
/// that never built one). `label` names the node in failures.
pub(crate) fn local(dir: &Path, label: &str, verifier: &dyn ReceiptVerifier, out: &mut Verified) {
    if !dir.exists() {
        return;
    }
    let handle = match RealFs.open_dir(dir, false) {
        Ok(h) => h,
        Err(e) => {
            out.failures
                .push(format!("{label}: opening {}: {e}", dir.display()));
            return;
        }
    };
    let entries = match classify_dir(handle.as_ref()) {
        Ok(entries) => entries,
        Err(e) => {
            out.failures.push(format!(
                "{label}: listing {}: {}",
                dir.display(),
                ErrorChain(&e)
            ));
            return;
        }
    };
    for entry in entries.iter().filter_map(|e| e.snapshot()) {
        if entry.name.state != FileState::Committed {
            continue;
        }
        match open_snapshot(handle.as_ref(), &entry.name, verifier) {
            Ok(_) => out.local_files += 1,
            Err(e) => out.failures.push(format!(
                "{label}: {} does not verify: {}",
                Escaped::str(&entry.name.file_name()),
                ErrorChain(&e)
            )),
        }
    }
}

/// Verifies every snapshot object on `remote`, read whole (capped) and checked as a file.
pub(crate) async fn remote(remote: &Remote, verifier: &dyn ReceiptVerifier, out: &mut Verified) {
    let objects = match snapseal_ship::retention::list_async(remote).await {
        Ok(objects) => objects,
        Err(e) => {
            out.failures
                .push(format!("listing the remote: {}", ErrorChain(&e)));
            return;
        }
    };
    for object in objects {
        let label = format!(
            "remote {}/{}",
            Escaped::str(&object.node),
            Escaped::str(&object.name.file_name())
        );
        if object.size > MAX_OBJECT_BYTES {
            out.failures
                .push(format!("{label}: {} bytes, over the cap", object.size));
            continue;
        }
        let key = remote.key(&object.node, &object.name.file_name());
        let bytes = match remote.store().get(&key).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        match bytes {
            Ok(bytes) if bytes.len() as u64 > MAX_OBJECT_BYTES => {
                out.failures.push(format!("{label}: grew over the cap"));
            }
            Ok(bytes) => match verify_bytes(&bytes, Some(&object.name), verifier) {
                Ok(_) => out.remote_objects += 1,
                Err(e) => out
                    .failures
                    .push(format!("{label} does not verify: {}", ErrorChain(&e))),
            },
            Err(e) => out.failures.push(format!("{label}: reading it: {e}")),
        }
    }
}
