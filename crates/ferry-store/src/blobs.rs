//! Attachment content, addressed by its Dropbox content hash.
//!
//! Content-addressed on purpose: replacing an attachment never overwrites the old content, so
//! every version stays retrievable, and identical files are stored once.

use crate::{StoreError, StoreResult};
use bytes::Bytes;
use ferry_core::content_hash::{ContentHasher, content_hash, is_content_hash};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use std::path::Path;
use std::sync::Arc;

/// An S3-compatible bucket for attachment content.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// The bucket (it must exist).
    pub bucket: String,
    /// A key prefix inside it (`""`: the bucket's top); several installations can share a
    /// bucket under different prefixes.
    pub prefix: String,
    /// The S3 endpoint (`https://s3.example.com`, or `http://` for one on this network);
    /// `None`: AWS's own for the region.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` where the server does not care).
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (never printed).
    pub secret_access_key: ferry_core::secret::Secret,
}

/// Where attachment content lives (local disk by default; any `object_store` backend works).
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// Writers of content (and of the rows that reference it) hold it shared; dropping an
    /// offloaded blob holds it alone, so a blob is never dropped between its write and the
    /// commit of the row that needs it.
    gate: Arc<tokio::sync::RwLock<()>>,
}

/// Held from writing content until the row that references it is committed.
#[derive(Debug)]
pub struct BlobHold(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>);

/// Held while checking that nothing needs a blob and dropping it.
#[derive(Debug)]
pub struct BlobDropGuard(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>);

impl BlobStore {
    /// A blob store on local disk under `dir` (created if missing).
    pub fn local(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(BlobStore::new(Arc::new(fs)))
    }

    /// A blob store in an S3-compatible bucket (AWS S3, MinIO, Garage, Ceph…), content
    /// addressed as on disk, under `prefix`. Nothing is asked of the bucket here: the first
    /// read or write says whether the settings work.
    pub fn s3(settings: &S3Settings) -> StoreResult<Self> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(settings.secret_access_key.expose());
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let bucket: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let prefix = settings.prefix.trim_matches('/');
        Ok(BlobStore::new(if prefix.is_empty() {
            bucket
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(bucket, prefix))
        }))
    }

    /// A blob store on any `object_store` backend (S3-compatible, memory...).
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        BlobStore {
            inner,
            gate: Arc::default(),
        }
    }

    /// Shared hold for writing content and committing the row that references it (many at
    /// once). In this process only: several processes on one blob store need a lock of
    /// their own (see docs/rules.md on offload).
    pub async fn hold(&self) -> BlobHold {
        BlobHold(Arc::clone(&self.gate).read_owned().await)
    }

    /// The exclusive hold for dropping blobs, if no write is under way (never waits, so a
    /// long upload never stalls others behind a waiting drop).
    pub fn try_drop_guard(&self) -> Option<BlobDropGuard> {
        Arc::clone(&self.gate)
            .try_write_owned()
            .ok()
            .map(BlobDropGuard)
    }

    /// Drops a blob (offloaded content); one already gone is fine. Needs the drop guard.
    pub async fn delete(&self, hash: &str, _guard: &BlobDropGuard) -> StoreResult<()> {
        let key = Self::key(hash)?;
        match self.inner.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the blob of `hash` is here.
    pub async fn contains(&self, hash: &str) -> StoreResult<bool> {
        let key = Self::key(hash)?;
        match self.inner.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn key(hash: &str) -> StoreResult<ObjectPath> {
        if !is_content_hash(hash) {
            return Err(StoreError::Corrupt(format!("not a content hash: {hash:?}")));
        }
        Ok(ObjectPath::from(format!("content/{}/{hash}", &hash[..2])))
    }

    /// Stores content; returns its content hash.
    pub async fn put(&self, data: Bytes) -> StoreResult<String> {
        let hash = content_hash(&data);
        let key = Self::key(&hash)?;
        // Already there: same hash, same bytes.
        if self.inner.head(&key).await.is_ok() {
            return Ok(hash);
        }
        self.inner.put(&key, PutPayload::from(data)).await?;
        Ok(hash)
    }

    /// Starts writing content of unknown size piece by piece (a download streaming in); the
    /// content hash is computed on the way and the blob is addressed by it at the end.
    pub async fn writer(&self) -> StoreResult<BlobWriter> {
        let temp = ObjectPath::from(format!("incoming/{}", random_name()));
        let upload = self.inner.put_multipart(&temp).await?;
        Ok(BlobWriter {
            store: self.clone(),
            temp,
            upload: WriteMultipart::new(upload),
            hasher: ContentHasher::new(),
            len: 0,
        })
    }

    /// How many partial writes are under `incoming/` (aborted or crashed downloads; none is
    /// ever addressed by a hash, so they are safe to delete).
    pub async fn incoming(&self) -> StoreResult<usize> {
        use futures::TryStreamExt;
        let prefix = ObjectPath::from("incoming");
        Ok(self
            .inner
            .list(Some(&prefix))
            .try_fold(0, |n, _| async move { Ok(n + 1) })
            .await?)
    }

    /// Reads content by hash.
    pub async fn get(&self, hash: &str) -> StoreResult<Bytes> {
        let key = Self::key(hash)?;
        Ok(self.inner.get(&key).await?.bytes().await?)
    }

    /// Streams content by hash: its size, and its bytes in pieces as the backend reads them
    /// (a large file is never held in memory).
    pub async fn stream(
        &self,
        hash: &str,
    ) -> StoreResult<(u64, futures::stream::BoxStream<'static, StoreResult<Bytes>>)> {
        use futures::StreamExt;
        let key = Self::key(hash)?;
        let result = self.inner.get(&key).await?;
        let size = result.meta.size;
        Ok((
            size,
            result
                .into_stream()
                .map(|r| r.map_err(StoreError::from))
                .boxed(),
        ))
    }

    /// Reads at most `len` bytes of content from `offset` (fewer at the end of the blob).
    pub async fn get_range(&self, hash: &str, offset: u64, len: usize) -> StoreResult<Bytes> {
        let key = Self::key(hash)?;
        let size = self.inner.head(&key).await?.size;
        let end = offset.saturating_add(len as u64).min(size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        Ok(self.inner.get_range(&key, offset..end).await?)
    }
}

fn random_name() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
        .collect()
}

/// Content being written to the blob store in pieces; see [`BlobStore::writer`].
pub struct BlobWriter {
    store: BlobStore,
    temp: ObjectPath,
    upload: WriteMultipart,
    hasher: ContentHasher,
    len: u64,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("len", &self.len)
            .finish()
    }
}

