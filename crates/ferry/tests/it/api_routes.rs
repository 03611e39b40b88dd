//! The routes an integrator needs beyond writing records: listing, deleting with a file
//! policy, rule preview and dry run, the filtered log and its export.

use crate::support::Stack;
use ferry_dropbox::{DropboxError, Entry};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn ticket_rule(stack: &Stack) {
    stack
        .push_rule("tickets", "ticket", "Tickets/{{ record.key }}")
        .await;
}

async fn ticket(stack: &Stack, key: &str, files: &[&str]) {
    stack.record_with("ticket", key, files).await;
}

/// Paths of the files under `/Ferry` in the emulator.
async fn dropbox_paths(stack: &Stack) -> Vec<String> {
    match stack.emu.client().list_all("/Ferry", true).await {
        Ok((entries, _)) => {
            let mut paths: Vec<String> = entries
                .into_iter()
                .filter_map(|e| match e {
                    Entry::File(f) => Some(f.path_display),
                    _ => None,
                })
                .collect();
            paths.sort();
            paths
        }
        Err(DropboxError::NotFound(_)) => Vec::new(),
        Err(e) => panic!("listing failed: {e}"),
    }
}

async fn status_of(stack: &Stack, method: Method, path: &str) -> (StatusCode, Value) {
    stack.api.raw(method, path, None).await.unwrap()
}

fn keys(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["kind"].as_str().unwrap(),
                r["key"].as_str().unwrap()
            )
        })
        .collect()
}

/// `GET /v1/records` pages through every record once, in creation order, and filters by
/// kind, key text and state.
#[tokio::test]
async fn records_are_listed_filtered_and_paged() {
    let stack = Stack::start().await;
    ticket_rule(&stack).await;
    for key in ["A-1", "A-2", "B-1", "B-2", "c-3"] {
        ticket(&stack, key, &["f.txt"]).await;
    }
    stack
        .api
        .put_json("/v1/records/order/O-1", &json!({}))
        .await
        .unwrap();
    stack.settle().await;

    let mut seen = Vec::new();
    let mut path = "/v1/records?kind=ticket&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = stack.api.get(&path).await.unwrap();
        pages += 1;
        assert!(page["records"].as_array().unwrap().len() <= 2, "{page}");
        seen.extend(keys(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/records?kind=ticket&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "ticket/A-1",
            "ticket/A-2",
            "ticket/B-1",
            "ticket/B-2",
            "ticket/c-3"
        ]
    );
    assert!(pages >= 3, "{pages} pages");

    let all = stack.api.get("/v1/records").await.unwrap();
    assert_eq!(keys(&all).len(), 6);
    let b = stack.api.get("/v1/records?q=b-").await.unwrap();
    assert_eq!(keys(&b), ["ticket/B-1", "ticket/B-2"]);
    let synced = stack
        .api
        .get("/v1/records?kind=ticket&state=synced")
        .await
        .unwrap();
    assert_eq!(keys(&synced).len(), 5, "{synced}");
    assert_eq!(synced["records"][0]["files"]["synced"], 1);
    assert_eq!(synced["records"][0]["attachments"], 1);
    let failed = stack.api.get("/v1/records?state=failed").await.unwrap();
    assert_eq!(keys(&failed).len(), 0, "{failed}");

    for bad in [
        "/v1/records?state=bogus",
        "/v1/records?cursor=xyz",
        "/v1/records?cursor=-4",
        "/v1/records?color=red",
        "/v1/records?limit=many",
    ] {
        let (status, body) = status_of(&stack, Method::GET, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}: {body}");
    }
}

