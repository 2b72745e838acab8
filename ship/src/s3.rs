//! The `s3://` store: an S3 or S3-compatible server reached with object_store's client, its
//! credentials, region and endpoint from the `AWS_*` environment and the remote's options.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
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
    if !has_credential_source(&builder) {
        return Err(NO_CREDENTIALS.to_string());
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    let prefix = Path::from(parsed.path().trim_matches('/'));
    Ok((Arc::new(store), prefix))
}

/// Why a store with nowhere to take credentials from is refused.
const NO_CREDENTIALS: &str = "no credentials: set AWS_ACCESS_KEY_ID and \
AWS_SECRET_ACCESS_KEY (or the options aws_access_key_id and aws_secret_access_key), a web \
identity (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN) or container credential source, \
aws_skip_signature=true for a public bucket, or aws_metadata_endpoint (e.g. \
http://169.254.169.254) to take an EC2 instance role's";

/// Whether the configuration names somewhere to take credentials from, in the terms of
/// `AmazonS3Builder::build`'s own choice: keys, a web identity, container credentials, no
/// signing at all, or an instance metadata endpoint named explicitly.
///
/// Left to itself, a builder with none of these asks the EC2 instance metadata service, and
/// off EC2 that fails like a network error (retried, so a shipper with no credentials at all
/// would retry forever): so the service is asked only when its endpoint is configured, and
/// otherwise the store is refused at open, before any request.
fn has_credential_source(builder: &AmazonS3Builder) -> bool {
    let set = |key: AmazonS3ConfigKey| builder.get_config_value(&key).is_some();
    set(AmazonS3ConfigKey::AccessKeyId)
        || set(AmazonS3ConfigKey::SecretAccessKey)
        || (set(AmazonS3ConfigKey::WebIdentityTokenFile) && set(AmazonS3ConfigKey::RoleArn))
        || set(AmazonS3ConfigKey::ContainerCredentialsRelativeUri)
        || (set(AmazonS3ConfigKey::ContainerCredentialsFullUri)
            && set(AmazonS3ConfigKey::ContainerAuthorizationTokenFile))
        || set(AmazonS3ConfigKey::MetadataEndpoint)
        || builder
            .get_config_value(&AmazonS3ConfigKey::SkipSignature)
            .is_some_and(|v| v == "true")
}
