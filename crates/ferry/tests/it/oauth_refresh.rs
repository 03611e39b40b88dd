//! OAuth connections: access tokens expire and are refreshed without anyone noticing; a
//! revoked refresh token marks the connection for a reconnect.

use crate::support::{Emu, Stack};
use serde_json::{Value, json};
use std::time::Duration;

async fn files_in(emu: &Emu, folder: &str) -> usize {
    emu.client()
        .list_all(folder, true)
        .await
        .map(|(entries, _)| {
            entries
                .iter()
                .filter(|e| matches!(e, ferry_dropbox::Entry::File(_)))
                .count()
        })
        .unwrap_or(0)
}

/// Expiring access tokens are refreshed transparently; a revoked grant ends in
/// `needs_reconnect`, with the work waiting.
#[tokio::test]
async fn tokens_refresh_and_revocation_needs_reconnect() {
    let emu = Emu::start_with(|c| c.token_lifetime_secs = 1).await;
    let refresh = ferry::simulate::oauth_refresh_token(&emu.emulator.base_url())
        .await
        .expect("a refresh token from the consent flow");
    let stack = Stack::start_on(emu, |_| {}).await;
    let base = stack.emu.emulator.base_url();
    stack
        .api
        .put_json(
            "/v1/connections/oauth",
            &json!({"refresh_token": refresh, "app_key": "ferry-app", "app_secret": "ferry-secret", "root": "/OAuth", "base_url": base}),
        )
        .await
        .expect("refresh token accepted");
    stack
        .api
        .put_json(
            "/v1/rules/docs",
            &json!({"record_kind": "doc", "connection": "oauth", "folder": "{{ record.key }}"}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_json("/v1/records/doc/D1", &json!({"fields": {}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/doc/D1/attachments/a.txt", b"a".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    assert_eq!(files_in(&stack.emu, "/OAuth/D1").await, 1);

    // The access token expires; the next write refreshes it on its own.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    stack
        .api
        .put_bytes("/v1/records/doc/D1/attachments/b.txt", b"b".to_vec())
        .await
        .unwrap();
    stack.settle().await;
    assert_eq!(
        files_in(&stack.emu, "/OAuth/D1").await,
        2,
        "synced after a refresh"
    );
    let listed = stack.api.get("/v1/connections").await.unwrap();
    assert!(
        !listed.to_string().contains(&refresh),
        "the refresh token is never shown"
    );

    // The user revokes the app: refreshing fails, the connection waits for a reconnect.
    // (Revoking needs a live access token of the same grant.)
    let fresh: Value = reqwest::Client::new()
        .post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", "ferry-app"),
            ("client_secret", "ferry-secret"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let revoked = reqwest::Client::new()
        .post(format!("{base}/2/auth/token/revoke"))
        .bearer_auth(fresh["access_token"].as_str().expect("access token"))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    stack
        .api
        .put_bytes("/v1/records/doc/D1/attachments/c.txt", b"c".to_vec())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = stack.api.get("/v1/connections").await.unwrap();
        let oauth = listed["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "oauth")
            .cloned()
            .unwrap();
        if oauth["needs_reconnect"].is_string() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never marked: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = stack.api.get("/v1/records/doc/D1/sync").await.unwrap();
    assert_eq!(state["queued"], json!(true), "the work waits: {state}");
    assert_eq!(files_in(&stack.emu, "/OAuth/D1").await, 2);
}
