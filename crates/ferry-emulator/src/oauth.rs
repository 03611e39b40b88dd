//! OAuth2: registered apps (full Dropbox or app folder), the `/oauth2/authorize` consent page
//! (Allow / Deny, redirect with `code` and `state`), `/oauth2/token` (authorization_code with
//! PKCE S256 or the client secret; refresh_token), short-lived access tokens with a
//! configurable lifetime (`expired_access_token` afterwards), `auth/token/revoke`, and scopes.
//!
//! Grants live in memory: a restart forgets OAuth tokens (the accounts' static tokens stay).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;
use std::sync::Arc;

use crate::server::App;
use crate::wire::random_token;

/// Every scope an app may hold (what Dropbox grants a full-featured app).
pub const ALL_SCOPES: &[&str] = &[
    "account_info.read",
    "files.metadata.read",
    "files.metadata.write",
    "files.content.read",
    "files.content.write",
    "sharing.read",
    "sharing.write",
];

/// A registered app.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The app key (`client_id`).
    pub key: String,
    /// The app secret (`None`: PKCE only).
    #[serde(default)]
    pub secret: Option<String>,
    /// The app's name; app-folder apps live in `/Apps/<name>`.
    pub name: String,
    /// An app-folder app (else full Dropbox).
    #[serde(default)]
    pub app_folder: bool,
    /// Allowed redirect URIs (empty: any `http://localhost…` or `http://127.0.0.1…` URI).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Scopes the app was configured with (empty: [`ALL_SCOPES`]).
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl AppSpec {
    /// The default apps: `ferry-app` (full Dropbox, secret `ferry-secret`) and
    /// `ferry-folder-app` (app folder `/Apps/Ferry`, secret `ferry-folder-secret`).
    pub fn defaults() -> Vec<AppSpec> {
        vec![
            AppSpec {
                key: "ferry-app".into(),
                secret: Some("ferry-secret".into()),
                name: "Ferry".into(),
                app_folder: false,
                redirect_uris: Vec::new(),
                scopes: Vec::new(),
            },
            AppSpec {
                key: "ferry-folder-app".into(),
                secret: Some("ferry-folder-secret".into()),
                name: "Ferry".into(),
                app_folder: true,
                redirect_uris: Vec::new(),
                scopes: Vec::new(),
            },
        ]
    }

    fn scopes(&self) -> Vec<String> {
        if self.scopes.is_empty() {
            ALL_SCOPES.iter().map(|s| s.to_string()).collect()
        } else {
            self.scopes.clone()
        }
    }

    fn redirect_allowed(&self, uri: &str) -> bool {
        if self.redirect_uris.is_empty() {
            return uri.starts_with("http://localhost")
                || uri.starts_with("http://127.0.0.1")
                || uri.starts_with("https://localhost");
        }
        self.redirect_uris.iter().any(|u| u == uri)
    }
}

/// What an OAuth access token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Index of the account in `App::spaces`.
    pub space: usize,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// For app-folder apps: the app's name (paths are rooted at `/Apps/<name>`).
    pub app_folder: Option<String>,
}

#[derive(Debug, Clone)]
struct Code {
    app: String,
    space: usize,
    scopes: Vec<String>,
    redirect_uri: Option<String>,
    challenge: Option<String>,
    offline: bool,
    expires: Instant,
}

#[derive(Debug, Clone)]
struct Refresh {
    app: String,
    grant: Grant,
    pkce: bool,
}

#[derive(Debug, Clone)]
struct Access {
    grant: Grant,
    refresh: Option<String>,
    expires: Instant,
}

/// Why an access token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Never issued or revoked.
    Unknown,
    /// Past its lifetime.
    Expired,
}

