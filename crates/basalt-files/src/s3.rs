//! The S3-compatible backend: objects in one bucket, keyed exactly like the local
//! backend's relative paths. A `put` is one PUT request, which S3 applies atomically, so
//! there are no temporary objects. `open` asks for the object's metadata with HEAD,
//! lets the caller decide from it, then fetches only the bytes needed with ranged GETs
//! that carry `If-Match` with the HEAD's ETag, so bytes of a newer version are never sent
//! under the older version's validators.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

use crate::conditional::{Decision, Meta};
use crate::mime::SNIFF_LEN;
use crate::storage::{Entry, FileError, Opened, Payload, READ_AT_ONCE, etag_of};

/// Connection settings of an S3-compatible bucket, with the same fields as PocketBase's
/// `s3` settings object (`{enabled, bucket, region, endpoint, accessKey, secret,
/// forcePathStyle}`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Whether S3 storage is switched on; [`Storage::s3`](crate::Storage::s3) refuses a
    /// configuration where it is not.
    pub enabled: bool,
    /// The bucket's name. Basalt takes the whole bucket as its storage root: keys are
    /// object names as they are, and `list("")` sees every object in it.
    pub bucket: String,
    /// The bucket's region (`us-east-1` when empty).
    pub region: String,
    /// The service's base URL, such as `https://s3.example.com` or
    /// `http://127.0.0.1:9000`; empty for AWS itself (derived from the region). A URL
    /// without a scheme is taken as `https://`.
    pub endpoint: String,
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret: String,
    /// Address the bucket as a path segment (`endpoint/bucket/key`) instead of a host
    /// name (`bucket.endpoint/key`).
    pub force_path_style: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("enabled", &self.enabled)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// Files as objects in an S3-compatible bucket.
#[derive(Clone)]
pub struct S3Bucket {
    store: Arc<AmazonS3>,
    bucket: String,
    endpoint: String,
}

impl fmt::Debug for S3Bucket {
    // The client's own Debug output includes its credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Bucket")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Whole requests (body included) are cut off after this long; large downloads to slow
/// clients stream within it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long `check` waits for the whole probe before giving up.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

fn remote(error: object_store::Error) -> FileError {
    FileError::Remote(Box::new(error))
}

fn config_error(message: impl Into<String>) -> FileError {
    FileError::Config(message.into())
}

/// The bucket's base URL for virtual-hosted-style requests against a custom endpoint:
/// the bucket becomes the first label of the host.
fn virtual_hosted(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("https://{bucket}.{endpoint}"),
    }
}

