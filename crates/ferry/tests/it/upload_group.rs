//! Small uploads of concurrent passes are merged: one-file records synced at once share
//! staging requests and commits, and each record gets its own file's result.

use crate::support::{Emu, Stack};
use ferry_core::content_hash::content_hash;
use ferry_dropbox::Entry;
use serde_json::json;

/// Forty one-file records start at once on eight workers (20 ms per Dropbox request, so the
/// passes overlap): fewer commits than files, and every file where its record says, with
/// its own content.
#[tokio::test]
async fn one_file_records_synced_together_share_commits() {
    let emu = Emu::start_with(|c| c.model.latency_ms = 20).await;
    let stack = Stack::start_on(emu, |c| c.workers = 8).await;
    let rule = |condition: &str| {
        json!({"record_kind": "invoice", "connection": "dropbox",
               "folder": "Invoices/{{ record.key }}", "condition": condition})
    };
    stack
        .api
        .put_json("/v1/rules/invoices", &rule("record.fields.ready"))
        .await
        .unwrap();
    for n in 0..40 {
        stack
            .api
            .put_json(&format!("/v1/records/invoice/I{n}"), &json!({"fields": {}}))
            .await
            .unwrap();
        stack
            .api
            .put_bytes(
                &format!("/v1/records/invoice/I{n}/attachments/invoice.pdf"),
                format!("invoice {n}").into_bytes(),
            )
            .await
            .unwrap();
    }
    stack.settle().await;
    let e = &stack.emu.emulator;
    assert_eq!(
        e.route_calls("files/upload"),
        0,
        "nothing syncs before the rule"
    );
    // One rule change starts all forty.
    stack
        .api
        .put_json("/v1/rules/invoices", &rule("true"))
        .await
        .unwrap();
    stack.settle().await;
    let commits =
        e.route_calls("files/upload") + e.route_calls("files/upload_session/finish_batch_v2");
    assert!(
        e.route_calls("files/upload_session/finish_batch_v2") >= 1,
        "no batch was merged"
    );
    assert!(commits < 40, "{commits} commits for 40 files");
    for n in 0..40 {
        let path = format!("/Ferry/Invoices/I{n}/invoice.pdf");
        let Ok(Entry::File(f)) = stack.emu.client().metadata(&path).await else {
            panic!("{path} is missing");
        };
        assert_eq!(
            f.content_hash.as_deref(),
            Some(content_hash(format!("invoice {n}").as_bytes()).as_str()),
            "{path} holds another record's content"
        );
        let state = stack
            .api
            .get(&format!("/v1/records/invoice/I{n}/sync"))
            .await
            .unwrap();
        assert_eq!(
            state["summary"],
            json!({"synced": 1, "pending": 0, "failed": 0}),
            "I{n}"
        );
    }
}