impl BlobWriter {
    /// Appends a piece (waits while the store catches up, so memory stays bounded).
    pub async fn write(&mut self, piece: &[u8]) -> StoreResult<()> {
        self.upload.wait_for_capacity(4).await?;
        self.hasher.update(piece);
        self.upload.write(piece);
        self.len += piece.len() as u64;
        Ok(())
    }

    /// Gives up: the partial content is dropped (best effort; a leftover under `incoming/`
    /// is never addressed by a hash).
    pub async fn abort(self) {
        let BlobWriter {
            store,
            temp,
            upload,
            ..
        } = self;
        let _ = upload.abort().await;
        let _ = store.inner.delete(&temp).await;
    }

    /// Finishes: returns the content hash and size. The blob is kept only if the content is
    /// what the caller expected (`expected_hash`), else it is dropped and an error returned.
    pub async fn finish(self, expected_hash: Option<&str>) -> StoreResult<(String, u64)> {
        let hash = self.hasher.finish();
        self.upload.finish().await?;
        let inner = &self.store.inner;
        if expected_hash.is_some_and(|expected| expected != hash) {
            let _ = inner.delete(&self.temp).await;
            return Err(StoreError::Corrupt(format!(
                "content arrived with hash {hash}, expected {}",
                expected_hash.unwrap_or_default()
            )));
        }
        let key = BlobStore::key(&hash)?;
        if inner.head(&key).await.is_ok() {
            let _ = inner.delete(&self.temp).await;
        } else {
            inner.rename(&self.temp, &key).await?;
        }
        Ok((hash, self.len))
    }
}

#[cfg(test)]
mod tests {
    /// The local backend passes the blob contract.
    #[tokio::test]
    async fn local_blobs_keep_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = super::BlobStore::local(dir.path()).unwrap();
        crate::blob_contract::run_all(&blobs).await;
    }
}
