//! The `s3://` store: an S3 or S3-compatible server reached with object_store's client, its
//! credentials, region and endpoint from the `AWS_*` environment and the remote's options.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::path::Path;
use object_store::signer::HeaderName;
use object_store::{BackoffConfig, ClientOptions, HeaderMap, HeaderValue, RetryConfig};

use crate::remote::RemoteOptions;

/// An opened `s3://` remote.
pub(crate) struct S3 {
    /// The client every call uses. It sends the SHA-256 of the bytes of every put and part
    /// (`x-amz-checksum-sha256`) unless the options choose another algorithm.
    pub(crate) store: Arc<AmazonS3>,
    /// The same server and credentials, sending a checksum that does not match the bytes:
    /// the confirmation probe's client (`confirm.rs`); `None` when one cannot be made.
    pub(crate) liar: Option<Arc<AmazonS3>>,
    /// The key prefix.
    pub(crate) prefix: Path,
}

/// Builds the stores for `url` (`s3://bucket[/prefix]`) and the key prefix under it; the
/// error is the reason the configuration is refused.
pub(crate) fn open(url: &str, parsed: &url::Url, opts: &RemoteOptions) -> Result<S3, String> {
    // The checksum costs no extra pass over the bytes: object_store computes the SHA-256 of
    // a payload once, for the signature and this header alike.
    let honest = configured(url, opts, client(opts), Some(Checksum::SHA256))?;
    let algorithm = honest
        .get_config_value(&AmazonS3ConfigKey::Checksum)
        .unwrap_or_else(|| "sha256".into());
    let mut wrong = HeaderMap::new();
    wrong.insert(
        HeaderName::try_from(format!("x-amz-checksum-{}", algorithm.to_lowercase()))
            .map_err(|e| e.to_string())?,
        // Zeros, of the algorithm's length, in base64: not the checksum of the probe's bytes.
        HeaderValue::from_static(if algorithm.eq_ignore_ascii_case("crc64nvme") {
            "AAAAAAAAAAA="
        } else {
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        }),
    );
    let liar = configured(url, opts, client(opts).with_default_headers(wrong), None)?;
    // An algorithm from the environment (`AWS_CHECKSUM_ALGORITHM`) would add the true
    // checksum beside the wrong one: no probe then (uploads are read back).
    let liar = match liar.get_config_value(&AmazonS3ConfigKey::Checksum) {
        None => Some(Arc::new(liar.build().map_err(|e| e.to_string())?)),
        Some(_) => None,
    };
    Ok(S3 {
        store: Arc::new(honest.build().map_err(|e| e.to_string())?),
        liar,
        prefix: Path::from(parsed.path().trim_matches('/')),
    })
}

/// The HTTP client's options.
fn client(opts: &RemoteOptions) -> ClientOptions {
    ClientOptions::new()
        .with_timeout(opts.request_timeout)
        .with_connect_timeout(Duration::from_secs(5))
}

/// A builder for `url` from the environment and `opts`, with `client`; `checksum` is the
/// default algorithm (the options may choose another), `None`: no checksum computed and the
/// options' choice left out (the probe's client sends its own header).
fn configured(
    url: &str,
    opts: &RemoteOptions,
    client: ClientOptions,
    checksum: Option<Checksum>,
) -> Result<AmazonS3Builder, String> {
    let mut builder = AmazonS3Builder::from_env()
        .with_url(url)
        .with_client_options(client)
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
    if let Some(checksum) = checksum {
        builder = builder.with_checksum_algorithm(checksum);
    }
    for (k, v) in &opts.options {
        let key: AmazonS3ConfigKey = k.parse().map_err(|e: object_store::Error| e.to_string())?;
        if checksum.is_none() && key == AmazonS3ConfigKey::Checksum {
            continue;
        }
        builder = builder.with_config(key, v);
    }
    if !has_credential_source(&builder) {
        return Err(NO_CREDENTIALS.to_string());
    }
    Ok(builder)
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
