//! The no-loss and no-stall promises, end to end through the REST API: a Dropbox version the
//! app replaces without having seen it is archived; `If-Match` makes an app write
//! conditional; archived versions can be downloaded and restored; deletions trickling in
//! file by file are braked; overlapping rules never track one file twice; failing records
//! give up by time (never for "wait"), and dead letters come back in bulk.

use crate::support::{Emu, Stack};
use ferry_core::content_hash::content_hash;
use ferry_dropbox::{Entry, FaultInjector, Injected, WriteMode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

async fn two_way_rule(stack: &Stack) {
    stack
        .api
        .put_json(
            "/v1/rules/projects",
            &json!({"record_kind": "project", "connection": "dropbox",
                    "folder": "Projects/{{ record.key }}", "direction": "both"}),
        )
        .await
        .expect("rule accepted");
}

fn attachment_hash(record: &Value, name: &str) -> Option<String> {
    record["attachments"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["content_hash"].as_str().map(str::to_owned))
}

async fn dropbox_rev(stack: &Stack, path: &str) -> String {
    match stack
        .emu
        .client()
        .metadata(path)
        .await
        .expect("file exists")
    {
        Entry::File(f) => f.rev,
        other => panic!("{path} is not a file: {other:?}"),
    }
}

/// Someone edits x.txt in Dropbox (r2) and Ferry imports it; then the app, which never saw
/// r2, writes its own x.txt. r2 must stay retrievable: it is archived, and its content can
/// be downloaded from the archive and restored.
#[tokio::test]
async fn a_dropbox_edit_survives_the_next_app_write_and_can_be_restored() {
    let stack = Stack::start().await;
    two_way_rule(&stack).await;
    stack
        .api
        .put_json("/v1/records/project/P1", &json!({"fields": {}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/project/P1/attachments/x.txt", b"r1".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    let path = "/Ferry/Projects/P1/x.txt";
    let rev = dropbox_rev(&stack, path).await;
    stack
        .emu
        .client()
        .upload(
            path,
            b"r2 from site".to_vec().into(),
            &WriteMode::Update(rev),
        )
        .await
        .unwrap();
    let r2 = content_hash(b"r2 from site");
    stack
        .eventually("/v1/records/project/P1", |r| {
            attachment_hash(r, "x.txt").as_deref() == Some(r2.as_str())
        })
        .await;
    stack
        .api
        .put_bytes("/v1/records/project/P1/attachments/x.txt", b"r3".to_vec())
        .await
        .unwrap();
    stack.settle().await;

    let archive = stack
        .api
        .get("/v1/records/project/P1/archive")
        .await
        .unwrap();
    let kept = archive["archived"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["content_hash"] == json!(r2))
        .unwrap_or_else(|| panic!("the Dropbox version r2 was lost: {archive}"))
        .clone();
    assert_eq!(kept["source"], "dropbox");
    let id = kept["id"].as_i64().unwrap();
    let (status, body) = get_bytes(&stack, &format!("/v1/records/project/P1/archive/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"r2 from site");

    // Restore r2: it is the current attachment again, Dropbox gets it, r3 is archived.
    let restored = stack
        .api
        .post(&format!("/v1/records/project/P1/archive/{id}/restore"))
        .await
        .unwrap();
    assert_eq!(restored["restored"]["content_hash"], json!(r2));
    stack.settle().await;
    let (_, in_dropbox) = stack.emu.client().download(path).await.unwrap();
    assert_eq!(&in_dropbox[..], b"r2 from site");
    let archive = stack
        .api
        .get("/v1/records/project/P1/archive")
        .await
        .unwrap();
    assert!(
        archive["archived"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["content_hash"] == json!(content_hash(b"r3"))),
        "{archive}"
    );
    let (status, body) = stack
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/records/project/P1/archive/999999/restore",
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

pub(crate) async fn get_bytes(stack: &Stack, path: &str) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", stack.app.base_url()))
        .bearer_auth(stack.app.api_key().expose())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn put_if_match(stack: &Stack, path: &str, if_match: &str, body: &[u8]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .put(format!("{}{path}", stack.app.base_url()))
        .bearer_auth(stack.app.api_key().expose())
        .header("If-Match", if_match)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `If-Match: <content_hash>` writes only over the version the integrator saw.
#[tokio::test]
async fn if_match_refuses_a_write_over_an_unseen_version() {
    let stack = Stack::start().await;
    stack
        .api
        .put_json("/v1/records/project/P2", &json!({"fields": {}}))
        .await
        .unwrap();
    let path = "/v1/records/project/P2/attachments/x.txt";
    stack.api.put_bytes(path, b"v1".to_vec()).await.unwrap();
    let v1 = content_hash(b"v1");
    stack.api.put_bytes(path, b"v2".to_vec()).await.unwrap();
    // The integrator still thinks v1 is current: refused, nothing written.
    let (status, body) = put_if_match(&stack, path, &format!("\"{v1}\""), b"v3").await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["error"]["code"], "precondition_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&content_hash(b"v2"))
    );
    let (_, current) = get_bytes(&stack, path).await;
    assert_eq!(current, b"v2");
    // The current hash, or `*` for an existing attachment, goes through.
    let (status, _) = put_if_match(&stack, path, &content_hash(b"v2"), b"v3").await;
    assert_eq!(status, 200);
    let (status, _) = put_if_match(&stack, path, "*", b"v4").await;
    assert_eq!(status, 200);
    let missing = "/v1/records/project/P2/attachments/none.txt";
    let (status, _) = put_if_match(&stack, missing, "*", b"x").await;
    assert_eq!(status, 412);
    let (status, body) = put_if_match(&stack, path, "not-a-hash", b"x").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    // Bulk re-queue of dead letters answers how many came back (none here).
    let requeued = stack.api.post("/v1/queue/dead/requeue").await.unwrap();
    assert_eq!(requeued["requeued"], 0);
}

/// Five of six files deleted in Dropbox one by one, each seen by its own pass: the brake
/// counts them over its window and pauses before the majority is gone; confirming lets the
/// rest through.
#[tokio::test]
async fn deletions_one_by_one_are_braked_like_one_big_delete() {
    let stack = Stack::start().await;
    two_way_rule(&stack).await;
    stack
        .api
        .put_json("/v1/records/project/P3", &json!({"fields": {}}))
        .await
        .unwrap();
    for n in 0..6 {
        stack
            .api
            .put_bytes(
                &format!("/v1/records/project/P3/attachments/f{n}.txt"),
                format!("file {n}").into_bytes(),
            )
            .await
            .unwrap();
    }
    stack.settle().await;
    let dbx = stack.emu.client();
    let count = |r: &Value| r["attachments"].as_array().map_or(0, Vec::len);
    for n in 0..5 {
        dbx.delete(&format!("/Ferry/Projects/P3/f{n}.txt"), None)
            .await
            .unwrap();
        // Wait for the pass that handles this one deletion (or the pause).
        let want = 5 - n;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let record = stack.api.get("/v1/records/project/P3").await.unwrap();
            let state = stack.api.get("/v1/records/project/P3/sync").await.unwrap();
            let paused = state["bindings"][0]["paused"].is_string();
            if count(&record) == want || paused {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no pass: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stack.settle().await;
    let record = stack.api.get("/v1/records/project/P3").await.unwrap();
    let state = stack.api.get("/v1/records/project/P3/sync").await.unwrap();
    assert_eq!(
        count(&record),
        3,
        "three archived, then the brake: {record}"
    );
    assert!(
        state["bindings"][0]["paused"]
            .as_str()
            .is_some_and(|r| r.contains("of 6 synced files") && r.contains("3 of them already")),
        "{state}"
    );
    stack
        .api
        .post("/v1/records/project/P3/confirm-deletions")
        .await
        .unwrap();
    stack
        .eventually("/v1/records/project/P3", |r| count(r) == 1)
        .await;
    let archive = stack
        .api
        .get("/v1/records/project/P3/archive")
        .await
        .unwrap();
    assert_eq!(archive["archived"].as_array().unwrap().len(), 5);
}

/// Two rules rendering one folder: refused when one pulls; accepted with a warning when
/// both push. The first rule in order claims a record's folder; two records sharing one
/// folder still never track one file twice.
#[tokio::test]
async fn overlapping_rules_never_track_one_file_twice() {
    let stack = Stack::start().await;
    stack
        .api
        .put_json("/v1/records/project/P4", &json!({"fields": {"n": "Quay"}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/project/P4/attachments/a.txt", b"a".to_vec())
        .await
        .unwrap();
    let rule = |folder: &str, direction: &str| {
        json!({"record_kind": "project", "connection": "dropbox", "folder": folder,
               "direction": direction})
    };
    stack
        .api
        .put_json("/v1/rules/one", &rule("Jobs/{{ record.fields.n }}", "push"))
        .await
        .unwrap();
    stack.settle().await;
    // Written differently, renders the same folder for P4; pulling: refused.
    let (status, body) = stack
        .api
        .raw(
            reqwest::Method::PUT,
            "/v1/rules/two",
            Some((
                serde_json::to_vec(&rule("Jobs/{{record.fields.n}}", "both")).unwrap(),
                "application/json",
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    // Both push: accepted, with a warning naming the other rule.
    let saved = stack
        .api
        .put_json("/v1/rules/two", &rule("jobs/{{ record.fields.n }}", "push"))
        .await
        .unwrap();
    let warning = saved["warnings"][0].as_str().unwrap();
    assert!(warning.contains("\"one\" comes first"), "{saved}");
    stack.api.post("/v1/records/project/P4/sync").await.unwrap();
    stack.settle().await;
    let state = stack.api.get("/v1/records/project/P4/sync").await.unwrap();
    let files = state["files"].as_array().unwrap();
    let tracked: Vec<&Value> = files.iter().filter(|f| f["rev"].is_string()).collect();
    assert_eq!(tracked.len(), 1, "one binding tracks a.txt: {state}");
    assert_eq!(state["bindings"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["bindings"][0]["rule"], "one", "{state}");

    // Another record lands in the same folder with a file of the same name: it is P4's.
    stack
        .api
        .put_json("/v1/records/project/P5", &json!({"fields": {"n": "Quay"}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/project/P5/attachments/a.txt", b"b".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    let state = stack.api.get("/v1/records/project/P5/sync").await.unwrap();
    let refused = state["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["state"] == "failed")
        .unwrap_or_else(|| panic!("the second record's binding reports the overlap: {state}"));
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("already synced by"),
        "{refused}"
    );

    // Given an earlier order, rule two claims the folders of new records; P4 keeps its.
    stack
        .api
        .put_json(
            "/v1/rules/two",
            &json!({"record_kind": "project", "connection": "dropbox",
                    "folder": "jobs/{{ record.fields.n }}", "order": -1}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_json("/v1/records/project/P6", &json!({"fields": {"n": "Pier"}}))
        .await
        .unwrap();
    stack.settle().await;
    let rules = stack.api.get("/v1/rules").await.unwrap();
    assert_eq!(rules["rules"][0]["name"], "two", "listed in order: {rules}");
    let p6 = stack.api.get("/v1/records/project/P6/sync").await.unwrap();
    assert_eq!(p6["bindings"][0]["rule"], "two", "{p6}");
    assert_eq!(p6["bindings"].as_array().unwrap().len(), 1, "{p6}");
    let p4 = stack.api.get("/v1/records/project/P4/sync").await.unwrap();
    assert_eq!(p4["bindings"][0]["rule"], "one", "{p4}");
    assert_eq!(p4["files"][0]["state"], "synced", "{p4}");
}

/// Fails every Dropbox call of one kind.
#[derive(Debug)]
struct Always(Injected);

impl FaultInjector for Always {
    fn decide(&self, _route: &str) -> Injected {
        self.0
    }
}

/// A record failing with a server error is dead-lettered once it has failed for longer than
/// the budget; one failing with a rate limit ("wait") never is. Dead letters come back in
/// bulk.
#[tokio::test]
async fn giving_up_is_by_time_and_never_for_waits() {
    for (injected, gives_up) in [
        (Injected::ServerError, true),
        (Injected::RateLimited, false),
    ] {
        let emu = Emu::start().await;
        let dir = emu.dir.path().join("ferry");
        let store: Arc<dyn ferry_store::Store> = Arc::new(
            ferry_store::SqliteStore::open(&dir.with_extension("db"))
                .await
                .unwrap(),
        );
        let engine = ferry_engine::Engine::new(
            Arc::clone(&store),
            ferry_store::BlobStore::local(&dir.join("blobs")).unwrap(),
            ferry_store::SecretCipher::from_key(&[1; 32]),
            ferry_engine::EngineConfig {
                give_up_after: Duration::from_millis(300),
                max_backoff: Duration::from_millis(50),
                client_attempts: 1,
                custom_dropbox_hosts: true,
                injector: Some(Arc::new(Always(injected)) as Arc<dyn FaultInjector>),
                ..ferry_engine::EngineConfig::default()
            },
        );
        store
            .put_connection(&ferry_store::StoredConnection {
                name: "dropbox".into(),
                api_url: emu.emulator.base_url(),
                content_url: emu.emulator.base_url(),
                notify_url: emu.emulator.base_url(),
                root: "/Ferry".into(),
                token_ciphertext: ferry_store::SecretCipher::from_key(&[1; 32])
                    .encrypt(&ferry_core::secret::Secret::new(emu.emulator.token()))
                    .unwrap(),
                refresh_ciphertext: None,
                app_key: None,
                app_secret_ciphertext: None,
                needs_reconnect: None,
                disconnecting: false,
                select_user: None,
                path_root: None,
                account: None,
                app_access: None,
            })
            .await
            .unwrap();
        store
            .put_rule(&ferry_core::rules::RuleSpec {
                name: "r".into(),
                record_kind: "job".into(),
                connection: "dropbox".into(),
                folder: "{{ record.key }}".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let record = store
            .upsert_record(&ferry_store::RecordInput {
                kind: "job".into(),
                key: "J".into(),
                fields: json!({}),
                parent_id: None,
            })
            .await
            .unwrap()
            .value;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while tokio::time::Instant::now() < deadline {
            engine.run_one().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let entry = store.queue_entry(record.id).await.unwrap().unwrap();
        assert_eq!(entry.dead, gives_up, "{injected:?}: {entry:?}");
        assert!(entry.attempts >= 2, "{injected:?} was retried: {entry:?}");
        if gives_up {
            assert_eq!(engine.requeue_dead().await.unwrap(), 1);
            let revived = store.queue_entry(record.id).await.unwrap().unwrap();
            assert!(!revived.dead && revived.attempts == 0 && revived.failing_since.is_none());
        }
        emu.emulator.shutdown().await;
    }
}

/// Fails every `files/upload` while switched on.
#[derive(Debug)]
struct FailUploads(Arc<std::sync::atomic::AtomicBool>);

impl FaultInjector for FailUploads {
    fn decide(&self, route: &str) -> Injected {
        if route == "files/upload" && self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Injected::ServerError
        } else {
            Injected::Nothing
        }
    }
}

/// Both sides changed a file on a two-way binding: Dropbox's version moves aside as a
/// conflicted copy (keeping its id) and the app's is uploaded. When that upload fails, the
/// old path's row must not keep the moved file's id: the copy is imported and tracked, and
/// one Dropbox file would be tracked twice (found by the simulation, seed 1814).
#[tokio::test]
async fn a_conflicted_copy_is_tracked_once_when_the_upload_after_it_fails() {
    let emu = Emu::start().await;
    let dir = emu.dir.path().join("ferry");
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store: Arc<dyn ferry_store::Store> = Arc::new(
        ferry_store::SqliteStore::open(&dir.with_extension("db"))
            .await
            .unwrap(),
    );
    let blobs = ferry_store::BlobStore::local(&dir.join("blobs")).unwrap();
    let engine = ferry_engine::Engine::new(
        Arc::clone(&store),
        blobs.clone(),
        ferry_store::SecretCipher::from_key(&[1; 32]),
        ferry_engine::EngineConfig {
            max_backoff: Duration::ZERO,
            client_attempts: 1,
            custom_dropbox_hosts: true,
            injector: Some(Arc::new(FailUploads(Arc::clone(&failing))) as Arc<dyn FaultInjector>),
            ..ferry_engine::EngineConfig::default()
        },
    );
    engine
        .put_connection(ferry_engine::ConnectionInput {
            name: "dropbox".into(),
            credentials: ferry_engine::Credentials::Token(ferry_core::secret::Secret::new(
                emu.emulator.token(),
            )),
            root: "/Ferry".into(),
            endpoints: ferry_dropbox::Endpoints::single(&emu.emulator.base_url()).unwrap(),
            select_user: None,
            path_root: Default::default(),
            app_access: None,
        })
        .await
        .unwrap();
    store
        .put_rule(&ferry_core::rules::RuleSpec {
            name: "r".into(),
            record_kind: "job".into(),
            connection: "dropbox".into(),
            folder: "{{ record.key }}".into(),
            direction: ferry_core::sync_plan::Direction::Both,
            ..Default::default()
        })
        .await
        .unwrap();
    let record = store
        .upsert_record(&ferry_store::RecordInput {
            kind: "job".into(),
            key: "J".into(),
            fields: json!({}),
            parent_id: None,
        })
        .await
        .unwrap()
        .value;
    let put = |content: &'static [u8]| {
        let (store, blobs) = (Arc::clone(&store), blobs.clone());
        async move {
            let hash = blobs.put(bytes::Bytes::from_static(content)).await.unwrap();
            store
                .put_attachment(&ferry_store::AttachmentInput {
                    record_id: record.id,
                    name: "a.txt".into(),
                    tags: vec![],
                    content_hash: hash,
                    size: content.len() as u64,
                    origin_path: None,
                    source: ferry_core::model::Side::App,
                    if_match: None,
                })
                .await
                .unwrap();
        }
    };
    put(b"app v1").await;
    while engine.run_one().await.unwrap() {}
    // Both sides change the file before the next pass.
    let dbx = emu.client();
    let rev = match dbx.metadata("/Ferry/J/a.txt").await.unwrap() {
        ferry_dropbox::Entry::File(f) => f.rev,
        other => panic!("{other:?}"),
    };
    dbx.upload(
        "/Ferry/J/a.txt",
        bytes::Bytes::from_static(b"site v2"),
        &WriteMode::Update(rev),
    )
    .await
    .unwrap();
    put(b"app v2").await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    // Passes run while uploads fail: the copy is made, and then imported.
    for _ in 0..6 {
        let _ = engine.run_one().await;
        store
            .enqueue(&[record.id], ferry_store::Priority::Normal)
            .await
            .unwrap();
    }
    let rows = store.sync_rows(record.id).await.unwrap();
    let mut ids = std::collections::HashSet::new();
    for row in rows.iter().filter(|r| r.rev.is_some()) {
        let id = row.dropbox_id.clone().unwrap();
        assert!(ids.insert(id.clone()), "{id} is tracked twice: {rows:#?}");
    }
    assert!(
        rows.iter().any(|r| r
            .rel_display
            .as_deref()
            .is_some_and(|p| p.contains("conflicted copy"))),
        "the copy was made and is tracked: {rows:#?}"
    );
    // Uploads work again: the app's version lands, the copy stays, nothing is lost.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    store
        .enqueue(&[record.id], ferry_store::Priority::Normal)
        .await
        .unwrap();
    for _ in 0..6 {
        let _ = engine.run_one().await;
    }
    assert_eq!(
        &dbx.download("/Ferry/J/a.txt").await.unwrap().1[..],
        b"app v2"
    );
    emu.emulator.shutdown().await;
}