/// Deleting a record keeps its Dropbox files by default; `files=delete` removes them under
/// the deletion brake, `files=archive` moves its folder under `Archived/`, and the record goes
/// once they are gone.
#[tokio::test]
async fn deleting_a_record_keeps_or_deletes_its_files() {
    let stack = Stack::start().await;
    ticket_rule(&stack).await;
    ticket(&stack, "K", &["keep.txt"]).await;
    ticket(&stack, "D", &["gone.txt"]).await;
    ticket(&stack, "M", &["1.txt", "2.txt", "3.txt", "4.txt"]).await;
    stack.settle().await;
    assert_eq!(dropbox_paths(&stack).await.len(), 6);

    let kept = stack.api.delete("/v1/records/ticket/K").await.unwrap();
    assert_eq!(kept["files"], "keep");
    assert_eq!(kept["synced_files"], 1);
    let (status, _) = status_of(&stack, Method::GET, "/v1/records/ticket/K").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let deleted = stack
        .api
        .delete("/v1/records/ticket/D?files=delete")
        .await
        .unwrap();
    assert_eq!(deleted["files"], "delete");
    stack.settle().await;
    let (status, _) = status_of(&stack, Method::GET, "/v1/records/ticket/D").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "forgotten once its file is gone"
    );
    let paths = dropbox_paths(&stack).await;
    assert!(
        paths.contains(&"/Ferry/Tickets/K/keep.txt".to_owned()),
        "{paths:?}"
    );
    assert!(
        !paths.contains(&"/Ferry/Tickets/D/gone.txt".to_owned()),
        "{paths:?}"
    );

    // Four files at once trips the brake: nothing is deleted until an admin confirms.
    stack
        .api
        .delete("/v1/records/ticket/M?files=delete")
        .await
        .unwrap();
    stack.settle().await;
    let sync = stack.api.get("/v1/records/ticket/M/sync").await.unwrap();
    assert!(sync["bindings"][0]["paused"].is_string(), "{sync}");
    assert_eq!(
        dropbox_paths(&stack)
            .await
            .iter()
            .filter(|p| p.starts_with("/Ferry/Tickets/M/"))
            .count(),
        4
    );
    stack
        .api
        .post("/v1/records/ticket/M/confirm-deletions")
        .await
        .unwrap();
    stack.settle().await;
    let (status, _) = status_of(&stack, Method::GET, "/v1/records/ticket/M").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(dropbox_paths(&stack).await, ["/Ferry/Tickets/K/keep.txt"]);

    // Archive: the folder moves under Archived/, keeping its place below the root.
    ticket(&stack, "A", &["x.txt", "y.txt"]).await;
    stack.settle().await;
    let archived = stack
        .api
        .delete("/v1/records/ticket/A?files=archive")
        .await
        .unwrap();
    assert_eq!(archived["files"], "archive");
    stack.settle().await;
    let (status, _) = status_of(&stack, Method::GET, "/v1/records/ticket/A").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        dropbox_paths(&stack).await,
        [
            "/Ferry/Archived/Tickets/A/x.txt",
            "/Ferry/Archived/Tickets/A/y.txt",
            "/Ferry/Tickets/K/keep.txt"
        ]
    );

    // A parent with children is refused; an unknown policy or record is a clean error.
    stack
        .api
        .put_json("/v1/records/order/P", &json!({}))
        .await
        .unwrap();
    stack
        .api
        .put_json(
            "/v1/records/ticket/C",
            &json!({"parent": {"kind": "order", "key": "P"}}),
        )
        .await
        .unwrap();
    let (status, body) = status_of(&stack, Method::DELETE, "/v1/records/order/P").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = status_of(&stack, Method::DELETE, "/v1/records/order/P?files=shred").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = status_of(&stack, Method::DELETE, "/v1/records/order/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A preview and a dry run show what a rule would do and store nothing.
#[tokio::test]
async fn rule_preview_and_dry_run_store_nothing() {
    let stack = Stack::start().await;
    ticket(&stack, "P-1", &["a.pdf", "b.txt"]).await;
    ticket(&stack, "P-2", &[]).await;
    stack.settle().await;
    let rule = json!({
        "record_kind": "ticket", "connection": "dropbox",
        "folder": "Preview/{{ record.key }}", "file_filter": "attachment.name == 'a.pdf'",
    });
    let (status, preview) = stack
        .api
        .raw(
            Method::POST,
            "/v1/rules/tickets/preview",
            Some((rule.to_string().into_bytes(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["total_records"], 2);
    let first = &preview["records"][0];
    assert_eq!(first["record"], json!({"kind": "ticket", "key": "P-1"}));
    assert_eq!(first["applies"], true);
    assert_eq!(first["errors"], json!([]), "{preview}");
    assert_eq!(first["folder"], "/Ferry/Preview/P-1");
    assert_eq!(first["files"], json!(["/Ferry/Preview/P-1/a.pdf"]));
    let actions = first["actions"].as_array().unwrap();
    assert!(
        actions
            .iter()
            .any(|a| a.as_str().unwrap().contains("a.pdf")),
        "{preview}"
    );
    assert!(
        !actions
            .iter()
            .any(|a| a.as_str().unwrap().contains("b.txt")),
        "{preview}"
    );

    let (status, dry) = stack
        .api
        .raw(
            Method::PUT,
            "/v1/rules/tickets?dry_run=true",
            Some((rule.to_string().into_bytes(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["queued_records"], 0);

    // Nothing was stored or synced.
    assert_eq!(
        stack.api.get("/v1/rules").await.unwrap()["rules"],
        json!([])
    );
    assert_eq!(
        stack.api.get("/v1/status").await.unwrap()["queue"]["queued"],
        0
    );
    assert!(dropbox_paths(&stack).await.is_empty());

    let broken =
        json!({"record_kind": "ticket", "connection": "dropbox", "folder": "{{ record.key"});
    let (status, body) = stack
        .api
        .raw(
            Method::POST,
            "/v1/rules/tickets/preview",
            Some((broken.to_string().into_bytes(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// The log filters by record, action and time, pages with a cursor, names records by kind
/// and key, and exports as JSON lines or CSV.
#[tokio::test]
async fn log_is_filtered_paged_and_exported() {
    let stack = Stack::start().await;
    // Records first, then the rule: one back-fill pass each, so the log's counts are exact.
    ticket(&stack, "L-1", &["a.txt", "b.txt", "c.txt"]).await;
    ticket(&stack, "L-2", &["d.txt"]).await;
    ticket_rule(&stack).await;
    stack.settle().await;

    let page = stack
        .api
        .get("/v1/log?record=ticket/L-1&action=upload")
        .await
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{page}");
    for e in entries {
        assert_eq!(
            (e["kind"].as_str(), e["key"].as_str()),
            (Some("ticket"), Some("L-1"))
        );
        assert_eq!(e["action"], "upload");
        assert_eq!(e["outcome"], "ok");
    }

    // Paging one by one gives the same entries, newest first.
    let mut ids = Vec::new();
    let mut path = "/v1/log?record=ticket/L-1&action=upload&limit=1".to_owned();
    loop {
        let page = stack.api.get(&path).await.unwrap();
        ids.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/log?record=ticket/L-1&action=upload&limit=1&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, expected);
    assert!(ids.windows(2).all(|w| w[0] > w[1]));

    let future = stack
        .api
        .get("/v1/log?since=2999-01-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(future["entries"], json!([]));
    let past = stack
        .api
        .get("/v1/log?until=2000-01-01T00:00:00Z")
        .await
        .unwrap();
    assert_eq!(past["entries"], json!([]));

    let http = reqwest::Client::new();
    let key = stack.app.api_key().expose().to_owned();
    let export = |query: &str| {
        http.get(format!("{}/v1/log/export{query}", stack.app.base_url()))
            .bearer_auth(&key)
            .send()
    };
    let response = export("?format=csv&action=upload").await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,at,connection,kind,key,path,action,outcome,bytes,duration_ms,error"
    );
    assert_eq!(lines.len(), 1 + 4, "{csv}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains(",ticket,L-") && l.contains(",upload,ok,")),
        "{csv}"
    );

    let jsonl = export("?action=upload&record=ticket/L-2")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parsed: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed.len(), 1, "{jsonl}");
    assert_eq!(parsed[0]["key"], "L-2");

    for bad in [
        "/v1/log?since=yesterday",
        "/v1/log?record=no-slash",
        "/v1/log?format=csv",
        "/v1/log/export?limit=5",
        "/v1/log/export?format=xml",
        "/v1/log?cursor=abc",
    ] {
        let (status, body) = status_of(&stack, Method::GET, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, _) = status_of(&stack, Method::GET, "/v1/log?record=ticket/none").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A JSON body must be one object without repeated keys, at any depth: parsers disagree on
/// which of two values wins, so Ferry takes neither.
#[tokio::test]
async fn json_bodies_are_objects_without_repeated_keys() {
    let stack = Stack::start().await;
    for (body, expect) in [
        ("[null, null]", "must be a JSON object"),
        ("\"text\"", "must be a JSON object"),
        (r#"{"fields": {"a": 1, "a": 2}}"#, "appears twice"),
        (r#"{"fields": {}, "fields": {}}"#, "appears twice"),
        (r#"{"fields": {"x": [{"k": 1, "k": 1}]}}"#, "appears twice"),
        (r#"{"fields": {}} trailing"#, "invalid JSON"),
    ] {
        let (status, value) = stack
            .api
            .raw(
                Method::PUT,
                "/v1/records/ticket/J",
                Some((body.as_bytes().to_vec(), "application/json")),
            )
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {value}");
        let message = value["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expect), "{body}: {value}");
    }
    let (status, _) = status_of(&stack, Method::GET, "/v1/records/ticket/J").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");
    // A `+json` media type with parameters is JSON too.
    let (status, value) = stack
        .api
        .raw(
            Method::PUT,
            "/v1/records/ticket/J",
            Some((
                br#"{"fields": {"a": {"b": 1}}}"#.to_vec(),
                "application/vnd.ferry+json; charset=utf-8",
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{value}");
}

/// `/ready` answers 200 while the store answers and workers run, 503 with the same body
/// shape when no worker runs; neither needs the key.
#[tokio::test]
async fn readiness_reports_store_and_workers() {
    let stack = Stack::start().await;
    let ready = reqwest::get(format!("{}/ready", stack.app.base_url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body, json!({"ready": true, "store": true, "workers": 2}));

    // An engine whose workers were never started is not ready.
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        ferry_store::SqliteStore::open(&dir.path().join("f.db"))
            .await
            .unwrap(),
    );
    let engine = ferry_engine::Engine::new(
        store,
        ferry_store::BlobStore::local(&dir.path().join("blobs")).unwrap(),
        ferry_store::SecretCipher::load_or_create(&dir.path().join("secret.key")).unwrap(),
        ferry_engine::EngineConfig::default(),
    );
    let router = ferry::api::router(ferry::api::ApiState {
        engine,
        api_key: ferry_core::secret::Secret::new("k"),
        max_attachment_bytes: 1024,
        backup: None,
        scratch: dir.path().to_path_buf(),
        console_secure_cookies: false,
        console_endpoints: ferry_dropbox::Endpoints::dropbox(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let not_ready = reqwest::get(format!("http://{addr}/ready")).await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let body: Value = not_ready.json().await.unwrap();
    assert_eq!(body, json!({"ready": false, "store": true, "workers": 0}));
}

/// `GET /metrics` (with the key) counts what Ferry did and reports what it holds, in the
/// OpenMetrics format; raw paths (record keys) never become labels.
#[tokio::test]
async fn metrics_count_calls_passes_and_files() {
    let stack = Stack::start().await;
    ticket_rule(&stack).await;
    ticket(&stack, "secret-key-M1", &["a.txt", "b.txt"]).await;
    stack.settle().await;
    let url = format!("{}/metrics", stack.app.base_url());
    let anonymous = reqwest::get(&url).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(stack.app.api_key().expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    };
    assert_eq!(value("ferry_files{state=\"synced\"}"), 2.0);
    assert_eq!(value("ferry_queue_records{class=\"queued\"}"), 0.0);
    assert!(value("ferry_passes_total{outcome=\"ok\"}") >= 1.0);
    assert!(value("ferry_dropbox_sent_bytes_total") >= 10.0);
    assert!(value("ferry_workers_running") >= 1.0);
    assert!(
        value(
            "ferry_api_requests_total{method=\"PUT\",route=\"/v1/records/{kind}/{key}/attachments/{name}\",status=\"200\"}"
        ) >= 2.0
    );
    assert!(
        text.lines().any(|l| l.starts_with(
            "ferry_dropbox_requests_total{route=\"users/get_current_account\",status=\"200\"}"
        )),
        "{text}"
    );
    assert!(
        !text.contains("secret-key-M1"),
        "a record key became a label"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

/// A team token and a root Dropbox refuses are the caller's to fix: 400 with a message in
/// Ferry's words, never a 502 or Dropbox's own text.
#[tokio::test]
async fn team_tokens_and_refused_roots_are_bad_requests() {
    let emu = crate::support::Emu::start_with(|c| {
        c.team = Some(ferry_emulator::TeamSpec {
            name: "acme".into(),
            token: None,
            members: vec!["default".into()],
        });
    })
    .await;
    let team_token = emu.emulator.team().expect("team").token.clone();
    let base_url = emu.emulator.base_url();
    // A file where the root folder should go.
    emu.client()
        .upload(
            "/Taken",
            bytes::Bytes::from_static(b"x"),
            &ferry_dropbox::WriteMode::Add,
        )
        .await
        .unwrap();
    let stack = Stack::start_on(emu, |_| {}).await;
    let put = |body: Value| {
        let api = &stack.api;
        async move {
            api.raw(
                Method::PUT,
                "/v1/connections/second",
                Some((body.to_string().into_bytes(), "application/json")),
            )
            .await
            .unwrap()
        }
    };
    let (status, body) =
        put(json!({"token": team_token, "root": "/T", "base_url": base_url})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("team token"), "{body}");
    assert!(
        !message.contains("Select-User"),
        "Dropbox's own text leaked: {body}"
    );

    let token = stack.emu.emulator.token();
    let (status, body) = put(json!({"token": token, "root": "/Taken", "base_url": base_url})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a file, not a folder"),
        "{body}"
    );
    // Nothing was stored.
    let connections = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(connections["connections"].as_array().unwrap().len(), 1);
}
