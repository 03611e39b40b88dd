//! Attachment content, addressed by its Dropbox content hash.
//!
//! Content-addressed on purpose: replacing an attachment never overwrites the old content, so
//! every version stays retrievable, and identical files are stored once.

use crate::{StoreError, StoreResult};
use bytes::Bytes;
use ferry_core::content_hash::{content_hash, is_content_hash};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::path::Path;
use std::sync::Arc;

/// Where attachment content lives (local disk by default; any `object_store` backend works).
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// A blob store on local disk under `dir` (created if missing).
    pub fn local(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(BlobStore {
            inner: Arc::new(fs),
        })
    }

    /// A blob store on any `object_store` backend (S3-compatible, memory...).
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        BlobStore { inner }
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

    /// Reads content by hash.
    pub async fn get(&self, hash: &str) -> StoreResult<Bytes> {
        let key = Self::key(hash)?;
        Ok(self.inner.get(&key).await?.bytes().await?)
    }
}
