//! An existing Dropbox folder mapped to a record by hand: what is in it comes into the record,
//! the record's files go into it, a rename in Dropbox is followed by id (nothing moved back,
//! nothing uploaded again), a folder that is gone is reported and left alone, and removing the
//! mapping leaves the files in Dropbox.

use crate::support::Stack;
use bytes::Bytes;
use ferry_dropbox::WriteMode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn post(stack: &Stack, path: &str, body: Value) -> (StatusCode, Value) {
    stack
        .api
        .raw(
            Method::POST,
            path,
            Some((body.to_string().into_bytes(), "application/json")),
        )
        .await
        .unwrap()
}

fn names(record: &Value) -> Vec<String> {
    record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_mapped_folder_syncs_both_ways_and_follows_a_rename() {
    let stack = Stack::start().await;
    let dbx = stack.emu.client();
    dbx.upload(
        "/Ferry/Projects/Alpha/plan.pdf",
        Bytes::from_static(b"the plan"),
        &WriteMode::Add,
    )
    .await
    .unwrap();
    stack.record_with("project", "P1", &["brief.txt"]).await;

    // Bad input first: no such folder, a file, a folder outside the root.
    for (path, expect) in [
        ("/Ferry/Projects/Nope", "there is no folder"),
        ("/Ferry/Projects/Alpha/plan.pdf", "is a file"),
        ("/", "must be a folder path"),
        ("", "must be a folder path"),
        ("Ferry/Projects", "must be a folder path"),
    ] {
        let (status, body) = post(
            &stack,
            "/v1/records/project/P1/folders",
            json!({"connection": "dropbox", "path": path}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(expect),
            "{body}"
        );
    }
    dbx.create_folder("/Elsewhere").await.unwrap();
    let (status, body) = post(
        &stack,
        "/v1/records/project/P1/folders",
        json!({"connection": "dropbox", "path": "/Elsewhere"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not inside"),
        "{body}"
    );

    let (status, map) = post(
        &stack,
        "/v1/records/project/P1/folders",
        json!({"connection": "dropbox", "path": "/ferry/projects/alpha"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{map}");
    assert_eq!(map["path"], "/Ferry/Projects/Alpha", "Dropbox's casing");
    assert_eq!(map["direction"], "both");
    stack.settle().await;
    // Both ways: the folder's file came in, the record's file went out.
    let record = stack.api.get("/v1/records/project/P1").await.unwrap();
    assert_eq!(names(&record), vec!["brief.txt", "plan.pdf"], "{record}");
    let brief = dbx
        .download("/Ferry/Projects/Alpha/brief.txt")
        .await
        .unwrap();
    assert_eq!(&brief.1[..], b"P1/brief.txt");

    // Someone renames the folder in Dropbox and adds a file to it.
    dbx.move_entry("/Ferry/Projects/Alpha", "/Ferry/Projects/Alpha (2026)")
        .await
        .unwrap();
    dbx.upload(
        "/Ferry/Projects/Alpha (2026)/budget.xlsx",
        Bytes::from_static(b"numbers"),
        &WriteMode::Add,
    )
    .await
    .unwrap();
    stack
        .eventually("/v1/records/project/P1", |r| {
            r["attachments"].as_array().unwrap().len() == 3
        })
        .await;
    stack.settle().await;
    let maps = stack
        .api
        .get("/v1/records/project/P1/folders")
        .await
        .unwrap();
    assert_eq!(
        maps["folders"][0]["path"], "/Ferry/Projects/Alpha (2026)",
        "{maps}"
    );
    // The app's next file goes into the renamed folder; nothing went back to the old name.
    stack
        .api
        .put_bytes(
            "/v1/records/project/P1/attachments/notes.txt",
            b"more".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;
    assert!(
        dbx.metadata("/Ferry/Projects/Alpha (2026)/notes.txt")
            .await
            .is_ok()
    );
    assert!(
        dbx.metadata("/Ferry/Projects/Alpha").await.is_err(),
        "not moved back"
    );
    let (entries, _) = dbx.list_all("/Ferry/Projects", true).await.unwrap();
    let files = entries
        .iter()
        .filter(|e| matches!(e, ferry_dropbox::Entry::File(_)))
        .count();
    assert_eq!(files, 4, "each file once: {entries:?}");

    // The connection's root cannot move away from a mapped folder: it would stop syncing.
    let (status, body) = post(
        &stack,
        "/v1/connections/dropbox/root",
        json!({"root": "/Elsewhere"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the mapped folder"),
        "{body}"
    );
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(list["connections"][0]["root"], "/Ferry", "unchanged");

    // The folder goes: reported, and nothing is deleted or archived because of it.
    dbx.delete("/Ferry/Projects/Alpha (2026)", None)
        .await
        .unwrap();
    stack.api.post("/v1/records/project/P1/sync").await.unwrap();
    let sync = stack
        .eventually("/v1/records/project/P1/sync", |s| {
            s["files"].as_array().unwrap().iter().any(|f| {
                f["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("is gone from Dropbox"))
            })
        })
        .await;
    assert!(sync.to_string().contains("map another folder"), "{sync}");
    let record = stack.api.get("/v1/records/project/P1").await.unwrap();
    assert_eq!(names(&record).len(), 4, "no attachment archived: {record}");

    // Removing the mapping: Ferry forgets the folder.
    let id = maps["folders"][0]["id"].as_i64().unwrap();
    let (status, body) = stack
        .api
        .raw(
            Method::DELETE,
            &format!("/v1/records/project/P1/folders/{id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unmapped"], id);
    let maps = stack
        .api
        .get("/v1/records/project/P1/folders")
        .await
        .unwrap();
    assert_eq!(maps["folders"], json!([]));
    let (status, _) = stack
        .api
        .raw(
            Method::DELETE,
            &format!("/v1/records/project/P1/folders/{id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
}
