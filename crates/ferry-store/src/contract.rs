//! The store contract: behaviour the engine relies on, checked against any [`Store`].
//! Upserts report changes, the queue deduplicates, leases keep workers apart, re-queued work
//! is never lost, a change and its queue entry commit together.
//!
//! Each backend runs the whole suite with [`store_contract_tests!`](crate::store_contract_tests),
//! giving it an async factory of fresh, empty stores.

use crate::prelude::*;
use crate::{
    AdminSession, AttachmentInput, Binding, FeedPage, MirrorChange, MirrorCorrection, MirrorFile,
    OAuthState, Priority, RecordInput, StoreError, SyncRow, SyncState,
};
use serde_json::json;

/// A process id never used before (one claim each, so the test reads like many processes).
fn fresh_owner() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("p{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

/// A new binding of rule `rule` on connection `c` (folder compared lower-cased).
fn binding(record_id: i64, rule: &str, folder: &str) -> Binding {
    Binding {
        id: 0,
        record_id,
        rule_name: rule.into(),
        connection: "c".into(),
        folder_display: folder.into(),
        folder_lower: folder.to_lowercase(),
        paused_reason: None,
        confirm_deletions: false,
        deletions_confirmed_at: 0,
    }
}

fn input(key: &str, fields: serde_json::Value) -> RecordInput {
    RecordInput {
        kind: "order".into(),
        key: key.into(),
        fields,
        parent_id: None,
    }
}

/// A rule placing orders on connection `c` in `folder`.
fn order_rule(name: &str, folder: &str) -> ferry_core::rules::RuleSpec {
    ferry_core::rules::RuleSpec {
        name: name.into(),
        record_kind: "order".into(),
        connection: "c".into(),
        folder: folder.into(),
        ..Default::default()
    }
}

/// Contract: see the function's name.
pub async fn many_tasks_are_claimed_at_once_most_urgent_first(s: &dyn Store) {
    let mut ids = Vec::new();
    for key in ["a", "b", "c", "d", "e"] {
        ids.push(
            s.upsert_record(&input(key, json!({})))
                .await
                .unwrap()
                .value
                .id,
        );
    }
    // Normal first, then a blocking one: the blocking one is the most urgent.
    s.enqueue(&ids[..4], Priority::Normal).await.unwrap();
    s.enqueue(&ids[4..], Priority::Blocking).await.unwrap();
    let now = ferry_core::clock::now_ms() + 1;
    let owner = fresh_owner();
    let first = s
        .claim_tasks(&owner, &[], now, 60_000, 3, Priority::Bulk)
        .await
        .unwrap();
    let got: Vec<i64> = first.iter().map(|t| t.record_id).collect();
    assert_eq!(
        got,
        vec![ids[4], ids[0], ids[1]],
        "most urgent first, FIFO within a priority"
    );
    // Claimed ones are not handed out again, to anyone; the rest are.
    let rest = s
        .claim_tasks(&fresh_owner(), &[], now, 60_000, 10, Priority::Bulk)
        .await
        .unwrap();
    let got: Vec<i64> = rest.iter().map(|t| t.record_id).collect();
    assert_eq!(got, vec![ids[2], ids[3]]);
    assert!(
        s.claim_tasks(&fresh_owner(), &[], now, 60_000, 10, Priority::Bulk)
            .await
            .unwrap()
            .is_empty()
    );
    // The owner's claims it no longer runs come back to it (its bookkeeping write failed),
    // those it runs do not.
    let back = s
        .claim_tasks(&owner, &[ids[4]], now, 60_000, 10, Priority::Bulk)
        .await
        .unwrap();
    let got: Vec<i64> = back.iter().map(|t| t.record_id).collect();
    assert_eq!(got, vec![ids[0], ids[1]]);
    for t in first.iter().chain(&rest) {
        s.finish_task(t).await.unwrap();
    }
    assert_eq!(s.queue_stats().await.unwrap().queued, 0);
}

/// Contract: see the function's name.
pub async fn upserts_report_changes(s: &dyn Store) {
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
        origin_path: None,
        source: Default::default(),
        if_match: None,
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

/// Contract: see the function's name.
pub async fn queue_dedups_leases_and_keeps_requeued_work(s: &dyn Store) {
    s.enqueue(&[1, 2], Priority::Normal).await.unwrap();
    s.enqueue(&[1], Priority::Normal).await.unwrap();
    assert_eq!(
        s.queue_stats().await.unwrap().queued,
        2,
        "a record is queued once"
    );

    let now = ferry_core::clock::now_ms() + 1;
    let t1 = s
        .claim_task(&fresh_owner(), &[], now, 60_000)
        .await
        .unwrap()
        .unwrap();
    let t2 = s
        .claim_task(&fresh_owner(), &[], now, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        t1.record_id, t2.record_id,
        "a leased task is not handed out twice"
    );
    assert!(
        s.claim_task(&fresh_owner(), &[], now, 60_000)
            .await
            .unwrap()
            .is_none()
    );
    // An expired lease (a crashed worker) makes the task available again.
    let again = s
        .claim_task(&fresh_owner(), &[], now + 61_000, 60_000)
        .await
        .unwrap()
        .unwrap();
    assert!(again.record_id == t1.record_id || again.record_id == t2.record_id);

    // Re-queued while running: finishing the old generation must not drop the new work.
    let t = s
        .claim_task(&fresh_owner(), &[], now + 200_000, 60_000)
        .await
        .unwrap()
        .unwrap();
    s.enqueue(&[t.record_id], Priority::Normal).await.unwrap();
    s.finish_task(&t).await.unwrap();
    let entry = s.queue_entry(t.record_id).await.unwrap();
    assert!(entry.is_some(), "re-queued work was lost");

    // A failure schedules a retry with the error kept; finishing removes the entry.
    let t = s
        .claim_task(&fresh_owner(), &[], now + 300_000, 60_000)
        .await
        .unwrap()
        .unwrap();
    s.retry_task(&t, "boom", now + 400_000, false)
        .await
        .unwrap();
    let entry = s.queue_entry(t.record_id).await.unwrap().unwrap();
    assert_eq!(entry.attempts, 1);
    assert_eq!(entry.last_error.as_deref(), Some("boom"));
    assert!(
        s.claim_task(&fresh_owner(), &[], now + 350_000, 60_000)
            .await
            .unwrap()
            .map(|x| x.record_id)
            != Some(t.record_id)
    );
    let t = loop {
        let c = s
            .claim_task(&fresh_owner(), &[], now + 400_000, 60_000)
            .await
            .unwrap()
            .unwrap();
        if c.record_id == t.record_id {
            break c;
        }
        s.finish_task(&c).await.unwrap();
    };
    assert_eq!(t.attempts, 1);
    s.finish_task(&t).await.unwrap();
    assert!(s.queue_entry(t.record_id).await.unwrap().is_none());

    // A logged finish writes its entries and ends the task; re-queued meanwhile, the entries
    // are written and the new work stays.
    let synced = |record_id| crate::LogEntry {
        id: 0,
        at: 0,
        connection: "c".into(),
        binding_id: None,
        record_id,
        path: "/p".into(),
        action: "record_synced".into(),
        outcome: "ok".into(),
        bytes: 0,
        duration_ms: 1,
        error: None,
    };
    let logged = |record_id| async move {
        s.log_entries(&crate::LogFilter {
            record_id: Some(record_id),
            action: Some("record_synced".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
    };
    s.enqueue(&[7, 8], Priority::Normal).await.unwrap();
    let mut claimed = Vec::new();
    while let Some(c) = s
        .claim_task(&fresh_owner(), &[], now + 500_000, 60_000)
        .await
        .unwrap()
    {
        claimed.push(c);
    }
    // (Record 2, re-queued above, is claimed too.)
    claimed.retain(|c| c.record_id >= 7);
    claimed.sort_by_key(|c| c.record_id);
    let [t7, t8] = <[crate::Task; 2]>::try_from(claimed).expect("both claimed");
    s.finish_task_logged(&t7, &[synced(7)]).await.unwrap();
    assert!(s.queue_entry(7).await.unwrap().is_none());
    assert_eq!(logged(7).await, 1);
    s.enqueue(&[8], Priority::Normal).await.unwrap();
    s.finish_task_logged(&t8, &[synced(8)]).await.unwrap();
    assert!(
        s.queue_entry(8).await.unwrap().is_some(),
        "re-queued work was lost"
    );
    assert_eq!(logged(8).await, 1);
}

/// Contract: see the function's name.
pub async fn sync_rows_upsert_by_path_and_unplaced_rows_are_replaced(s: &dyn Store) {
    let row = |path: Option<&str>, state| SyncRow {
        id: 0,
        record_id: 7,
        binding_id: path.map(|_| 3),
        rule_name: "r".into(),
        connection: "c".into(),
        attachment_id: Some(1),
        rel_display: path.map(str::to_owned),
        rel_lower: path.map(str::to_lowercase),
        dropbox_id: None,
        rev: None,
        content_hash: None,
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

/// Contract: see the function's name.
pub async fn priorities_and_dead_letters(s: &dyn Store) {
    s.enqueue(&[1], Priority::Normal).await.unwrap();
    s.enqueue(&[2], Priority::Normal).await.unwrap();
    s.enqueue(&[3], Priority::Reverse).await.unwrap();
    // Re-queueing at a more urgent class raises the priority, never lowers it.
    s.enqueue(&[2], Priority::Blocking).await.unwrap();
    s.enqueue(&[2], Priority::Normal).await.unwrap();
    let now = ferry_core::clock::now_ms() + 1;
    let mut claimed = Vec::new();
    while let Some(t) = s
        .claim_task(&fresh_owner(), &[], now, 60_000)
        .await
        .unwrap()
    {
        claimed.push(t.record_id);
    }
    assert_eq!(claimed, vec![3, 2, 1]);
    // A dead task is never claimed and shows as dead; re-queueing revives it.
    let t = crate::Task {
        record_id: 1,
        generation: 1,
        attempts: 0,
        failing_since: None,
        priority: Priority::Normal,
    };
    s.retry_task(&t, "gave up", now, true).await.unwrap();
    assert!(
        s.claim_task(&fresh_owner(), &[], now + 120_000, 60_000)
            .await
            .unwrap()
            .map(|t| t.record_id)
            != Some(1)
    );
    assert_eq!(
        s.dead_tasks()
            .await
            .unwrap()
            .iter()
            .map(|e| e.record_id)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(s.queue_stats().await.unwrap().dead, 1);
    s.enqueue(&[1], Priority::Normal).await.unwrap();
    assert!(s.dead_tasks().await.unwrap().is_empty());
}

/// Contract: see the function's name.
pub async fn bindings_by_folder_prefix(s: &dyn Store) {
    let mk = |record_id, folder: &str| binding(record_id, "r", folder);
    s.save_binding(&mk(1, "/F/1001")).await.unwrap();
    s.save_binding(&mk(2, "/F/1001/Item 1")).await.unwrap();
    s.save_binding(&mk(3, "/F/10011")).await.unwrap();
    s.save_binding(&mk(4, "/F/a%_b")).await.unwrap();
    let within: Vec<i64> = s
        .bindings_within("c", "/f/1001")
        .await
        .unwrap()
        .iter()
        .map(|b| b.record_id)
        .collect();
    assert_eq!(within, vec![1, 2], "prefix must end at a folder boundary");
    let containing: Vec<i64> = s
        .bindings_containing("c", "/f/1001/item 1/x.pdf")
        .await
        .unwrap()
        .iter()
        .map(|b| b.record_id)
        .collect();
    assert_eq!(containing, vec![2, 1], "deepest first");
    assert!(
        s.bindings_containing("c", "/f/axxb/x")
            .await
            .unwrap()
            .is_empty(),
        "no LIKE wildcards"
    );
    assert_eq!(
        s.bindings_containing("c", "/f/a%_b/x").await.unwrap().len(),
        1
    );
    // Saving again with id 0 updates the same (record, rule) binding.
    let id = s.save_binding(&mk(1, "/F/1001 renamed")).await.unwrap();
    assert_eq!(
        s.binding(id).await.unwrap().unwrap().folder_display,
        "/F/1001 renamed"
    );
    assert_eq!(s.bindings_for_record(1).await.unwrap().len(), 1);
}

/// Contract: see the function's name.
pub async fn a_records_own_change_goes_before_a_back_fill(s: &dyn Store) {
    let claim_all = || async {
        let now = ferry_core::clock::now_ms() + 1;
        let mut claimed = Vec::new();
        while let Some(t) = s
            .claim_task(&fresh_owner(), &[], now, 60_000)
            .await
            .unwrap()
        {
            s.finish_task(&t).await.unwrap();
            claimed.push(t.record_id);
        }
        claimed
    };
    let a = s.upsert_record(&input("A", json!({}))).await.unwrap().value;
    let b = s.upsert_record(&input("B", json!({}))).await.unwrap().value;
    let c = s.upsert_record(&input("C", json!({}))).await.unwrap().value;
    assert_eq!(claim_all().await, vec![a.id, b.id, c.id]);
    // A new rule queues every order: a back-fill.
    s.put_rule(&order_rule("r", "Orders/{{ record.key }}"))
        .await
        .unwrap();
    // Meanwhile the app adds one order and changes another: both go first.
    let d = s.upsert_record(&input("D", json!({}))).await.unwrap().value;
    s.upsert_record(&input("B", json!({"paid": true})))
        .await
        .unwrap();
    // A worker whose back-fill window is full claims only the live work, and the
    // back-fill stays queued.
    let now = ferry_core::clock::now_ms() + 1;
    let live = s
        .claim_tasks(&fresh_owner(), &[], now, 60_000, 10, Priority::Normal)
        .await
        .unwrap();
    let mut got: Vec<i64> = live.iter().map(|t| t.record_id).collect();
    got.sort_unstable();
    assert_eq!(got, vec![b.id, d.id], "live work only");
    for t in &live {
        s.retry_task(t, "given back", now - 1, false).await.unwrap();
    }
    let claimed = claim_all().await;
    let mut first = claimed[..2].to_vec();
    first.sort_unstable();
    assert_eq!(first, vec![b.id, d.id], "claimed {claimed:?}");
    assert_eq!(claimed[2..], [a.id, c.id], "claimed {claimed:?}");
}

/// Contract: see the function's name.
pub async fn queue_claims_in_enqueue_order(s: &dyn Store) {
    s.enqueue(&[3, 1, 2], Priority::Normal).await.unwrap();
    let now = ferry_core::clock::now_ms() + 1;
    let mut claimed = Vec::new();
    while let Some(t) = s
        .claim_task(&fresh_owner(), &[], now, 60_000)
        .await
        .unwrap()
    {
        claimed.push(t.record_id);
    }
    assert_eq!(claimed, vec![3, 1, 2]);
}

/// Contract: see the function's name.
pub async fn changes_after_a_pass_date_the_record(s: &dyn Store) {
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(3));
    s.put_rule(&ferry_core::rules::RuleSpec {
        direction: ferry_core::sync_plan::Direction::Push,
        ..order_rule("r", "Orders/{{ record.key }}")
    })
    .await
    .unwrap();
    let record = s.upsert_record(&input("A", json!({}))).await.unwrap().value;
    let other = s.upsert_record(&input("B", json!({}))).await.unwrap().value;
    tick().await;
    // A pass stamps the binding: nothing changed since.
    let pass = |record_id| binding(record_id, "r", &format!("/Orders/{record_id}"));
    s.save_binding(&pass(record.id)).await.unwrap();
    s.save_binding(&pass(other.id)).await.unwrap();
    assert!(s.records_changed_since_pass("c").await.unwrap().is_empty());
    let attach = |name: &str, hash: &str| AttachmentInput {
        record_id: record.id,
        name: name.into(),
        tags: vec![],
        content_hash: hash.into(),
        size: 1,
        origin_path: None,
        source: Default::default(),
        if_match: None,
    };
    // An attachment added after the pass.
    tick().await;
    s.put_attachment(&attach("a.txt", &"a".repeat(64)))
        .await
        .unwrap();
    assert_eq!(
        s.records_changed_since_pass("c").await.unwrap(),
        vec![record.id]
    );
    tick().await;
    s.save_binding(&pass(record.id)).await.unwrap();
    assert!(s.records_changed_since_pass("c").await.unwrap().is_empty());
    // Removed: no attachment row is left, the record carries the date.
    tick().await;
    assert!(s.remove_attachment(record.id, "a.txt").await.unwrap());
    assert_eq!(
        s.records_changed_since_pass("c").await.unwrap(),
        vec![record.id]
    );
    tick().await;
    s.save_binding(&pass(record.id)).await.unwrap();
    // The record's fields change.
    tick().await;
    s.upsert_record(&input("B", json!({"x": 1}))).await.unwrap();
    assert_eq!(
        s.records_changed_since_pass("c").await.unwrap(),
        vec![other.id]
    );
    tick().await;
    s.save_binding(&pass(other.id)).await.unwrap();
    // A file that failed keeps its record on the list until it is synced.
    let mut row = SyncRow {
        id: 0,
        record_id: record.id,
        binding_id: None,
        rule_name: "r".into(),
        connection: "c".into(),
        attachment_id: None,
        rel_display: Some("bad:name".into()),
        rel_lower: Some("bad:name".into()),
        dropbox_id: None,
        rev: None,
        content_hash: None,
        state: SyncState::Failed,
        last_error: Some("refused".into()),
        updated_at: 0,
    };
    row.id = s.save_sync_row(&row).await.unwrap();
    assert_eq!(
        s.records_changed_since_pass("c").await.unwrap(),
        vec![record.id]
    );
    // The rule changes: every binding through it.
    s.delete_sync_row(row.id).await.unwrap();
    tick().await;
    s.delete_rule("r").await.unwrap();
    assert_eq!(
        s.records_changed_since_pass("c").await.unwrap(),
        vec![record.id, other.id]
    );
}

/// Contract: see the function's name.
pub async fn a_dead_process_claims_are_released_and_a_live_one_is_renewed(s: &dyn Store) {
    s.enqueue(&[1, 2], Priority::Normal).await.unwrap();
    let now = ferry_core::clock::now_ms() + 1;
    let process = |id: &str| crate::ProcessInfo {
        id: id.into(),
        host: "h".into(),
        pid: 1,
        boot_token: "t".into(),
        started_at: now,
        heartbeat_at: now,
    };
    s.heartbeat(&process("dead"), &[], now).await.unwrap();
    s.heartbeat(&process("live"), &[], now).await.unwrap();
    let a = s
        .claim_task("dead", &[], now, 600_000)
        .await
        .unwrap()
        .unwrap();
    let b = s
        .claim_task("live", &[], now, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.queue_entry(a.record_id)
            .await
            .unwrap()
            .unwrap()
            .claimed_by
            .as_deref(),
        Some("dead")
    );
    // The live process renews its claim past its first lease.
    s.heartbeat(&process("live"), &[b.record_id], now + 600_000)
        .await
        .unwrap();
    assert!(
        s.claim_task("other", &[], now + 5_000, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    // Releasing the dead process frees its claim at once, not after its 10-minute lease.
    assert_eq!(s.release_process("dead").await.unwrap(), 1);
    let again = s
        .claim_task("other", &[], now + 5_000, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.record_id, a.record_id);
    let ids: Vec<String> = s
        .processes()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, vec!["live".to_string()]);
}

/// Contract: see the function's name.
pub async fn failing_since_is_kept_across_retries_and_dead_letters_come_back_in_bulk(
    s: &dyn Store,
) {
    s.enqueue(&[1, 2], Priority::Normal).await.unwrap();
    let now = ferry_core::clock::now_ms() + 1;
    let t = s.claim_task("p", &[], now, 0).await.unwrap().unwrap();
    assert_eq!(t.failing_since, None);
    s.retry_task(&t, "boom", now, false).await.unwrap();
    let first = s
        .queue_entry(t.record_id)
        .await
        .unwrap()
        .unwrap()
        .failing_since;
    assert!(first.is_some());
    let t = loop {
        let c = s.claim_task("p", &[], now + 10, 0).await.unwrap().unwrap();
        if c.record_id == t.record_id {
            break c;
        }
        s.retry_task(&c, "gave up", now, true).await.unwrap();
    };
    assert_eq!(t.failing_since, first, "the failure run keeps its start");
    s.retry_task(&t, "gave up", now, true).await.unwrap();
    assert_eq!(s.dead_tasks().await.unwrap().len(), 2);
    assert_eq!(s.requeue_dead().await.unwrap(), 2);
    assert!(s.dead_tasks().await.unwrap().is_empty());
    let revived = s.queue_entry(1).await.unwrap().unwrap();
    assert_eq!((revived.attempts, revived.failing_since), (0, None));
}

/// Contract: see the function's name.
pub async fn replacing_the_other_sides_version_archives_it_and_if_match_guards_writes(
    s: &dyn Store,
) {
    use ferry_core::model::Side;
    let r = s.upsert_record(&input("1", json!({}))).await.unwrap().value;
    let put = |hash: &str, source: Side, if_match: Option<&str>| AttachmentInput {
        record_id: r.id,
        name: "x.txt".into(),
        tags: vec![],
        content_hash: hash.into(),
        size: 1,
        origin_path: None,
        source,
        if_match: if_match.map(str::to_owned),
    };
    s.put_attachment(&put("app1", Side::App, None))
        .await
        .unwrap();
    // The app replacing its own version: nothing archived.
    s.put_attachment(&put("app2", Side::App, None))
        .await
        .unwrap();
    assert!(s.archived_attachments(r.id).await.unwrap().is_empty());
    // Dropbox's version replaces the app's: the app's is archived.
    s.put_attachment(&put("dbx1", Side::Dropbox, None))
        .await
        .unwrap();
    // The app writes over Dropbox's version without having seen it: Dropbox's is archived.
    s.put_attachment(&put("app3", Side::App, None))
        .await
        .unwrap();
    let archived: Vec<String> = s
        .archived_attachments(r.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.content_hash)
        .collect();
    assert_eq!(archived, vec!["dbx1".to_string(), "app2".to_string()]);
    // If-Match: a stale hash changes nothing and reports the current one.
    match s
        .put_attachment(&put("app4", Side::App, Some("dbx1")))
        .await
    {
        Err(StoreError::PreconditionFailed { current }) => {
            assert_eq!(current.as_deref(), Some("app3"))
        }
        other => panic!("expected a failed precondition, got {other:?}"),
    }
    assert_eq!(s.attachments(r.id).await.unwrap()[0].content_hash, "app3");
    s.put_attachment(&put("app4", Side::App, Some("app3")))
        .await
        .unwrap();
    // Restoring an archived version brings it back and archives the one it replaces.
    let dbx = s
        .archived_attachments(r.id)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.content_hash == "dbx1")
        .unwrap();
    let restored = s.restore_archived(r.id, dbx.id).await.unwrap().unwrap();
    assert!(restored.changed);
    assert_eq!(restored.value.content_hash, "dbx1");
    assert!(
        s.archived_attachments(r.id)
            .await
            .unwrap()
            .iter()
            .any(|a| a.content_hash == "app4")
    );
    assert!(s.restore_archived(r.id, 9_999).await.unwrap().is_none());
}

/// Contract: see the function's name.
pub async fn records_are_listed_with_their_state(s: &dyn Store) {
    use crate::RecordFilter;
    for key in ["A-1", "B-2", "b-3"] {
        s.upsert_record(&input(key, json!({}))).await.unwrap();
    }
    let all = s
        .list_records(&RecordFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|r| r.queued && !r.dead && r.attachments == 0)
    );
    let b = s
        .list_records(&RecordFilter {
            key_contains: Some("b-".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<&str> = b.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["B-2", "b-3"], "the key filter ignores case");
    let page = s
        .list_records(&RecordFilter {
            after_id: all[0].id,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, all[1].id);
}

/// Contract: see the function's name.
pub async fn a_duty_has_one_holder_until_its_lease_lapses_or_it_is_released(s: &dyn Store) {
    use crate::ProcessInfo;
    let now = ferry_core::clock::now_ms();
    let (a, b) = (fresh_owner(), fresh_owner());
    assert!(s.hold_duty("watch:c", &a, now, now + 1_000).await.unwrap());
    assert!(
        !s.hold_duty("watch:c", &b, now, now + 1_000).await.unwrap(),
        "held"
    );
    assert!(
        s.hold_duty("watch:c", &a, now, now + 1_000).await.unwrap(),
        "kept"
    );
    // Past its lease, another process takes it; the old holder has lost it.
    assert!(
        s.hold_duty("watch:c", &b, now + 2_000, now + 3_000)
            .await
            .unwrap()
    );
    assert!(
        !s.hold_duty("watch:c", &a, now + 2_000, now + 3_000)
            .await
            .unwrap()
    );
    // Of many asking at once, one gets a free duty.
    let askers: Vec<String> = (0..8).map(|_| fresh_owner()).collect();
    let held = futures::future::join_all(
        askers
            .iter()
            .map(|p| s.hold_duty("webhooks", p, now, now + 1_000)),
    )
    .await;
    assert_eq!(held.into_iter().filter(|h| *h.as_ref().unwrap()).count(), 1);
    // The holder's heartbeat renews its duties; releasing the process frees them.
    let process = ProcessInfo {
        id: b.clone(),
        host: "h".into(),
        pid: 1,
        boot_token: "t".into(),
        started_at: now,
        heartbeat_at: now,
    };
    s.heartbeat(&process, &[], now + 60_000).await.unwrap();
    assert!(
        !s.hold_duty("watch:c", &a, now + 10_000, now + 11_000)
            .await
            .unwrap(),
        "renewed by the heartbeat"
    );
    s.release_process(&b).await.unwrap();
    let later = (now + 10_000, now + 11_000);
    assert!(s.hold_duty("watch:c", &a, later.0, later.1).await.unwrap());
    // A duty given up is free at once; giving up one held by another changes nothing.
    s.release_duty("watch:c", &b).await.unwrap();
    assert!(!s.hold_duty("watch:c", &b, later.0, later.1).await.unwrap());
    s.release_duty("watch:c", &a).await.unwrap();
    assert!(s.hold_duty("watch:c", &b, later.0, later.1).await.unwrap());
    let duties = s.duties().await.unwrap();
    let watch = duties.iter().find(|d| d.name == "watch:c").unwrap();
    assert_eq!((&watch.holder, watch.until_ms), (&b, later.1));
    assert_eq!(duties.iter().filter(|d| d.name == "webhooks").count(), 1);
}

/// Contract: see the function's name. Many claimers at once (as many processes would):
/// every record is handed out once, never to two owners.
pub async fn concurrent_claims_never_share_a_record(s: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            s.upsert_record(&input(&format!("c{i}"), json!({})))
                .await
                .unwrap()
                .value
                .id,
        );
    }
    let now = ferry_core::clock::now_ms();
    let claimer = |owner: String| async move {
        let mut mine = Vec::new();
        // The owner's own claims are its running work, or it would take them back.
        while let Some(task) = s
            .claim_task(&owner, &mine, now + 60_000, 600_000)
            .await
            .unwrap()
        {
            mine.push(task.record_id);
        }
        mine
    };
    let claimed: Vec<Vec<i64>> =
        futures::future::join_all((0..8).map(|_| claimer(fresh_owner()))).await;
    let mut all: Vec<i64> = claimed.concat();
    all.sort();
    ids.sort();
    assert_eq!(all, ids, "each record claimed exactly once: {claimed:?}");
}

/// Contract: see the function's name. Dropbox versions of one file arriving at once (as
/// several processes would write them): each one replaced is archived, none is lost.
pub async fn concurrent_replacements_archive_every_replaced_version(s: &dyn Store) {
    use ferry_core::model::Side;
    let r = s.upsert_record(&input("1", json!({}))).await.unwrap().value;
    let put = |hash: String| AttachmentInput {
        record_id: r.id,
        name: "x.txt".into(),
        tags: vec![],
        content_hash: hash,
        size: 1,
        origin_path: None,
        source: Side::Dropbox,
        if_match: None,
    };
    let hashes: Vec<String> = (0..12).map(|i| format!("dbx{i}")).collect();
    let results = futures::future::join_all(hashes.iter().map(|h| {
        let version = put(h.clone());
        async move { s.put_attachment(&version).await }
    }))
    .await;
    for result in results {
        result.unwrap();
    }
    let mut kept: Vec<String> = s
        .archived_attachments(r.id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.content_hash)
        .collect();
    kept.push(s.attachments(r.id).await.unwrap()[0].content_hash.clone());
    kept.sort();
    let mut expected = hashes.clone();
    expected.sort();
    assert_eq!(kept, expected, "every version is current or archived, once");
}

/// Contract: see the function's name.
pub async fn a_change_and_its_queue_entry_commit_together(s: &dyn Store) {
    let parent = s.upsert_record(&input("P", json!({}))).await.unwrap().value;
    let child = |key: &str| RecordInput {
        kind: "item".into(),
        key: key.into(),
        fields: json!({}),
        parent_id: Some(parent.id),
    };
    let a = s.upsert_record(&child("A")).await.unwrap().value;
    let b = s.upsert_record(&child("B")).await.unwrap().value;
    // Drain what the upserts queued.
    let now = ferry_core::clock::now_ms() + 1;
    while let Some(t) = s.claim_task("p", &[], now, 0).await.unwrap() {
        s.finish_task(&t).await.unwrap();
    }
    assert_eq!(s.queue_stats().await.unwrap().queued, 0);
    s.upsert_record(&RecordInput {
        fields: json!({"x": 1}),
        ..child("A")
    })
    .await
    .unwrap();
    // The record, its parent and its sibling: all can see the change.
    for id in [a.id, b.id, parent.id] {
        assert!(
            s.queue_entry(id).await.unwrap().is_some(),
            "record {id} queued"
        );
    }
}

/// Contract: deleting a record with its files keeps what came from Dropbox there (its rows
/// go, so no pass deletes it); an upsert takes the deletion back; forgetting drops it all.
pub async fn record_deletion_spares_dropbox_versions(s: &dyn Store) {
    use ferry_core::model::{Deletion, Side};
    let r = s.upsert_record(&input("D", json!({}))).await.unwrap().value;
    let b = s.save_binding(&binding(r.id, "r", "/F")).await.unwrap();
    let mut rows = Vec::new();
    for (name, source) in [("app.txt", Side::App), ("box.txt", Side::Dropbox)] {
        let a = s
            .put_attachment(&AttachmentInput {
                record_id: r.id,
                name: name.into(),
                tags: vec![],
                content_hash: "0".repeat(64),
                size: 1,
                origin_path: None,
                source,
                if_match: None,
            })
            .await
            .unwrap()
            .value;
        rows.push(
            s.save_sync_row(&SyncRow {
                id: 0,
                record_id: r.id,
                binding_id: Some(b),
                rule_name: "r".into(),
                connection: "c".into(),
                attachment_id: Some(a.id),
                rel_display: Some(name.into()),
                rel_lower: Some(name.into()),
                dropbox_id: Some(format!("id:{name}")),
                rev: Some("1".into()),
                content_hash: Some("0".repeat(64)),
                state: SyncState::Synced,
                last_error: None,
                updated_at: 0,
            })
            .await
            .unwrap(),
        );
    }
    assert!(
        s.mark_record_deleting(r.id, Deletion::Delete)
            .await
            .unwrap()
    );
    let left: Vec<String> = s
        .sync_rows(r.id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|row| row.rel_display)
        .collect();
    assert_eq!(left, ["app.txt"], "only the app's file is left to delete");
    assert_eq!(
        s.record_by_id(r.id).await.unwrap().unwrap().deletion,
        Some(Deletion::Delete)
    );
    assert!(
        s.queue_entry(r.id).await.unwrap().is_some(),
        "queued with the mark"
    );
    // An upsert takes it back.
    s.upsert_record(&input("D", json!({}))).await.unwrap();
    assert_eq!(s.record_by_id(r.id).await.unwrap().unwrap().deletion, None);
    // Forgetting removes the record and everything of it.
    assert!(s.forget_record(r.id).await.unwrap());
    assert!(s.record_by_id(r.id).await.unwrap().is_none());
    assert!(s.sync_rows(r.id).await.unwrap().is_empty());
    assert!(s.bindings_for_record(r.id).await.unwrap().is_empty());
    assert!(s.attachments(r.id).await.unwrap().is_empty());
    assert!(s.queue_entry(r.id).await.unwrap().is_none());
}

/// A connection to Dropbox's own hosts under `root`, with a placeholder token.
fn stored_connection(name: &str, root: &str) -> crate::StoredConnection {
    crate::StoredConnection {
        name: name.into(),
        api_url: "https://api.dropboxapi.com".into(),
        content_url: "https://content.dropboxapi.com".into(),
        notify_url: "https://notify.dropboxapi.com".into(),
        root: root.into(),
        token_ciphertext: vec![1, 2, 3],
        refresh_ciphertext: None,
        app_key: None,
        app_secret_ciphertext: None,
        needs_reconnect: None,
        disconnecting: false,
        select_user: None,
        path_root: None,
        account: None,
        app_access: None,
    }
}

/// Contract: a root moves only from the root it had (and not while disconnecting), clearing
/// the change cursor and queueing the rules' records; a cursor is saved only over the one its
/// round started from, under the same root — so a round that began before a root change or a
/// reconnect cannot bring back a cursor of the old root.
pub async fn roots_move_and_cursors_advance_only_from_what_they_were(s: &dyn Store) {
    s.put_connection(&stored_connection("c", "/Old"))
        .await
        .unwrap();
    s.put_rule(&order_rule("orders", "x")).await.unwrap();
    let r = s
        .upsert_record(&input("R1", json!({})))
        .await
        .unwrap()
        .value;
    let now = ferry_core::clock::now_ms() + 1;
    let task = s
        .claim_task(&fresh_owner(), &[], now, 60_000)
        .await
        .unwrap()
        .expect("the record's first pass");
    s.finish_task(&task).await.unwrap();
    assert!(s.queue_entry(r.id).await.unwrap().is_none());
    // The first cursor (with its mirror): only where none is yet, under the root it was
    // read for.
    let far = i64::MAX / 2;
    assert!(!s.finish_mirror("c", "/Other", 1, "k1", far).await.unwrap());
    assert!(s.finish_mirror("c", "/Old", 2, "k1", far).await.unwrap());
    assert!(!s.finish_mirror("c", "/Old", 3, "k0", far).await.unwrap());
    // Advancing needs the cursor the round started from.
    let page = |from: &'static str, to: &'static str, root: &'static str| FeedPage {
        connection: "c",
        root,
        from,
        to,
        changes: &[],
        records: &[],
        live_until_ms: far,
    };
    assert!(!s.apply_feed_page(&page("k0", "k2", "/Old")).await.unwrap());
    assert!(s.apply_feed_page(&page("k1", "k2", "/Old")).await.unwrap());
    assert_eq!(
        s.connection_cursor("c").await.unwrap().as_deref(),
        Some("k2")
    );
    // A move from a root the connection no longer has changes nothing.
    assert!(
        !s.set_connection_root("c", "/Elsewhere", "/New")
            .await
            .unwrap()
    );
    assert!(s.queue_entry(r.id).await.unwrap().is_none());
    assert!(s.set_connection_root("c", "/Old", "/New").await.unwrap());
    let c = s.connection("c").await.unwrap().unwrap();
    assert_eq!(
        (c.root.as_str(), c.token_ciphertext.as_slice()),
        ("/New", &[1u8, 2, 3][..])
    );
    assert_eq!(
        s.connection_cursor("c").await.unwrap(),
        None,
        "the feed starts again"
    );
    assert!(
        s.queue_entry(r.id).await.unwrap().is_some(),
        "its rules' records get a pass"
    );
    // The round that started under the old root cannot put its cursor back.
    assert!(!s.apply_feed_page(&page("k2", "k3", "/Old")).await.unwrap());
    assert!(!s.finish_mirror("c", "/Old", 4, "k3", far).await.unwrap());
    assert_eq!(s.connection_cursor("c").await.unwrap(), None);
    // Not while it is being disconnected.
    s.set_disconnecting("c").await.unwrap();
    assert!(!s.set_connection_root("c", "/New", "/Newer").await.unwrap());
}

/// Contract: saving a connection resets its change feed and queues its rules' records, and
/// disconnecting queues the records bound on it (or deletes it when none is) — each in the
/// write's own transaction.
pub async fn connection_writes_queue_their_work(s: &dyn Store) {
    let connection = |name: &str| stored_connection(name, "/F");
    // A team connection keeps the member it acts as and where its paths start.
    s.put_connection(&crate::StoredConnection {
        select_user: Some("dbmid:m".into()),
        path_root: Some("root:42".into()),
        ..connection("team")
    })
    .await
    .unwrap();
    let team = s.connection("team").await.unwrap().unwrap();
    assert_eq!(
        (team.select_user.as_deref(), team.path_root.as_deref()),
        (Some("dbmid:m"), Some("root:42"))
    );
    s.put_connection(&connection("team")).await.unwrap();
    let team = s.connection("team").await.unwrap().unwrap();
    assert_eq!((team.select_user, team.path_root), (None, None));
    // The account it was connected to is kept with it.
    let account = crate::ConnectionAccount {
        id: "dbid:a".into(),
        name: "Ada".into(),
        email: "ada@example.com".into(),
    };
    s.put_connection(&crate::StoredConnection {
        account: Some(account.clone()),
        ..connection("team")
    })
    .await
    .unwrap();
    assert_eq!(
        s.connection("team").await.unwrap().unwrap().account,
        Some(account)
    );
    // …and what its app can reach.
    s.put_connection(&crate::StoredConnection {
        app_access: Some("app_folder".into()),
        ..connection("team")
    })
    .await
    .unwrap();
    assert_eq!(
        s.connection("team")
            .await
            .unwrap()
            .unwrap()
            .app_access
            .as_deref(),
        Some("app_folder")
    );
    let r = s
        .upsert_record(&input("C1", json!({})))
        .await
        .unwrap()
        .value;
    let other = s
        .upsert_record(&RecordInput {
            kind: "ticket".into(),
            ..input("C2", json!({}))
        })
        .await
        .unwrap()
        .value;
    s.put_rule(&order_rule("orders", "x")).await.unwrap();
    let now = ferry_core::clock::now_ms() + 1;
    while let Some(t) = s.claim_task("p", &[], now, 0).await.unwrap() {
        s.finish_task(&t).await.unwrap();
    }
    assert_eq!(s.put_connection(&connection("c")).await.unwrap(), 1);
    assert!(
        s.queue_entry(r.id).await.unwrap().is_some(),
        "its rule's record is queued"
    );
    assert!(
        s.queue_entry(other.id).await.unwrap().is_none(),
        "another kind is not"
    );
    s.set_connection_cursor("c", Some("cursor-1"))
        .await
        .unwrap();
    s.put_connection(&connection("c")).await.unwrap();
    assert_eq!(
        s.connection_cursor("c").await.unwrap(),
        None,
        "the feed starts anew"
    );

    // Disconnecting with a binding: its record is queued first of all; without: gone at once.
    s.save_binding(&binding(r.id, "orders", "/F/x"))
        .await
        .unwrap();
    // Claims look a minute ahead: what is queued below is due then however slow the
    // machine is, so only priority decides the order.
    let later = now + 60_000;
    while let Some(t) = s.claim_task("p", &[], later, 0).await.unwrap() {
        s.finish_task(&t).await.unwrap();
    }
    s.enqueue(&[other.id], Priority::Normal).await.unwrap();
    assert_eq!(
        s.queued_on_connection("c").await.unwrap(),
        0,
        "`other` is not bound on c"
    );
    assert_eq!(s.set_disconnecting("c").await.unwrap(), vec![r.id]);
    assert!(s.connection("c").await.unwrap().unwrap().disconnecting);
    assert_eq!(
        s.queued_on_connection("c").await.unwrap(),
        1,
        "its progress"
    );
    let first = s.claim_task("p", &[], later, 0).await.unwrap().unwrap();
    assert_eq!(first.record_id, r.id, "reverse sync goes first");
    s.put_connection(&connection("empty")).await.unwrap();
    assert!(s.set_disconnecting("empty").await.unwrap().is_empty());
    assert!(s.connection("empty").await.unwrap().is_none());
}

/// Contract: a binding's default subfolders are marked made once, and the mark goes with the
/// binding (a new binding of the record makes them again).
pub async fn subfolders_are_marked_per_binding(s: &dyn Store) {
    let r = s.upsert_record(&input("S", json!({}))).await.unwrap().value;
    let b = s.save_binding(&binding(r.id, "r", "/S")).await.unwrap();
    assert!(!s.subfolders_made(b).await.unwrap());
    s.set_subfolders_made(b).await.unwrap();
    s.set_subfolders_made(b).await.unwrap();
    assert!(s.subfolders_made(b).await.unwrap());
    s.delete_binding(b).await.unwrap();
    let again = s.save_binding(&binding(r.id, "r", "/S")).await.unwrap();
    assert!(!s.subfolders_made(again).await.unwrap());
}

/// Contract: a logged change writes its webhook event and deliveries with it (only when a
/// subscription wants it); deliveries move along, come back on redelivery, and ended ones are
/// pruned while pending ones stay.
pub async fn webhook_events_follow_their_changes(s: &dyn Store) {
    let entry = |action: &str, outcome: &str| crate::LogEntry {
        id: 0,
        at: 0,
        connection: "c".into(),
        binding_id: None,
        record_id: 0,
        path: "/F/a.txt".into(),
        action: action.into(),
        outcome: outcome.into(),
        bytes: 1,
        duration_ms: 1,
        error: None,
    };
    let now = ferry_core::clock::now_ms();
    // Nothing is stored without a subscription.
    s.log(&entry("upload", "ok")).await.unwrap();
    assert!(
        s.due_deliveries(now + 1000, 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let id = s
        .put_webhook(&crate::StoredWebhook {
            id: 0,
            url: "https://example.invalid/hook".into(),
            events: vec!["file.synced".into()],
            secret_ciphertext: vec![1],
            created_at: 0,
        })
        .await
        .unwrap();
    s.save_sync_rows_logged(&[], &[entry("upload", "ok"), entry("delete", "ok")])
        .await
        .unwrap();
    let due = s.due_deliveries(now + 1000, 10, 60_000).await.unwrap();
    assert_eq!(due.len(), 1, "only the event it subscribed to");
    assert!(
        due[0].payload.contains("\"file.synced\""),
        "{}",
        due[0].payload
    );
    assert!(
        s.due_deliveries(now + 1000, 10, 60_000)
            .await
            .unwrap()
            .is_empty(),
        "held while being sent"
    );
    s.finish_delivery(due[0].id, true, Some(204), None, None)
        .await
        .unwrap();
    let log = s.deliveries(id, 10).await.unwrap();
    assert_eq!((log[0].state.as_str(), log[0].attempts), ("delivered", 1));
    assert!(s.redeliver(due[0].id).await.unwrap());
    assert_eq!(s.due_deliveries(now + 1000, 10, 0).await.unwrap().len(), 1);
    // Pending: kept by pruning. Ended: pruned.
    assert_eq!(s.prune_webhook_deliveries(now + 10_000).await.unwrap(), 0);
    s.finish_delivery(due[0].id, false, Some(500), Some("down"), None)
        .await
        .unwrap();
    assert_eq!(s.deliveries(id, 10).await.unwrap()[0].state, "failed");
    assert_eq!(s.prune_webhook_deliveries(now + 10_000).await.unwrap(), 1);
    assert!(s.deliveries(id, 10).await.unwrap().is_empty());
    assert!(s.delete_webhook(id).await.unwrap());
}

/// Contract: see the function's name.
pub async fn links_are_wanted_until_made_retried_when_due_renewed_when_expired(s: &dyn Store) {
    use crate::LinkResult;
    let record = s
        .upsert_record(&input("1", json!({})))
        .await
        .unwrap()
        .value
        .id;
    let binding_id = s
        .save_binding(&binding(record, "r", "/Orders/1"))
        .await
        .unwrap();
    let synced = |rel: &str, id: &str| SyncRow {
        id: 0,
        record_id: record,
        binding_id: Some(binding_id),
        rule_name: "r".into(),
        connection: "c".into(),
        attachment_id: None,
        rel_display: Some(rel.into()),
        rel_lower: Some(rel.to_lowercase()),
        dropbox_id: Some(id.into()),
        rev: Some("0123456789".into()),
        content_hash: Some("h".into()),
        state: SyncState::Synced,
        last_error: None,
        updated_at: 0,
    };
    s.save_sync_row(&synced("a.pdf", "id:a")).await.unwrap();
    s.save_sync_row(&synced("b.pdf", "id:b")).await.unwrap();
    let items = |t: &[crate::LinkTarget]| t.iter().map(|t| t.item.clone()).collect::<Vec<_>>();
    let wanted = s.links_wanted("c", "r", true, 1000, 10).await.unwrap();
    assert_eq!(
        items(&wanted),
        ["id:a", "id:b", &format!("binding:{binding_id}")]
    );
    assert_eq!(wanted[0].path(), "/Orders/1/a.pdf");
    assert_eq!(wanted[2].path(), "/Orders/1");
    assert!(
        s.links_wanted("x", "r", true, 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.links_wanted("c", "r", false, 1000, 1)
            .await
            .unwrap()
            .len(),
        1
    );

    let made = |expires_at| LinkResult::Made {
        url: "https://link/a".into(),
        audience: Some("public".into()),
        expires_at,
        duration_ms: 1,
    };
    s.save_link(&wanted[0], &made(Some(5000))).await.unwrap();
    s.save_link(
        &wanted[1],
        &LinkResult::Failed {
            error: "refused".into(),
            retry_at_ms: 2000,
            duration_ms: 1,
        },
    )
    .await
    .unwrap();
    s.save_link(&wanted[2], &made(None)).await.unwrap();
    assert!(
        s.links_wanted("c", "r", true, 1000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = s.links_wanted("c", "r", true, 2000, 10).await.unwrap();
    assert_eq!(items(&due), ["id:b"], "a failed try comes back when due");
    assert_eq!(due[0].attempts, 1);
    let expired = s.links_wanted("c", "r", true, 5000, 10).await.unwrap();
    assert_eq!(
        items(&expired),
        ["id:a", "id:b"],
        "an expired link is made again"
    );

    let links = s.record_links(record).await.unwrap();
    assert_eq!(links.len(), 3);
    let a = links.iter().find(|l| l.item == "id:a").unwrap();
    assert_eq!(a.url.as_deref(), Some("https://link/a"));
    let b = links.iter().find(|l| l.item == "id:b").unwrap();
    assert_eq!(
        (b.url.as_deref(), b.error.as_deref()),
        (None, Some("refused"))
    );
    let log = s
        .log_entries(&crate::LogFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.iter().filter(|l| l.entry.action == "link").count(), 3);

    // A file that left Dropbox takes its link with it.
    let rows = s.sync_rows(record).await.unwrap();
    let a_row = rows
        .iter()
        .find(|r| r.dropbox_id.as_deref() == Some("id:a"))
        .unwrap();
    s.delete_sync_row(a_row.id).await.unwrap();
    assert_eq!(s.prune_links("c").await.unwrap(), 1);
    assert_eq!(s.record_links(record).await.unwrap().len(), 2);
}

/// Contract: see the function's name.
pub async fn offload_needs_dropbox_to_confirm_and_never_archives_what_only_dropbox_holds(
    s: &dyn Store,
) {
    use ferry_core::model::Side;
    let record = s
        .upsert_record(&input("O1", json!({})))
        .await
        .unwrap()
        .value
        .id;
    let put = |hash: &str, source: Side| AttachmentInput {
        record_id: record,
        name: "scan.pdf".into(),
        tags: vec![],
        content_hash: hash.into(),
        size: 10,
        origin_path: None,
        source,
        if_match: None,
    };
    let a = s
        .put_attachment(&put("h1", Side::Dropbox))
        .await
        .unwrap()
        .value;
    let binding_id = s
        .save_binding(&binding(record, "r", "/Scans/O1"))
        .await
        .unwrap();
    let row = |hash: &str| SyncRow {
        id: 0,
        record_id: record,
        binding_id: Some(binding_id),
        rule_name: "r".into(),
        connection: "c".into(),
        attachment_id: Some(a.id),
        rel_display: Some("scan.pdf".into()),
        rel_lower: Some("scan.pdf".into()),
        dropbox_id: Some("id:s".into()),
        rev: Some("0123456789a".into()),
        content_hash: Some(hash.into()),
        state: SyncState::Synced,
        last_error: None,
        updated_at: 0,
    };
    // Dropbox holds other content: not a candidate.
    s.save_sync_row(&row("h0")).await.unwrap();
    assert!(s.offload_candidates("c", "r", 10).await.unwrap().is_empty());
    s.save_sync_row(&row("h1")).await.unwrap();
    // Not while the record has work queued (the write above queued it).
    assert!(s.offload_candidates("c", "r", 10).await.unwrap().is_empty());
    let now = ferry_core::clock::now_ms();
    while let Some(task) = s
        .claim_task(&fresh_owner(), &[], now, 60_000)
        .await
        .unwrap()
    {
        s.finish_task(&task).await.unwrap();
    }
    let candidates = s.offload_candidates("c", "r", 10).await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].rev, "0123456789a");
    assert!(s.mark_offloaded(&candidates[0]).await.unwrap());
    assert!(!s.mark_offloaded(&candidates[0]).await.unwrap(), "once");
    let offloaded = s.attachments(record).await.unwrap().remove(0);
    assert_eq!(offloaded.offloaded.as_ref().unwrap().connection, "c");
    assert!(s.offload_candidates("c", "r", 10).await.unwrap().is_empty());
    assert_eq!(s.droppable_blobs(10).await.unwrap(), ["h1"]);
    assert!(!s.needs_blob("h1").await.unwrap());
    let totals = s.content_totals().await.unwrap();
    assert_eq!((totals.offloaded_files, totals.offloaded_bytes), (1, 10));

    // Replacing or removing it would archive a version only Dropbox holds: refused, nothing
    // written.
    assert!(matches!(
        s.put_attachment(&put("h2", Side::App)).await,
        Err(StoreError::Offloaded(_))
    ));
    assert!(matches!(
        s.remove_attachment(record, "scan.pdf").await,
        Err(StoreError::Offloaded(_))
    ));
    assert!(s.archived_attachments(record).await.unwrap().is_empty());
    assert_eq!(s.attachments(record).await.unwrap()[0].content_hash, "h1");

    // The blob goes once; brought back, it is needed again and the write goes through.
    s.set_blob_dropped("h1").await.unwrap();
    assert!(s.droppable_blobs(10).await.unwrap().is_empty());
    assert!(!s.clear_offloaded(a.id, "other").await.unwrap());
    assert!(s.clear_offloaded(a.id, "h1").await.unwrap());
    assert!(s.needs_blob("h1").await.unwrap());
    let replaced = s.put_attachment(&put("h2", Side::App)).await.unwrap().value;
    assert!(replaced.offloaded.is_none());
    assert_eq!(s.archived_attachments(record).await.unwrap().len(), 1);
    assert!(
        s.needs_blob("h1").await.unwrap(),
        "the archived version keeps it"
    );
}

/// Admins, sessions and login links: a password change signs the admin out, expired rows
/// are never returned, a login link works once, and a connect state keeps its session.
pub async fn console_sessions_end_on_password_change_and_links_work_once<S: Store>(s: &S) {
    assert_eq!(s.admin_count().await.unwrap(), 0);
    assert!(s.put_admin("ada", "hash-1").await.unwrap(), "a new admin");
    assert_eq!(
        s.admin("ada").await.unwrap().unwrap().password_hash,
        "hash-1"
    );
    assert!(s.admin("bob").await.unwrap().is_none());
    let now = ferry_core::clock::now_ms();
    let session = |id: &str, expires_at| AdminSession {
        id_hash: id.into(),
        admin: "ada".into(),
        csrf: format!("csrf-{id}"),
        created_at: now,
        expires_at,
    };
    s.put_session(&session("live", now + 60_000)).await.unwrap();
    s.put_session(&session("old", now - 1)).await.unwrap();
    assert_eq!(
        s.session("live", now).await.unwrap().unwrap().csrf,
        "csrf-live"
    );
    assert!(s.session("old", now).await.unwrap().is_none(), "expired");
    assert!(s.session("nope", now).await.unwrap().is_none());

    s.put_login_link("link", "ada", now + 60_000).await.unwrap();
    s.put_login_link("stale", "ada", now - 1).await.unwrap();
    assert_eq!(
        s.take_login_link("link", now).await.unwrap().as_deref(),
        Some("ada")
    );
    assert!(
        s.take_login_link("link", now).await.unwrap().is_none(),
        "used once"
    );
    assert!(
        s.take_login_link("stale", now).await.unwrap().is_none(),
        "expired"
    );

    s.put_login_link("pending", "ada", now + 60_000)
        .await
        .unwrap();
    assert!(!s.put_admin("ada", "hash-2").await.unwrap(), "not new");
    assert!(
        s.session("live", now).await.unwrap().is_none(),
        "signed out"
    );
    assert!(s.take_login_link("pending", now).await.unwrap().is_none());
    assert_eq!(s.admin_count().await.unwrap(), 1);

    s.put_session(&session("again", now + 60_000))
        .await
        .unwrap();
    assert!(s.delete_session("again").await.unwrap());
    assert!(!s.delete_session("again").await.unwrap());

    let state = OAuthState {
        state: "st".into(),
        connection: "main".into(),
        root: "/Ferry".into(),
        api_url: "http://127.0.0.1:1".into(),
        content_url: "http://127.0.0.1:1".into(),
        notify_url: "http://127.0.0.1:1".into(),
        select_user: None,
        path_root: None,
        verifier_ciphertext: vec![1, 2, 3],
        created_at: now,
        expires_at: now + 60_000,
        session_hash: Some("live".into()),
    };
    // The dashboard's activity: the log counted per stretch of time.
    for (at, outcome, bytes) in [
        (now - 120_000, "ok", 10),
        (now - 110_000, "failed", 0),
        (now - 5_000, "ok", 7),
    ] {
        s.log(&crate::LogEntry {
            id: 0,
            at,
            connection: "c".into(),
            binding_id: None,
            record_id: 1,
            path: "/p".into(),
            action: "upload".into(),
            outcome: outcome.into(),
            bytes,
            duration_ms: 1,
            error: None,
        })
        .await
        .unwrap();
    }
    let since = now - 180_000;
    let buckets = s.log_activity(since, 60_000).await.unwrap();
    assert_eq!(
        buckets
            .iter()
            .map(|b| (b.start_ms - since, b.ok, b.failed, b.bytes))
            .collect::<Vec<_>>(),
        vec![(60_000, 1, 1, 10), (120_000, 1, 0, 7)]
    );
    s.put_oauth_state(&state).await.unwrap();
    assert_eq!(s.take_oauth_state("st").await.unwrap(), Some(state));
    let pending = crate::PendingConnection {
        id: "p1".into(),
        session_hash: "live".into(),
        connection: "team".into(),
        root: "/T".into(),
        api_url: "http://127.0.0.1:1".into(),
        content_url: "http://127.0.0.1:1".into(),
        notify_url: "http://127.0.0.1:1".into(),
        credentials_ciphertext: vec![9],
        expires_at: now + 60_000,
        after_disconnect: false,
    };
    s.put_pending_connection(&pending).await.unwrap();
    s.put_pending_connection(&crate::PendingConnection {
        id: "old".into(),
        expires_at: now - 1,
        ..pending.clone()
    })
    .await
    .unwrap();
    assert_eq!(
        s.pending_connection("p1", now).await.unwrap(),
        Some(pending)
    );
    assert!(
        s.pending_connection("old", now).await.unwrap().is_none(),
        "expired"
    );
    assert!(
        s.pending_switch("team").await.unwrap().is_none(),
        "not confirmed"
    );
    s.confirm_pending_switch("p1", now + 3_600_000)
        .await
        .unwrap();
    let switch = s
        .pending_switch("team")
        .await
        .unwrap()
        .expect("a confirmed switch");
    assert!(switch.after_disconnect && switch.expires_at == now + 3_600_000);
    assert!(s.pending_switch("other").await.unwrap().is_none());
    assert_eq!(
        s.pending_switch_connections().await.unwrap(),
        vec!["team".to_owned()]
    );
    s.delete_pending_connection("p1").await.unwrap();
    assert!(s.pending_connection("p1", now).await.unwrap().is_none());
    assert!(s.take_oauth_state("st").await.unwrap().is_none());
}

/// The file manager's view: files by path prefix (or name), and record folders under a path.
pub async fn the_tree_is_listed_by_prefix_and_searched_by_name<S: Store>(s: &S) {
    let r = s
        .upsert_record(&input("A1", json!({})))
        .await
        .unwrap()
        .value;
    let att = s
        .put_attachment(&AttachmentInput {
            record_id: r.id,
            name: "Quote.pdf".into(),
            tags: vec![],
            content_hash: "h".into(),
            size: 12,
            origin_path: None,
            source: ferry_core::model::Side::App,
            if_match: None,
        })
        .await
        .unwrap()
        .value;
    let b = s
        .save_binding(&Binding {
            record_id: r.id,
            ..binding(r.id, "orders", "/F/Orders/A1")
        })
        .await
        .unwrap();
    s.save_sync_row(&SyncRow {
        id: 0,
        record_id: r.id,
        binding_id: Some(b),
        rule_name: "orders".into(),
        connection: "c".into(),
        attachment_id: Some(att.id),
        rel_display: Some("Quote.pdf".into()),
        rel_lower: Some("quote.pdf".into()),
        dropbox_id: Some("id:1".into()),
        rev: Some("r1".into()),
        content_hash: Some("h".into()),
        state: SyncState::Synced,
        last_error: None,
        updated_at: 0,
    })
    .await
    .unwrap();
    let files = s.tree_files("c", "/f/orders/", None, 10).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "/F/Orders/A1/Quote.pdf");
    assert_eq!(
        (files[0].kind.as_str(), files[0].key.as_str()),
        ("order", "A1")
    );
    assert_eq!(
        (files[0].attachment.as_deref(), files[0].size),
        (Some("Quote.pdf"), Some(12))
    );
    assert!(
        s.tree_files("c", "/f/other/", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.tree_files("d", "/", None, 10).await.unwrap().is_empty(),
        "per connection"
    );
    assert_eq!(
        s.tree_files("c", "/", Some("quo"), 10).await.unwrap().len(),
        1
    );
    assert!(
        s.tree_files("c", "/", Some("zzz"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let folders = s.tree_folders("c", "/f/", 10).await.unwrap();
    assert_eq!(folders.len(), 1);
    assert_eq!(folders[0].path, "/F/Orders/A1");
    assert_eq!(
        s.tree_folders("c", "/f/orders/a1/", 10)
            .await
            .unwrap()
            .len(),
        1,
        "the folder itself"
    );
}

/// A mapped folder queues its record, is idempotent, follows a new path, and goes with its
/// binding and rows (never with the files: nothing in Dropbox is touched).
pub async fn folder_maps_queue_their_record_and_go_with_their_binding<S: Store>(s: &S) {
    let r = s
        .upsert_record(&input("M1", json!({})))
        .await
        .unwrap()
        .value;
    while let Some(t) = s.claim_task("p", &[], i64::MAX / 2, 0).await.unwrap() {
        s.finish_task(&t).await.unwrap();
    }
    let map = crate::FolderMap {
        id: 0,
        record_id: r.id,
        connection: "c".into(),
        folder_id: "id:f".into(),
        path: "/F/Alpha".into(),
        direction: ferry_core::sync_plan::Direction::Both,
        pull_subfolders: true,
    };
    let id = s.put_folder_map(&map).await.unwrap();
    assert!(
        s.queue_entry(r.id).await.unwrap().is_some(),
        "queued with it"
    );
    assert_eq!(
        s.put_folder_map(&map).await.unwrap(),
        id,
        "the same folder again"
    );
    s.set_folder_map_path(id, "/F/Alpha (2026)").await.unwrap();
    let maps = s.folder_maps(r.id).await.unwrap();
    assert_eq!(maps.len(), 1);
    assert_eq!(s.folder_maps_of_connection("c").await.unwrap(), maps);
    assert!(
        s.folder_maps_of_connection("other")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        (
            maps[0].path.as_str(),
            maps[0].direction,
            maps[0].pull_subfolders
        ),
        (
            "/F/Alpha (2026)",
            ferry_core::sync_plan::Direction::Both,
            true
        )
    );
    let b = s
        .save_binding(&Binding {
            rule_name: format!("map:{id}"),
            ..binding(r.id, "x", "/F/Alpha (2026)")
        })
        .await
        .unwrap();
    s.save_sync_row(&SyncRow {
        id: 0,
        record_id: r.id,
        binding_id: Some(b),
        rule_name: format!("map:{id}"),
        connection: "c".into(),
        attachment_id: None,
        rel_display: Some("a.pdf".into()),
        rel_lower: Some("a.pdf".into()),
        dropbox_id: None,
        rev: None,
        content_hash: None,
        state: SyncState::Pending,
        last_error: None,
        updated_at: 0,
    })
    .await
    .unwrap();
    assert!(
        s.delete_folder_map(r.id + 1, id).await.unwrap().is_none(),
        "another record's"
    );
    assert_eq!(
        s.delete_folder_map(r.id, id).await.unwrap().map(|m| m.id),
        Some(id)
    );
    assert!(s.folder_maps(r.id).await.unwrap().is_empty());
    assert!(
        s.bindings_for_record(r.id).await.unwrap().is_empty(),
        "its binding went"
    );
    assert!(s.sync_rows(r.id).await.unwrap().is_empty(), "and its rows");
}

/// Contract: what a reconciliation merges streams in byte order of paths, whatever the
/// folders are called (`/a b/x` comes before `/a/x`, which a sort by folder alone gets
/// wrong): synced files by `folder/rel`, bindings by `folder/`, a mirror by path. A seeded
/// page of more files than one insert holds, with a path twice, keeps the later file; scratch
/// mirrors drop and no other does.
pub async fn reconciliation_streams_come_in_path_order(s: &dyn Store) {
    use futures::TryStreamExt;
    s.put_connection(&stored_connection("c", "/Root"))
        .await
        .unwrap();
    let folders = [
        "/R/A",
        "/R/A b",
        "/R/A/Sub",
        "/R/A0",
        "/R/\u{c9}t\u{e9}",
        "/R/Z",
    ];
    for (i, folder) in folders.iter().enumerate() {
        let r = s
            .upsert_record(&input(&format!("S{i}"), json!({})))
            .await
            .unwrap()
            .value;
        let b = s.save_binding(&binding(r.id, "r", folder)).await.unwrap();
        for (rel, rev) in [
            ("z.pdf", Some("1")),
            ("a/b.pdf", Some("1")),
            ("a b.pdf", Some("1")),
            ("never.pdf", None),
        ] {
            s.save_sync_row(&SyncRow {
                id: 0,
                record_id: r.id,
                binding_id: Some(b),
                rule_name: "r".into(),
                connection: "c".into(),
                attachment_id: None,
                rel_display: Some(rel.into()),
                rel_lower: Some(rel.into()),
                dropbox_id: rev.map(|_| format!("id:{folder}/{rel}")),
                rev: rev.map(str::to_owned),
                content_hash: Some("0".repeat(64)),
                state: SyncState::Synced,
                last_error: None,
                updated_at: 0,
            })
            .await
            .unwrap();
        }
    }
    let synced: Vec<String> = s
        .synced_files_by_path("c")
        .map_ok(|f| format!("{}/{}", f.folder_lower, f.rel_lower))
        .try_collect()
        .await
        .unwrap();
    let mut sorted = synced.clone();
    sorted.sort();
    assert_eq!(synced, sorted, "synced files in byte order of their paths");
    assert_eq!(
        synced.len(),
        18,
        "every file with a revision, and only those"
    );
    assert!(synced[0].starts_with("/r/a b/"));
    let bound: Vec<String> = s
        .bindings_by_folder("c")
        .map_ok(|b| format!("{}/", b.folder_lower))
        .try_collect()
        .await
        .unwrap();
    let mut sorted = bound.clone();
    sorted.sort();
    assert_eq!(bound, sorted, "binding folders in byte order of `folder/`");
    assert_eq!(bound.len(), folders.len());

    let file = |path: String, rev: &str| MirrorFile {
        path_lower: path.clone(),
        path_display: path.clone(),
        id: format!("id:{path}"),
        rev: rev.into(),
        size: 1,
        content_hash: None,
    };
    // 1,200 files (more than one insert holds) in no order, one path twice.
    let mut page: Vec<MirrorChange> = (0..1200)
        .map(|i| MirrorChange::File(file(format!("/root/{}", (i * 7919) % 1200), "1")))
        .collect();
    page.insert(700, MirrorChange::File(file("/root/5".into(), "2")));
    s.seed_mirror("c", -3, &page).await.unwrap();
    s.seed_mirror("c", 7, &page[..10]).await.unwrap();
    let mirrored: Vec<MirrorFile> = s.mirror_files_by_path("c", -3).try_collect().await.unwrap();
    let paths: Vec<&str> = mirrored.iter().map(|f| f.path_lower.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(paths, sorted, "a mirror by path, each once");
    assert_eq!(paths.len(), 1200);
    let five = mirrored.iter().find(|f| f.path_lower == "/root/5").unwrap();
    let five_at = page
        .iter()
        .rposition(|c| matches!(c, MirrorChange::File(f) if f.path_lower == "/root/5"))
        .unwrap();
    let MirrorChange::File(last) = &page[five_at] else {
        unreachable!()
    };
    assert_eq!(five.rev, last.rev, "the later of a path's two files stays");
    s.drop_scratch_mirrors("c").await.unwrap();
    let left: Vec<MirrorFile> = s.mirror_files_by_path("c", -3).try_collect().await.unwrap();
    assert!(left.is_empty(), "the scratch mirror is dropped");
    let kept: Vec<MirrorFile> = s.mirror_files_by_path("c", 7).try_collect().await.unwrap();
    assert_eq!(kept.len(), 10, "no other mirror is");
}

/// The mirror: built beside the one in use and put in use with its cursor (one listing wins),
/// read by folder (exactly the paths inside), fed page by page with the cursor and the queue
/// in one transaction, corrected only where it still holds what the reader knew, and out of
/// use when nobody follows the feed, after a reset and after a root move.
pub async fn the_mirror_follows_its_feed_and_is_used_only_while_followed(s: &dyn Store) {
    s.put_connection(&stored_connection("c", "/Root"))
        .await
        .unwrap();
    let file = |path: &str, rev: &str| MirrorFile {
        path_lower: path.to_lowercase(),
        path_display: path.into(),
        id: format!("id:{}", path.to_lowercase()),
        rev: rev.into(),
        size: 4,
        content_hash: Some("h".into()),
    };
    let far = i64::MAX / 2;
    let now = ferry_core::clock::now_ms();
    let listed = |files: Option<Vec<MirrorFile>>| -> Vec<(String, String)> {
        files
            .expect("the mirror is in use")
            .into_iter()
            .map(|f| (f.path_display, f.rev))
            .collect()
    };
    let pair = |p: &str, r: &str| (p.to_owned(), r.to_owned());
    assert_eq!(s.mirror_within("c", "/root/a", now).await.unwrap(), None);
    // A listing builds epoch 5 in pages; it is not in use before its cursor is saved.
    s.seed_mirror(
        "c",
        5,
        &[
            MirrorChange::Folder {
                path_lower: "/root/a".into(),
            },
            MirrorChange::File(file("/Root/A/x.pdf", "1")),
            MirrorChange::File(file("/Root/A/Sub/y.pdf", "1")),
        ],
    )
    .await
    .unwrap();
    s.seed_mirror(
        "c",
        5,
        &[
            MirrorChange::File(file("/Root/A b/z.pdf", "1")),
            MirrorChange::File(file("/Root/A0", "1")),
            MirrorChange::File(file("/Root/Ab/w.pdf", "1")),
        ],
    )
    .await
    .unwrap();
    assert_eq!(s.mirror_within("c", "/root/a", now).await.unwrap(), None);
    // A second listing at the same time: only one puts its mirror in use.
    s.seed_mirror(
        "c",
        6,
        &[MirrorChange::File(file("/Root/A/stale.pdf", "1"))],
    )
    .await
    .unwrap();
    assert!(s.finish_mirror("c", "/Root", 5, "k1", far).await.unwrap());
    assert!(!s.finish_mirror("c", "/Root", 6, "k1b", far).await.unwrap());
    // Exactly the paths inside the folder, at every depth ("/Root/A b", "/Root/A0" and
    // "/Root/Ab" are beside it).
    assert_eq!(
        listed(s.mirror_within("c", "/root/a", now).await.unwrap()),
        [pair("/Root/A/Sub/y.pdf", "1"), pair("/Root/A/x.pdf", "1")]
    );
    assert_eq!(
        listed(s.mirror_within("c", "/root/empty", now).await.unwrap()),
        []
    );
    // A feed page: its entries in order, its cursor and its records, together.
    let r = s
        .upsert_record(&input("R1", json!({})))
        .await
        .unwrap()
        .value;
    let later = ferry_core::clock::now_ms() + 1;
    if let Some(task) = s
        .claim_task(&fresh_owner(), &[], later, 60_000)
        .await
        .unwrap()
    {
        s.finish_task(&task).await.unwrap();
    }
    assert!(s.queue_entry(r.id).await.unwrap().is_none());
    let changes = [
        MirrorChange::File(file("/Root/A/x.pdf", "2")),
        MirrorChange::Deleted {
            path_lower: "/root/a/sub".into(),
        },
        MirrorChange::File(file("/Root/A/new.pdf", "1")),
        MirrorChange::Folder {
            path_lower: "/root/a/new.pdf".into(),
        },
        MirrorChange::File(file("/Root/A/Sub", "1")),
    ];
    let page = FeedPage {
        connection: "c",
        root: "/Root",
        from: "k1",
        to: "k2",
        changes: &changes,
        records: &[r.id],
        live_until_ms: far,
    };
    assert!(s.apply_feed_page(&page).await.unwrap());
    let after_page = [pair("/Root/A/Sub", "1"), pair("/Root/A/x.pdf", "2")];
    assert_eq!(
        listed(s.mirror_within("c", "/root/a", now).await.unwrap()),
        after_page
    );
    assert!(
        s.queue_entry(r.id).await.unwrap().is_some(),
        "the page queued its record"
    );
    // A page read from an old cursor changes nothing.
    let gone = [MirrorChange::Deleted {
        path_lower: "/root/a".into(),
    }];
    assert!(
        !s.apply_feed_page(&FeedPage {
            to: "k3",
            changes: &gone,
            ..page
        })
        .await
        .unwrap()
    );
    assert_eq!(
        listed(s.mirror_within("c", "/root/a", now).await.unwrap()),
        after_page
    );
    // Corrections hold only where the mirror still has what the listing's reader knew.
    let correction = |path: &str, was: Option<&str>, now: Option<MirrorFile>| MirrorCorrection {
        path_lower: path.into(),
        was_rev: was.map(str::to_owned),
        now,
    };
    s.correct_mirror(
        "c",
        &[
            // The feed has moved this file on since: kept.
            correction("/root/a/x.pdf", Some("1"), Some(file("/Root/A/x.pdf", "9"))),
            // A file is there already: kept.
            correction("/root/a/x.pdf", None, Some(file("/Root/A/x.pdf", "8"))),
            correction("/root/a/sub", Some("1"), None),
            correction(
                "/root/a/found.pdf",
                None,
                Some(file("/Root/A/found.pdf", "1")),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        listed(s.mirror_within("c", "/root/a", now).await.unwrap()),
        [pair("/Root/A/found.pdf", "1"), pair("/Root/A/x.pdf", "2")]
    );
    s.correct_mirror(
        "c",
        &[correction(
            "/root/a/x.pdf",
            Some("2"),
            Some(file("/Root/A/x.pdf", "3")),
        )],
    )
    .await
    .unwrap();
    assert_eq!(
        listed(s.mirror_within("c", "/root/a", now).await.unwrap()),
        [pair("/Root/A/found.pdf", "1"), pair("/Root/A/x.pdf", "3")]
    );
    // Not used once nobody follows the feed, and again once someone does.
    s.mirror_live("c", now - 1).await.unwrap();
    assert_eq!(s.mirror_within("c", "/root/a", now).await.unwrap(), None);
    s.mirror_live("c", far).await.unwrap();
    assert!(
        s.mirror_within("c", "/root/a", now)
            .await
            .unwrap()
            .is_some()
    );
    // A reset puts it out of use; the next listing's mirror replaces it whole.
    s.set_connection_cursor("c", None).await.unwrap();
    assert_eq!(s.mirror_within("c", "/root/a", now).await.unwrap(), None);
    s.seed_mirror("c", 7, &[MirrorChange::File(file("/Root/A/only.pdf", "1"))])
        .await
        .unwrap();
    assert!(s.finish_mirror("c", "/Root", 7, "k9", far).await.unwrap());
    assert_eq!(
        listed(s.mirror_within("c", "/root/a", now).await.unwrap()),
        [pair("/Root/A/only.pdf", "1")]
    );
    // A root move puts it out of use too.
    assert!(s.set_connection_root("c", "/Root", "/Moved").await.unwrap());
    assert_eq!(s.mirror_within("c", "/root/a", now).await.unwrap(), None);
}

/// Expands to one `#[tokio::test]` per contract function, each on a fresh store from
/// `$make` (an async expression yielding `(guard, store)`; the guard lives as long as the test).
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        #[tokio::test]
        async fn many_tasks_are_claimed_at_once_most_urgent_first() {
            let (_guard, store) = $make.await;
            $crate::contract::many_tasks_are_claimed_at_once_most_urgent_first(&store).await;
        }
        #[tokio::test]
        async fn folder_maps_queue_their_record_and_go_with_their_binding() {
            let (_guard, store) = $make.await;
            $crate::contract::folder_maps_queue_their_record_and_go_with_their_binding(&store).await;
        }
        #[tokio::test]
        async fn the_tree_is_listed_by_prefix_and_searched_by_name() {
            let (_guard, store) = $make.await;
            $crate::contract::the_tree_is_listed_by_prefix_and_searched_by_name(&store).await;
        }
        #[tokio::test]
        async fn console_sessions_end_on_password_change_and_links_work_once() {
            let (_guard, store) = $make.await;
            $crate::contract::console_sessions_end_on_password_change_and_links_work_once(&store).await;
        }
        #[tokio::test]
        async fn offload_needs_dropbox_to_confirm_and_never_archives_what_only_dropbox_holds() {
            let (_guard, store) = $make.await;
            $crate::contract::offload_needs_dropbox_to_confirm_and_never_archives_what_only_dropbox_holds(&store).await;
        }
        #[tokio::test]
        async fn links_are_wanted_until_made_retried_when_due_renewed_when_expired() {
            let (_guard, store) = $make.await;
            $crate::contract::links_are_wanted_until_made_retried_when_due_renewed_when_expired(&store).await;
        }
        #[tokio::test]
        async fn webhook_events_follow_their_changes() {
            let (_guard, store) = $make.await;
            $crate::contract::webhook_events_follow_their_changes(&store).await;
        }
        #[tokio::test]
        async fn subfolders_are_marked_per_binding() {
            let (_guard, store) = $make.await;
            $crate::contract::subfolders_are_marked_per_binding(&store).await;
        }
        #[tokio::test]
        async fn reconciliation_streams_come_in_path_order() {
            let (_guard, store) = $make.await;
            $crate::contract::reconciliation_streams_come_in_path_order(&store).await;
        }
        #[tokio::test]
        async fn the_mirror_follows_its_feed_and_is_used_only_while_followed() {
            let (_guard, store) = $make.await;
            $crate::contract::the_mirror_follows_its_feed_and_is_used_only_while_followed(&store).await;
        }
        #[tokio::test]
        async fn roots_move_and_cursors_advance_only_from_what_they_were() {
            let (_guard, store) = $make.await;
            $crate::contract::roots_move_and_cursors_advance_only_from_what_they_were(&store).await;
        }
        #[tokio::test]
        async fn connection_writes_queue_their_work() {
            let (_guard, store) = $make.await;
            $crate::contract::connection_writes_queue_their_work(&store).await;
        }
        #[tokio::test]
        async fn record_deletion_spares_dropbox_versions() {
            let (_guard, store) = $make.await;
            $crate::contract::record_deletion_spares_dropbox_versions(&store).await;
        }
        #[tokio::test]
        async fn upserts_report_changes() {
            let (_guard, store) = $make.await;
            $crate::contract::upserts_report_changes(&store).await;
        }
        #[tokio::test]
        async fn queue_dedups_leases_and_keeps_requeued_work() {
            let (_guard, store) = $make.await;
            $crate::contract::queue_dedups_leases_and_keeps_requeued_work(&store).await;
        }
        #[tokio::test]
        async fn sync_rows_upsert_by_path_and_unplaced_rows_are_replaced() {
            let (_guard, store) = $make.await;
            $crate::contract::sync_rows_upsert_by_path_and_unplaced_rows_are_replaced(&store).await;
        }
        #[tokio::test]
        async fn a_records_own_change_goes_before_a_back_fill() {
            let (_guard, store) = $make.await;
            $crate::contract::a_records_own_change_goes_before_a_back_fill(&store).await;
        }
        #[tokio::test]
        async fn priorities_and_dead_letters() {
            let (_guard, store) = $make.await;
            $crate::contract::priorities_and_dead_letters(&store).await;
        }
        #[tokio::test]
        async fn bindings_by_folder_prefix() {
            let (_guard, store) = $make.await;
            $crate::contract::bindings_by_folder_prefix(&store).await;
        }
        #[tokio::test]
        async fn queue_claims_in_enqueue_order() {
            let (_guard, store) = $make.await;
            $crate::contract::queue_claims_in_enqueue_order(&store).await;
        }
        #[tokio::test]
        async fn changes_after_a_pass_date_the_record() {
            let (_guard, store) = $make.await;
            $crate::contract::changes_after_a_pass_date_the_record(&store).await;
        }
        #[tokio::test]
        async fn a_dead_process_claims_are_released_and_a_live_one_is_renewed() {
            let (_guard, store) = $make.await;
            $crate::contract::a_dead_process_claims_are_released_and_a_live_one_is_renewed(&store).await;
        }
        #[tokio::test]
        async fn failing_since_is_kept_across_retries_and_dead_letters_come_back_in_bulk() {
            let (_guard, store) = $make.await;
            $crate::contract::failing_since_is_kept_across_retries_and_dead_letters_come_back_in_bulk(&store).await;
        }
        #[tokio::test]
        async fn replacing_the_other_sides_version_archives_it_and_if_match_guards_writes() {
            let (_guard, store) = $make.await;
            $crate::contract::replacing_the_other_sides_version_archives_it_and_if_match_guards_writes(&store).await;
        }
        #[tokio::test]
        async fn records_are_listed_with_their_state() {
            let (_guard, store) = $make.await;
            $crate::contract::records_are_listed_with_their_state(&store).await;
        }
        #[tokio::test]
        async fn a_duty_has_one_holder_until_its_lease_lapses_or_it_is_released() {
            let (_guard, store) = $make.await;
            $crate::contract::a_duty_has_one_holder_until_its_lease_lapses_or_it_is_released(&store).await;
        }
        #[tokio::test]
        async fn concurrent_claims_never_share_a_record() {
            let (_guard, store) = $make.await;
            $crate::contract::concurrent_claims_never_share_a_record(&store).await;
        }
        #[tokio::test]
        async fn concurrent_replacements_archive_every_replaced_version() {
            let (_guard, store) = $make.await;
            $crate::contract::concurrent_replacements_archive_every_replaced_version(&store).await;
        }
        #[tokio::test]
        async fn a_change_and_its_queue_entry_commit_together() {
            let (_guard, store) = $make.await;
            $crate::contract::a_change_and_its_queue_entry_commit_together(&store).await;
        }
    };
}
