//! The admin console: its guards over plain HTTP (sign-in, session cookie, CSRF, headers),
//! and an admin's walk through it in headless Chromium — sign in, connect through the
//! emulator's consent page (Allow and Deny), write a rule and preview it, watch a record's
//! files turn synced, re-sync, export the log, restore an archived version. Every page
//! visited is saved as a screenshot under the target dir (`console-screenshots/`).

use crate::browser::Browser;
use crate::support::{Emu, Stack};
use ferry_core::secret::Secret;
use reqwest::StatusCode;
use serde_json::json;

pub(crate) const PASSWORD: &str = "correct horse battery";

async fn console_stack() -> Stack {
    let emu = Emu::start().await;
    let base = emu.emulator.base_url();
    Stack::start_on(emu, move |c| {
        c.dropbox_app_key = Some("ferry-app".into());
        c.dropbox_app_secret = Some(Secret::new("ferry-secret"));
        c.dropbox_base_url = Some(base);
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await
}

pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in over HTTP; returns the session cookie's `name=value`.
pub(crate) async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/console/login"))
        .form(&[
            ("name", "admin"),
            ("password", PASSWORD),
            ("next", "/console"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

/// Signs the browser in with a one-time link (as `ferry admin login-link` prints).
pub(crate) async fn sign_in_with_a_link(b: &Browser, stack: &Stack) {
    let link = stack.api.post("/v1/admins/admin/login-link").await.unwrap();
    let base = stack.app.base_url();
    b.goto(&format!("{base}{}", link["path"].as_str().unwrap()))
        .await;
    assert_eq!(b.path().await, "/console", "signed in");
}

/// Posts a console form as a signed-in browser would: the CSRF token is read from `page`
/// first (the page the form is on), then `fields` are sent with it.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let html = http
        .get(format!("{base}{page}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    http.post(format!("{base}{action}"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn pages_need_a_session_and_forms_their_csrf_token() {
    let stack = console_stack().await;
    let base = stack.app.base_url();
    let http = no_redirects();

    // Signed out: every page sends the browser to the sign-in page, and back afterwards.
    let page = http
        .get(format!("{base}/console/records?kind=order"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers()["location"],
        "/console/login?next=%2Fconsole%2Frecords%3Fkind%3Dorder"
    );
    let post = http
        .post(format!("{base}/console/queue/requeue"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.status(),
        StatusCode::SEE_OTHER,
        "no change without a session"
    );

    // A wrong password is refused in words, with the name kept.
    let wrong = http
        .post(format!("{base}/console/login"))
        .form(&[("name", "admin"), ("password", "not it at all")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("the name or the password is wrong")
    );

    let cookie = sign_in(&http, &base).await;
    let dashboard = http
        .get(format!("{base}/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), StatusCode::OK);
    let csp = dashboard.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(dashboard.headers()["x-frame-options"], "DENY");
    let html = dashboard.text().await.unwrap();
    let csrf = csrf_of(&html);

    // A form without this session's token changes nothing.
    for token in ["", "forged"] {
        let forged = http
            .post(format!("{base}/console/connections/dropbox/disconnect"))
            .header("cookie", &cookie)
            .form(&[("csrf", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    }
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(
        list["connections"][0]["disconnecting"], false,
        "not disconnected"
    );

    // With it, the action runs and the next page says what it did.
    let done = http
        .post(format!("{base}/console/queue/requeue"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let notice = done.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let after = http
        .get(format!("{base}/console"))
        .header("cookie", format!("{cookie}; {notice}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains("Re-queued 0 records"), "{after}");

    // Signing out ends the session on the server, not only in the browser.
    let out = http
        .post(format!("{base}/console/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    let again = http
        .get(format!("{base}/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);

    // A one-time link signs in once.
    let link = stack.api.post("/v1/admins/admin/login-link").await.unwrap();
    let path = link["path"].as_str().unwrap();
    let first = http.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert!(
        first.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("ferry_session=")
    );
    let second = http.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);

    // A new password signs the admin out everywhere.
    let cookie = sign_in(&http, &base).await;
    stack
        .api
        .put_json(
            "/v1/admins/admin/password",
            &json!({"password": "another long password"}),
        )
        .await
        .unwrap();
    let gone = http
        .get(format!("{base}/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    let short = stack
        .api
        .raw(
            reqwest::Method::PUT,
            "/v1/admins/admin/password",
            Some((br#"{"password": "short"}"#.to_vec(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(short.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_connect_link_from_the_console_works_only_in_its_session() {
    let stack = console_stack().await;
    let base = stack.app.base_url();
    let http = no_redirects();
    let cookie = sign_in(&http, &base).await;
    let started = post_form(
        &http,
        &base,
        &cookie,
        "/console/connections",
        "/console/connections/connect",
        &[("name", "other"), ("root", "/Other")],
    )
    .await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let authorize = started.headers()["location"].to_str().unwrap().to_owned();
    let back = crate::connect_flow::decide(&authorize, "allow").await;
    // Opened in a browser without that session (a link sent to someone else): refused.
    let elsewhere = reqwest::get(&back).await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
    assert!(elsewhere.text().await.unwrap().contains("another browser"));
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert!(
        list["connections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "other"),
        "{list}"
    );
}

#[tokio::test]
async fn an_admin_connects_writes_a_rule_and_restores_a_version_in_a_browser() {
    let stack = console_stack().await;
    let base = stack.app.base_url();
    stack.record_with("order", "A1", &["quote.pdf"]).await;
    let b = Browser::start(1280, 1000).await;

    // Sign in: a wrong password first.
    b.goto(&format!("{base}/console")).await;
    assert!(
        b.path().await.starts_with("/console/login"),
        "{}",
        b.path().await
    );
    b.screenshot("01-sign-in").await;
    b.fill("name", "admin").await;
    b.fill("password", "wrong password").await;
    b.click_text("Sign in").await;
    assert!(b.text().await.contains("the name or the password is wrong"));
    b.fill("password", PASSWORD).await;
    b.click_text("Sign in").await;
    assert_eq!(b.path().await, "/console");
    let text = b.text().await;
    assert!(
        text.contains("Dashboard") && text.contains("Dead letters"),
        "{text}"
    );
    b.screenshot("02-dashboard").await;

    // Connect through Dropbox's (the emulator's) page: Allow.
    b.goto(&format!("{base}/console/connections")).await;
    b.fill("c-name", "studio").await;
    b.fill("c-root", "/Studio").await;
    b.click_text("Connect Dropbox").await;
    let consent = b.text().await;
    assert!(consent.contains("Allow"), "the consent page: {consent}");
    b.screenshot("03-dropbox-consent").await;
    b.click_text("Allow").await;
    assert_eq!(b.path().await, "/console/connections");
    let text = b.text().await;
    assert!(text.contains("Connected studio to"), "{text}");
    assert!(
        text.contains("studio") && text.contains("Currently active"),
        "{text}"
    );
    b.screenshot("04-connected").await;
    let list = stack.api.get("/v1/connections").await.unwrap();
    let studio = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "studio")
        .expect("the new connection");
    assert_eq!(studio["oauth"], true);
    assert_eq!(studio["root"], "/Studio");

    // …and Deny: nothing is connected, and the page says so.
    b.fill("c-name", "declined").await;
    b.click_text("Connect Dropbox").await;
    b.click_text("Deny").await;
    let text = b.text().await;
    assert!(
        text.contains("Not connected") && text.contains("declined"),
        "{text}"
    );
    b.screenshot("05-denied").await;
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert!(
        list["connections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "declined")
    );

    // A rule: a template error shows next to its field; the preview shows the folder.
    b.goto(&format!("{base}/console/rules/new")).await;
    b.fill("f-name", "orders").await;
    b.fill("f-kind", "order").await;
    b.client
        .find(fantoccini::Locator::Id("f-conn"))
        .await
        .unwrap()
        .select_by_value("dropbox")
        .await
        .unwrap();
    b.fill("f-folder", "Orders/{{ record.key").await;
    b.click_text("Preview").await;
    let error = b
        .client
        .find(fantoccini::Locator::Id("e-folder"))
        .await
        .expect("the error is shown at the folder field")
        .text()
        .await
        .unwrap();
    assert!(error.contains("folder"), "{error}");
    b.screenshot("06-rule-error").await;
    b.fill("f-folder", "Orders/{{ record.key }}").await;
    b.client
        .find(fantoccini::Locator::Id("f-dir"))
        .await
        .unwrap()
        .select_by_value("both")
        .await
        .unwrap();
    b.click_text("Preview").await;
    let text = b.text().await;
    assert!(
        text.contains("Preview") && text.contains("Orders/A1"),
        "{text}"
    );
    assert!(
        stack.api.get("/v1/rules").await.unwrap()["rules"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a preview saves nothing"
    );
    assert!(
        text.contains("New rule"),
        "still a new rule after previews: {text}"
    );
    b.screenshot("07-rule-preview").await;
    b.click_text("Save rule").await;
    assert!(b.text().await.contains("Saved rule orders"));

    // The record's files turn synced.
    b.goto(&format!("{base}/console/records?kind=order")).await;
    b.click_text("order/A1").await;
    b.reload_until("synced").await;
    let text = b.text().await;
    assert!(text.contains("/Ferry/Orders/A1/quote.pdf"), "{text}");
    b.screenshot("08-record-synced").await;
    b.click_text("Re-sync now").await;
    assert!(b.text().await.contains("Queued a sync pass"));

    // Someone edits the file in Dropbox: it comes back, the app's version is archived, and
    // the admin restores it.
    stack
        .emu
        .client()
        .upload(
            "/Ferry/Orders/A1/quote.pdf",
            bytes::Bytes::from_static(b"edited in Dropbox"),
            &ferry_dropbox::WriteMode::Overwrite,
        )
        .await
        .unwrap();
    b.reload_until("Restore").await;
    b.screenshot("09-archived-version").await;
    b.click_text("Restore").await;
    assert!(
        b.text().await.contains("Restored quote.pdf"),
        "{}",
        b.text().await
    );
    let content = stack
        .api
        .get_streaming("/v1/records/order/A1/attachments/quote.pdf")
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        &content[..],
        b"A1/quote.pdf",
        "the app's version is current again"
    );

    // The file manager: down to the record's folder, a zip of it, an upload into it.
    b.goto(&format!("{base}/console/files?connection=dropbox"))
        .await;
    // It opens at the connection's root.
    b.click_text("Orders/").await;
    let text = b.text().await;
    assert!(text.contains("A1/") && text.contains("order/A1"), "{text}");
    b.click_text("A1/").await;
    let text = b.text().await;
    assert!(text.contains("quote.pdf"), "{text}");
    let zip_href = b
        .client
        .find(fantoccini::Locator::LinkText("Download this folder (zip)"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let upload = tempfile::tempdir().unwrap();
    let notes = upload.path().join("notes.txt");
    std::fs::write(&notes, b"call the customer").unwrap();
    b.client
        .find(fantoccini::Locator::Id("u-file"))
        .await
        .unwrap()
        .send_keys(notes.to_str().unwrap())
        .await
        .unwrap();
    b.screenshot("14-file-manager").await;
    b.click_text("Upload").await;
    assert!(
        b.text().await.contains("Uploaded notes.txt"),
        "{}",
        b.text().await
    );
    stack.settle().await;
    let zip = b.get_signed_in(&format!("{base}{zip_href}")).await;
    assert_eq!(zip.status(), StatusCode::OK);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    let zip = zip.bytes().await.unwrap();
    // Read back by another implementation: Python's zipfile (CRCs checked).
    let file = upload.path().join("folder.zip");
    std::fs::write(&file, &zip).unwrap();
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
    let entries: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        entries,
        std::collections::BTreeMap::from([
            ("notes.txt".to_owned(), "call the customer".to_owned()),
            ("quote.pdf".to_owned(), "A1/quote.pdf".to_owned()),
        ])
    );

    // Search by name.
    b.goto(&format!("{base}/console/files?connection=dropbox"))
        .await;
    b.fill("f-q", "NOTES").await;
    b.click_text("Search").await;
    let text = b.text().await;
    assert!(
        text.contains("/Ferry/Orders/A1/notes.txt") && !text.contains("quote.pdf"),
        "{text}"
    );

    // Moving a file to another record.
    stack.record_with("order", "A2", &[]).await;
    b.goto(&format!("{base}/console/records/order/A1")).await;
    b.client
        .find(fantoccini::Locator::Css("details summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.fill("mv-1", "order/A2").await;
    b.click_text("Move notes.txt").await;
    assert!(
        b.text()
            .await
            .contains("Moved notes.txt here from order/A1")
    );
    assert_eq!(b.path().await, "/console/records/order/A2");
    let a1 = stack.api.get("/v1/records/order/A1").await.unwrap();
    let a2 = stack.api.get("/v1/records/order/A2").await.unwrap();
    let names = |r: &serde_json::Value| {
        r["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (names(&a1), names(&a2)),
        (vec!["quote.pdf".to_owned()], vec!["notes.txt".to_owned()])
    );

    // The log, filtered, and its export (fetched with the browser's session).
    b.goto(&format!("{base}/console/log?record=order%2FA1"))
        .await;
    let text = b.text().await;
    assert!(
        text.contains("upload ok") && text.contains("order/A1"),
        "{text}"
    );
    b.screenshot("10-log").await;
    let href = b
        .client
        .find(fantoccini::Locator::LinkText("Export CSV"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let csv = b.get_signed_in(&format!("{base}{href}")).await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("ferry-log.csv")
    );
    let csv = csv.text().await.unwrap();
    assert!(
        csv.starts_with("id,at,connection,kind,key,path,action"),
        "{csv}"
    );
    assert!(
        csv.lines().skip(1).all(|l| l.contains(",order,A1,")),
        "{csv}"
    );

    // On a phone.
    b.client.set_window_size(390, 900).await.unwrap();
    b.goto(&format!("{base}/console/records/order/A1")).await;
    b.screenshot("11-record-phone").await;
    b.goto(&format!("{base}/console/connections")).await;
    b.screenshot("12-connections-phone").await;

    b.click_text("Sign out").await;
    assert!(b.text().await.contains("You are signed out"));
    b.goto(&format!("{base}/console")).await;
    assert!(b.path().await.starts_with("/console/login"));
}

/// New credentials for another Dropbox account are an account switch: refused in words (the
/// other account holds none of the connection's files), and the connection is unchanged.
#[tokio::test]
async fn credentials_of_another_account_do_not_switch_a_connection() {
    let emu = Emu::start_with(|c| c.accounts = vec![ferry_emulator::AccountSpec::new("bob")]).await;
    let bob = emu.emulator.token_for("bob").unwrap().to_owned();
    let base = emu.emulator.base_url();
    let stack = Stack::start_on(emu, |_| {}).await;
    let before = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(
        before["connections"][0]["account"]["email"],
        "emulator@ferry.invalid"
    );
    let body = json!({"token": bob, "root": "/Ferry", "base_url": base});
    let (status, answer) = stack
        .api
        .raw(
            reqwest::Method::PUT,
            "/v1/connections/dropbox",
            Some((serde_json::to_vec(&body).unwrap(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "account_switch");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("disconnect") && message.contains("bob@ferry.invalid"),
        "{message}"
    );
    assert!(!message.contains(&bob), "no token in the answer");
    assert_eq!(stack.api.get("/v1/connections").await.unwrap(), before);
    // The same account again is a plain reconnect, and keeps what was said of its app.
    stack
        .api
        .put_json(
            "/v1/connections/dropbox",
            &json!({"token": stack.emu.emulator.token(), "root": "/Ferry", "base_url": stack.emu.emulator.base_url(), "app_access": "full_dropbox"}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_json(
            "/v1/connections/dropbox",
            &json!({"token": stack.emu.emulator.token(), "root": "/Ferry", "base_url": stack.emu.emulator.base_url()}),
        )
        .await
        .unwrap();
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(
        list["connections"][0]["app_access"], "full_dropbox",
        "{list}"
    );
}

/// An emulator with a team ("acme", team token `team-token`) of the default account and
/// bob; bob's member id.
pub(crate) async fn team_emulator() -> (Emu, String) {
    let emu = Emu::start_with(|c| {
        c.accounts = vec![ferry_emulator::AccountSpec::new("bob")];
        c.team = Some(ferry_emulator::TeamSpec {
            name: "acme".into(),
            token: Some("team-token".into()),
            members: vec!["default".into(), "bob".into()],
        });
    })
    .await;
    let bob = emu
        .emulator
        .team()
        .unwrap()
        .members
        .iter()
        .find(|(n, _)| n == "bob")
        .map(|(_, id)| id.clone())
        .unwrap();
    (emu, bob)
}

/// A pasted team token: the console lists the team's members, the admin picks one and the
/// team space, and the connection acts as that member there.
#[tokio::test]
async fn a_team_token_connects_as_the_member_the_admin_picks() {
    let (emu, bob) = team_emulator().await;
    let base_url = emu.emulator.base_url();
    let stack = Stack::start_on(emu, move |c| {
        c.dropbox_base_url = Some(base_url);
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let base = stack.app.base_url();
    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;

    b.goto(&format!("{base}/console/connections?tab=token"))
        .await;
    b.fill("t-name", "team").await;
    b.fill("t-root", "/Shared Jobs").await;
    b.fill("t-token", "team-token").await;
    b.click_text("Save connection").await;
    assert!(
        b.path().await.starts_with("/console/connections/pick/"),
        "{}",
        b.path().await
    );
    let text = b.text().await;
    assert!(
        text.contains("Ferry Emulator") && text.contains("bob@ferry.invalid"),
        "{text}"
    );
    assert!(
        !b.client.source().await.unwrap().contains("team-token"),
        "the token is not on the page"
    );
    b.screenshot("13-pick-team-member").await;
    b.click("input[value='".to_owned() + &bob + "']").await;
    b.client
        .find(fantoccini::Locator::Id("p-root"))
        .await
        .unwrap()
        .select_by_value("team")
        .await
        .unwrap();
    b.click_text("Connect as this member").await;
    let text = b.text().await;
    assert!(
        text.contains("Connected team as team member Ferry bob"),
        "{text}"
    );
    let list = stack.api.get("/v1/connections").await.unwrap();
    let team = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "team")
        .expect("the team connection")
        .clone();
    assert_eq!(team["select_user"], bob.as_str());
    assert!(
        team["path_root"].as_str().unwrap().starts_with("root:"),
        "{team}"
    );
    // The API lists the same members.
    let members = stack.api.get("/v1/connections/team/members").await.unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 2, "{members}");
    let (status, _) = stack
        .api
        .raw(
            reqwest::Method::GET,
            "/v1/connections/dropbox/members",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "one account's connection has no team"
    );
}

/// Dropbox refused a connection's token: the dashboard and the connections page say so, work
/// waits, and a reconnect through Dropbox's page resumes it. Credentials of another account
/// are an account switch: confirmed first, then the old account's files come back, and the
/// new account is connected and synced.
#[tokio::test]
async fn a_refused_connection_is_reconnected_and_then_switched_to_another_account() {
    let emu = Emu::start_with(|c| c.accounts = vec![ferry_emulator::AccountSpec::new("bob")]).await;
    let bob = emu.emulator.token_for("bob").unwrap().to_owned();
    let base_url = emu.emulator.base_url();
    let stack = Stack::start_on(emu, move |c| {
        c.dropbox_app_key = Some("ferry-app".into());
        c.dropbox_app_secret = Some(Secret::new("ferry-secret"));
        c.dropbox_base_url = Some(base_url);
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let base = stack.app.base_url();
    stack
        .app
        .engine()
        .mark_needs_reconnect("dropbox", "the token was revoked")
        .await
        .unwrap();
    stack
        .push_rule("orders", "order", "Orders/{{ record.key }}")
        .await;
    stack.record_with("order", "W1", &["waiting.pdf"]).await;

    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;
    let text = b.text().await;
    assert!(
        text.contains("needs to be reconnected: the token was revoked"),
        "the dashboard puts it first: {text}"
    );
    b.goto(&format!("{base}/console/connections")).await;
    let text = b.text().await;
    assert!(
        text.contains("Needs reconnect") && text.contains("Work waits; nothing is lost"),
        "{text}"
    );
    b.screenshot("15-needs-reconnect").await;
    let waiting = stack.api.get("/v1/records/order/W1/sync").await.unwrap();
    assert_ne!(waiting["files"][0]["state"], "synced", "{waiting}");

    b.click_text("Reconnect").await;
    b.click_text("Allow").await;
    let text = b.text().await;
    assert!(
        text.contains("Connected dropbox to") && !text.contains("Needs reconnect"),
        "{text}"
    );
    stack
        .eventually("/v1/records/order/W1/sync", |v| {
            v["files"][0]["state"] == "synced"
        })
        .await;

    // Another account's token for the same connection: an account switch, confirmed first.
    b.goto(&format!("{base}/console/connections?tab=token"))
        .await;
    b.fill("t-name", "dropbox").await;
    b.fill("t-root", "/Ferry").await;
    b.fill("t-token", &bob).await;
    b.click_text("Save connection").await;
    let text = b.text().await;
    assert!(
        text.contains("Switch dropbox to another Dropbox account?")
            && text.contains("emulator@ferry.invalid")
            && text.contains("bob@ferry.invalid"),
        "{text}"
    );
    assert!(
        !b.client.source().await.unwrap().contains(&bob),
        "the token is not on the page"
    );
    b.screenshot("16-account-switch").await;
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(
        list["connections"][0]["account"]["email"], "emulator@ferry.invalid",
        "nothing changes before the admin confirms"
    );
    b.click_text("Switch accounts").await;
    assert!(
        b.text().await.contains("Switching accounts"),
        "{}",
        b.text().await
    );
    // The reverse sync runs, the old connection goes, the new account is connected and the
    // record's files land in it; nothing is deleted in the old account.
    stack
        .eventually("/v1/connections", |l| {
            l["connections"][0]["account"]["email"] == "bob@ferry.invalid"
        })
        .await;
    let bobs = ferry_dropbox::DropboxClient::new(
        ferry_dropbox::Endpoints::single(&stack.emu.emulator.base_url()).unwrap(),
        &Secret::new(bob.clone()),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while bobs.metadata("/Ferry/Orders/W1/waiting.pdf").await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the file never reached the new account"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        stack
            .emu
            .client()
            .metadata("/Ferry/Orders/W1/waiting.pdf")
            .await
            .is_ok(),
        "the old account keeps its copy"
    );
}

/// An admin maps an existing Dropbox folder to a record with the folder picker; what is in it
/// comes into the record; the mapping can be removed again.
#[tokio::test]
async fn an_admin_maps_an_existing_folder_to_a_record_with_the_picker() {
    let stack = console_stack().await;
    let base = stack.app.base_url();
    stack
        .emu
        .client()
        .upload(
            "/Ferry/Projects/Beta/spec.pdf",
            bytes::Bytes::from_static(b"the spec"),
            &ferry_dropbox::WriteMode::Add,
        )
        .await
        .unwrap();
    stack.record_with("project", "P2", &[]).await;
    let b = Browser::start(1280, 1000).await;
    sign_in_with_a_link(&b, &stack).await;
    b.goto(&format!("{base}/console/records/project/P2")).await;
    b.click_text("Map an existing Dropbox folder…").await;
    b.click_text("Projects/").await;
    b.click_text("Beta/").await;
    b.screenshot("17-folder-picker").await;
    b.click_text("Map this folder").await;
    assert!(
        b.text()
            .await
            .contains("Mapped /Ferry/Projects/Beta to this record")
    );
    stack
        .eventually("/v1/records/project/P2", |r| {
            r["attachments"].as_array().unwrap().len() == 1
        })
        .await;
    b.reload_until("spec.pdf").await;
    let text = b.text().await;
    assert!(
        text.contains("Folders mapped by hand") && text.contains("/Ferry/Projects/Beta"),
        "{text}"
    );
    b.click_text("Stop syncing this folder").await;
    assert!(
        b.text()
            .await
            .contains("Ferry no longer syncs /Ferry/Projects/Beta")
    );
    let maps = stack
        .api
        .get("/v1/records/project/P2/folders")
        .await
        .unwrap();
    assert_eq!(maps["folders"], json!([]));
    assert!(
        stack
            .emu
            .client()
            .metadata("/Ferry/Projects/Beta/spec.pdf")
            .await
            .is_ok(),
        "the file stays"
    );
}

/// A confirmed account switch whose connect a stop interrupted (the old connection is gone,
/// the new one not made yet) is finished when the workers start again.
#[tokio::test]
async fn an_interrupted_account_switch_is_finished_at_start() {
    let emu = Emu::start_with(|c| c.accounts = vec![ferry_emulator::AccountSpec::new("bob")]).await;
    let bob = emu.emulator.token_for("bob").unwrap().to_owned();
    let base_url = emu.emulator.base_url();
    let stack = Stack::start_on(emu, move |c| {
        c.dropbox_base_url = Some(base_url);
        c.admin_password = Some(Secret::new(PASSWORD));
    })
    .await;
    let base = stack.app.base_url();
    let http = no_redirects();
    let cookie = sign_in(&http, &base).await;
    let pasted = post_form(
        &http,
        &base,
        &cookie,
        "/console/connections?tab=token",
        "/console/connections/token",
        &[
            ("name", "dropbox"),
            ("root", "/Ferry"),
            ("token", bob.as_str()),
        ],
    )
    .await;
    assert_eq!(pasted.status(), StatusCode::SEE_OTHER);
    let location = pasted.headers()["location"].to_str().unwrap().to_owned();
    let id = location
        .strip_prefix("/console/connections/switch/")
        .expect("the confirmation page")
        .to_owned();
    // The switch was confirmed and the old connection removed; then Ferry stopped.
    let engine = stack.app.engine();
    let store = engine.store();
    store
        .confirm_pending_switch(&id, chrono::Utc::now().timestamp_millis() + 3_600_000)
        .await
        .unwrap();
    store.delete_connection("dropbox").await.unwrap();
    assert_eq!(engine.resume_switches().await.unwrap(), 1);
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(
        list["connections"][0]["account"]["email"], "bob@ferry.invalid",
        "{list}"
    );
    assert_eq!(engine.resume_switches().await.unwrap(), 0, "done once");
}
