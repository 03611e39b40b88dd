//! A worker's passes in flight are a rolling window: a change made while one of its passes
//! is still uploading a large file is claimed at once, into the room the others left, rather
//! than after the slowest pass of the claim has ended.

use crate::support::{Emu, Stack};
use ferry_dropbox::Entry;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_live_change_does_not_wait_for_a_long_pass_of_the_same_worker() {
    // Every request takes 50 ms, so a 40-chunk upload takes at least 2 s while a one-file
    // record needs a handful of requests.
    let emu = Emu::start_with(|c| c.model.latency_ms = 50).await;
    let stack = Stack::start_on(emu, |c| {
        c.workers = 1;
        c.passes_per_worker = 2;
        c.chunk_size_mib = 1;
    })
    .await;
    let rule = |condition: &str| {
        json!({"record_kind": "invoice", "connection": "dropbox",
               "folder": "Invoices/{{ record.key }}", "condition": condition})
    };
    stack
        .api
        .put_json("/v1/rules/invoices", &rule("record.fields.ready"))
        .await
        .unwrap();
    let large: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let hash = ferry_core::content_hash::content_hash(&large);
    stack
        .api
        .put_json("/v1/records/invoice/LONG", &json!({}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/invoice/LONG/attachments/scan.bin", large)
        .await
        .unwrap();
    stack.settle().await;
    // The rule now places LONG: its pass starts the large upload.
    stack
        .api
        .put_json("/v1/rules/invoices", &rule("true"))
        .await
        .unwrap();
    let store = stack.app.engine().store().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store
        .upload_session("dropbox", &hash)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the large upload never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // LONG's pass is in flight (its first chunk is confirmed); now a live change.
    stack.record_with("invoice", "LIVE", &["note.txt"]).await;
    let client = stack.emu.client();
    let in_dropbox = |path: &'static str| {
        let client = client.clone();
        async move { matches!(client.metadata(path).await, Ok(Entry::File(_))) }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let order = loop {
        let live = in_dropbox("/Ferry/Invoices/LIVE/note.txt").await;
        let long = in_dropbox("/Ferry/Invoices/LONG/scan.bin").await;
        if live || long {
            break (live, long);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "neither file reached Dropbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        order,
        (true, false),
        "(live change synced, large file synced) when the first of them reached Dropbox: \
         the live change waited for the large file's pass"
    );
    stack.settle().await;
    assert!(in_dropbox("/Ferry/Invoices/LONG/scan.bin").await);
}
