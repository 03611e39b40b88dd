//! Verified backups of Ferry's database to Dropbox, and a restore that serves and syncs on.

use crate::support::Stack;
use reqwest::Method;
use serde_json::{Value, json};

/// Back up (three times, keeping two), restore the newest into a fresh data dir with
/// `ferry restore`, start Ferry there: the same records, and it syncs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_round_trip() {
    let stack = Stack::start_with(|c| {
        c.backup_connection = Some("dropbox".into());
        c.backup_keep = 2;
        c.backup_max_age_days = 30;
    })
    .await;
    // An old backup (pruned by age) and someone's file (never touched) in the folder.
    let dbx = stack.emu.client();
    for path in [
        "/Ferry/Ferry backups/ferry-20200101T000000.000Z.db.zst",
        "/Ferry/Ferry backups/notes.txt",
    ] {
        dbx.upload(
            path,
            bytes::Bytes::from_static(b"x"),
            &ferry_dropbox::WriteMode::Add,
        )
        .await
        .unwrap();
    }
    stack
        .push_rule("tickets", "ticket", "Tickets/{{ record.key }}")
        .await;
    stack.record_with("ticket", "B-1", &["a.txt"]).await;
    stack.settle().await;

    let mut reports: Vec<Value> = Vec::new();
    for _ in 0..3 {
        let (status, report) = stack
            .api
            .raw(Method::POST, "/v1/backups", None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["verified"], true);
        assert!(
            report["database_bytes"].as_u64().unwrap()
                > report["backup"]["size"].as_u64().unwrap() / 2
        );
        reports.push(report);
    }
    assert_eq!(
        reports[2]["pruned"].as_array().unwrap().len(),
        1,
        "{}",
        reports[2]
    );
    assert_eq!(
        reports[0]["pruned"],
        json!(["ferry-20200101T000000.000Z.db.zst"]),
        "too old: {}",
        reports[0]
    );
    dbx.metadata("/Ferry/Ferry backups/notes.txt")
        .await
        .expect("other files in the folder are left alone");
    let list = stack.api.get("/v1/backups").await.unwrap();
    let names: Vec<&str> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    let newest = reports[2]["backup"]["name"].as_str().unwrap();
    assert_eq!(names.len(), 2, "{list}");
    assert_eq!(names[0], newest, "newest first");
    // In Dropbox, with the hash Ferry verified.
    let path = reports[2]["backup"]["path"].as_str().unwrap();
    assert!(path.starts_with("/Ferry/Ferry backups/ferry-"), "{path}");
    let (info, _) = stack.emu.client().download(path).await.unwrap();
    assert_eq!(
        Some(info.content_hash.unwrap()),
        reports[2]["backup"]["content_hash"]
            .as_str()
            .map(str::to_owned)
    );
    // The sync log has each run.
    let log = stack.api.get("/v1/log?action=backup").await.unwrap();
    assert_eq!(log["entries"].as_array().unwrap().len(), 3, "{log}");

    // The CLI lists them too.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "backup",
            "list",
            "--url",
            &stack.app.base_url(),
            "--api-key",
            stack.app.api_key().expose(),
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(newest));

    // Restore through the running server's API into a fresh data dir.
    let restored = tempfile::tempdir().unwrap();
    let to = restored.path().join("data");
    let restore = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["restore", "--backup", newest, "--to"])
            .arg(&to)
            .args(["--url", &stack.app.base_url()])
            .args(["--api-key", stack.app.api_key().expose()])
            .output()
    };
    let out = restore().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("secret.key"),
        "the key hint is given"
    );
    // Restoring twice into the same place is refused: nothing is overwritten.
    let again = restore().await.unwrap();
    assert!(!again.status.success());

    // The old Ferry stops; the restored one takes over with the same token key.
    let original = stack.emu.dir.path().join("ferry");
    std::fs::copy(original.join("secret.key"), to.join("secret.key")).unwrap();
    let emu = stack.emu;
    stack.app.shutdown().await;
    let config = ferry::config::Config {
        data_dir: to.clone(),
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        workers: 2,
        custom_dropbox_hosts: true,
        ..ferry::config::Config::default()
    };
    let app = ferry::app::RunningApp::start(&config).await.unwrap();
    let api = ferry::api_client::ApiClient::new(app.base_url(), app.api_key().clone());
    let record = api.get("/v1/records/ticket/B-1").await.unwrap();
    assert_eq!(record["attachments"][0]["name"], "a.txt");
    api.put_json("/v1/records/ticket/B-2", &json!({}))
        .await
        .unwrap();
    api.put_bytes(
        "/v1/records/ticket/B-2/attachments/after.txt",
        b"after".to_vec(),
    )
    .await
    .unwrap();
    let stats = app
        .engine()
        .wait_idle(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(stats.queued, 0);
    let (_, data) = emu
        .client()
        .download("/Ferry/Tickets/B-2/after.txt")
        .await
        .unwrap();
    assert_eq!(data.as_ref(), b"after");
    app.shutdown().await;
}

/// Without `[backup]` the routes say how to configure it.
#[tokio::test]
async fn backups_need_configuring() {
    let stack = Stack::start().await;
    let (status, body) = stack
        .api
        .raw(Method::POST, "/v1/backups", None)
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[backup]"),
        "{body}"
    );
}

/// Scheduled backups run by themselves, and `ferry backup list` shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_run_and_are_listed() {
    let stack = Stack::start().await;
    let settings = ferry_engine::backup::BackupSettings {
        connection: "dropbox".into(),
        folder: "Scheduled".into(),
        keep: 5,
        max_age: None,
        every: Some(std::time::Duration::from_millis(300)),
        cron: None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let scratch = tempfile::tempdir().unwrap();
    let task = stack
        .app
        .engine()
        .spawn_backups(settings.clone(), scratch.path().to_path_buf(), stopped)
        .expect("a schedule");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let list = stack.app.engine().backups(&settings).await.unwrap();
        if list.backups.len() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scheduled backups: {list:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    // Scratch files are cleaned up after each run.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}
