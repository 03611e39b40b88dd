//! Offload through the API and the emulator: Ferry drops its copy of content Dropbox
//! confirms, serves it back from Dropbox, and brings it back before it is archived (an edit
//! or a deletion in Dropbox) or before the connection goes (disconnect) — no version is ever
//! left only where it could vanish.

use crate::support::Stack;
use serde_json::{Value, json};
use std::time::Duration;

async fn content(stack: &Stack, path: &str) -> Vec<u8> {
    let response = stack.api.get_streaming(path).await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.bytes().await.unwrap().to_vec()
}

async fn attachment(stack: &Stack, name: &str) -> Value {
    let record = stack.api.get("/v1/records/scan/S1").await.unwrap();
    record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {record}"))
}

async fn held(stack: &Stack, name: &str) -> bool {
    let hash = attachment(stack, name).await["content_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    stack.app.engine().blobs().contains(&hash).await.unwrap()
}

/// Waits until the offloader has dropped `n` files' content.
async fn offloaded(stack: &Stack, n: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        stack.app.engine().offload_round().await.unwrap();
        let status = stack.api.get("/v1/status").await.unwrap();
        if status["content"]["offloaded_files"] == n {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn offloaded_content_is_served_from_dropbox_and_brought_back_before_it_could_be_lost() {
    let stack = Stack::start().await;
    stack
        .api
        .put_json(
            "/v1/rules/scans",
            &json!({"record_kind": "scan", "connection": "dropbox", "folder": "Scans/{{ record.key }}",
                    "direction": "both", "offload": true}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_json("/v1/records/scan/S1", &json!({}))
        .await
        .unwrap();
    for (name, body) in [("a.pdf", "A1"), ("b.pdf", "B1")] {
        stack
            .api
            .put_bytes(
                &format!("/v1/records/scan/S1/attachments/{name}"),
                body.as_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
    stack.settle().await;
    let status = offloaded(&stack, 2).await;
    assert_eq!(status["content"]["offloaded_bytes"], 4, "{status}");
    assert_eq!(status["content"]["stored_files"], 0, "{status}");
    assert!(!held(&stack, "a.pdf").await, "Ferry's copy is gone");
    // Read back from Dropbox.
    assert_eq!(
        content(&stack, "/v1/records/scan/S1/attachments/a.pdf").await,
        b"A1"
    );

    // Someone edits a.pdf in Dropbox: the app's version comes back and is archived.
    let dbx = stack.emu.client();
    dbx.upload(
        "/Ferry/Scans/S1/a.pdf",
        bytes::Bytes::from_static(b"A2"),
        &ferry_dropbox::WriteMode::Overwrite,
    )
    .await
    .unwrap();
    stack
        .eventually("/v1/records/scan/S1", |r| {
            r["attachments"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["name"] == "a.pdf" && a["source"] == "dropbox")
        })
        .await;
    // And someone deletes b.pdf in Dropbox: its version comes back from Dropbox's history
    // and is archived.
    dbx.delete("/Ferry/Scans/S1/b.pdf", None).await.unwrap();
    let archive = stack
        .eventually("/v1/records/scan/S1/archive", |a| {
            a["archived"].as_array().is_some_and(|v| v.len() == 2)
        })
        .await;
    stack.settle().await;
    for version in archive["archived"].as_array().unwrap() {
        let id = version["id"].as_i64().unwrap();
        let expected: &[u8] = if version["name"] == "a.pdf" {
            b"A1"
        } else {
            b"B1"
        };
        assert_eq!(
            content(&stack, &format!("/v1/records/scan/S1/archive/{id}")).await,
            expected,
            "{version}"
        );
    }
    assert_eq!(
        content(&stack, "/v1/records/scan/S1/attachments/a.pdf").await,
        b"A2"
    );

    // The edited file is offloaded in turn; disconnecting brings its content back first.
    offloaded(&stack, 1).await;
    assert!(!held(&stack, "a.pdf").await);
    stack.api.delete("/v1/connections/dropbox").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = stack.api.get("/v1/connections").await.unwrap();
        if list["connections"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        held(&stack, "a.pdf").await,
        "content is back before the connection went"
    );
    assert!(attachment(&stack, "a.pdf").await.get("offloaded").is_none());
    let status = stack.api.get("/v1/status").await.unwrap();
    assert_eq!(status["content"]["offloaded_files"], 0, "{status}");
    assert_eq!(
        content(&stack, "/v1/records/scan/S1/attachments/a.pdf").await,
        b"A2"
    );
}
