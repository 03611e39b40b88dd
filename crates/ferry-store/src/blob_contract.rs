//! The blob store contract: what the engine relies on from any backend (local disk, an
//! S3-compatible bucket). Each backend's tests run [`run_all`] on a fresh, empty store —
//! the local one in this crate's unit tests, S3 against a real S3 server in Ferry's
//! integration tests. A failed check panics with what it found.

use crate::BlobStore;
use bytes::Bytes;
use ferry_core::content_hash::content_hash;
use futures::StreamExt;

/// Every check, in turn, on one empty store.
pub async fn run_all(blobs: &BlobStore) {
    content_is_stored_once_and_read_back_by_its_hash(blobs).await;
    streamed_writes_are_checked_and_leave_nothing_behind(blobs).await;
    dropping_needs_the_guard_and_is_idempotent(blobs).await;
}

/// `put` addresses content by its Dropbox content hash; the same content is stored once;
/// reads, streams and ranges give back exactly what was written.
pub async fn content_is_stored_once_and_read_back_by_its_hash(blobs: &BlobStore) {
    let data = Bytes::from_static(b"the first version of a quote");
    let hash = blobs.put(data.clone()).await.expect("put");
    assert_eq!(hash, content_hash(&data), "addressed by its content hash");
    assert_eq!(blobs.put(data.clone()).await.expect("put again"), hash);
    assert!(blobs.contains(&hash).await.expect("contains"));
    assert_eq!(blobs.get(&hash).await.expect("get"), data);
    let (size, mut stream) = blobs.stream(&hash).await.expect("stream");
    assert_eq!(size, data.len() as u64);
    let mut streamed = Vec::new();
    while let Some(piece) = stream.next().await {
        streamed.extend_from_slice(&piece.expect("piece"));
    }
    assert_eq!(streamed, data);
    assert_eq!(
        blobs.get_range(&hash, 4, 5).await.expect("range").as_ref(),
        b"first"
    );
    assert_eq!(
        blobs
            .get_range(&hash, 20, 1000)
            .await
            .expect("range at the end"),
        data.slice(20..),
        "a range past the end is cut at the end"
    );
    assert!(
        blobs
            .get_range(&hash, 1000, 5)
            .await
            .expect("range after the end")
            .is_empty()
    );
    let other = content_hash(b"never stored");
    assert!(!blobs.contains(&other).await.expect("contains"));
    let missing = blobs.get(&other).await.expect_err("nothing stored there");
    assert!(
        !missing.is_retryable(),
        "missing content is not retried: {missing}"
    );
    assert!(
        blobs.get("../../etc/passwd").await.is_err(),
        "only content hashes name blobs"
    );
}

/// Content of unknown size streams in piece by piece (several parts, on S3 a multipart
/// upload); it is kept only when its hash is the one announced, and no temporary object
/// survives a finish or an abort.
pub async fn streamed_writes_are_checked_and_leave_nothing_behind(blobs: &BlobStore) {
    // Larger than one part (5 MiB on S3), so the write really is in parts.
    let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 253) as u8).collect();
    let expected = content_hash(&data);
    let mut writer = blobs.writer().await.expect("writer");
    for piece in data.chunks(700_001) {
        writer.write(piece).await.expect("write");
    }
    let (hash, len) = writer.finish(Some(&expected)).await.expect("finish");
    assert_eq!((hash.as_str(), len), (expected.as_str(), data.len() as u64));
    assert_eq!(
        blobs.get(&hash).await.expect("get").as_ref(),
        data.as_slice()
    );
    // The same content again is stored once; other content than announced is refused.
    let mut again = blobs.writer().await.expect("writer");
    again.write(&data[..1000]).await.expect("write");
    again.write(&data[1000..]).await.expect("write");
    assert_eq!(again.finish(None).await.expect("finish").0, expected);
    let mut wrong = blobs.writer().await.expect("writer");
    wrong.write(b"not it").await.expect("write");
    assert!(wrong.finish(Some(&expected)).await.is_err());
    assert!(
        !blobs
            .contains(&content_hash(b"not it"))
            .await
            .expect("contains")
    );
    let mut dropped = blobs.writer().await.expect("writer");
    dropped.write(b"half a download").await.expect("write");
    dropped.abort().await;
    assert_eq!(
        blobs.incoming().await.expect("list incoming"),
        0,
        "no temporary blobs left behind"
    );
}

/// Dropping offloaded content takes the exclusive guard, which a writer's hold keeps away;
/// dropping what is already gone is fine.
pub async fn dropping_needs_the_guard_and_is_idempotent(blobs: &BlobStore) {
    let hash = blobs
        .put(Bytes::from_static(b"offloaded soon"))
        .await
        .expect("put");
    let hold = blobs.hold().await;
    assert!(
        blobs.try_drop_guard().is_none(),
        "no drop while a write holds the store"
    );
    drop(hold);
    let guard = blobs
        .try_drop_guard()
        .expect("the guard, with no write under way");
    blobs.delete(&hash, &guard).await.expect("delete");
    assert!(!blobs.contains(&hash).await.expect("contains"));
    blobs
        .delete(&hash, &guard)
        .await
        .expect("deleting what is gone");
}
