//! `ferry demo`: the embedded emulator, the engine and the API on 127.0.0.1, a sample
//! print-shop order pushed through the real REST API, and the resulting Dropbox tree.

use crate::api_client::ApiClient;
use crate::app::RunningApp;
use crate::config::Config;
use crate::tree::render_tree;
use anyhow::Context;
use ferry_core::secret::Secret;
use ferry_dropbox::{DropboxClient, Endpoints};
use ferry_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the demo's Dropbox folder tree goes.
pub const DEMO_ROOT: &str = "/Print Shop Files";

/// How the demo runs.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Exit once synced (status 0 only if every file synced) instead of serving until Ctrl-C.
    pub once: bool,
    /// Keep state here instead of a fresh temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Port of the Ferry API (0 = any free port).
    pub port: u16,
}

/// The rules of the print-shop scenario, as an admin would enter them.
pub fn print_shop_rules() -> Vec<(&'static str, Value)> {
    let all_items_ready = "|rejectattr('fields.production_ready')|list|length == 0";
    vec![
        (
            "order-worksheets",
            json!({
                "record_kind": "order",
                "connection": "dropbox",
                "condition": format!("record.fields.status == 'ready_for_production' and children and children{all_items_ready}"),
                "folder": "{{ record.key }} {{ record.fields.customer }}",
                "file_filter": "'worksheet' in attachment.tags",
            }),
        ),
        (
            "item-production-files",
            json!({
                "record_kind": "item",
                "connection": "dropbox",
                "condition": format!("parent.fields.status == 'ready_for_production' and siblings{all_items_ready}"),
                "folder": "{{ parent.key }} {{ parent.fields.customer }}/Item {{ record.fields.line }} - {{ record.fields.product }}",
                "file_path": "{% for t in attachment.tags if t is startingwith('source:') %}source_artwork{% if t[7:] != '1' %}_{{ t[7:] }}{% endif %}/{% endfor %}{{ attachment.name }}",
                "file_filter": "'production' in attachment.tags or 'alternate' in attachment.tags or 'source' in attachment.tags",
            }),
        ),
    ]
}

/// The sample order: (kind, key, fields, parent key, attachments (name, tags, content)).
type SampleRecord = (
    &'static str,
    &'static str,
    Value,
    Option<&'static str>,
    Vec<(&'static str, &'static str, Vec<u8>)>,
);

fn sample_order() -> Vec<SampleRecord> {
    let file = |label: &str, size: usize| {
        let mut data = format!("{label}\n").into_bytes();
        data.resize(size, b'.');
        data
    };
    vec![
        (
            "order",
            "1001",
            json!({"customer": "Acme Sports", "status": "new", "paid": true}),
            None,
            vec![(
                "worksheet-1001.pdf",
                "worksheet",
                file("%PDF-1.7 worksheet for order 1001", 18_000),
            )],
        ),
        (
            "item",
            "1001-1",
            json!({"line": 1, "product": "Team T-shirt", "production_ready": true}),
            Some("1001"),
            vec![
                (
                    "front-print.pdf",
                    "production",
                    file("%PDF-1.7 production file", 250_000),
                ),
                (
                    "front-print.eps",
                    "alternate",
                    file("%!PS-Adobe-3.0 EPSF-3.0 alternate format", 120_000),
                ),
                (
                    "logo.ai",
                    "source,source:1",
                    file("%AI source artwork, screen print", 90_000),
                ),
                (
                    "mascot.psd",
                    "source,source:2",
                    file("8BPS source artwork, heat transfer", 300_000),
                ),
            ],
        ),
        (
            "item",
            "1001-2",
            json!({"line": 2, "product": "Embroidered Cap", "production_ready": true}),
            Some("1001"),
            vec![(
                "cap-front.dst",
                "production",
                file("LA:cap-front embroidery", 40_000),
            )],
        ),
    ]
}

