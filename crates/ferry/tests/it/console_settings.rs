//! The console's settings pages and the rest of its actions, in headless Chromium: webhooks
//! (add with the secret shown once, deliveries, send again, remove), backups (make one,
//! list, download), an app-folder connection whose root moves with its records, a zip of
//! picked files, dead letters re-queued from the dashboard, and a team token met during an
//! account switch.

use crate::browser::Browser;
use crate::console::{PASSWORD, no_redirects, post_form, sign_in, sign_in_with_a_link};
use crate::support::{Emu, Stack};
use ferry_core::secret::Secret;
use ferry_dropbox::{DropboxClient, Endpoints, Entry};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// Waits until `path` exists in Dropbox for `client`; its metadata.
async fn wait_in_dropbox(client: &DropboxClient, path: &str) -> Entry {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(entry) = client.metadata(path).await {
            return entry;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never appeared in Dropbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn file_id(entry: &Entry) -> String {
    match entry {
        Entry::File(f) => f.id.clone(),
        other => panic!("not a file: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_added_watched_and_removed_in_the_console() {
    let (url, seen) = crate::webhooks::receiver_with(false).await;
    let stack = Stack::start_with(|c| {
        c.webhooks_allow_internal = true;
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let base = stack.app.base_url();
    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;

    // Without [backup], the backups page says how to set it up.
    b.goto(&format!("{base}/console/backups")).await;
    assert!(b.text().await.contains("[backup]"), "{}", b.text().await);

    b.goto(&format!("{base}/console/webhooks")).await;
    assert!(b.text().await.contains("No webhooks yet"));
    // A URL that is none: the form comes back with the reason and the ticks kept.
    b.fill("w-url", "not a url").await;
    b.click("input[name='event:file.synced']").await;
    b.click_text("Add webhook").await;
    let text = b.text().await;
    assert!(text.contains("webhook url"), "{text}");
    assert!(
        b.client
            .find(fantoccini::Locator::Css("input[name='event:file.synced']"))
            .await
            .unwrap()
            .prop("checked")
            .await
            .unwrap()
            .as_deref()
            == Some("true"),
        "the ticked event stays ticked"
    );
    b.fill("w-url", &url).await;
    b.click_text("Add webhook").await;
    let text = b.text().await;
    assert!(text.contains("shown only now"), "{text}");
    let secret = b
        .client
        .find(fantoccini::Locator::Id("new-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    b.screenshot("20-webhook-added").await;
    let list = stack.api.get("/v1/webhooks").await.unwrap();
    assert_eq!(list["webhooks"][0]["url"], url.as_str());
    assert_eq!(list["webhooks"][0]["events"], json!(["file.synced"]));
    // Shown once: the list page does not have it.
    b.goto(&format!("{base}/console/webhooks")).await;
    assert!(!b.client.source().await.unwrap().contains(&secret));

    // A synced file is delivered, and the deliveries page shows it; "Send again" repeats it
    // with the same event id.
    stack
        .push_rule("orders", "order", "Orders/{{ record.key }}")
        .await;
    stack.record_with("order", "H1", &["a.pdf"]).await;
    crate::webhooks::wait_for(&seen, 1, 15).await;
    b.click_text("Deliveries").await;
    let text = b.reload_until("delivered").await;
    assert!(text.contains("file.synced"), "{text}");
    b.screenshot("21-webhook-deliveries").await;
    b.click_text("Send again").await;
    assert!(
        b.text().await.contains("sent again now"),
        "{}",
        b.text().await
    );
    crate::webhooks::wait_for(&seen, 2, 15).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].id, seen[1].id, "the same event again");
        assert!(seen[0].body.contains("a.pdf"), "{}", seen[0].body);
    }

    // Removing asks first; then no subscription is left.
    b.goto(&format!("{base}/console/webhooks")).await;
    b.click_text("Remove…").await;
    assert!(b.text().await.contains("Remove the webhook to"));
    b.click_text("Remove webhook").await;
    assert!(
        b.text().await.contains("Removed webhook"),
        "{}",
        b.text().await
    );
    let list = stack.api.get("/v1/webhooks").await.unwrap();
    assert_eq!(list["webhooks"], json!([]));
    // An address that names no webhook is a page, not a bare error.
    b.goto(&format!("{base}/console/webhooks/nope")).await;
    assert!(b.text().await.contains("No such webhook"));
}

#[tokio::test]
async fn backups_are_made_listed_and_downloaded_in_the_console() {
    let stack = Stack::start_with(|c| {
        c.backup_connection = Some("dropbox".into());
        c.backup_keep = 3;
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let base = stack.app.base_url();
    stack.record_with("order", "B1", &["a.pdf"]).await;
    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;
    b.goto(&format!("{base}/console/backups")).await;
    let text = b.text().await;
    assert!(
        text.contains("only when asked")
            && text.contains("the newest 3")
            && text.contains("None yet"),
        "{text}"
    );
    b.click_text("Back up now").await;
    let text = b.text().await;
    assert!(text.contains("Backed up and verified"), "{text}");
    assert!(
        text.contains("made and verified"),
        "the run is listed: {text}"
    );
    b.screenshot("22-backups").await;
    let list = stack.api.get("/v1/backups").await.unwrap();
    let name = list["backups"][0]["name"].as_str().unwrap().to_owned();
    let size = list["backups"][0]["size"].as_u64().unwrap();
    assert!(text.contains(&name), "{text}");
    // Its download link streams the backup from Dropbox, with the session.
    let file = b
        .get_signed_in(&format!("{base}/console/backups/{name}"))
        .await;
    assert_eq!(file.status(), StatusCode::OK);
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&name)
    );
    let bytes = file.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(&bytes[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    // Without the session there is no download.
    let signed_out = no_redirects()
        .get(format!("{base}/console/backups/{name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    // A name that is no backup is a page saying so.
    b.goto(&format!("{base}/console/backups/notes.txt")).await;
    assert!(b.text().await.contains("Not downloaded"));
}

/// A connection through an app-folder app: the console says so, its root is inside the app
/// folder, and moving the root moves each record's folder there (the same Dropbox file, not
/// a new upload). A zip of picked files holds just those.
#[tokio::test]
async fn an_app_folder_connection_shows_it_and_its_root_moves_with_its_records() {
    let emu = Emu::start().await;
    let base_url = emu.emulator.base_url();
    let stack = Stack::start_on(emu, move |c| {
        c.dropbox_app_key = Some("ferry-folder-app".into());
        c.dropbox_app_secret = Some(Secret::new("ferry-folder-secret"));
        c.dropbox_app_access = "app_folder".into();
        c.dropbox_base_url = Some(base_url);
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let base = stack.app.base_url();
    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;
    b.goto(&format!("{base}/console/connections")).await;
    assert!(
        b.text()
            .await
            .contains("reaches only its own folder (Apps/…)"),
        "the connect form says where the root will be"
    );
    b.fill("c-name", "studio").await;
    b.fill("c-root", "/Studio").await;
    b.click_text("Connect Dropbox").await;
    b.click_text("Allow").await;
    let text = b.text().await;
    assert!(text.contains("Connected studio to"), "{text}");
    assert!(text.contains("inside the app's own folder"), "{text}");
    let list = stack.api.get("/v1/connections").await.unwrap();
    let connections = list["connections"].as_array().unwrap();
    let studio = connections.iter().find(|c| c["name"] == "studio").unwrap();
    assert_eq!(studio["app_access"], "app_folder");
    let dropbox = connections.iter().find(|c| c["name"] == "dropbox").unwrap();
    assert!(dropbox["app_access"].is_null(), "a token nobody described");

    stack
        .api
        .put_json(
            "/v1/rules/jobs",
            &json!({"record_kind": "job", "connection": "studio", "folder": "Jobs/{{ record.key }}"}),
        )
        .await
        .unwrap();
    stack
        .record_with("job", "J1", &["plan.pdf", "notes.txt"])
        .await;
    stack.settle().await;
    // The account's whole Dropbox (the emulator's own token) shows where the app put it.
    let owner = stack.emu.client();
    let before = wait_in_dropbox(&owner, "/Apps/Ferry/Studio/Jobs/J1/plan.pdf").await;

    // Pick the files to zip: one of the two.
    let session = b.cookie("ferry_session").await;
    let cookie = format!("ferry_session={session}");
    let http = no_redirects();
    let zip = post_form(
        &http,
        &base,
        &cookie,
        "/console/files?connection=studio&path=%2FStudio%2FJobs%2FJ1",
        "/console/files/zip",
        &[
            ("connection", "studio"),
            ("path", "/Studio/Jobs/J1"),
            ("pick:/Studio/Jobs/J1/plan.pdf", "on"),
        ],
    )
    .await;
    assert_eq!(zip.status(), StatusCode::OK);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("picked.zip");
    std::fs::write(&file, zip.bytes().await.unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import zipfile,sys,json; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(json.dumps({n: z.read(n).decode() for n in z.namelist()}))")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries, json!({"plan.pdf": "J1/plan.pdf"}));
    // Nothing picked, or a pick outside the folder shown: refused in words.
    let none = post_form(
        &http,
        &base,
        &cookie,
        "/console/files?connection=studio",
        "/console/files/zip",
        &[("connection", "studio"), ("path", "/Studio/Jobs/J1")],
    )
    .await;
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    assert!(none.text().await.unwrap().contains("select at least one"));
    let outside = post_form(
        &http,
        &base,
        &cookie,
        "/console/files?connection=studio",
        "/console/files/zip",
        &[
            ("connection", "studio"),
            ("path", "/Studio/Jobs/J1"),
            ("pick:/Studio/other.pdf", "on"),
        ],
    )
    .await;
    assert_eq!(outside.status(), StatusCode::BAD_REQUEST);
    b.goto(&format!(
        "{base}/console/files?connection=studio&path=%2FStudio%2FJobs%2FJ1"
    ))
    .await;
    b.screenshot("23-file-manager-pick").await;

    // Move the root: the picker browses the app folder, and the record's folder follows.
    b.goto(&format!("{base}/console/connections")).await;
    b.click("a[href='/console/connections/studio/root']").await;
    let text = b.text().await;
    assert!(
        text.contains("reaches only its app folder") && text.contains("In the app folder"),
        "{text}"
    );
    b.click_text("up one folder").await;
    assert!(b.text().await.contains("Studio/"), "{}", b.text().await);
    b.screenshot("24-root-picker").await;
    b.fill("r-root", "/Studio 2026").await;
    b.click_text("Move the root here").await;
    let text = b.text().await;
    assert!(text.contains("studio's root is now /Studio 2026"), "{text}");
    let after = wait_in_dropbox(&owner, "/Apps/Ferry/Studio 2026/Jobs/J1/plan.pdf").await;
    assert_eq!(
        file_id(&before),
        file_id(&after),
        "moved, not uploaded again"
    );
    stack.settle().await;
    assert!(
        owner
            .metadata("/Apps/Ferry/Studio/Jobs/J1/plan.pdf")
            .await
            .is_err(),
        "nothing left at the old place"
    );
    let state = stack.api.get("/v1/records/job/J1/sync").await.unwrap();
    assert_eq!(state["summary"]["synced"], 2, "{state}");
    // The API moves it too, and refuses a root that is no folder path.
    let (status, body) = stack
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/connections/studio/root",
            Some((br#"{"root": "no-slash"}"#.to_vec(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = stack
        .api
        .raw(
            reqwest::Method::POST,
            "/v1/connections/studio/root",
            Some((
                br#"{"root": "/Studio 2026/Jobs/J1/inner"}"#.to_vec(),
                "application/json",
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("a record's folder"),
        "{body}"
    );
    stack
        .api
        .post_json("/v1/connections/studio/root", &json!({"root": "/Studio"}))
        .await
        .unwrap();
    let back = wait_in_dropbox(&owner, "/Apps/Ferry/Studio/Jobs/J1/plan.pdf").await;
    assert_eq!(file_id(&before), file_id(&back));
}

/// Records that failed for too long are dead letters on the dashboard; one is re-queued by
/// its own button, the rest with "Re-queue all", and they sync.
#[tokio::test]
async fn dead_letters_are_requeued_from_the_dashboard() {
    let stack = Stack::start_with(|c| {
        c.give_up_after_secs = 1;
        c.max_backoff_secs = 1;
        c.client_attempts = 1;
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let base = stack.app.base_url();
    stack
        .push_rule("orders", "order", "Orders/{{ record.key }}")
        .await;
    stack
        .emu
        .emulator
        .faults()
        .update(|m| m.p_server_error = 1.0);
    stack.record_with("order", "D1", &["a.pdf"]).await;
    stack.record_with("order", "D2", &["b.pdf"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = stack.api.get("/v1/status").await.unwrap();
        if status["queue"]["dead"] == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the records never became dead letters: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack
        .emu
        .emulator
        .faults()
        .update(|m| m.p_server_error = 0.0);
    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;
    let text = b.text().await;
    assert!(
        text.contains("order/D1") && text.contains("order/D2") && text.contains("Re-queue all 2"),
        "{text}"
    );
    assert!(
        text.contains("0\nrecords waiting for a pass"),
        "dead letters wait for the admin, not for a pass: {text}"
    );
    b.screenshot("25-dead-letters").await;
    // The first row's button: that record only.
    b.click_text("Re-queue").await;
    assert!(b.text().await.contains("Queued"), "{}", b.text().await);
    let first = stack
        .eventually("/v1/status", |s| s["queue"]["dead"] == 1)
        .await;
    assert_eq!(first["queue"]["dead"], 1);
    b.goto(&format!("{base}/console")).await;
    b.click_text("Re-queue all 1").await;
    assert!(
        b.text().await.contains("Re-queued 1 records"),
        "{}",
        b.text().await
    );
    stack.settle().await;
    for key in ["D1", "D2"] {
        let state = stack
            .api
            .get(&format!("/v1/records/order/{key}/sync"))
            .await
            .unwrap();
        assert_eq!(state["summary"]["synced"], 1, "{key}: {state}");
    }
    let status = stack.api.get("/v1/status").await.unwrap();
    assert_eq!(status["queue"]["dead"], 0, "{status}");
}

/// A team token pasted for a connection of another account: the admin picks the member
/// first, then confirms the switch, and the connection ends up acting as that member.
#[tokio::test]
async fn a_team_token_met_in_an_account_switch_asks_for_the_member_then_the_switch() {
    let (emu, bob) = crate::console::team_emulator().await;
    let bob_token = emu.emulator.token_for("bob").unwrap().to_owned();
    let base_url = emu.emulator.base_url();
    let stack = Stack::start_on(emu, move |c| {
        c.dropbox_base_url = Some(base_url);
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    stack
        .push_rule("orders", "order", "Orders/{{ record.key }}")
        .await;
    stack.record_with("order", "S1", &["kept.pdf"]).await;
    stack.settle().await;
    let base = stack.app.base_url();
    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;
    b.goto(&format!("{base}/console/connections?tab=token"))
        .await;
    b.fill("t-name", "dropbox").await;
    b.fill("t-root", "/Ferry").await;
    b.fill("t-token", "team-token").await;
    b.click_text("Save connection").await;
    assert!(b.path().await.starts_with("/console/connections/pick/"));
    b.click("input[value='".to_owned() + &bob + "']").await;
    b.click_text("Connect as this member").await;
    let text = b.text().await;
    assert!(
        text.contains("Switch dropbox to another Dropbox account?")
            && text.contains("bob@ferry.invalid"),
        "{text}"
    );
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(
        list["connections"][0]["account"]["email"], "emulator@ferry.invalid",
        "nothing changes before the admin confirms"
    );
    b.click_text("Switch accounts").await;
    let list = stack
        .eventually("/v1/connections", |l| {
            l["connections"][0]["account"]["email"] == "bob@ferry.invalid"
        })
        .await;
    assert_eq!(
        list["connections"][0]["select_user"],
        bob.as_str(),
        "{list}"
    );
    let bobs = DropboxClient::new(
        Endpoints::single(&stack.emu.emulator.base_url()).unwrap(),
        &Secret::new(bob_token),
    )
    .unwrap();
    wait_in_dropbox(&bobs, "/Ferry/Orders/S1/kept.pdf").await;
    assert!(
        stack
            .emu
            .client()
            .metadata("/Ferry/Orders/S1/kept.pdf")
            .await
            .is_ok(),
        "the old account keeps its copy"
    );
    // The session's sign-in works over plain HTTP too (the helper other tests use).
    let cookie = sign_in(&no_redirects(), &base).await;
    assert!(cookie.starts_with("ferry_session="));
}
