//! A node's own index on the remote (`<prefix>/<node>/index.json`, format 2): read as hostile
//! input by anyone, written only by that node's shipper (or by `remote repair` on its behalf).
//!
//! The write is a plain overwrite: with one writer per object nothing depends on the server
//! honouring conditional requests. On a `file://` remote the overwrite is atomic (a staged,
//! fsynced file renamed over the old one, then the directory fsynced); on S3 a put is.

use object_store::{ObjectStoreExt, PutPayload};

use crate::error::ShipError;
use crate::index::NodeIndex;
use crate::remote::Remote;

impl Remote {
    /// `node`'s index, `None` when it is absent; one that is not a regular object of format 2
    /// naming `node` is [`ShipError::Index`].
    pub(crate) async fn read_node_index(&self, node: &str) -> Result<Option<NodeIndex>, ShipError> {
        let key = self.node_index_key(node);
        let Some(bytes) = self.read_index_bytes(&key).await? else {
            return Ok(None);
        };
        NodeIndex::decode(&bytes, node)
            .map(Some)
            .map_err(|reason| ShipError::Index {
                object: key.to_string(),
                reason,
            })
    }

    /// Writes `index` as its node's index (replacing what was there).
    pub(crate) async fn write_node_index(&self, index: &NodeIndex) -> Result<(), ShipError> {
        let key = self.node_index_key(&index.node);
        self.store
            .put(&key, PutPayload::from(index.encode()))
            .await
            .map(drop)
            .map_err(|e| ShipError::remote("put", key.as_ref(), e))
    }
}
