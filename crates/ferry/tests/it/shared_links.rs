//! Shared links through the API and the emulator: made after the commit for rules with
//! `links`, reused when Dropbox already has one, kept across folder moves (links follow the
//! file id), shown on the record and its sync state; refused settings reach the admin as a
//! clear error on the file while the sync itself goes on.

use crate::support::Stack;
use ferry_dropbox::LinkAudience;
use serde_json::{Value, json};

fn rule(links: Value) -> Value {
    let mut rule = json!({"record_kind": "order", "connection": "dropbox",
                          "folder": "Orders/{{ record.fields.status }}/{{ record.key }}"});
    if let Value::Object(extra) = links {
        rule.as_object_mut().unwrap().extend(extra);
    }
    rule
}

fn file<'a>(sync: &'a Value, name: &str) -> &'a Value {
    sync["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["attachment"] == name)
        .unwrap_or_else(|| panic!("no file {name} in {sync}"))
}

fn shared(sync: &Value, name: &str) -> bool {
    file(sync, name)["link"]["kind"] == "shared"
}

#[tokio::test]
async fn links_are_made_after_the_commit_reused_and_follow_moves() {
    let stack = Stack::start().await;
    stack
        .api
        .put_json("/v1/rules/orders", &rule(json!({})))
        .await
        .unwrap();
    stack
        .api
        .put_json(
            "/v1/records/order/1001",
            &json!({"fields": {"status": "new"}}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/order/1001/attachments/invoice.pdf",
            b"invoice".to_vec(),
        )
        .await
        .unwrap();
    stack.settle().await;

    // Links off: the file's place in Dropbox, said to be only that.
    let sync = stack.api.get("/v1/records/order/1001/sync").await.unwrap();
    let link = &file(&sync, "invoice.pdf")["link"];
    assert_eq!(link["kind"], "home", "{sync}");
    assert_eq!(
        link["url"],
        "https://www.dropbox.com/home/Ferry/Orders/new/1001/invoice.pdf"
    );

    // Someone already shared the file in Dropbox: Ferry adopts that link.
    let dbx = stack.emu.client();
    let existing = dbx
        .shared_link(
            "/Ferry/Orders/new/1001/invoice.pdf",
            LinkAudience::Public,
            None,
        )
        .await
        .unwrap();
    assert!(existing.created);
    stack
        .api
        .put_json(
            "/v1/rules/orders",
            &rule(json!({"links": "public", "folder_links": true})),
        )
        .await
        .unwrap();
    stack
        .api
        .put_bytes(
            "/v1/records/order/1001/attachments/photo.jpg",
            b"photo".to_vec(),
        )
        .await
        .unwrap();
    let sync = stack
        .eventually("/v1/records/order/1001/sync", |s| {
            s["files"].as_array().is_some_and(|f| f.len() == 2)
                && shared(s, "invoice.pdf")
                && shared(s, "photo.jpg")
                && s["bindings"][0]["link"]["kind"] == "shared"
        })
        .await;
    let invoice = file(&sync, "invoice.pdf")["link"].clone();
    assert_eq!(invoice["url"], existing.url.as_str(), "the link was reused");
    assert_eq!(invoice["audience"], "public");
    let photo_url = file(&sync, "photo.jpg")["link"]["url"].clone();
    assert_ne!(photo_url, invoice["url"]);
    let folder_url = sync["bindings"][0]["link"]["url"].clone();
    assert_eq!(
        dbx.direct_link("/Ferry/Orders/new/1001")
            .await
            .unwrap()
            .map(|l| l.url),
        folder_url.as_str().map(str::to_owned),
        "the folder's link is Dropbox's"
    );

    // The record shows each attachment's link.
    let record = stack.api.get("/v1/records/order/1001").await.unwrap();
    let attachment = record["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "photo.jpg")
        .unwrap();
    assert_eq!(attachment["links"][0]["url"], photo_url);

    // The record moves: its folder moves in Dropbox, and the links go with the files.
    stack
        .api
        .put_json(
            "/v1/records/order/1001",
            &json!({"fields": {"status": "paid"}}),
        )
        .await
        .unwrap();
    stack.settle().await;
    let sync = stack.api.get("/v1/records/order/1001/sync").await.unwrap();
    assert_eq!(
        file(&sync, "photo.jpg")["path"],
        "/Ferry/Orders/paid/1001/photo.jpg"
    );
    assert_eq!(file(&sync, "photo.jpg")["link"]["url"], photo_url);
    assert_eq!(
        dbx.direct_link("/Ferry/Orders/paid/1001/photo.jpg")
            .await
            .unwrap()
            .map(|l| l.url),
        photo_url.as_str().map(str::to_owned),
        "Dropbox still serves the same link at the new place"
    );
    assert_eq!(sync["bindings"][0]["link"]["url"], folder_url);

    // Each link is in the sync log.
    let log = stack.api.get("/v1/log?action=link").await.unwrap();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{log}");
    assert!(entries.iter().all(|e| e["outcome"] == "ok"));
}

/// Team-only links on an account outside a team: Dropbox refuses them; the file still syncs,
/// its link says why there is no shared link, and Ferry does not keep asking.
#[tokio::test]
async fn refused_link_settings_are_reported_and_do_not_block_the_sync() {
    let stack = Stack::start().await;
    stack
        .api
        .put_json(
            "/v1/rules/orders",
            &rule(json!({"links": "team", "link_expiry_days": 7})),
        )
        .await
        .unwrap();
    stack
        .api
        .put_json("/v1/records/order/7", &json!({"fields": {"status": "new"}}))
        .await
        .unwrap();
    stack
        .api
        .put_bytes("/v1/records/order/7/attachments/a.pdf", b"a".to_vec())
        .await
        .unwrap();
    let sync = stack
        .eventually("/v1/records/order/7/sync", |s| {
            s["files"][0]["link"]["error"].is_string()
        })
        .await;
    let a = file(&sync, "a.pdf");
    assert_eq!(a["state"], "synced");
    assert_eq!(a["link"]["kind"], "home");
    let error = a["link"]["error"].as_str().unwrap();
    assert!(error.contains("Business"), "{error}");
    let tries = || async {
        let log = stack
            .api
            .get("/v1/log?action=link&outcome=failed")
            .await
            .unwrap();
        log["entries"].as_array().unwrap().len()
    };
    assert_eq!(tries().await, 1);
    // Another pass does not make Ferry ask again before the retry is due.
    stack.api.post("/v1/records/order/7/sync").await.unwrap();
    stack.settle().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(tries().await, 1);
    // A rule asking for expiry without links is refused when saved.
    let (status, body) = stack
        .api
        .raw(
            reqwest::Method::PUT,
            "/v1/rules/orders",
            Some((
                rule(json!({"link_expiry_days": 7}))
                    .to_string()
                    .into_bytes(),
                "application/json",
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("link_expiry_days"), "{body}");
}
