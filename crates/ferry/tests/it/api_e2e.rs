//! From the REST API to files in the (emulated) Dropbox, and bad input at the API.

use crate::support::{Stack, client_for};
use ferry_core::content_hash::content_hash;
use ferry_dropbox::{DropboxError, Entry, WriteMode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn ticket_rule(stack: &Stack, condition: Option<&str>) {
    let mut rule = json!({
        "record_kind": "ticket",
        "connection": "dropbox",
        "folder": "Tickets/{{ record.key }} {{ record.fields.title }}",
    });
    if let Some(c) = condition {
        rule["condition"] = json!(c);
    }
    stack
        .api
        .put_json("/v1/rules/tickets", &rule)
        .await
        .expect("rule accepted");
}

fn files_of(state: &Value) -> Vec<Value> {
    state["files"].as_array().cloned().unwrap_or_default()
}

/// Files in the emulator under `/Ferry`, as (path_display, content_hash, rev).
async fn dropbox_files(stack: &Stack) -> Vec<(String, String, String)> {
    let client = stack.emu.client();
    match client.list_all("/Ferry", true).await {
        Ok((entries, _)) => {
            let mut files: Vec<_> = entries
                .into_iter()
                .filter_map(|e| match e {
                    Entry::File(f) => {
                        Some((f.path_display, f.content_hash.unwrap_or_default(), f.rev))
                    }
                    _ => None,
                })
                .collect();
            files.sort();
            files
        }
        Err(DropboxError::NotFound(_)) => Vec::new(),
        Err(e) => panic!("listing failed: {e}"),
    }
}

/// An upserted record's attachments land at the rendered path with the right content hash.
#[tokio::test]
async fn record_files_reach_dropbox_with_right_hashes() {
    let stack = Stack::start().await;
    ticket_rule(&stack, None).await;
    stack
        .api
        .put_json(
            "/v1/records/ticket/T-1",
            &json!({"fields": {"title": "Spring: catalogue?"}}),
        )
        .await
        .unwrap();
    let proof = b"%PDF-1.7 proof".to_vec();
    let unicode = "Ünïcödé név 日本.txt";
    stack
        .api
        .put_bytes(
            "/v1/records/ticket/T-1/attachments/proof.pdf?tags=final",
            proof.clone(),
        )
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            &format!(
                "/v1/records/ticket/T-1/attachments/{}",
                ferry::admin::enc(unicode)
            ),
            b"hello world".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;

    let files = dropbox_files(&stack).await;
    let folder = "/Ferry/Tickets/T-1 Spring_ catalogue_";
    assert_eq!(
        files
            .iter()
            .map(|f| (f.0.as_str(), f.1.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (
                format!("{folder}/proof.pdf").as_str(),
                content_hash(&proof).as_str()
            ),
            (
                format!("{folder}/{unicode}").as_str(),
                "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"
            ),
        ]
    );
    let (_, downloaded) = stack
        .emu
        .client()
        .download(&format!("{folder}/proof.pdf"))
        .await
        .unwrap();
    assert_eq!(downloaded.as_ref(), proof.as_slice());

    let state = stack.api.get("/v1/records/ticket/T-1/sync").await.unwrap();
    assert_eq!(state["queued"], json!(false));
    assert_eq!(
        state["summary"],
        json!({"synced": 2, "pending": 0, "failed": 0})
    );
    for file in files_of(&state) {
        assert_eq!(file["state"], "synced");
        assert!(file["path"].as_str().unwrap().starts_with(folder));
        assert!(file["rev"].is_string() && file["dropbox_id"].as_str().unwrap().starts_with("id:"));
    }
}

/// Unchanged input is never re-uploaded; changed content, renamed folders and removed
/// attachments are reflected in Dropbox.
#[tokio::test]
async fn idempotent_and_resyncs_changes() {
    let stack = Stack::start().await;
    ticket_rule(&stack, None).await;
    let api = &stack.api;
    api.put_json("/v1/records/ticket/T-2", &json!({"fields": {"title": "A"}}))
        .await
        .unwrap();
    api.put_bytes("/v1/records/ticket/T-2/attachments/a.txt", b"one".to_vec())
        .await
        .unwrap();
    api.put_bytes("/v1/records/ticket/T-2/attachments/b.txt", b"two".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    // Requests that carry content: single uploads, session starts, or small files staged
    // together in one append_batch.
    let uploads = || {
        stack.emu.emulator.route_calls("files/upload")
            + stack.emu.emulator.route_calls("files/upload_session/start")
            + stack
                .emu
                .emulator
                .route_calls("files/upload_session/append_batch")
    };
    let before = uploads();
    // Two files: one request each, or both in one batch if the pass saw them together.
    assert!((1..=2).contains(&before), "{before} content requests");

    // Same record, same content: nothing changes, nothing is uploaded, even on a forced pass.
    let same = api
        .put_json("/v1/records/ticket/T-2", &json!({"fields": {"title": "A"}}))
        .await
        .unwrap();
    assert_eq!(same["changed"], json!(false));
    let same = api
        .put_bytes("/v1/records/ticket/T-2/attachments/a.txt", b"one".to_vec())
        .await
        .unwrap();
    assert_eq!(same["changed"], json!(false));
    stack
        .app
        .engine()
        .enqueue_related(
            stack
                .app
                .engine()
                .store()
                .record("ticket", "T-2")
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap();
    stack.settle().await;
    assert_eq!(uploads(), before, "an unchanged file was uploaded again");

    // New content: one upload, by revision, new rev in Dropbox.
    let old = dropbox_files(&stack).await;
    api.put_bytes(
        "/v1/records/ticket/T-2/attachments/a.txt",
        b"one, revised".to_vec(),
    )
    .await
    .unwrap();
    stack.settle().await;
    assert_eq!(uploads(), before + 1);
    let new = dropbox_files(&stack).await;
    assert_eq!(new[0].0, old[0].0);
    assert_eq!(new[0].1, content_hash(b"one, revised"));
    assert_ne!(new[0].2, old[0].2, "rev must change with content");
    assert_eq!(new[1], old[1], "the other file is untouched");

    // A field used in the folder changes: files move to the new folder, the old one empties.
    api.put_json("/v1/records/ticket/T-2", &json!({"fields": {"title": "B"}}))
        .await
        .unwrap();
    stack.settle().await;
    let paths: Vec<String> = dropbox_files(&stack)
        .await
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(
        paths,
        vec!["/Ferry/Tickets/T-2 B/a.txt", "/Ferry/Tickets/T-2 B/b.txt"]
    );

    // Removing an attachment removes the file from Dropbox and from the sync state.
    api.delete("/v1/records/ticket/T-2/attachments/b.txt")
        .await
        .unwrap();
    stack.settle().await;
    let paths: Vec<String> = dropbox_files(&stack)
        .await
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert_eq!(paths, vec!["/Ferry/Tickets/T-2 B/a.txt"]);
    let state = api.get("/v1/records/ticket/T-2/sync").await.unwrap();
    assert_eq!(files_of(&state).len(), 1);
}

/// A rule's condition decides when a record's files go out; parent/child context works.
#[tokio::test]
async fn condition_gates_the_sync() {
    let stack = Stack::start().await;
    ticket_rule(&stack, Some("record.fields.status == 'ready'")).await;
    let api = &stack.api;
    api.put_json(
        "/v1/records/ticket/T-3",
        &json!({"fields": {"title": "x", "status": "draft"}}),
    )
    .await
    .unwrap();
    api.put_bytes("/v1/records/ticket/T-3/attachments/a.txt", b"a".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    assert!(
        dropbox_files(&stack).await.is_empty(),
        "a draft must not sync"
    );
    api.put_json(
        "/v1/records/ticket/T-3",
        &json!({"fields": {"title": "x", "status": "ready"}}),
    )
    .await
    .unwrap();
    stack.settle().await;
    assert_eq!(dropbox_files(&stack).await.len(), 1);
    // Back to draft: the rule no longer applies, so its files leave Dropbox.
    api.put_json(
        "/v1/records/ticket/T-3",
        &json!({"fields": {"title": "x", "status": "draft"}}),
    )
    .await
    .unwrap();
    stack.settle().await;
    assert!(dropbox_files(&stack).await.is_empty());
}

/// A file someone deletes in Dropbox comes back on a push binding — by itself (the change
/// feed), and "force regeneration" works as well.
#[tokio::test]
async fn deleted_file_comes_back_on_push_bindings() {
    let stack = Stack::start().await;
    ticket_rule(&stack, None).await;
    stack
        .api
        .put_json("/v1/records/ticket/T-4", &json!({"fields": {"title": "x"}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/ticket/T-4/attachments/a.txt",
            b"keep me".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;
    let path = "/Ferry/Tickets/T-4 x/a.txt";
    let dbx = stack.emu.client();
    for round in 0..2 {
        dbx.delete(path, None).await.unwrap();
        if round == 1 {
            stack.api.post("/v1/records/ticket/T-4/sync").await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Ok((_, data)) = dbx.download(path).await {
                assert_eq!(data.as_ref(), b"keep me");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "file did not come back (round {round})"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Both sides changed: the app's version wins the path, the human's edit is kept beside it
/// as a conflicted copy — nothing is lost, and the log says what happened.
#[tokio::test]
async fn conflicting_edit_keeps_both_versions() {
    let stack = Stack::start().await;
    ticket_rule(&stack, None).await;
    stack
        .api
        .put_json("/v1/records/ticket/T-5", &json!({"fields": {"title": "x"}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/ticket/T-5/attachments/a.txt", b"v1".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    let path = "/Ferry/Tickets/T-5 x/a.txt";
    stack
        .emu
        .client()
        .upload(path, b"human edit".to_vec().into(), &WriteMode::Overwrite)
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/ticket/T-5/attachments/a.txt",
            b"v2 from app".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;
    let (_, data) = stack.emu.client().download(path).await.unwrap();
    assert_eq!(data.as_ref(), b"v2 from app");
    let files = dropbox_files(&stack).await;
    assert_eq!(files.len(), 2, "{files:?}");
    let copy = files
        .iter()
        .find(|f| f.0.contains("conflicted copy"))
        .expect("a conflicted copy");
    assert!(
        copy.0
            .starts_with("/Ferry/Tickets/T-5 x/a (Ferry conflicted copy "),
        "{copy:?}"
    );
    assert_eq!(copy.1, content_hash(b"human edit"));
    let state = stack.api.get("/v1/records/ticket/T-5/sync").await.unwrap();
    assert_eq!(
        state["summary"],
        json!({"synced": 1, "pending": 0, "failed": 0})
    );
    let log = stack.api.get("/v1/log?record=ticket/T-5").await.unwrap();
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"preserve_conflicted_copy") && actions.contains(&"upload"),
        "{actions:?}"
    );
}

/// Names that collide in Dropbox (case) and templates that fail are per-file errors.
#[tokio::test]
async fn unplaceable_files_are_reported_per_file() {
    let stack = Stack::start().await;
    ticket_rule(&stack, None).await;
    let api = &stack.api;
    api.put_json("/v1/records/ticket/T-6", &json!({"fields": {"title": "x"}}))
        .await
        .unwrap();
    api.put_bytes(
        "/v1/records/ticket/T-6/attachments/Report.pdf",
        b"1".to_vec(),
    )
    .await
    .unwrap();
    api.put_bytes(
        "/v1/records/ticket/T-6/attachments/report.PDF",
        b"2".to_vec(),
    )
    .await
    .unwrap();
    // No title field: the folder template cannot render for this record.
    api.put_json("/v1/records/ticket/T-7", &json!({"fields": {}}))
        .await
        .unwrap();
    api.put_bytes("/v1/records/ticket/T-7/attachments/a.txt", b"a".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    assert_eq!(dropbox_files(&stack).await.len(), 1);
    let state = api.get("/v1/records/ticket/T-6/sync").await.unwrap();
    assert_eq!(
        state["summary"],
        json!({"synced": 1, "pending": 0, "failed": 1})
    );
    let failed: Vec<Value> = files_of(&state)
        .into_iter()
        .filter(|f| f["state"] == "failed")
        .collect();
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("already taken"),
        "{failed:?}"
    );
    let state = api.get("/v1/records/ticket/T-7/sync").await.unwrap();
    let files = files_of(&state);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["state"], "failed");
    assert!(
        files[0]["last_error"].as_str().unwrap().contains("folder"),
        "{files:?}"
    );
}

/// Multipart uploads work, with tags and the part's filename.
#[tokio::test]
async fn multipart_attachment_upload() {
    let stack = Stack::start().await;
    stack
        .api
        .put_json("/v1/records/ticket/T-8", &json!({"fields": {"title": "x"}}))
        .await
        .unwrap();
    let boundary = "XferryX";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nfinal, print\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"art.png\"\r\n\
         Content-Type: image/png\r\n\r\nPNGDATA\r\n--{boundary}--\r\n"
    );
    let (status, value) = stack
        .api
        .raw(
            Method::POST,
            "/v1/records/ticket/T-8/attachments",
            Some((
                body.into_bytes(),
                &format!("multipart/form-data; boundary={boundary}"),
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["name"], "art.png");
    assert_eq!(value["tags"], json!(["final", "print"]));
    assert_eq!(value["content_hash"], json!(content_hash(b"PNGDATA")));
    let record = stack.api.get("/v1/records/ticket/T-8").await.unwrap();
    assert_eq!(record["attachments"][0]["size"], json!(7));
}

/// A raw PUT streams into the blob store: a body of several MiB arrives whole; one over the
/// limit is refused with 413 and leaves no attachment and no stored content behind.
#[tokio::test]
async fn raw_attachment_streams_and_respects_the_limit() {
    let stack = Stack::start_with(|c| c.max_attachment_mib = 1).await;
    stack
        .api
        .put_json("/v1/records/ticket/T-7", &json!({"fields": {"title": "x"}}))
        .await
        .unwrap();
    let fits: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let stored = stack
        .api
        .put_bytes("/v1/records/ticket/T-7/attachments/fits.bin", fits.clone())
        .await
        .unwrap();
    assert_eq!(stored["size"], json!(fits.len()));
    assert_eq!(stored["content_hash"], json!(content_hash(&fits)));

    let mut over = fits.clone();
    over.push(7);
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T-7/attachments/over.bin",
        Some((over.clone(), "application/octet-stream")),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
    let record = stack.api.get("/v1/records/ticket/T-7").await.unwrap();
    let names: Vec<&str> = record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, vec!["fits.bin"]);
    assert!(
        stack
            .app
            .engine()
            .blobs()
            .get(&content_hash(&over))
            .await
            .is_err(),
        "refused content must not be stored"
    );
}

async fn expect_error(
    stack: &Stack,
    method: Method,
    path: &str,
    body: Option<(Vec<u8>, &str)>,
    status: StatusCode,
    code: &str,
) -> String {
    let (got, value) = stack.api.raw(method.clone(), path, body).await.unwrap();
    assert_eq!(got, status, "{method} {path}: {value}");
    assert_eq!(
        value["error"]["code"],
        json!(code),
        "{method} {path}: {value}"
    );
    let message = value["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !message.is_empty(),
        "{method} {path}: error without a message"
    );
    message
}

/// Unknown routes and methods, bad query strings, wrong media types and oversized bodies are
/// all answered in the documented JSON shape.
#[tokio::test]
async fn errors_at_the_edge_are_json() {
    let stack = Stack::start().await;
    // A known route with a method it does not take.
    expect_error(
        &stack,
        Method::DELETE,
        "/v1/status",
        None,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    expect_error(
        &stack,
        Method::POST,
        "/v1/nothing/here",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Unknown or undecodable query parameters are refused, not ignored.
    expect_error(
        &stack,
        Method::GET,
        "/v1/log?limt=5",
        None,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    expect_error(
        &stack,
        Method::GET,
        "/v1/log?limit=many",
        None,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    // A JSON route sent something that is not JSON.
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T1",
        Some((b"{}".to_vec(), "text/plain")),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // A rule naming a connection that does not exist.
    let m = expect_error(
        &stack,
        Method::PUT,
        "/v1/rules/typo",
        Some((
            serde_json::to_vec(
                &json!({"record_kind": "ticket", "connection": "dropbx", "folder": "T"}),
            )
            .unwrap(),
            "application/json",
        )),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(m.contains("does not exist"), "{m}");
    // A rule that would loop for minutes on an existing record is refused at once.
    stack
        .api
        .put_json("/v1/records/ticket/T7", &json!({"fields": {}}))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let m = expect_error(
        &stack,
        Method::PUT,
        "/v1/rules/heavy",
        Some((
            serde_json::to_vec(&json!({"record_kind": "ticket", "connection": "dropbox",
                "folder": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"}))
            .unwrap(),
            "application/json",
        )),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(m.contains("limits"), "{m}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The API key is compared exactly: with a space before it, it is wrong.
    let padded = ferry::api_client::ApiClient::new(
        stack.app.base_url(),
        ferry_core::secret::Secret::new(format!(" {}", stack.app.api_key().expose())),
    );
    let (status, _) = padded.raw(Method::GET, "/v1/status", None).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The data dir is its owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(stack.emu.dir.path().join("ferry"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    // A JSON body above the limit.
    let huge = format!("{{\"fields\": {{\"x\": \"{}\"}}}}", "a".repeat(3 << 20));
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T1",
        Some((huge.into_bytes(), "application/json")),
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    )
    .await;
}

/// Bad input anywhere in the API gets a 4xx JSON error with a clear message, never a 500.
#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let stack = Stack::start().await;
    let json_ct = "application/json";
    stack
        .api
        .put_json("/v1/records/ticket/T-9", &json!({"fields": {"title": "x"}}))
        .await
        .unwrap();

    // Authentication.
    let anonymous = ferry::api_client::ApiClient::new(
        stack.app.base_url(),
        ferry_core::secret::Secret::new("wrong"),
    );
    let (status, value) = anonymous
        .raw(Method::GET, "/v1/status", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(value["error"]["code"], "unauthorized");
    let raw = reqwest::Client::new()
        .put(format!("{}/v1/records/ticket/X", stack.app.base_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);

    // Records.
    expect_error(
        &stack,
        Method::GET,
        "/v1/records/ticket/nope",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        &stack,
        Method::GET,
        "/v1/records/ticket/nope/sync",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let m = expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T-10",
        Some((b"{not json".to_vec(), json_ct)),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(m.contains("JSON"), "{m}");
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T-10",
        Some((b"{}".to_vec(), "text/plain")),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T-10",
        Some((br#"{"fields": [1]}"#.to_vec(), json_ct)),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T-10",
        Some((br#"{"feilds": {}}"#.to_vec(), json_ct)),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let m = expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T-10",
        Some((
            br#"{"parent": {"kind": "order", "key": "none"}}"#.to_vec(),
            json_ct,
        )),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(m.contains("order/none"), "{m}");
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/%20/T-10",
        Some((b"{}".to_vec(), json_ct)),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;

    // Attachments.
    let octets = "application/octet-stream";
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/nope/attachments/a.txt",
        Some((b"x".to_vec(), octets)),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    for bad_name in ["%20%20", "a%5Cb.txt", "a%0Ab", &"x".repeat(256)] {
        expect_error(
            &stack,
            Method::PUT,
            &format!("/v1/records/ticket/T-9/attachments/{bad_name}"),
            Some((b"x".to_vec(), octets)),
            StatusCode::BAD_REQUEST,
            "bad_request",
        )
        .await;
    }
    expect_error(
        &stack,
        Method::PUT,
        "/v1/records/ticket/T-9/attachments/a.txt?tags=x%07y",
        Some((b"x".to_vec(), octets)),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    expect_error(
        &stack,
        Method::DELETE,
        "/v1/records/ticket/T-9/attachments/missing.txt",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let no_file = "--B\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\nx\r\n--B--\r\n";
    let m = expect_error(
        &stack,
        Method::POST,
        "/v1/records/ticket/T-9/attachments",
        Some((
            no_file.as_bytes().to_vec(),
            "multipart/form-data; boundary=B",
        )),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(m.contains("file"), "{m}");
    expect_error(
        &stack,
        Method::POST,
        "/v1/records/ticket/T-9/attachments",
        Some((b"x".to_vec(), octets)),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;

    // Rules.
    let m = expect_error(
        &stack,
        Method::PUT,
        "/v1/rules/r",
        Some((
            json!({"record_kind": "t", "connection": "dropbox", "folder": "{{ record.key"})
                .to_string()
                .into_bytes(),
            json_ct,
        )),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(m.contains("folder"), "{m}");
    expect_error(
        &stack,
        Method::PUT,
        "/v1/rules/r",
        Some((
            json!({"record_kind": "t", "connection": "dropbox", "folder": "x", "colour": 1})
                .to_string()
                .into_bytes(),
            json_ct,
        )),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    expect_error(
        &stack,
        Method::DELETE,
        "/v1/rules/none",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // Connections: a token Dropbox refuses is rejected, and never echoed back.
    let token = "sl.this-token-is-wrong-and-secret";
    let m = expect_error(
        &stack,
        Method::PUT,
        "/v1/connections/other",
        Some((
            json!({"token": token, "base_url": stack.emu.emulator.base_url()})
                .to_string()
                .into_bytes(),
            json_ct,
        )),
        StatusCode::BAD_REQUEST,
        "dropbox_token_rejected",
    )
    .await;
    assert!(!m.contains(token), "token leaked into an error: {m}");
    expect_error(
        &stack,
        Method::PUT,
        "/v1/connections/other",
        Some((
            json!({"token": "t", "base_url": "ftp://x"})
                .to_string()
                .into_bytes(),
            json_ct,
        )),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    expect_error(&stack, Method::PUT, "/v1/connections/other", Some((json!({"token": stack.emu.emulator.token(), "root": "no-slash", "base_url": stack.emu.emulator.base_url()}).to_string().into_bytes(), json_ct)), StatusCode::BAD_REQUEST, "bad_request").await;

    // Unknown routes.
    expect_error(
        &stack,
        Method::GET,
        "/v1/nothing-here",
        None,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

/// Stored Dropbox tokens are encrypted: the raw database never contains them, and the
/// connection list never shows them.
#[tokio::test]
async fn tokens_are_encrypted_at_rest() {
    let stack = Stack::start().await;
    let token = stack.emu.emulator.token().to_owned();
    let listed = stack.api.get("/v1/connections").await.unwrap();
    assert!(!listed.to_string().contains(&token));
    assert_eq!(listed["connections"][0]["name"], "dropbox");
    let dir = stack.emu.dir.path().join("ferry");
    let mut checked = 0;
    for name in ["ferry.db", "ferry.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            checked += 1;
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "token in clear in {name}"
            );
        }
    }
    assert!(checked > 0, "no database file found");
    // The encrypted token still works: a sync goes through.
    ticket_rule(&stack, None).await;
    stack
        .api
        .put_json(
            "/v1/records/ticket/T-11",
            &json!({"fields": {"title": "x"}}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/ticket/T-11/attachments/a.txt", b"a".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    assert_eq!(dropbox_files(&stack).await.len(), 1);
    let _ = client_for(&stack.emu.emulator);
}

/// When Dropbox refuses the token, the connection is marked `needs_reconnect`, the event is
/// logged, work waits (never dead-lettered or dropped), and reconnecting resumes it.
#[tokio::test]
async fn refused_token_pauses_until_reconnect() {
    let mut stack = Stack::start().await;
    ticket_rule(&stack, None).await;
    stack
        .api
        .put_json(
            "/v1/records/ticket/T-12",
            &json!({"fields": {"title": "x"}}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/ticket/T-12/attachments/a.txt", b"one".to_vec())
        .await
        .unwrap();
    stack.settle().await;

    // The account's token changes (revoked): same Dropbox, same address, new token.
    let addr = stack.emu.emulator.addr();
    let data_dir = stack.emu.dir.path().join("emulator");
    let old = std::mem::replace(
        &mut stack.emu.emulator,
        ferry_emulator::RunningEmulator::start({
            let mut c = ferry_emulator::EmulatorConfig::new(stack.emu.dir.path().join("scratch"));
            c.token = Some("placeholder".into());
            c
        })
        .await
        .unwrap(),
    );
    old.shutdown().await;
    let placeholder = std::mem::replace(
        &mut stack.emu.emulator,
        ferry_emulator::RunningEmulator::start({
            let mut c = ferry_emulator::EmulatorConfig::new(data_dir);
            c.bind = addr;
            c.token = Some("a-brand-new-token-0123456789".into());
            c
        })
        .await
        .expect("emulator restarts on the same port"),
    );
    placeholder.shutdown().await;

    stack
        .api
        .put_bytes("/v1/records/ticket/T-12/attachments/b.txt", b"two".to_vec())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let listed = loop {
        let listed = stack.api.get("/v1/connections").await.unwrap();
        if listed["connections"][0]["needs_reconnect"].is_string() {
            break listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never marked: {listed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        !listed.to_string().contains("a-brand-new-token"),
        "no token in the answer"
    );
    let state = stack.api.get("/v1/records/ticket/T-12/sync").await.unwrap();
    assert_eq!(
        state["queued"],
        json!(true),
        "the work waits in the queue: {state}"
    );
    assert_eq!(state["queue"]["dead"], json!(false));
    let log = stack.api.get("/v1/log").await.unwrap();
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "needs_reconnect"),
        "{log}"
    );

    // The admin reconnects with the new token: the waiting work goes through.
    stack
        .api
        .put_json(
            "/v1/connections/dropbox",
            &json!({"token": "a-brand-new-token-0123456789", "root": "/Ferry", "base_url": stack.emu.emulator.base_url()}),
        )
        .await
        .unwrap();
    stack.settle().await;
    let files = dropbox_files(&stack).await;
    assert_eq!(files.len(), 2, "{files:?}");
    let listed = stack.api.get("/v1/connections").await.unwrap();
    assert!(listed["connections"][0]["needs_reconnect"].is_null());
}

/// Unless the operator allows custom Dropbox hosts, a connection's token only goes to
/// Dropbox: a `base_url` is refused before any request leaves, and plain http to another
/// machine is refused even when custom hosts are allowed.
#[tokio::test]
async fn tokens_go_only_to_hosts_the_operator_allowed() {
    let emu = crate::support::Emu::start().await;
    let config = ferry::config::Config {
        data_dir: emu.dir.path().join("ferry"),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ferry::config::Config::default()
    };
    let app = ferry::app::RunningApp::start(&config).await.unwrap();
    let api = ferry::api_client::ApiClient::new(app.base_url(), app.api_key().clone());
    let body = json!({"token": emu.emulator.token(), "base_url": emu.emulator.base_url()});
    let (status, value) = api
        .raw(
            Method::PUT,
            "/v1/connections/dropbox",
            Some((serde_json::to_vec(&body).unwrap(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{value}");
    assert!(
        value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("custom_dropbox_hosts"),
        "{value}"
    );
    assert_eq!(
        emu.emulator.route_calls("users/get_current_account"),
        0,
        "the token was not sent"
    );
    app.shutdown().await;

    let stack = Stack::start().await;
    let (status, value) = stack
        .api
        .raw(
            Method::PUT,
            "/v1/connections/other",
            Some((
                serde_json::to_vec(&json!({"token": "t", "base_url": "http://192.0.2.7:8090"}))
                    .unwrap(),
                "application/json",
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{value}");
    assert!(
        value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https"),
        "{value}"
    );
}
