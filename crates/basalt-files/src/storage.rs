//! Where file bytes live. The local backend keeps them under a root folder: each write
//! goes to a temporary name, is fsynced, renamed into place, and its folder fsynced, so
//! a file is either wholly there or not at all once `put` returns. The S3 backend
//! (`crate::s3`) keeps them as objects in a bucket.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::conditional::{Decision, Meta};
use crate::mime::SNIFF_LEN;
use crate::s3::{S3Bucket, S3Config};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The key has a segment that is empty, `.`/`..`, or holds a character outside
    /// `[A-Za-z0-9_.-]`.
    #[error("invalid storage key")]
    InvalidKey,
    /// The backend failed.
    #[error("storage: {0}")]
    Io(#[from] io::Error),
    /// The object storage service refused or failed a request (unreachable, bad
    /// credentials, missing bucket, ...).
    #[error("object storage: {0}")]
    Remote(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend's configuration cannot be used.
    #[error("storage configuration: {0}")]
    Config(String),
}

/// Checks every `/`-separated segment of a storage key.
pub fn check_key(key: &str) -> Result<(), FileError> {
    let ok = !key.is_empty()
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.len() <= 255
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(FileError::InvalidKey)
    }
}

/// A file's body: small ranges are read at once, larger ones streamed.
pub enum Payload {
    /// The bytes.
    Bytes(Bytes),
    /// Chunks read as they are sent.
    Stream(BoxStream<'static, io::Result<Bytes>>),
}

/// An opened file: its metadata, first bytes (for content sniffing), the decision taken
/// from the metadata, and the bytes that decision asks for.
pub struct Opened {
    /// Size, mtime, etag.
    pub meta: Meta,
    /// Up to [`SNIFF_LEN`](crate::SNIFF_LEN) leading bytes.
    pub head: Bytes,
    /// What to answer.
    pub decision: Decision,
    /// The selected bytes (empty unless `Full` or `Partial`).
    pub body: Payload,
}

/// One stored file, as listed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its key.
    pub key: String,
    /// Last modification.
    pub modified: SystemTime,
}

/// Ranges up to this size are read in one blocking call; larger ones are streamed.
pub(crate) const READ_AT_ONCE: u64 = 1 << 20;

/// The storage backend.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A folder on local disk.
    Local(LocalDisk),
    /// A bucket of an S3-compatible object storage service.
    S3(S3Bucket),
}

/// Files under a root folder.
#[derive(Debug, Clone)]
pub struct LocalDisk {
    root: PathBuf,
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| FileError::Io(io::Error::other(e)))?
}

impl Storage {
    /// Local storage under `root` (created on first write).
    pub fn local(root: impl Into<PathBuf>) -> Storage {
        Storage::Local(LocalDisk { root: root.into() })
    }

    /// Storage in an S3-compatible bucket. Builds the client only; nothing is sent until
    /// the first call ([`check`](Storage::check) tries the bucket). Fails with
    /// [`FileError::Config`] when `config` is not enabled, names no valid bucket, lacks
    /// the access key or secret, or has an unusable endpoint.
    pub fn s3(config: &S3Config) -> Result<Storage, FileError> {
        Ok(Storage::S3(S3Bucket::new(config)?))
    }

    /// Verifies that the storage is reachable and writable: writes a small probe file at
    /// a fresh key, reads it back and deletes it. For local storage the probe goes in
    /// the root folder (created if missing).
    pub async fn check(&self) -> Result<(), FileError> {
        match self {
            Storage::Local(disk) => {
                let root = disk.root.clone();
                blocking(move || {
                    let key = format!(".check-{}", crate::name::stored_name("", None));
                    let path = root.join(key);
                    let written = b"basalt storage check";
                    write_durably(&path, written)?;
                    let read = std::fs::read(&path);
                    let removed = std::fs::remove_file(&path);
                    if read? != written {
                        return Err(FileError::Io(io::Error::other(
                            "the folder returned other bytes than were written",
                        )));
                    }
                    removed?;
                    Ok(())
                })
                .await
            }
            Storage::S3(bucket) => bucket.check().await,
        }
    }

