//! Two-way bindings end to end: what people do in Dropbox reaches Ferry by itself (long-poll),
//! nothing anyone wrote is lost, and deletions are braked.

use crate::support::Stack;
use ferry_core::content_hash::content_hash;
use ferry_dropbox::{Entry, WriteMode};
use serde_json::{Value, json};

async fn project_rule(stack: &Stack, extra: Value) {
    let mut rule = json!({
        "record_kind": "project",
        "connection": "dropbox",
        "folder": "Projects/{{ record.key }}",
        "direction": "both",
    });
    if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
        rule.extend(extra.clone());
    }
    stack
        .api
        .put_json("/v1/rules/projects", &rule)
        .await
        .expect("rule accepted");
}

fn names(record: &Value) -> Vec<String> {
    record["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// A file added in Dropbox becomes an attachment, an edit replaces its content (the old
/// version archived), a delete archives it — all without any call to Ferry.
#[tokio::test]
async fn dropbox_changes_flow_back_by_themselves() {
    let stack = Stack::start().await;
    project_rule(&stack, json!({})).await;
    stack
        .api
        .put_json("/v1/records/project/P1", &json!({"fields": {}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/project/P1/attachments/plan.pdf",
            b"plan v1".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;
    let dbx = stack.emu.client();

    dbx.upload(
        "/Ferry/Projects/P1/site photo.jpg",
        b"JPEG".to_vec().into(),
        &WriteMode::Add,
    )
    .await
    .unwrap();
    let record = stack
        .eventually("/v1/records/project/P1", |r| {
            names(r).contains(&"site photo.jpg".to_owned())
        })
        .await;
    let photo = record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "site photo.jpg")
        .unwrap()
        .clone();
    assert_eq!(photo["content_hash"], json!(content_hash(b"JPEG")));
    assert_eq!(photo["tags"], json!(["dropbox"]));

    let info = dbx.metadata("/Ferry/Projects/P1/plan.pdf").await.unwrap();
    let ferry_dropbox::Entry::File(info) = info else {
        panic!("not a file")
    };
    dbx.upload(
        "/Ferry/Projects/P1/plan.pdf",
        b"plan v2 from site".to_vec().into(),
        &WriteMode::Update(info.rev),
    )
    .await
    .unwrap();
    stack
        .eventually("/v1/records/project/P1", |r| {
            r["attachments"].as_array().unwrap().iter().any(|a| {
                a["name"] == "plan.pdf"
                    && a["content_hash"] == json!(content_hash(b"plan v2 from site"))
            })
        })
        .await;

    dbx.delete("/Ferry/Projects/P1/site photo.jpg", None)
        .await
        .unwrap();
    stack
        .eventually("/v1/records/project/P1", |r| {
            !names(r).contains(&"site photo.jpg".to_owned())
        })
        .await;
    let archive = stack
        .api
        .get("/v1/records/project/P1/archive")
        .await
        .unwrap();
    let archived: Vec<(String, String)> = archive["archived"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["content_hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        archived.contains(&("site photo.jpg".to_owned(), content_hash(b"JPEG"))),
        "{archived:?}"
    );
    assert!(
        archived.contains(&("plan.pdf".to_owned(), content_hash(b"plan v1"))),
        "{archived:?}"
    );
}

/// Files in subfolders come in only with `pull_subfolders`, and stay where they are.
#[tokio::test]
async fn subfolders_are_pulled_when_asked() {
    let stack = Stack::start().await;
    project_rule(&stack, json!({"pull_subfolders": true})).await;
    stack
        .api
        .put_json("/v1/records/project/P2", &json!({"fields": {}}))
        .await
        .unwrap();
    stack.settle().await;
    let dbx = stack.emu.client();
    dbx.upload(
        "/Ferry/Projects/P2/Drawings/Level 1/ground floor.dwg",
        b"DWG".to_vec().into(),
        &WriteMode::Add,
    )
    .await
    .unwrap();
    stack.api.post("/v1/records/project/P2/sync").await.unwrap();
    stack.settle().await;
    let record = stack
        .eventually("/v1/records/project/P2", |r| !names(r).is_empty())
        .await;
    assert_eq!(names(&record), vec!["ground floor.dwg"]);
    // The app sees where it sits, not only its name.
    assert_eq!(
        record["attachments"][0]["path"],
        "Drawings/Level 1/ground floor.dwg"
    );
    assert_eq!(record["attachments"][0]["source"], "dropbox");
    let state = stack.api.get("/v1/records/project/P2/sync").await.unwrap();
    assert_eq!(
        state["files"][0]["path"],
        "/Ferry/Projects/P2/Drawings/Level 1/ground floor.dwg"
    );
    // Nothing was uploaded back: the imported file already is where it belongs.
    assert_eq!(stack.emu.emulator.route_calls("files/upload"), 1);
}

/// Renaming the record's folder is one move in Dropbox, not a re-upload.
#[tokio::test]
async fn folder_rename_is_one_move() {
    let stack = Stack::start().await;
    stack
        .api
        .put_json("/v1/rules/projects", &json!({"record_kind": "project", "connection": "dropbox", "folder": "Projects/{{ record.fields.name }}"}))
        .await
        .unwrap();
    stack
        .api
        .put_json(
            "/v1/records/project/P3",
            &json!({"fields": {"name": "Harbour"}}),
        )
        .await
        .unwrap();
    for n in 0..3 {
        stack
            .api
            .put_bytes(
                &format!("/v1/records/project/P3/attachments/f{n}.txt"),
                vec![b'x'; n + 1],
            )
            .await
            .unwrap();
    }
    stack.settle().await;
    // Content transfers: single uploads, or files staged for a batch commit.
    let transfers = || {
        stack.emu.emulator.route_calls("files/upload")
            + stack.emu.emulator.route_calls("files/upload_session/start")
    };
    let uploads = transfers();
    stack
        .api
        .put_json(
            "/v1/records/project/P3",
            &json!({"fields": {"name": "Harbour Bridge"}}),
        )
        .await
        .unwrap();
    stack.settle().await;
    assert_eq!(transfers(), uploads, "files were uploaded again");
    assert_eq!(stack.emu.emulator.route_calls("files/move_v2"), 1);
    let (entries, _) = stack
        .emu
        .client()
        .list_all("/Ferry/Projects", true)
        .await
        .unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path_display()).collect();
    assert!(
        paths.contains(&"/Ferry/Projects/Harbour Bridge/f2.txt"),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("/Ferry/Projects/Harbour/")),
        "{paths:?}"
    );
    // A case-only rename works too (through a temporary name).
    stack
        .api
        .put_json(
            "/v1/records/project/P3",
            &json!({"fields": {"name": "HARBOUR BRIDGE"}}),
        )
        .await
        .unwrap();
    stack.settle().await;
    let (entries, _) = stack
        .emu
        .client()
        .list_all("/Ferry/Projects", false)
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| e.path_display()).collect::<Vec<_>>(),
        vec!["/Ferry/Projects/HARBOUR BRIDGE"]
    );
    let state = stack.api.get("/v1/records/project/P3/sync").await.unwrap();
    assert_eq!(state["summary"]["synced"], json!(3));
}

/// Deleting a record's folder in Dropbox pauses the binding instead of archiving everything;
/// confirming lets it through, and every version stays in the archive.
#[tokio::test]
async fn mass_deletion_pauses_until_confirmed() {
    let stack = Stack::start().await;
    project_rule(&stack, json!({})).await;
    stack
        .api
        .put_json("/v1/records/project/P4", &json!({"fields": {}}))
        .await
        .unwrap();
    for n in 0..5 {
        stack
            .api
            .put_bytes(
                &format!("/v1/records/project/P4/attachments/f{n}.txt"),
                vec![b'a' + n as u8; 3],
            )
            .await
            .unwrap();
    }
    stack.settle().await;
    // Someone deletes the whole folder in Dropbox.
    stack
        .emu
        .client()
        .delete("/Ferry/Projects/P4", None)
        .await
        .unwrap();
    let state = stack
        .eventually("/v1/records/project/P4/sync", |s| {
            s["bindings"][0]["paused"].is_string()
        })
        .await;
    assert!(
        state["bindings"][0]["paused"]
            .as_str()
            .unwrap()
            .contains("5 of 5"),
        "{state}"
    );
    let record = stack.api.get("/v1/records/project/P4").await.unwrap();
    assert_eq!(
        names(&record).len(),
        5,
        "nothing may be archived while paused"
    );
    stack
        .api
        .post("/v1/records/project/P4/confirm-deletions")
        .await
        .unwrap();
    let record = stack
        .eventually("/v1/records/project/P4", |r| names(r).is_empty())
        .await;
    assert!(names(&record).is_empty());
    let archive = stack
        .api
        .get("/v1/records/project/P4/archive")
        .await
        .unwrap();
    assert_eq!(
        archive["archived"].as_array().unwrap().len(),
        5,
        "every version is kept in the archive"
    );
    let state = stack.api.get("/v1/records/project/P4/sync").await.unwrap();
    assert!(state["bindings"][0]["paused"].is_null());
}

/// Moving a rule to another connection, and disconnecting a connection, first bring back
/// every file only Dropbox holds; nothing is deleted in the old place.
#[tokio::test]
async fn reverse_sync_before_moving_and_disconnecting() {
    let stack = Stack::start().await;
    let emu = &stack.emu.emulator;
    stack
        .api
        .put_json(
            "/v1/connections/archive",
            &json!({"token": emu.token(), "root": "/Archive", "base_url": emu.base_url()}),
        )
        .await
        .unwrap();
    let rule = |connection: &str| json!({"record_kind": "project", "connection": connection, "folder": "P/{{ record.key }}"});
    stack
        .api
        .put_json("/v1/rules/projects", &rule("dropbox"))
        .await
        .unwrap();
    stack
        .api
        .put_json("/v1/records/project/P5", &json!({"fields": {}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/project/P5/attachments/spec.pdf",
            b"spec".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;
    // Someone drops a file into the (push-only) folder: only Dropbox holds it.
    let dbx = stack.emu.client();
    dbx.upload(
        "/Ferry/P/P5/site.jpg",
        b"site photo".to_vec().into(),
        &WriteMode::Add,
    )
    .await
    .unwrap();

    stack
        .api
        .put_json("/v1/rules/projects", &rule("archive"))
        .await
        .unwrap();
    stack.settle().await;
    let record = stack.api.get("/v1/records/project/P5").await.unwrap();
    let mut got = names(&record);
    got.sort();
    assert_eq!(
        got,
        vec!["site.jpg", "spec.pdf"],
        "the Dropbox-only file came back first"
    );
    let (moved, _) = dbx.list_all("/Archive/P/P5", false).await.unwrap();
    assert_eq!(
        moved.len(),
        2,
        "both files pushed to the new target: {moved:?}"
    );
    let (old, _) = dbx.list_all("/Ferry/P/P5", false).await.unwrap();
    assert_eq!(old.len(), 2, "nothing deleted in the old place: {old:?}");

    // Disconnect: a file added meanwhile comes back, then the connection goes.
    dbx.upload(
        "/Archive/P/P5/late.txt",
        b"late".to_vec().into(),
        &WriteMode::Add,
    )
    .await
    .unwrap();
    let answer = stack.api.delete("/v1/connections/archive").await.unwrap();
    assert_eq!(answer["records_to_bring_back"], json!(1));
    stack.settle().await;
    let record = stack.api.get("/v1/records/project/P5").await.unwrap();
    assert!(names(&record).contains(&"late.txt".to_owned()), "{record}");
    let listed = stack.api.get("/v1/connections").await.unwrap();
    let left: Vec<&str> = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec!["dropbox"]);
    let log = stack.api.get("/v1/log?record=project/P5").await.unwrap();
    let reverse: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "reverse_import")
        .collect();
    assert_eq!(reverse.len(), 2, "{log}");
}

/// Renaming a file in Dropbox renames the attachment (same id, same content): nothing is
/// archived, imported again or uploaded again.
#[tokio::test]
async fn dropbox_rename_renames_the_attachment() {
    let stack = Stack::start().await;
    project_rule(&stack, json!({})).await;
    stack
        .api
        .put_json("/v1/records/project/P6", &json!({"fields": {}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/project/P6/attachments/draft.pdf",
            b"plan".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;
    let transfers = stack.emu.emulator.route_calls("files/upload")
        + stack.emu.emulator.route_calls("files/download");
    stack
        .emu
        .client()
        .move_entry(
            "/Ferry/Projects/P6/draft.pdf",
            "/Ferry/Projects/P6/Final plan.pdf",
        )
        .await
        .unwrap();
    let record = stack
        .eventually("/v1/records/project/P6", |r| {
            names(r) == vec!["Final plan.pdf"]
        })
        .await;
    assert_eq!(
        record["attachments"][0]["content_hash"],
        json!(content_hash(b"plan"))
    );
    let archive = stack
        .api
        .get("/v1/records/project/P6/archive")
        .await
        .unwrap();
    assert!(
        archive["archived"].as_array().unwrap().is_empty(),
        "{archive}"
    );
    assert_eq!(
        stack.emu.emulator.route_calls("files/upload")
            + stack.emu.emulator.route_calls("files/download"),
        transfers,
        "no content moved"
    );
}

/// A rule's default subfolders are made with the record's folder, kept when filled, and not
/// made again once deleted, unless the rule says so.
#[tokio::test]
async fn default_subfolders_are_made_once() {
    let stack = Stack::start().await;
    let rule = |recreate: bool| {
        json!({"record_kind": "job", "connection": "dropbox", "folder": "Jobs/{{ record.key }}",
               "subfolders": ["Scans", "Scans/Official", "Photos"], "recreate_subfolders": recreate})
    };
    stack
        .api
        .put_json("/v1/rules/jobs", &rule(false))
        .await
        .unwrap();
    stack.record_with("job", "J1", &["order.pdf"]).await;
    stack.settle().await;
    let dbx = stack.emu.client();
    let folders = || async {
        let (entries, _) = dbx.list_all("/Ferry/Jobs/J1", true).await.unwrap();
        let mut folders: Vec<String> = entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Folder(f) if f.path_display != "/Ferry/Jobs/J1" => Some(f.path_display),
                _ => None,
            })
            .collect();
        folders.sort();
        folders
    };
    assert_eq!(
        folders().await,
        [
            "/Ferry/Jobs/J1/Photos",
            "/Ferry/Jobs/J1/Scans",
            "/Ferry/Jobs/J1/Scans/Official"
        ]
    );
    // Someone deletes Photos on purpose: later passes leave it deleted.
    dbx.delete("/Ferry/Jobs/J1/Photos", None).await.unwrap();
    stack.api.post("/v1/records/job/J1/sync").await.unwrap();
    stack.settle().await;
    assert_eq!(
        folders().await,
        ["/Ferry/Jobs/J1/Scans", "/Ferry/Jobs/J1/Scans/Official"]
    );
    // Unless the rule recreates them.
    stack
        .api
        .put_json("/v1/rules/jobs", &rule(true))
        .await
        .unwrap();
    stack.settle().await;
    assert_eq!(folders().await.len(), 3);
    // A subfolder that is not a plain relative path is refused when the rule is saved.
    for bad in [json!(["../up"]), json!(["a:b"]), json!([""])] {
        let mut r = rule(false);
        r["subfolders"] = bad.clone();
        let (status, body) = stack
            .api
            .raw(
                reqwest::Method::PUT,
                "/v1/rules/jobs",
                Some((r.to_string().into_bytes(), "application/json")),
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
