//! Content-addressed file content: `blobs/<content_hash>`. Blobs are written to a temporary
//! file and renamed into place, so a reader never sees a partial blob; they are never deleted
//! (old revisions stay downloadable by `rev:`).

use std::path::{Path, PathBuf};

use ferry_core::content_hash::{ContentHasher, is_content_hash};
use tokio::io::AsyncReadExt;

use crate::wire::random_token;

/// The blob directory.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    /// Uses (and creates) `dir`.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, hash: &str) -> std::io::Result<PathBuf> {
        if !is_content_hash(hash) {
            return Err(std::io::Error::other(format!("not a content hash: {hash}")));
        }
        Ok(self.dir.join(hash))
    }

    fn temp_path(&self) -> PathBuf {
        self.dir.join(format!(".tmp-{}", random_token(16)))
    }

    /// Stores `data` under `hash` unless already present.
    pub async fn put(&self, hash: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.path(hash)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let tmp = self.temp_path();
        tokio::fs::write(&tmp, data).await?;
        tokio::fs::rename(&tmp, &path).await
    }

    /// Stores a copy of the file at `source` under `hash` unless already present.
    pub async fn put_file(&self, hash: &str, source: &Path) -> std::io::Result<()> {
        let path = self.path(hash)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(());
        }
        let tmp = self.temp_path();
        tokio::fs::copy(source, &tmp).await?;
        tokio::fs::rename(&tmp, &path).await
    }

    /// Stores the file at `source` as blob `hash` by hard-linking it (no copy); the caller
    /// guarantees the source is never written again. Falls back to a copy where links fail.
    pub async fn link_file(&self, hash: &str, source: &Path) -> std::io::Result<()> {
        let path = self.path(hash)?;
        let tmp = self.temp_path();
        let (from, to) = (source.to_path_buf(), path.clone());
        let linked = crate::sessions::blocking(move || {
            if to.exists() {
                return Ok(());
            }
            std::fs::hard_link(&from, &tmp)?;
            std::fs::rename(&tmp, &to)
        })
        .await;
        match linked {
            Ok(()) => Ok(()),
            Err(_) => self.put_file(hash, source).await,
        }
    }

    /// The whole content of a blob.
    pub async fn read(&self, hash: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(hash)?).await
    }
}

/// Content hash and size of a file, read in blocks.
pub async fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finish(), size))
}