    /// Writes `bytes` at `key` durably, replacing what was there.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), FileError> {
        check_key(key)?;
        match self {
            Storage::Local(disk) => {
                let path = disk.path(key);
                blocking(move || write_durably(&path, &bytes)).await
            }
            Storage::S3(bucket) => bucket.put(key, bytes).await,
        }
    }

    /// The whole file, or `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, FileError> {
        check_key(key)?;
        match self {
            Storage::Local(disk) => {
                let path = disk.path(key);
                blocking(move || match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e.into()),
                })
                .await
            }
            Storage::S3(bucket) => bucket.get(key).await,
        }
    }

    /// Whether a file exists at `key`.
    pub async fn exists(&self, key: &str) -> Result<bool, FileError> {
        check_key(key)?;
        match self {
            Storage::Local(disk) => {
                let path = disk.path(key);
                blocking(move || Ok(path.is_file())).await
            }
            Storage::S3(bucket) => bucket.exists(key).await,
        }
    }

    /// Opens `key`, lets `decide` choose from its metadata what to send, and reads it.
    pub async fn open(
        &self,
        key: &str,
        decide: impl FnOnce(&Meta) -> Decision + Send + 'static,
    ) -> Result<Option<Opened>, FileError> {
        check_key(key)?;
        match self {
            Storage::Local(disk) => {
                let path = disk.path(key);
                blocking(move || open_local(&path, decide)).await
            }
            Storage::S3(bucket) => bucket.open(key, decide).await,
        }
    }

    /// Deletes one file (missing is fine).
    pub async fn delete(&self, key: &str) -> Result<(), FileError> {
        check_key(key)?;
        match self {
            Storage::Local(disk) => {
                let path = disk.path(key);
                blocking(move || match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
                    _ => Ok(()),
                })
                .await
            }
            Storage::S3(bucket) => bucket.delete(key).await,
        }
    }

    /// Deletes everything under the folder `prefix` (missing is fine).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), FileError> {
        check_key(prefix)?;
        match self {
            Storage::Local(disk) => {
                let path = disk.path(prefix);
                blocking(move || match std::fs::remove_dir_all(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
                    _ => Ok(()),
                })
                .await
            }
            Storage::S3(bucket) => bucket.delete_prefix(prefix).await,
        }
    }

    /// Every file under the folder `prefix` (all files when empty), temporary files
    /// included (their names start with `.tmp-`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>, FileError> {
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        match self {
            Storage::Local(disk) => {
                let root = disk.root.clone();
                let start = disk.path(prefix);
                blocking(move || {
                    let mut out = Vec::new();
                    list_local(&root, &start, &mut out)?;
                    Ok(out)
                })
                .await
            }
            Storage::S3(bucket) => bucket.list(prefix).await,
        }
    }
}

impl LocalDisk {
    fn path(&self, key: &str) -> PathBuf {
        if key.is_empty() {
            return self.root.clone();
        }
        self.root.join(key)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = path.parent().ok_or(FileError::InvalidKey)?;
    // The deepest folder that exists already: new folders below it are made durable
    // by syncing each parent, up to and including it.
    let existing = dir.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf);
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".tmp-{}", crate::name::stored_name("", None)));
    let result = (|| -> io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        sync_dir(dir)?;
        if let Some(existing) = existing.filter(|e| e.as_path() != dir) {
            for ancestor in dir.ancestors().skip(1) {
                sync_dir(ancestor)?;
                if ancestor == existing {
                    break;
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(FileError::from)
}

pub(crate) fn etag_of(size: u64, modified: SystemTime) -> String {
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{size:x}-{nanos:x}\"")
}

fn open_local(
    path: &Path,
    decide: impl FnOnce(&Meta) -> Decision,
) -> Result<Option<Opened>, FileError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(None);
    }
    let modified = metadata.modified().unwrap_or(UNIX_EPOCH);
    let meta = Meta {
        size: metadata.len(),
        modified,
        etag: etag_of(metadata.len(), modified),
    };
    let decision = decide(&meta);
    let (start, len) = match decision {
        Decision::Full => (0, meta.size),
        Decision::Partial { start, end } => (start, end - start + 1),
        _ => (0, 0),
    };
    let head_len = meta.size.min(SNIFF_LEN as u64);
    if start == 0 && len >= head_len && len <= READ_AT_ONCE {
        let mut bytes = vec![0; len as usize];
        file.read_exact(&mut bytes)?;
        let bytes = Bytes::from(bytes);
        return Ok(Some(Opened {
            head: bytes.slice(..head_len as usize),
            meta,
            decision,
            body: Payload::Bytes(bytes),
        }));
    }
    let mut head = vec![0; head_len as usize];
    file.read_exact(&mut head)?;
    let body = if len == 0 {
        Payload::Bytes(Bytes::new())
    } else if len <= READ_AT_ONCE {
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = vec![0; len as usize];
        file.read_exact(&mut bytes)?;
        Payload::Bytes(Bytes::from(bytes))
    } else {
        file.seek(SeekFrom::Start(start))?;
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
        Payload::Stream(tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024).boxed())
    };
    Ok(Some(Opened {
        meta,
        head: Bytes::from(head),
        decision,
        body,
    }))
}