/// All OAuth state.
pub struct OAuth {
    apps: Vec<AppSpec>,
    lifetime: Duration,
    codes: Mutex<HashMap<String, Code>>,
    refresh: Mutex<HashMap<String, Refresh>>,
    access: Mutex<HashMap<String, Access>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OAuth {
    /// Apps and the access-token lifetime.
    pub fn new(apps: Vec<AppSpec>, lifetime: Duration) -> OAuth {
        OAuth {
            apps,
            lifetime,
            codes: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            access: Mutex::new(HashMap::new()),
        }
    }

    fn app(&self, key: &str) -> Option<&AppSpec> {
        self.apps.iter().find(|a| a.key == key)
    }

    /// The grant behind an OAuth access token.
    pub fn lookup(&self, token: &str) -> Result<Grant, TokenState> {
        let access = lock(&self.access);
        let found = access.get(token).ok_or(TokenState::Unknown)?;
        if Instant::now() >= found.expires {
            return Err(TokenState::Expired);
        }
        Ok(found.grant.clone())
    }

    /// Revokes an access token and, if it came from a refresh token, that refresh token and
    /// every access token minted from it.
    pub fn revoke(&self, token: &str) {
        let mut access = lock(&self.access);
        let Some(found) = access.remove(token) else {
            return;
        };
        if let Some(refresh) = found.refresh {
            lock(&self.refresh).remove(&refresh);
            access.retain(|_, a| a.refresh.as_deref() != Some(refresh.as_str()));
        }
    }

    fn mint(&self, grant: Grant, refresh: Option<String>) -> String {
        let token = format!("sl.{}", random_token(120));
        lock(&self.access).insert(
            token.clone(),
            Access {
                grant,
                refresh,
                expires: Instant::now() + self.lifetime,
            },
        );
        token
    }
}

/// The route's required scope (`None`: no scope needed).
pub fn required_scope(route: &str) -> Option<&'static str> {
    Some(match route {
        "users/get_current_account" | "users/get_space_usage" => "account_info.read",
        "files/download" | "files/get_temporary_link" => "files.content.read",
        "files/get_metadata"
        | "files/list_folder"
        | "files/list_folder/continue"
        | "files/list_folder/get_latest_cursor"
        | "files/search_v2"
        | "files/search/continue_v2" => "files.metadata.read",
        "sharing/list_shared_links" => "sharing.read",
        "sharing/create_shared_link_with_settings" | "sharing/revoke_shared_link" => {
            "sharing.write"
        }
        "auth/token/revoke" => return None,
        r if r.starts_with("files/") => "files.content.write",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// /oauth2/authorize

/// The query of `/oauth2/authorize` (and the hidden fields of the consent form).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeQuery {
    #[serde(default)]
    response_type: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    redirect_uri: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    token_access_type: Option<String>,
    #[serde(default)]
    code_challenge: Option<String>,
    #[serde(default)]
    code_challenge_method: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    account: Option<String>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn bad_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><title>Error</title><h1>Error (400)</h1><p>{}</p>",
            html_escape(message)
        )),
    )
        .into_response()
}

/// Validates an authorize request: the app, scopes, redirect URI and PKCE parameters.
fn validate(oauth: &OAuth, q: &AuthorizeQuery) -> Result<(AppSpec, Vec<String>), String> {
    if q.response_type.as_deref() != Some("code") {
        return Err("response_type must be \"code\"".into());
    }
    let key = q.client_id.as_deref().unwrap_or_default();
    let app = oauth
        .app(key)
        .ok_or_else(|| format!("Invalid client_id: \"{key}\""))?
        .clone();
    if let Some(uri) = &q.redirect_uri
        && !app.redirect_allowed(uri)
    {
        return Err(format!("Invalid redirect_uri: \"{uri}\""));
    }
    match (
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    ) {
        (None, None) => {}
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => {}
        (Some(_), Some(m)) if m != "S256" => {
            return Err(format!("code_challenge_method \"{m}\" is not supported"));
        }
        _ => return Err("invalid code_challenge".into()),
    }
    if q.code_challenge.is_none() && app.secret.is_none() {
        return Err("this app has no secret: use PKCE (code_challenge)".into());
    }
    if q.state.as_ref().is_some_and(|s| s.len() > 500) {
        return Err("state is longer than 500 bytes".into());
    }
    let allowed = app.scopes();
    let scopes = match &q.scope {
        Some(requested) => {
            let requested: Vec<String> = requested.split_whitespace().map(String::from).collect();
            if let Some(bad) = requested.iter().find(|s| !allowed.contains(s)) {
                return Err(format!("scope \"{bad}\" is not allowed for this app"));
            }
            requested
        }
        None => allowed,
    };
    Ok((app, scopes))
}

