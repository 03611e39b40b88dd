//! OAuth2: consent page, code + PKCE / secret exchange, refresh, expiry, revoke, scopes and
//! app-folder apps.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

use super::Harness;

/// Runs the consent flow (Allow) and returns the code from the redirect.
async fn authorize(h: &Harness, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", "http://localhost:9/cb"),
        ("state", "st8"),
        ("token_access_type", "offline"),
    ];
    query.extend_from_slice(extra);
    let url = format!("{}/oauth2/authorize", h.emulator.base_url());
    let page = h.http.get(&url).query(&query).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Allow") && html.contains("Deny"), "{html}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut form: Vec<(&str, &str)> = query.clone();
    form.push(("decision", "allow"));
    let decided = no_redirects.post(&url).form(&form).send().await.unwrap();
    assert_eq!(decided.status(), StatusCode::FOUND);
    let location = decided.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("http://localhost:9/cb?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=st8"), "{location}");
    let code = location
        .split_once("code=")
        .and_then(|(_, rest)| rest.split('&').next())
        .unwrap();
    code.to_string()
}

async fn token(h: &Harness, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = h
        .http
        .post(format!("{}/oauth2/token", h.emulator.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn call(h: &Harness, token: &str, route: &str, arg: Value) -> super::Reply {
    h.rpc_as(token, route, arg).await
}

#[tokio::test]
async fn pkce_flow_refresh_expiry_and_revoke() {
    let h = Harness::start_with(|c| c.token_lifetime_secs = 1).await;
    let verifier = "v".repeat(64);
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let code = authorize(
        &h,
        "ferry-app",
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (status, bad) = token(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "ferry-app"),
            ("redirect_uri", "http://localhost:9/cb"),
            ("code_verifier", "wrong"),
        ],
    )
    .await;
    assert_eq!(
        (status, bad["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
    // The code was used up by the failed attempt, as on Dropbox; get another one.
    let code = authorize(
        &h,
        "ferry-app",
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    // The SDK repeats code_verifier; the first value counts.
    let (status, granted) = token(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "ferry-app"),
            ("redirect_uri", "http://localhost:9/cb"),
            ("code_verifier", &verifier),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["token_type"], "bearer");
    assert_eq!(granted["expires_in"], 1);
    let access = granted["access_token"].as_str().unwrap().to_string();
    let refresh = granted["refresh_token"].as_str().unwrap().to_string();
    assert!(access.starts_with("sl."));
    assert_eq!(
        call(&h, &access, "users/get_space_usage", Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expired = call(&h, &access, "users/get_space_usage", Value::Null).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        expired.json()["error"],
        json!({".tag": "expired_access_token"})
    );

    // PKCE tokens refresh without a secret.
    let (status, refreshed) = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "ferry-app"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed.get("refresh_token").is_none());
    let fresh = refreshed["access_token"].as_str().unwrap().to_string();
    let revoke = call(&h, &fresh, "auth/token/revoke", Value::Null).await;
    assert_eq!(
        (revoke.status, revoke.text()),
        (StatusCode::OK, "null".to_string())
    );
    let revoked = call(&h, &fresh, "users/get_space_usage", Value::Null).await;
    assert_eq!(
        revoked.json()["error"],
        json!({".tag": "invalid_access_token"})
    );
    let (status, again) = token(
        &h,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "ferry-app"),
        ],
    )
    .await;
    assert_eq!(
        (status, again["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_grant"))
    );
}

#[tokio::test]
async fn secret_flow_scopes_deny_and_app_folder() {
    let h = Harness::start().await;
    // Deny redirects with an error and the state.
    let url = format!("{}/oauth2/authorize", h.emulator.base_url());
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let denied = no_redirects
        .post(&url)
        .form(&[
            ("response_type", "code"),
            ("client_id", "ferry-app"),
            ("redirect_uri", "http://localhost:9/cb"),
            ("state", "s"),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    let location = denied.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("error=access_denied") && location.ends_with("state=s"),
        "{location}"
    );
    let unknown = h
        .http
        .get(&url)
        .query(&[("response_type", "code"), ("client_id", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);

    // Client-secret flow for the app-folder app, with a reduced scope.
    let code = authorize(
        &h,
        "ferry-folder-app",
        &[("scope", "files.metadata.read files.content.write")],
    )
    .await;
    let basic =
        base64::engine::general_purpose::STANDARD.encode("ferry-folder-app:ferry-folder-secret");
    let granted: Value = h
        .http
        .post(format!("{}/oauth2/token", h.emulator.base_url()))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://localhost:9/cb"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = granted["access_token"].as_str().unwrap().to_string();
    assert_eq!(granted["scope"], "files.metadata.read files.content.write");

    let missing = call(&h, &access, "users/get_space_usage", Value::Null).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.json()["error"],
        json!({".tag": "missing_scope", "required_scope": "account_info.read"})
    );
    let made = call(
        &h,
        &access,
        "files/create_folder_v2",
        json!({"path": "/Inside"}),
    )
    .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text());
    assert_eq!(made.json()["metadata"]["path_display"], "/Inside");
    let listing = call(
        &h,
        &access,
        "files/list_folder",
        json!({"path": "", "recursive": true}),
    )
    .await
    .json();
    assert_eq!(
        super::names(&listing["entries"]),
        ["folder:/Inside"],
        "the app folder itself is not listed"
    );
    // The full-access token sees where it really is.
    assert_eq!(
        h.metadata("/Apps/Ferry/Inside").await.status,
        StatusCode::OK
    );
    let root = call(&h, &access, "files/list_folder", json!({"path": "/"})).await;
    assert_eq!(root.status, StatusCode::BAD_REQUEST);
}