/// Runs the demo. Returns whether every file synced.
pub async fn run(options: DemoOptions) -> anyhow::Result<bool> {
    let temp;
    let data_dir = match &options.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("ferry-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    println!("Ferry demo — data in {}\n", data_dir.display());

    let emulator = RunningEmulator::start(EmulatorConfig::new(data_dir.join("emulator")))
        .await
        .context("cannot start the Dropbox emulator")?;
    let config = Config {
        data_dir: data_dir.join("ferry"),
        listen: SocketAddr::from(([127, 0, 0, 1], options.port)),
        // The demo's Dropbox is the built-in emulator, with its registered app, so the
        // console's "Connect Dropbox" goes through the emulator's consent page.
        custom_dropbox_hosts: true,
        dropbox_base_url: Some(emulator.base_url()),
        dropbox_app_key: Some("ferry-app".into()),
        dropbox_app_secret: Some(Secret::new("ferry-secret")),
        ..Config::default()
    };
    let app = RunningApp::start(&config).await?;
    let api = ApiClient::new(app.base_url(), app.api_key().clone());

    println!("1. Connecting Ferry to the (emulated) Dropbox account, root {DEMO_ROOT:?}");
    let connected = api
        .put_json(
            "/v1/connections/dropbox",
            &json!({"token": emulator.token(), "root": DEMO_ROOT, "base_url": emulator.base_url()}),
        )
        .await?;
    println!(
        "   account: {}",
        connected["account"]["display_name"].as_str().unwrap_or("?")
    );

    println!(
        "2. Folder rules: order worksheets, and per item its production, alternate and source files"
    );
    for (name, rule) in print_shop_rules() {
        api.put_json(&format!("/v1/rules/{name}"), &rule).await?;
    }

    let sample = sample_order();
    let expected: usize = sample.iter().map(|r| r.4.len()).sum();
    println!("3. Loading order 1001: two items, {expected} files in all, status \"new\"");
    for (kind, key, fields, parent, attachments) in sample {
        let parent = parent.map(|p| json!({"kind": "order", "key": p}));
        api.put_json(
            &format!("/v1/records/{kind}/{key}"),
            &json!({"fields": fields, "parent": parent}),
        )
        .await?;
        for (name, tags, content) in attachments {
            api.put_bytes(
                &format!("/v1/records/{kind}/{key}/attachments/{name}?tags={tags}"),
                content,
            )
            .await?;
        }
    }
    app.engine().wait_idle(Duration::from_secs(30)).await?;
    let client = DropboxClient::new(
        Endpoints::single(&emulator.base_url())?,
        &Secret::new(emulator.token()),
    )?;
    let before = client
        .list_all("", true)
        .await?
        .0
        .iter()
        .filter(|e| matches!(e, ferry_dropbox::Entry::File(_)))
        .count();
    println!("   not ready for production yet: {before} files in Dropbox");

    println!("4. Marking order 1001 ready for production");
    api.put_json(
        "/v1/records/order/1001",
        &json!({"fields": {"customer": "Acme Sports", "status": "ready_for_production", "paid": true}}),
    )
    .await?;
    let queue = app.engine().wait_idle(Duration::from_secs(60)).await?;

    let mut ok = queue.queued == 0;
    let mut synced = 0;
    let mut problems = Vec::new();
    for (kind, key) in [("order", "1001"), ("item", "1001-1"), ("item", "1001-2")] {
        let state = api.get(&format!("/v1/records/{kind}/{key}/sync")).await?;
        for file in state["files"].as_array().into_iter().flatten() {
            if file["state"] == "synced" {
                synced += 1;
            } else {
                ok = false;
                problems.push(format!(
                    "{kind}/{key}: {} — {}",
                    file["path"], file["last_error"]
                ));
            }
        }
    }
    ok &= synced == expected;

    println!("\nDropbox now holds:\n");
    print!("{}", render_tree(&client, DEMO_ROOT).await?);
    println!(
        "\n{synced} of {expected} files synced{}",
        if queue.queued > 0 {
            ", work still queued"
        } else {
            ""
        }
    );
    for p in &problems {
        println!("  problem: {p}");
    }

    // A console admin with a password nobody knows; the one-time link signs in.
    let password: String = {
        use rand::Rng;
        (0..32)
            .map(|_| rand::thread_rng().sample(rand::distributions::Alphanumeric) as char)
            .collect()
    };
    let console_admin = crate::admin::Admin::new(api.clone(), false);
    api.put_json(
        "/v1/admins/admin/password",
        &json!({ "password": password }),
    )
    .await?;
    let login = console_admin.admin_login_link("admin").await?;

    println!("\nLook around:");
    println!("  Console           {login}");
    println!(
        "                    (signs you in once, within 10 minutes; later: ferry admin login-link)"
    );
    println!(
        "  Ferry API         {}   (API key: {})",
        app.base_url(),
        app.api_key().expose()
    );
    println!(
        "  Dropbox emulator  {}   (token: {})",
        emulator.base_url(),
        emulator.token()
    );
    println!(
        "  curl -H 'Authorization: Bearer {}' {}/v1/records/item/1001-1/sync",
        app.api_key().expose(),
        app.base_url()
    );

    if !options.once {
        println!("\nServing until Ctrl-C.");
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
    }
    app.shutdown().await;
    emulator.shutdown().await;
    Ok(ok)
}
