//! The contention and fault model, the admin endpoint, and long-poll.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Harness;
use crate::FaultModel;

#[tokio::test]
async fn write_lock_contention_is_a_json_429() {
    let h = Harness::start().await;
    // A slow commit holds the namespace lock; a second write gives up after 50 ms.
    h.emulator.faults().update(|m| {
        m.lock_hold_ms = 3000;
        m.lock_wait_ms = 50;
    });
    let first = {
        let request = h
            .http
            .post(h.url("files/create_folder_v2"))
            .header("Authorization", h.bearer())
            .header("Content-Type", "application/json")
            .body(json!({"path": "/slow"}).to_string());
        tokio::spawn(async move { request.send().await.map(|r| r.status()) })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = h
        .rpc("files/create_folder_v2", json!({"path": "/fast"}))
        .await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.text()
    );
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(second.headers["content-type"], "application/json");
    let body = second.json();
    assert_eq!(
        body["error"],
        json!({"reason": {".tag": "too_many_write_operations"}}),
        "like Dropbox: no retry_after field"
    );
    assert!(
        body["error_summary"]
            .as_str()
            .unwrap_or_default()
            .starts_with("too_many_write_operations/")
    );
    // Reads are not blocked by the lock, and the commit is visible while the lock is held.
    assert_eq!(h.metadata("/slow").await.status, StatusCode::OK);
    assert_eq!(first.await.unwrap().unwrap(), StatusCode::OK);
    // Once released, the write goes through.
    h.emulator.faults().update(|m| m.lock_hold_ms = 0);
    let again = h
        .rpc("files/create_folder_v2", json!({"path": "/fast"}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
}

/// The default lock model is as strict as Dropbox: 200 single-file uploads from 32 tasks at
/// once into one namespace meet `too_many_write_operations`, while the same 200 one at a
/// time never do.
#[tokio::test]
async fn parallel_commits_into_one_namespace_collide_by_default() {
    let h = std::sync::Arc::new(Harness::start().await);
    let upload = move |n: usize| {
        let h = std::sync::Arc::clone(&h);
        async move {
            h.upload_to(
                "files/upload",
                json!({"path": format!("/p/{n}.txt"), "mode": "overwrite"}),
                b"x",
            )
            .await
            .status
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..32 {
        let upload = upload.clone();
        tasks.spawn(async move {
            let mut refused = 0;
            for n in (worker..200).step_by(32) {
                match upload(n).await {
                    StatusCode::OK => {}
                    StatusCode::TOO_MANY_REQUESTS => refused += 1,
                    other => panic!("upload {n}: {other}"),
                }
            }
            refused
        });
    }
    let mut refused = 0;
    while let Some(n) = tasks.join_next().await {
        refused += n.unwrap();
    }
    assert!(refused > 0, "32 writers at once never met the lock");
    for n in 0..200 {
        assert_eq!(upload(n).await, StatusCode::OK, "upload {n} one at a time");
    }
}

#[tokio::test]
async fn rate_limit_is_a_json_429_with_retry_after() {
    let h = Harness::start_with(|c| {
        c.model.rate_per_sec = 0.2;
        c.model.rate_burst = 3;
    })
    .await;
    for _ in 0..3 {
        let ok = h.rpc("users/get_space_usage", Value::Null).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let limited = h.rpc("users/get_space_usage", Value::Null).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers["retry-after"], "5");
    assert_eq!(
        limited.json()["error"],
        json!({"reason": {".tag": "too_many_requests"}, "retry_after": 5})
    );
    // Turning the limit off at runtime lets requests through at once.
    h.emulator.faults().update(|m| m.rate_limit = false);
    assert_eq!(
        h.rpc("users/get_space_usage", Value::Null).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_endpoint_reads_and_patches_the_model() {
    let h = Harness::start().await;
    let url = format!("{}/admin/model", h.emulator.base_url());
    let current: Value = h.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(current["write_lock"], true);
    assert_eq!(current["lock_hold_ms"], FaultModel::default().lock_hold_ms);
    // Changing the model needs the primary account's token.
    let anonymous = h
        .http
        .put(&url)
        .body(json!({"p_server_error": 1.0}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.emulator.faults().model().p_server_error, 0.0);
    let patched = h
        .http
        .put(&url)
        .bearer_auth(h.emulator.token())
        .body(json!({"p_server_error": 1.0, "latency_ms": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(h.emulator.faults().model().p_server_error, 1.0);
    let failing = h.rpc("users/get_space_usage", Value::Null).await;
    assert_eq!(failing.status, StatusCode::SERVICE_UNAVAILABLE);
    let bad = h
        .http
        .put(&url)
        .bearer_auth(h.emulator.token())
        .body(json!({"p_server_error": 7}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unknown = h
        .http
        .put(&url)
        .bearer_auth(h.emulator.token())
        .body(json!({"nope": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    h.emulator.set_model(FaultModel::off());
    assert_eq!(
        h.rpc("users/get_space_usage", Value::Null).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn dropped_connection_still_applies_the_change() {
    let h = Harness::start().await;
    h.emulator.faults().update(|m| m.p_drop_after_commit = 1.0);
    let result = async {
        let response = h
            .http
            .post(h.url("files/create_folder_v2"))
            .header("Authorization", h.bearer())
            .header("Content-Type", "application/json")
            .body(json!({"path": "/applied"}).to_string())
            .send()
            .await?;
        response.bytes().await
    }
    .await;
    assert!(result.is_err(), "the client never gets the result");
    h.emulator.faults().update(|m| m.p_drop_after_commit = 0.0);
    let meta = h.metadata("/applied").await;
    assert_eq!(meta.status, StatusCode::OK, "the change was applied");
    // Reads are never dropped.
    h.emulator.faults().update(|m| m.p_drop_after_commit = 1.0);
    assert_eq!(h.metadata("/applied").await.status, StatusCode::OK);
}

#[tokio::test]
async fn cursor_resets_by_fault_and_age() {
    let h = Harness::start().await;
    let cursor = h.rpc("files/list_folder", json!({"path": ""})).await.json()["cursor"].clone();
    h.emulator.faults().update(|m| m.p_cursor_reset = 1.0);
    let reply = h
        .rpc("files/list_folder/continue", json!({"cursor": cursor}))
        .await;
    assert_eq!(reply.route_error(), json!({".tag": "reset"}));
    h.emulator.faults().update(|m| {
        m.p_cursor_reset = 0.0;
        m.cursor_max_age_secs = Some(60);
    });
    let fresh = h
        .rpc("files/list_folder/continue", json!({"cursor": cursor}))
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    let mut old = crate::journal::Cursor::decode(cursor.as_str().unwrap()).unwrap();
    old.issued = Some(crate::wire::unix_now() - 120);
    let reply = h
        .rpc(
            "files/list_folder/continue",
            json!({"cursor": old.encode()}),
        )
        .await;
    assert_eq!(reply.route_error(), json!({".tag": "reset"}));
}

async fn longpoll(h: &Harness, arg: Value, auth: bool) -> super::Reply {
    let mut request = h
        .http
        .post(h.url("files/list_folder/longpoll"))
        .header("Content-Type", "application/json")
        .body(arg.to_string());
    if auth {
        request = request.header("Authorization", h.bearer());
    }
    h.send(request).await
}

#[tokio::test]
async fn longpoll_wakes_on_change_and_times_out() {
    let h = Harness::start().await;
    h.upload("/watched/a.txt", b"a").await;
    let cursor = h
        .rpc(
            "files/list_folder/get_latest_cursor",
            json!({"path": "/watched"}),
        )
        .await
        .json()["cursor"]
        .clone();
    let with_auth = longpoll(&h, json!({"cursor": cursor}), true).await;
    assert_eq!(with_auth.status, StatusCode::BAD_REQUEST);
    assert!(
        with_auth.text().contains("Authorization"),
        "{}",
        with_auth.text()
    );
    let short = longpoll(&h, json!({"cursor": cursor, "timeout": 10}), false).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let garbage = longpoll(&h, json!({"cursor": "zzz"}), false).await;
    assert_eq!(garbage.route_error(), json!({".tag": "reset"}));

    // A change outside the scope does not wake it; one inside does, long before the timeout.
    let started = Instant::now();
    let waiting = {
        let request = h
            .http
            .post(h.url("files/list_folder/longpoll"))
            .header("Content-Type", "application/json")
            .body(json!({"cursor": cursor, "timeout": 120}).to_string());
        tokio::spawn(async move { request.send().await?.json::<Value>().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    h.upload("/elsewhere.txt", b"x").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "not woken by a change out of scope");
    h.upload("/watched/b.txt", b"b").await;
    let result = waiting.await.unwrap().unwrap();
    assert_eq!(result, json!({"changes": true}));
    assert!(started.elapsed() < Duration::from_secs(100));

    // Pending changes answer at once; with a cap and nothing new, `changes: false`.
    let immediate = longpoll(&h, json!({"cursor": cursor}), false).await;
    assert_eq!(immediate.json()["changes"], true);
    let latest = h
        .rpc(
            "files/list_folder/get_latest_cursor",
            json!({"path": "/watched"}),
        )
        .await
        .json()["cursor"]
        .clone();
    h.emulator.faults().update(|m| {
        m.longpoll_cap_ms = Some(100);
        m.longpoll_backoff_secs = Some(7);
    });
    let quiet = longpoll(&h, json!({"cursor": latest}), false).await;
    assert_eq!(quiet.json(), json!({"changes": false, "backoff": 7}));
}
