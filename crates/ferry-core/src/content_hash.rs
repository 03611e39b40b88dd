//! Dropbox's `content_hash`: SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks.
//!
//! See <https://www.dropbox.com/developers/reference/content-hash>. An empty input has no
//! blocks, so its hash is the SHA-256 of the empty string.

use sha2::{Digest, Sha256};

/// Dropbox hashes content in blocks of this many bytes.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Incremental content hasher: feed bytes in any chunking, get the same result.
#[derive(Clone, Default)]
pub struct ContentHasher {
    overall: Sha256,
    block: Sha256,
    block_len: usize,
}

impl ContentHasher {
    /// A hasher with nothing fed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more content.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.block_len).min(data.len());
            self.block.update(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let digest = std::mem::take(&mut self.block).finalize();
        self.overall.update(digest);
        self.block_len = 0;
    }

    /// The lowercase hex content hash of everything fed so far.
    pub fn finish(mut self) -> String {
        if self.block_len > 0 {
            self.close_block();
        }
        hex::encode(self.overall.finalize())
    }
}

/// The content hash of a whole buffer.
pub fn content_hash(data: &[u8]) -> String {
    let mut hasher = ContentHasher::new();
    hasher.update(data);
    hasher.finish()
}

/// True if `s` looks like a content hash (64 lowercase hex digits).
pub fn is_content_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from the Dropbox reference notes, computed there with Python's hashlib.
    #[test]
    fn known_vectors() {
        assert_eq!(
            content_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            content_hash(b"hello world"),
            "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"
        );
        let zeros = vec![0u8; BLOCK_SIZE + 1];
        assert_eq!(
            content_hash(&zeros[..BLOCK_SIZE]),
            "c7e946d101855255d919ef0c70718633adf77d3dfb3adeeecf5d0cb4e951be58"
        );
        assert_eq!(
            content_hash(&zeros),
            "14a4d47f23a30177885d9820122f17d2d3a55fe63f7f5c27b95f689e0b2accd6"
        );
    }

    proptest::proptest! {
        #[test]
        fn chunking_does_not_matter(data in proptest::collection::vec(0u8..=255, 0..5000), cuts in proptest::collection::vec(0usize..5000, 0..8)) {
            let mut hasher = ContentHasher::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut start = 0;
            for cut in cuts {
                hasher.update(&data[start..cut]);
                start = cut;
            }
            hasher.update(&data[start..]);
            proptest::prop_assert_eq!(hasher.finish(), content_hash(&data));
        }
    }
}