/// `GET /oauth2/authorize`: the consent page.
pub async fn authorize_page(
    State(app): State<Arc<App>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let (spec, scopes) = match validate(&app.oauth, &q) {
        Ok(v) => v,
        Err(message) => return bad_page(&message),
    };
    let hidden = |name: &str, value: &Option<String>| match value {
        Some(v) => format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            html_escape(v)
        ),
        None => String::new(),
    };
    let fields = [
        hidden("response_type", &q.response_type),
        hidden("client_id", &q.client_id),
        hidden("redirect_uri", &q.redirect_uri),
        hidden("state", &q.state),
        hidden("token_access_type", &q.token_access_type),
        hidden("code_challenge", &q.code_challenge),
        hidden("code_challenge_method", &q.code_challenge_method),
        hidden("scope", &q.scope),
    ]
    .concat();
    let accounts: String = app
        .spaces
        .iter()
        .map(|s| format!("<option value=\"{0}\">{0}</option>", html_escape(&s.name)))
        .collect();
    let access = if spec.app_folder {
        format!("its own folder, /Apps/{}", html_escape(&spec.name))
    } else {
        "all files and folders in your Dropbox".to_string()
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>API Request Authorization</title></head>\
         <body><h1>{name} would like access to {access}</h1>\
         <p>Scopes: {scopes}</p>\
         <form method=\"post\" action=\"/oauth2/authorize\">{fields}\
         <label>Account <select name=\"account\">{accounts}</select></label>\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         </form></body></html>",
        name = html_escape(&spec.name),
        scopes = html_escape(&scopes.join(" ")),
    ))
    .into_response()
}

/// `POST /oauth2/authorize`: the Allow / Deny decision; redirects with `code` (or `error`) and
/// `state`, or shows the code when there is no redirect URI.
pub async fn authorize_decision(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let form = parse_form(&body);
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let q = AuthorizeQuery {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        state: get("state"),
        token_access_type: get("token_access_type"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        scope: get("scope"),
        decision: get("decision"),
        account: get("account"),
    };
    let (spec, scopes) = match validate(&app.oauth, &q) {
        Ok(v) => v,
        Err(message) => return bad_page(&message),
    };
    let mut params: Vec<(&str, String)> = Vec::new();
    if q.decision.as_deref() == Some("allow") {
        let space = q
            .account
            .as_deref()
            .and_then(|name| app.spaces.iter().position(|s| s.name == name))
            .unwrap_or(0);
        let code = random_token(43);
        lock(&app.oauth.codes).insert(
            code.clone(),
            Code {
                app: spec.key.clone(),
                space,
                scopes,
                redirect_uri: q.redirect_uri.clone(),
                challenge: q.code_challenge.clone(),
                offline: q.token_access_type.as_deref() == Some("offline"),
                expires: Instant::now() + Duration::from_secs(600),
            },
        );
        if q.redirect_uri.is_none() {
            return Html(format!(
                "<!doctype html><title>Authorization code</title><p>Enter this code into {}: <code id=\"code\">{code}</code></p>",
                html_escape(&spec.name)
            ))
            .into_response();
        }
        params.push(("code", code));
    } else {
        params.push(("error", "access_denied".into()));
        params.push((
            "error_description",
            "The user chose not to give your app access to their Dropbox account.".into(),
        ));
    }
    if let Some(state) = q.state {
        params.push(("state", state));
    }
    let Some(redirect) = q.redirect_uri else {
        return bad_page("access denied");
    };
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    let separator = if redirect.contains('?') { '&' } else { '?' };
    let location = format!("{redirect}{separator}{}", query.join("&"));
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

// ---------------------------------------------------------------------------------------
// /oauth2/token

fn token_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error, "error_description": description}).to_string(),
    )
        .into_response()
}

