//! Connecting like a person: Ferry's authorize link (PKCE S256, offline, single-use state),
//! the emulator's consent page (Allow / Deny), Dropbox's redirect back to Ferry's callback,
//! and the page the person lands on. The connection then syncs like any other.

use crate::support::Stack;
use ferry_core::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn app_stack() -> Stack {
    Stack::start_with(|c| {
        c.dropbox_app_key = Some("ferry-app".into());
        c.dropbox_app_secret = Some(Secret::new("ferry-secret"));
    })
    .await
}

/// Asks Ferry for an authorize link for connection `name`.
async fn authorize(stack: &Stack, name: &str, root: &str) -> String {
    let link = stack
        .api
        .post_json(
            &format!("/v1/connections/{name}/authorize"),
            &json!({"root": root, "base_url": stack.emu.emulator.base_url()}),
        )
        .await
        .unwrap();
    link["authorize_url"].as_str().unwrap().to_owned()
}

/// The person opens the link and chooses `decision` on the consent page; returns where
/// Dropbox sends the browser.
pub(crate) async fn decide(authorize_url: &str, decision: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("ferry-app") || html.contains("Ferry"),
        "{html}"
    );
    let url = reqwest::Url::parse(authorize_url).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("decision".into(), decision.into()));
    let consent = format!(
        "{}://{}/oauth2/authorize",
        url.scheme(),
        url.host_str().zip(url.port()).map_or_else(
            || url.host_str().unwrap().to_owned(),
            |(h, p)| format!("{h}:{p}")
        )
    );
    let answer = http.post(consent).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

async fn land(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn allow_connects_and_the_connection_syncs() {
    let stack = app_stack().await;
    let link = authorize(&stack, "oauth", "/Via OAuth").await;
    let url = reqwest::Url::parse(&link).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["token_access_type"], "offline");
    assert_eq!(q["client_id"], "ferry-app");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/oauth/dropbox/callback", stack.app.base_url())
    );
    assert!(q["state"].len() >= 32, "{link}");

    let back = decide(&link, "allow").await;
    assert!(back.starts_with(&q["redirect_uri"]), "{back}");
    let (status, page) = land(&back).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Connected to Dropbox"), "{page}");
    assert!(page.contains("Currently active"), "{page}");
    assert!(page.contains("Via OAuth"), "{page}");
    assert!(
        page.contains("Ferry Emulator"),
        "the account is shown: {page}"
    );

    // Stored as an OAuth connection, and it syncs.
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert!(
        list["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "oauth" && c["root"] == "/Via OAuth"),
        "{list}"
    );
    stack
        .api
        .put_json(
            "/v1/rules/o",
            &json!({"record_kind": "doc", "connection": "oauth", "folder": "{{ record.key }}"}),
        )
        .await
        .unwrap();
    stack.record_with("doc", "D1", &["a.txt"]).await;
    stack.settle().await;
    stack
        .emu
        .client()
        .metadata("/Via OAuth/D1/a.txt")
        .await
        .expect("synced through the OAuth connection");

    // The link worked once.
    let (status, page) = land(&back).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already used"), "{page}");
}

#[tokio::test]
async fn deny_broken_and_unconfigured_flows_answer_with_a_clear_page() {
    let stack = app_stack().await;
    let link = authorize(&stack, "denied", "/D").await;
    let back = decide(&link, "deny").await;
    let (status, page) = land(&back).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("declined"), "{page}");
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(list["connections"].as_array().unwrap().len(), 1, "{list}");

    // Opened by hand, with a forged state, or with markup in it: a page, never a trace.
    let base = stack.app.base_url();
    for (query, expected) in [
        ("", "opened without a connect link"),
        ("?state=forged&code=x", "unknown or was already used"),
        ("?state=%3Cscript%3E&code=x", "unknown or was already used"),
    ] {
        let (status, page) = land(&format!("{base}/oauth/dropbox/callback{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {page}");
        assert!(page.contains(expected), "{query}: {page}");
        assert!(!page.contains("<script>"), "{page}");
    }

    // Bad input to the authorize call is a 400 in JSON.
    let (status, body) = stack
        .api
        .raw(
            Method::POST,
            "/v1/connections/x/authorize",
            Some((
                json!({"root": "no-slash"}).to_string().into_bytes(),
                "application/json",
            )),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Without an app configured, the flow says so.
    let plain = Stack::start().await;
    let (status, body): (StatusCode, Value) = plain
        .api
        .raw(
            Method::POST,
            "/v1/connections/x/authorize",
            Some((
                json!({"root": "/X"}).to_string().into_bytes(),
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
            .contains("dropbox_app_key"),
        "{body}"
    );
}

/// `ferry connections connect NAME --wait` prints the link, and returns once the person chose
/// Allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_link_and_waits_for_the_connection() {
    use tokio::io::AsyncBufReadExt;
    let stack = app_stack().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "connections",
            "connect",
            "cli",
            "--root",
            "/From CLI",
            "--wait",
        ])
        .args(["--base-url", &stack.emu.emulator.base_url()])
        .args(["--url", &stack.app.base_url()])
        .args(["--api-key", stack.app.api_key().expose()])
        .env_remove("FERRY_API_KEY")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let link = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the CLI prints the link");
        if line.starts_with("http") {
            break line;
        }
    };
    let back = decide(&link, "allow").await;
    let (status, _) = land(&back).await;
    assert_eq!(status, StatusCode::OK);
    let exit = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("the CLI returns once connected")
        .unwrap();
    assert!(exit.success());
    let rest = lines.next_line().await.unwrap().unwrap_or_default();
    assert!(rest.contains("cli is connected"), "{rest}");
}