fn list_local(root: &Path, dir: &Path, out: &mut Vec<Entry>) -> Result<(), FileError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            list_local(root, &path, out)?;
        } else if kind.is_file()
            && let Ok(relative) = path.strip_prefix(root)
        {
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push(Entry {
                key,
                modified: entry.metadata()?.modified().unwrap_or(UNIX_EPOCH),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["c/r/a.png", "c/r/thumbs_a.png/10x10_a.png", "c"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/c/r/a", "c//a", "c/../a", "../a", "c/./a", "c/r/a\\b", "c/r/a%2f", "c/r/\0",
            "c/r/a b", "C:/x",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn local_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path());
        storage
            .put("c/r/a.txt", Bytes::from_static(b"0123456789"))
            .await
            .expect("put");
        assert!(storage.exists("c/r/a.txt").await.expect("exists"));
        assert_eq!(
            storage.get("c/r/a.txt").await.expect("get").as_deref(),
            Some(&b"0123456789"[..])
        );
        assert!(storage.get("c/r/b.txt").await.expect("get").is_none());
        let opened = storage
            .open("c/r/a.txt", |_| Decision::Partial { start: 2, end: 4 })
            .await
            .expect("open")
            .expect("found");
        assert_eq!(opened.meta.size, 10);
        assert_eq!(&opened.head[..], b"0123456789");
        match opened.body {
            Payload::Bytes(bytes) => assert_eq!(&bytes[..], b"234"),
            Payload::Stream(_) => panic!("small ranges are read at once"),
        }
        // No temporary file is left next to the stored one.
        let listed = storage.list("").await.expect("list");
        assert_eq!(
            listed.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            ["c/r/a.txt"]
        );
        storage
            .put("c/r/thumbs_a.txt/x", Bytes::new())
            .await
            .expect("put");
        assert_eq!(storage.list("c/r").await.expect("list").len(), 2);
        storage.delete("c/r/a.txt").await.expect("delete");
        storage.delete("c/r/a.txt").await.expect("delete twice");
        storage.delete_prefix("c").await.expect("delete prefix");
        assert!(storage.list("").await.expect("list").is_empty());
        assert!(matches!(
            storage.put("../x", Bytes::new()).await,
            Err(FileError::InvalidKey)
        ));
    }

    #[tokio::test]
    async fn local_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path().join("files"));
        storage
            .check()
            .await
            .expect("a creatable folder is writable");
        assert!(storage.list("").await.expect("list").is_empty());
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").expect("write");
        assert!(Storage::local(&file).check().await.is_err());
    }

    #[tokio::test]
    async fn large_ranges_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::local(dir.path());
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        storage
            .put("c/r/big.bin", Bytes::from(data.clone()))
            .await
            .expect("put");
        let opened = storage
            .open("c/r/big.bin", |_| Decision::Partial {
                start: 5,
                end: (2 << 20) + 4,
            })
            .await
            .expect("open")
            .expect("found");
        let Payload::Stream(mut stream) = opened.body else {
            panic!("large ranges stream");
        };
        let mut got = Vec::new();
        while let Some(chunk) = stream.next().await {
            got.extend_from_slice(&chunk.expect("chunk"));
        }
        assert_eq!(got, &data[5..(2 << 20) + 5]);
        assert_eq!(opened.head.len(), crate::mime::SNIFF_LEN);
    }
}