/// `POST /oauth2/token` (form-encoded; repeated keys allowed, the first one counts).
pub async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = parse_form(&body);
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    // Client credentials: HTTP Basic or form fields.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(k, s)| (k.to_string(), s.to_string()))
        });
    let (client_id, client_secret) = match basic {
        Some((k, s)) => (Some(k), Some(s)),
        None => (get("client_id"), get("client_secret")),
    };
    let Some(spec) = client_id.as_deref().and_then(|k| app.oauth.app(k)).cloned() else {
        return token_error("invalid_client", "Invalid client_id or client_secret");
    };
    let secret_ok = match (&spec.secret, &client_secret) {
        (Some(expected), Some(given)) => expected == given,
        _ => false,
    };
    if client_secret.is_some() && !secret_ok {
        return token_error("invalid_client", "Invalid client_id or client_secret");
    }
    let lifetime = app.oauth.lifetime.as_secs();
    match get("grant_type").as_deref() {
        Some("authorization_code") => {
            let Some(code) = get("code").and_then(|c| lock(&app.oauth.codes).remove(&c)) else {
                return token_error("invalid_grant", "code doesn't exist or has expired");
            };
            if code.app != spec.key || Instant::now() >= code.expires {
                return token_error("invalid_grant", "code doesn't exist or has expired");
            }
            if code.redirect_uri.is_some() && get("redirect_uri") != code.redirect_uri {
                return token_error("invalid_grant", "redirect_uri mismatch");
            }
            let pkce = match (&code.challenge, get("code_verifier")) {
                (Some(challenge), Some(verifier)) => {
                    let digest = sha2::Sha256::digest(verifier.as_bytes());
                    if URL_SAFE_NO_PAD.encode(digest) != *challenge {
                        return token_error("invalid_grant", "invalid code verifier");
                    }
                    true
                }
                (Some(_), None) if secret_ok => false,
                (Some(_), None) => {
                    return token_error(
                        "invalid_request",
                        "No auth function available for given request",
                    );
                }
                (None, _) if secret_ok => false,
                (None, _) => {
                    return token_error(
                        "invalid_request",
                        "No auth function available for given request",
                    );
                }
            };
            let grant = Grant {
                space: code.space,
                scopes: code.scopes.clone(),
                app_folder: spec.app_folder.then(|| spec.name.clone()),
            };
            let refresh = code.offline.then(|| {
                let token = random_token(64);
                lock(&app.oauth.refresh).insert(
                    token.clone(),
                    Refresh {
                        app: spec.key.clone(),
                        grant: grant.clone(),
                        pkce,
                    },
                );
                token
            });
            let access = app.oauth.mint(grant.clone(), refresh.clone());
            let account_id = app
                .spaces
                .get(grant.space)
                .map(|s| s.account.account_id.clone())
                .unwrap_or_default();
            let mut body = json!({
                "access_token": access,
                "token_type": "bearer",
                "expires_in": lifetime,
                "scope": grant.scopes.join(" "),
                "uid": "12345",
                "account_id": account_id,
            });
            if let Some(refresh) = refresh {
                body["refresh_token"] = refresh.into();
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Some("refresh_token") => {
            let Some(token) = get("refresh_token") else {
                return token_error("invalid_request", "missing refresh_token");
            };
            let Some(found) = lock(&app.oauth.refresh).get(&token).cloned() else {
                return token_error("invalid_grant", "refresh token is invalid or revoked");
            };
            if found.app != spec.key {
                return token_error("invalid_grant", "refresh token is invalid or revoked");
            }
            if !found.pkce && !secret_ok {
                return token_error(
                    "invalid_request",
                    "No auth function available for given request",
                );
            }
            let mut grant = found.grant.clone();
            if let Some(scope) = get("scope") {
                let wanted: Vec<String> = scope.split_whitespace().map(String::from).collect();
                if wanted.iter().any(|s| !grant.scopes.contains(s)) {
                    return token_error("invalid_scope", "requested scope exceeds the grant");
                }
                grant.scopes = wanted;
            }
            let access = app.oauth.mint(grant, Some(token));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"access_token": access, "token_type": "bearer", "expires_in": lifetime})
                    .to_string(),
            )
                .into_response()
        }
        Some(other) => token_error(
            "unsupported_grant_type",
            &format!("unsupported grant_type \"{other}\""),
        ),
        None => token_error("invalid_request", "missing grant_type"),
    }
}

/// `application/x-www-form-urlencoded` pairs, in order (repeated keys kept).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeats_and_decode() {
        let form = parse_form(b"a=1&b=x%20y+z&a=2&c&bad=%zz&end=%4");
        assert_eq!(form[0], ("a".into(), "1".into()));
        assert_eq!(form[1], ("b".into(), "x y z".into()));
        assert_eq!(form[2], ("a".into(), "2".into()));
        assert_eq!(form[3], ("c".into(), "".into()));
        assert_eq!(form[4], ("bad".into(), "%zz".into()));
        assert_eq!(form[5], ("end".into(), "%4".into()));
    }

    #[test]
    fn scopes_per_route() {
        assert_eq!(required_scope("files/upload"), Some("files.content.write"));
        assert_eq!(
            required_scope("files/list_folder"),
            Some("files.metadata.read")
        );
        assert_eq!(
            required_scope("users/get_space_usage"),
            Some("account_info.read")
        );
        assert_eq!(required_scope("auth/token/revoke"), None);
    }
}
