//! Several accounts, quotas and shared links.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::Harness;
use crate::AccountSpec;

#[tokio::test]
async fn accounts_have_their_own_namespace_and_token() {
    let h = Harness::start_with(|c| {
        c.accounts = vec![
            AccountSpec {
                name: "bob".into(),
                token: Some("bob-token".into()),
                quota_bytes: Some(100),
            },
            AccountSpec::new("carol"),
        ];
    })
    .await;
    let accounts = h.emulator.accounts().to_vec();
    assert_eq!(accounts.len(), 3);
    assert_eq!(accounts[0].name, "default");
    assert_eq!(h.emulator.token_for("bob"), Some("bob-token"));
    let carol = h.emulator.token_for("carol").unwrap().to_string();
    assert_ne!(carol, h.emulator.token());
    assert_ne!(accounts[1].namespace_id, accounts[0].namespace_id);

    h.upload("/mine.txt", b"default's").await;
    let bob_sees = h
        .rpc_as("bob-token", "files/list_folder", json!({"path": ""}))
        .await
        .json();
    assert_eq!(bob_sees["entries"], json!([]));
    let me = h
        .rpc_as("bob-token", "users/get_current_account", Value::Null)
        .await
        .json();
    assert_eq!(me["account_id"], accounts[1].account_id);
    assert_eq!(
        me["root_info"]["root_namespace_id"],
        accounts[1].namespace_id
    );
    let usage = h
        .rpc_as("bob-token", "users/get_space_usage", Value::Null)
        .await
        .json();
    assert_eq!(usage["allocation"]["allocated"], 100);
    // A cursor of one account does not work for another.
    let cursor = h
        .rpc_as(&carol, "files/list_folder", json!({"path": ""}))
        .await
        .json()["cursor"]
        .clone();
    let reply = h
        .rpc("files/list_folder/continue", json!({"cursor": cursor}))
        .await;
    assert_eq!(reply.route_error(), json!({".tag": "reset"}));

    // `restart` uses a plain config: only the primary account, with its stored token.
    let h = h.restart().await;
    let again = h.emulator.accounts().to_vec();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].token, accounts[0].token);
}

#[tokio::test]
async fn quota_is_enforced() {
    let h = Harness::start_with(|c| c.quota_bytes = 10).await;
    h.upload("/a.bin", b"12345678").await;
    let over = h
        .upload_to("files/upload", json!({"path": "/b.bin"}), b"123")
        .await;
    let error = over.route_error();
    assert_eq!(error["reason"], json!({".tag": "insufficient_space"}));
    assert!(over.summary().starts_with("path/insufficient_space/"));
    // Overwriting in place only counts the difference.
    let replaced = h
        .upload_to(
            "files/upload",
            json!({"path": "/a.bin", "mode": "overwrite"}),
            b"1234567890",
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    let usage = h.rpc("users/get_space_usage", Value::Null).await.json();
    assert_eq!(
        usage,
        json!({"used": 10, "allocation": {".tag": "individual", "allocated": 10}})
    );
    let copy = h
        .rpc(
            "files/copy_v2",
            json!({"from_path": "/a.bin", "to_path": "/c.bin"}),
        )
        .await;
    assert_eq!(copy.route_error(), json!({".tag": "insufficient_quota"}));
    h.rpc("files/delete_v2", json!({"path": "/a.bin"})).await;
    let usage = h.rpc("users/get_space_usage", Value::Null).await.json();
    assert_eq!(usage["used"], 0);
}

#[tokio::test]
async fn shared_links() {
    let h = Harness::start().await;
    h.upload("/share/doc.txt", b"doc").await;
    // A basic account may not make team-only or expiring links.
    for settings in [
        json!({"audience": {".tag": "team"}}),
        json!({"expires": "2999-01-01T00:00:00Z"}),
    ] {
        let refused = h
            .rpc(
                "sharing/create_shared_link_with_settings",
                json!({"path": "/Share/doc.txt", "settings": settings}),
            )
            .await;
        assert_eq!(
            refused.route_error(),
            json!({".tag": "settings_error", "settings_error": {".tag": "not_authorized"}})
        );
    }
    let created = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/Share/doc.txt", "settings": {"audience": {".tag": "public"}}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let link = created.json();
    assert_eq!(link[".tag"], "file");
    assert_eq!(link["name"], "doc.txt");
    assert_eq!(
        link["link_permissions"]["effective_audience"],
        json!({".tag": "public"})
    );
    let url = link["url"].as_str().unwrap().to_string();
    let again = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/share/doc.txt"}),
        )
        .await;
    let error = again.route_error();
    assert_eq!(error[".tag"], "shared_link_already_exists");
    assert_eq!(error["shared_link_already_exists"][".tag"], "metadata");
    assert_eq!(error["shared_link_already_exists"]["metadata"]["url"], url);
    let folder = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/share"}),
        )
        .await
        .json();
    assert_eq!(folder[".tag"], "folder");
    let missing = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/nope"}),
        )
        .await;
    assert_eq!(
        missing.route_error(),
        json!({".tag": "path", "path": {".tag": "not_found"}})
    );

    let count = |v: &Value| v["links"].as_array().map_or(0, Vec::len);
    let all = h.rpc("sharing/list_shared_links", json!({})).await.json();
    assert_eq!(count(&all), 2);
    let for_doc = h
        .rpc(
            "sharing/list_shared_links",
            json!({"path": "/share/doc.txt"}),
        )
        .await
        .json();
    assert_eq!(
        count(&for_doc),
        2,
        "the parent folder's link gives access too"
    );
    let direct = h
        .rpc(
            "sharing/list_shared_links",
            json!({"path": "/share/doc.txt", "direct_only": true}),
        )
        .await
        .json();
    assert_eq!(count(&direct), 1);

    // Links survive a restart and follow moves.
    let h = h.restart().await;
    h.rpc(
        "files/move_v2",
        json!({"from_path": "/share/doc.txt", "to_path": "/moved.txt"}),
    )
    .await;
    let moved = h
        .rpc(
            "sharing/list_shared_links",
            json!({"path": "/moved.txt", "direct_only": true}),
        )
        .await
        .json();
    assert_eq!(moved["links"][0]["url"], url);
    assert_eq!(moved["links"][0]["path_lower"], "/moved.txt");

    let revoked = h
        .rpc("sharing/revoke_shared_link", json!({"url": url}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.text(), "null");
    let twice = h
        .rpc("sharing/revoke_shared_link", json!({"url": url}))
        .await;
    assert_eq!(
        twice.route_error(),
        json!({".tag": "shared_link_not_found"})
    );
    let all = h.rpc("sharing/list_shared_links", json!({})).await.json();
    assert_eq!(count(&all), 1);
}