/// A plausible bucket name: 3 to 255 letters, digits, `.`, `-` or `_`. Looser than
/// AWS's own rules (compatible services differ), but always one URL path segment or
/// host label, so it cannot redirect requests elsewhere.
fn bucket_ok(bucket: &str) -> bool {
    (3..=255).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl S3Bucket {
    pub(crate) fn new(config: &S3Config) -> Result<S3Bucket, FileError> {
        if !config.enabled {
            return Err(config_error("S3 storage is not enabled"));
        }
        let bucket = config.bucket.trim();
        if !bucket_ok(bucket) {
            return Err(config_error("invalid S3 bucket name"));
        }
        // Without both, the client would fall back to looking for instance credentials
        // over the network.
        if config.access_key.is_empty() || config.secret.is_empty() {
            return Err(config_error("S3 access key and secret are required"));
        }
        let endpoint = config.endpoint.trim().trim_end_matches('/');
        let endpoint = if endpoint.is_empty() || endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("https://{endpoint}")
        };
        let region = match config.region.trim() {
            "" => "us-east-1",
            region => region,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret)
            .with_virtual_hosted_style_request(!config.force_path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(REQUEST_TIMEOUT),
            );
        if !endpoint.is_empty() {
            // The client takes a custom endpoint as the bucket's own URL when requests
            // are virtual-hosted.
            let base = if config.force_path_style {
                endpoint.clone()
            } else {
                virtual_hosted(&endpoint, bucket)
            };
            builder = builder.with_endpoint(base);
        }
        let store = builder
            .build()
            .map_err(|e| config_error(format!("invalid S3 configuration: {e}")))?;
        Ok(S3Bucket {
            store: Arc::new(store),
            bucket: bucket.to_string(),
            endpoint,
        })
    }

    /// A checked key as an object path.
    fn path(key: &str) -> Result<Path, FileError> {
        Path::parse(key).map_err(|_| FileError::InvalidKey)
    }

    pub(crate) async fn put(&self, key: &str, bytes: Bytes) -> Result<(), FileError> {
        let path = Self::path(key)?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(remote)?;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, FileError> {
        let path = Self::path(key)?;
        match self.store.get(&path).await {
            Ok(result) => Ok(Some(result.bytes().await.map_err(remote)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote(e)),
        }
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, FileError> {
        let path = Self::path(key)?;
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(remote(e)),
        }
    }

    /// `bytes start..start + len` of the object, provided it still has the ETag `tag`;
    /// `None` when it was deleted since its HEAD.
    async fn range(
        &self,
        path: &Path,
        tag: Option<&str>,
        start: u64,
        len: u64,
    ) -> Result<Option<BoxStream<'static, io::Result<Bytes>>>, FileError> {
        let options = GetOptions {
            if_match: tag.map(str::to_string),
            range: Some(GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(path, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            // Replaced since the HEAD: its metadata no longer describes these bytes.
            Err(object_store::Error::Precondition { .. }) => {
                return Err(FileError::Io(io::Error::other(
                    "the object changed while it was being read",
                )));
            }
            Err(e) => return Err(remote(e)),
        };
        if result.range != (start..start + len) {
            return Err(FileError::Io(io::Error::other(
                "the storage answered with other bytes than asked",
            )));
        }
        Ok(Some(result.into_stream().map_err(io::Error::other).boxed()))
    }

    pub(crate) async fn open(
        &self,
        key: &str,
        decide: impl FnOnce(&Meta) -> Decision,
    ) -> Result<Option<Opened>, FileError> {
        let path = Self::path(key)?;
        let object = match self.store.head(&path).await {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(remote(e)),
        };
        let modified = SystemTime::from(object.last_modified);
        let meta = Meta {
            size: object.size,
            modified,
            etag: match object.e_tag.as_deref() {
                Some(tag) => quoted(tag),
                None => etag_of(object.size, modified),
            },
        };
        let tag = object.e_tag.as_deref();
        let decision = decide(&meta);
        let (start, len) = match decision {
            Decision::Full => (0, meta.size),
            Decision::Partial { start, end } => (start, end - start + 1),
            _ => (0, 0),
        };
        let head_len = meta.size.min(SNIFF_LEN as u64);
        if start == 0 && len > 0 && len >= head_len {
            // One request serves both the leading bytes and the body.
            let Some(body) = self.range(&path, tag, 0, len).await? else {
                return Ok(None);
            };
            let (head, body) = if len <= READ_AT_ONCE {
                let bytes = collect(body, len).await?;
                (bytes.slice(..head_len as usize), Payload::Bytes(bytes))
            } else {
                let (head, body) = peek(body, head_len as usize).await?;
                (head, Payload::Stream(body))
            };
            return Ok(Some(Opened {
                meta,
                head,
                decision,
                body,
            }));
        }
        let head = if head_len == 0 {
            Bytes::new()
        } else {
            match self.range(&path, tag, 0, head_len).await? {
                Some(head) => collect(head, head_len).await?,
                None => return Ok(None),
            }
        };
        let body = if len == 0 {
            Payload::Bytes(Bytes::new())
        } else {
            let Some(body) = self.range(&path, tag, start, len).await? else {
                return Ok(None);
            };
            if len <= READ_AT_ONCE {
                Payload::Bytes(collect(body, len).await?)
            } else {
                Payload::Stream(body)
            }
        };
        Ok(Some(Opened {
            meta,
            head,
            decision,
            body,
        }))
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), FileError> {
        let path = Self::path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote(e)),
        }
    }

    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<(), FileError> {
        let path = Self::path(prefix)?;
        // Listing by a path matches whole segments: `c` covers `c/...`, never `cx/...`.
        let locations = self
            .store
            .list(Some(&path))
            .map_ok(|object| object.location)
            .boxed();
        let mut deleted = self.store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(remote(e)),
            }
        }
        Ok(())
    }

    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<Entry>, FileError> {
        let path = if prefix.is_empty() {
            None
        } else {
            Some(Self::path(prefix)?)
        };
        let mut listed = self.store.list(path.as_ref());
        let mut out = Vec::new();
        while let Some(result) = listed.next().await {
            match result {
                Ok(object) => out.push(Entry {
                    key: object.location.to_string(),
                    modified: SystemTime::from(object.last_modified),
                }),
                // An object whose name no path can hold was not written by Basalt.
                Err(object_store::Error::InvalidPath { source }) => {
                    tracing::warn!(bucket = %self.bucket, %source, "skipping an object with an unusable name");
                }
                Err(e) => return Err(remote(e)),
            }
        }
        Ok(out)
    }

    pub(crate) async fn check(&self) -> Result<(), FileError> {
        let probe = async {
            let key = format!(".basalt-check-{}", crate::name::stored_name("", None));
            let path = Self::path(&key)?;
            let written = Bytes::from_static(b"basalt storage check");
            self.store
                .put(&path, PutPayload::from(written.clone()))
                .await
                .map_err(remote)?;
            let read = self.store.get(&path).await;
            let deleted = self.store.delete(&path).await;
            let read = read.map_err(remote)?.bytes().await.map_err(remote)?;
            deleted.map_err(remote)?;
            if read != written {
                return Err(FileError::Io(io::Error::other(
                    "the bucket returned other bytes than were written",
                )));
            }
            Ok(())
        };
        tokio::time::timeout(CHECK_TIMEOUT, probe)
            .await
            .map_err(|_| FileError::Io(io::Error::from(io::ErrorKind::TimedOut)))?
    }
}

