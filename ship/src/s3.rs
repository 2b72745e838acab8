//! The `s3://` store: an S3 or S3-compatible server reached with object_store's client, its
//! credentials, region and endpoint from the `AWS_*` environment and the remote's options.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::remote::RemoteOptions;

/// Builds the store for `url` (`s3://bucket[/prefix]`) and the key prefix under it; the error
/// is the reason the configuration is refused.
pub(crate) fn open(
    url: &str,
    parsed: &url::Url,
    opts: &RemoteOptions,
) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let mut builder = AmazonS3Builder::from_env()
        .with_url(url)
        .with_client_options(
            ClientOptions::new()
                .with_timeout(opts.request_timeout)
                .with_connect_timeout(Duration::from_secs(5)),
        )
        // Short inner retries: the shipper's own backoff is the visible one.
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
        });
    // A client option, which `from_env` does not read: an http:// endpoint (a local test
    // server) is refused without it.
    if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true") {
        builder = builder.with_allow_http(true);
    }
    for (k, v) in &opts.options {
        let key = k.parse().map_err(|e: object_store::Error| e.to_string())?;
        builder = builder.with_config(key, v);
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    let prefix = Path::from(parsed.path().trim_matches('/'));
    Ok((Arc::new(store), prefix))
}
