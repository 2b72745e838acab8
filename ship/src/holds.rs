//! Remote holds: one small object per hold, `<prefix>/<node>/holds/<committed name>`, written
//! by `remote hold`, deleted by `remote release`, found by listing. A hold never lives only
//! in an index (which a repair may rewrite): its existence is the hold; its JSON (who, when)
//! is for people and is never read to decide anything.
//!
//! Holds in the legacy shared index count for a node until that node is migrated (it has an
//! index of its own): its shipper's migration, or `remote repair`, rewrites them as hold
//! objects first.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use object_store::{PutMode, PutOptions, PutPayload};
use serde::Serialize;
use snapseal_persist::SnapshotName;

use crate::error::ShipError;
use crate::layout::committed;
use crate::remote::Remote;

/// What a hold object holds.
#[derive(Serialize)]
struct HoldRecord<'a> {
    format: u32,
    node: &'a str,
    name: &'a str,
    held_unix: u64,
    by: &'a str,
}

/// Writes the hold on `node`'s `name`; `migrated` says it came from the legacy index. An
/// existing hold is left as it is (`Ok(false)`).
pub(crate) async fn put_hold(
    remote: &Remote,
    node: &str,
    name: &SnapshotName,
    migrated: bool,
) -> Result<bool, ShipError> {
    let file = name.file_name();
    let key = remote.hold_key(node, &file);
    if remote.head(&key).await?.is_some() {
        return Ok(false);
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let by = if migrated {
        format!("migrated from the legacy index by {user}")
    } else {
        format!("snapseal remote hold, {user}")
    };
    let record = HoldRecord {
        format: 1,
        node,
        name: &file,
        held_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        by: &by,
    };
    let bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    // A create: two holders racing both hold it, whichever record stays.
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match remote
        .store
        .put_opts(&key, PutPayload::from(bytes), opts)
        .await
    {
        Ok(_) => Ok(true),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(false),
        Err(e) => Err(ShipError::remote("put", key.as_ref(), e)),
    }
}

/// Rewrites `node`'s holds found in the legacy index as hold objects (idempotent); returns
/// the ones written now. Names that are not committed snapshot names are skipped.
pub(crate) async fn migrate_legacy_holds(
    remote: &Remote,
    node: &str,
    holds: &BTreeSet<String>,
) -> Result<Vec<SnapshotName>, ShipError> {
    let mut written = Vec::new();
    for name in holds.iter().filter_map(|h| committed(h)) {
        if put_hold(remote, node, &name, true).await? {
            written.push(name);
        }
    }
    Ok(written)
}

/// Removes the hold on `node`'s `name`; whether there was one.
pub(crate) async fn delete_hold(
    remote: &Remote,
    node: &str,
    name: &SnapshotName,
) -> Result<bool, ShipError> {
    let key = remote.hold_key(node, &name.file_name());
    if remote.head(&key).await?.is_none() {
        return Ok(false);
    }
    remote.delete(&key).await?;
    Ok(true)
}
