//! Dropbox's `content_hash`: SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks.
//!
//! See <https://www.dropbox.com/developers/reference/content-hash>. An empty input has no
//! blocks, so its hash is the SHA-256 of the empty string.

use sha2::{Digest, Sha256};

/// Dropbox hashes content in blocks of this many bytes.
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Incremental content hasher: feed bytes in any chunking, get the same result.
///
/// Each full 4 MiB block is hashed on a thread of its own while the caller goes on feeding
/// the next (the hash is defined per block, so blocks are independent). At most as many
/// blocks as the machine has cores are in flight, and finished ones are collected as soon as
/// a block closes, so a hasher holds at most cores + 1 blocks; when the caller outpaces the
/// hashing it waits for the oldest block (as long as hashing it itself would take). Content
/// smaller than one block is hashed on the caller's thread.
pub struct ContentHasher {
    overall: Sha256,
    /// The bytes of the block being filled.
    block: Vec<u8>,
    /// Blocks being hashed, oldest first (their digests go into `overall` in order).
    running: std::collections::VecDeque<Slot>,
    /// A block buffer back from a finished thread, to fill again (fresh 4 MiB buffers cost
    /// a page fault per page).
    spare: Option<Vec<u8>>,
}

/// A full block's digest: on its way on a thread (which shares the block), or already there.
enum Slot {
    Running(std::thread::JoinHandle<[u8; 32]>, std::sync::Arc<Vec<u8>>),
    Done([u8; 32]),
}

impl Default for ContentHasher {
    fn default() -> Self {
        ContentHasher {
            overall: Sha256::new(),
            block: Vec::new(),
            running: std::collections::VecDeque::new(),
            spare: None,
        }
    }
}

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentHasher")
            .field("block_len", &self.block.len())
            .field("running", &self.running.len())
            .finish()
    }
}

/// Blocks hashed at once: one per core.
fn in_flight() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn block_digest(block: &[u8]) -> [u8; 32] {
    Sha256::digest(block).into()
}

impl ContentHasher {
    /// A hasher with nothing fed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more content.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.block.capacity() == 0 {
                match self.spare.take() {
                    Some(spare) => self.block = spare,
                    None => self
                        .block
                        .reserve_exact(BLOCK_SIZE.min(data.len().max(64 * 1024))),
                }
            }
            let take = (BLOCK_SIZE - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == BLOCK_SIZE {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        let block = std::sync::Arc::new(std::mem::take(&mut self.block));
        // Finished blocks give back their buffers (and digests, in order) at once.
        while self.running.front().is_some_and(|slot| match slot {
            Slot::Running(handle, _) => handle.is_finished(),
            Slot::Done(_) => true,
        }) {
            self.collect_oldest();
        }
        if self.running.len() >= in_flight() {
            self.collect_oldest();
        }
        let shared = std::sync::Arc::clone(&block);
        let spawned = std::thread::Builder::new()
            .name("content-hash".into())
            .spawn(move || block_digest(&shared));
        self.running.push_back(match spawned {
            Ok(handle) => Slot::Running(handle, block),
            // No thread to be had (resource limits): hashed here instead.
            Err(_) => Slot::Done(block_digest(&block)),
        });
    }

    fn collect_oldest(&mut self) {
        let digest = match self.running.pop_front() {
            Some(Slot::Done(digest)) => digest,
            // SHA-256 over a buffer does not panic; if it somehow did, the panic is the
            // caller's.
            Some(Slot::Running(handle, block)) => {
                let digest = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                if let Ok(mut buffer) = std::sync::Arc::try_unwrap(block) {
                    buffer.clear();
                    self.spare = Some(buffer);
                }
                digest
            }
            None => return,
        };
        self.overall.update(digest);
    }

    /// The lowercase hex content hash of everything fed so far.
    pub fn finish(mut self) -> String {
        while !self.running.is_empty() {
            self.collect_oldest();
        }
        if !self.block.is_empty() {
            let digest = block_digest(&self.block);
            self.overall.update(digest);
        }
        hex::encode(std::mem::take(&mut self.overall).finalize())
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

    /// Many blocks, fed in pieces that straddle block edges: the same as hashing block by
    /// block on one thread.
    #[test]
    fn blocks_hashed_on_threads_come_back_in_order() {
        let data: Vec<u8> = (0..(BLOCK_SIZE * 5 + 12345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut overall = Sha256::new();
        for block in data.chunks(BLOCK_SIZE) {
            overall.update(Sha256::digest(block));
        }
        let expected = hex::encode(overall.finalize());
        for piece in [1_000_003, BLOCK_SIZE, BLOCK_SIZE * 3, 7] {
            let mut hasher = ContentHasher::new();
            for chunk in data[..BLOCK_SIZE * 2 + 5].chunks(piece) {
                hasher.update(chunk);
            }
            hasher.update(&data[BLOCK_SIZE * 2 + 5..]);
            assert_eq!(hasher.finish(), expected, "pieces of {piece}");
        }
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
