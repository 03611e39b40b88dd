//! Store behaviour the engine relies on: upserts report changes, the queue deduplicates,
//! leases keep workers apart, re-queued work is never lost.

use crate::{AttachmentInput, RecordInput, SqliteStore, Store, SyncRow, SyncState};
use serde_json::json;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (dir, store)
}

fn input(key: &str, fields: serde_json::Value) -> RecordInput {
    RecordInput {
        kind: "order".into(),
        key: key.into(),
        fields,
        parent_id: None,
    }
}

#[tokio::test]
async fn upserts_report_changes() {
    let (_dir, s) = store().await;
    let a = s.upsert_record(&input("1", json!({"x": 1}))).await.unwrap();
    assert!(a.changed);
    let b = s.upsert_record(&input("1", json!({"x": 1}))).await.unwrap();
    assert!(!b.changed);
    assert_eq!(a.value.id, b.value.id);
    let c = s.upsert_record(&input("1", json!({"x": 2}))).await.unwrap();
    assert!(c.changed);
    assert_eq!(
        s.record("order", "1").await.unwrap().unwrap().fields,
        json!({"x": 2})
    );

    let att = |hash: &str, tags: &[&str]| AttachmentInput {
        record_id: a.value.id,
        name: "a.pdf".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        content_hash: hash.into(),
        size: 3,
    };
    assert!(s.put_attachment(&att("h1", &[])).await.unwrap().changed);
    assert!(!s.put_attachment(&att("h1", &[])).await.unwrap().changed);
    assert!(
        s.put_attachment(&att("h1", &["final"]))
            .await
            .unwrap()
            .changed
    );
    assert!(
        s.put_attachment(&att("h2", &["final"]))
            .await
            .unwrap()
            .changed
    );
    assert_eq!(s.attachments(a.value.id).await.unwrap().len(), 1);
    assert!(s.remove_attachment(a.value.id, "a.pdf").await.unwrap());
    assert!(!s.remove_attachment(a.value.id, "a.pdf").await.unwrap());
}

#[tokio::test]
async fn queue_dedups_leases_and_keeps_requeued_work() {
    let (_dir, s) = store().await;
    s.enqueue(&[1, 2]).await.unwrap();
    s.enqueue(&[1]).await.unwrap();
    assert_eq!(
        s.queue_stats().await.unwrap().queued,
        2,
        "a record is queued once"
    );

    let now = chrono::Utc::now().timestamp_millis() + 1;
    let t1 = s.claim_task(now, 60_000).await.unwrap().unwrap();
    let t2 = s.claim_task(now, 60_000).await.unwrap().unwrap();
    assert_ne!(
        t1.record_id, t2.record_id,
        "a leased task is not handed out twice"
    );
    assert!(s.claim_task(now, 60_000).await.unwrap().is_none());
    // An expired lease (a crashed worker) makes the task available again.
    let again = s.claim_task(now + 61_000, 60_000).await.unwrap().unwrap();
    assert!(again.record_id == t1.record_id || again.record_id == t2.record_id);

    // Re-queued while running: finishing the old generation must not drop the new work.
    let t = s.claim_task(now + 200_000, 60_000).await.unwrap().unwrap();
    s.enqueue(&[t.record_id]).await.unwrap();
    s.finish_task(&t).await.unwrap();
    let entry = s.queue_entry(t.record_id).await.unwrap();
    assert!(entry.is_some(), "re-queued work was lost");

    // A failure schedules a retry with the error kept; finishing removes the entry.
    let t = s.claim_task(now + 300_000, 60_000).await.unwrap().unwrap();
    s.retry_task(&t, "boom", now + 400_000).await.unwrap();
    let entry = s.queue_entry(t.record_id).await.unwrap().unwrap();
    assert_eq!(entry.attempts, 1);
    assert_eq!(entry.last_error.as_deref(), Some("boom"));
    assert!(
        s.claim_task(now + 350_000, 60_000)
            .await
            .unwrap()
            .map(|x| x.record_id)
            != Some(t.record_id)
    );
    let t = loop {
        let c = s.claim_task(now + 400_000, 60_000).await.unwrap().unwrap();
        if c.record_id == t.record_id {
            break c;
        }
        s.finish_task(&c).await.unwrap();
    };
    assert_eq!(t.attempts, 1);
    s.finish_task(&t).await.unwrap();
    assert!(s.queue_entry(t.record_id).await.unwrap().is_none());
}

#[tokio::test]
async fn sync_rows_upsert_by_path_and_unplaced_rows_are_replaced() {
    let (_dir, s) = store().await;
    let row = |path: Option<&str>, state| SyncRow {
        id: 0,
        record_id: 7,
        rule_name: "r".into(),
        connection: "c".into(),
        attachment_id: Some(1),
        path_display: path.map(str::to_owned),
        path_lower: path.map(str::to_lowercase),
        content_hash: None,
        rev: None,
        dropbox_id: None,
        state,
        last_error: None,
        updated_at: 0,
    };
    let a = s
        .save_sync_row(&row(Some("/A"), SyncState::Failed))
        .await
        .unwrap();
    let b = s
        .save_sync_row(&row(Some("/a"), SyncState::Synced))
        .await
        .unwrap();
    assert_eq!(a, b, "same connection + path is the same row");
    s.replace_unplaced_rows(
        7,
        &[row(None, SyncState::Failed), row(None, SyncState::Failed)],
    )
    .await
    .unwrap();
    s.replace_unplaced_rows(7, &[row(None, SyncState::Failed)])
        .await
        .unwrap();
    let rows = s.sync_rows(7).await.unwrap();
    assert_eq!(rows.len(), 2);
    let counts = s.sync_counts().await.unwrap();
    assert_eq!((counts.synced, counts.failed), (1, 1));
}
