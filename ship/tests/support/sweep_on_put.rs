//! A store that plays a chunk sweep of remote gc in the middle of a ship: when the first
//! snapshot object (`*.committed`) is put, it first writes the sweep record
//! `<node>/gc/chunks_1`, deletes one chunk object (as a sweep would that read the node's
//! lists before the snapshot object existed) and writes `chunks_1.done`; everything else
//! passes through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct SweepOnPut {
    pub(crate) inner: Arc<dyn ObjectStore>,
    /// The node whose gc directory gets the record.
    pub(crate) node: String,
    /// The chunk object the sweep deletes.
    pub(crate) victim: Path,
    pub(crate) fired: AtomicBool,
}

impl std::fmt::Display for SweepOnPut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SweepOnPut({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for SweepOnPut {
    async fn put_opts(
        &self,
        key: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if key.as_ref().ends_with(".committed") && !self.fired.swap(true, Ordering::SeqCst) {
            let gc = Path::from(self.node.as_str()).join("gc");
            self.inner
                .put(&gc.clone().join("chunks_1"), b"{}".to_vec().into())
                .await?;
            self.inner.delete(&self.victim).await?;
            self.inner
                .put(&gc.join("chunks_1.done"), b"{}".to_vec().into())
                .await?;
        }
        self.inner.put_opts(key, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        key: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(key, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