/// An ETag as a quoted strong tag (some services send it bare).
fn quoted(tag: &str) -> String {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    if tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"') {
        tag.to_string()
    } else {
        format!("\"{}\"", tag.trim_matches('"'))
    }
}

/// Reads a whole (small) body of `len` bytes.
async fn collect(
    mut body: BoxStream<'static, io::Result<Bytes>>,
    len: u64,
) -> Result<Bytes, FileError> {
    let mut out = BytesMut::with_capacity(len as usize);
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    if out.len() as u64 != len {
        return Err(FileError::Io(io::Error::from(io::ErrorKind::UnexpectedEof)));
    }
    Ok(out.freeze())
}

/// The first `n` bytes of a streamed body, and the whole body still to be sent.
async fn peek(
    mut body: BoxStream<'static, io::Result<Bytes>>,
    n: usize,
) -> Result<(Bytes, BoxStream<'static, io::Result<Bytes>>), FileError> {
    let mut seen = Vec::new();
    let mut head = BytesMut::with_capacity(n);
    while head.len() < n {
        let Some(chunk) = body.next().await else {
            return Err(FileError::Io(io::Error::from(io::ErrorKind::UnexpectedEof)));
        };
        let chunk = chunk?;
        let take = chunk.len().min(n - head.len());
        head.extend_from_slice(&chunk[..take]);
        seen.push(Ok(chunk));
    }
    Ok((head.freeze(), stream::iter(seen).chain(body).boxed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing() {
        assert_eq!(
            virtual_hosted("https://s3.example.com", "b"),
            "https://b.s3.example.com"
        );
        assert_eq!(
            virtual_hosted("http://127.0.0.1:9000/x", "b"),
            "http://b.127.0.0.1:9000/x"
        );
        assert_eq!(quoted("abc"), "\"abc\"");
        assert_eq!(quoted("\"abc\""), "\"abc\"");
        assert_eq!(quoted("W/\"abc\""), "\"abc\"");
    }

    #[test]
    fn config_is_checked() {
        let good = S3Config {
            enabled: true,
            bucket: "files".into(),
            region: String::new(),
            endpoint: "http://127.0.0.1:9".into(),
            access_key: "key".into(),
            secret: "s3cr3t-value".into(),
            force_path_style: true,
        };
        assert!(S3Bucket::new(&good).is_ok());
        for bad in [
            S3Config {
                enabled: false,
                ..good.clone()
            },
            S3Config {
                bucket: String::new(),
                ..good.clone()
            },
            S3Config {
                bucket: "a/b".into(),
                ..good.clone()
            },
            S3Config {
                secret: String::new(),
                ..good.clone()
            },
        ] {
            assert!(
                matches!(S3Bucket::new(&bad), Err(FileError::Config(_))),
                "{bad:?}"
            );
        }
        let debug = format!("{good:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
    }
}
