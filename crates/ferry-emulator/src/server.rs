//! axum wiring: one catch-all route under `/2/`, request ids, authentication, Content-Type
//! checks, argument extraction per route style, and dispatch to the route families.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::any;
use serde_json::Value;

use crate::account::Account;
use crate::blobs::Blobs;
use crate::journal::JournalFile;
use crate::sessions::Sessions;
use crate::state::Tree;
use crate::wire::{ApiError, tag};
use crate::{EmulatorConfig, EmulatorError, RouteCalls, routes_files, routes_users};

/// Dropbox's limit on the body of one upload request.
pub const MAX_UPLOAD_BYTES: usize = 150 * 1024 * 1024;

/// RPC bodies are small JSON documents.
const MAX_RPC_BYTES: usize = 16 * 1024 * 1024;

/// How a route takes its argument and returns its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// JSON body in, JSON body out.
    Rpc,
    /// Argument in `Dropbox-API-Arg`, content in the body, JSON body out.
    Upload,
    /// Argument in `Dropbox-API-Arg`, JSON in `Dropbox-API-Result`, content in the body.
    Download,
}

/// The routes we serve and their styles.
fn style(route: &str) -> Option<Style> {
    Some(match route {
        "files/upload"
        | "files/upload_session/start"
        | "files/upload_session/append_v2"
        | "files/upload_session/finish" => Style::Upload,
        "files/download" => Style::Download,
        "files/get_metadata"
        | "files/list_folder"
        | "files/list_folder/continue"
        | "files/list_folder/get_latest_cursor"
        | "files/create_folder_v2"
        | "files/delete_v2"
        | "files/move_v2"
        | "users/get_current_account"
        | "users/get_space_usage" => Style::Rpc,
        _ => return None,
    })
}

/// Everything a request handler needs.
pub struct App {
    /// The Bearer token clients must present.
    pub token: String,
    /// Requests per route.
    pub calls: RouteCalls,
    /// The account facts.
    pub account: Account,
    /// Content store.
    pub blobs: Blobs,
    /// Upload sessions.
    pub sessions: Sessions,
    tree: Mutex<Tree>,
}

impl App {
    /// Opens the data directory and replays the journal.
    pub fn open(config: &EmulatorConfig) -> Result<App, EmulatorError> {
        let dir = &config.data_dir;
        let io = |path: std::path::PathBuf| {
            move |source| EmulatorError::DataDir {
                path: path.clone(),
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io(dir.clone()))?;
        let (account, token) = Account::load_or_create(dir, config.token.as_deref())?;
        let blobs = Blobs::open(dir.join("blobs")).map_err(io(dir.join("blobs")))?;
        let sessions = Sessions::open(dir.join("sessions")).map_err(io(dir.join("sessions")))?;
        let (file, entries) = JournalFile::open(&dir.join("journal.jsonl"))?;
        let tree = Tree::replay(account.namespace_id.clone(), file, entries);
        Ok(App {
            token,
            calls: Arc::new(Mutex::new(HashMap::new())),
            account,
            blobs,
            sessions,
            tree: Mutex::new(tree),
        })
    }

    /// The tree, recovering from a poisoned lock (the tree is only changed after the
    /// journal write succeeded, so it is consistent even if a holder panicked).
    pub fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, route: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry(route.to_string()).or_default() += 1;
    }
}

/// The router for an app.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/2/{*route}", any(dispatch))
        .fallback(unknown)
        // Slightly above the upload limit so that we, not axum, answer oversized uploads.
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024 * 1024))
        .layer(map_response(add_request_id))
        .with_state(app)
}

async fn add_request_id(mut response: Response) -> Response {
    let id: String = format!("{:032x}", rand::random::<u128>());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-dropbox-request-id", value);
    }
    response
}

async fn unknown(request: Request) -> Response {
    let route = request.uri().path().trim_start_matches('/').to_string();
    ApiError::UnknownRoute(route).into_response_for("", "")
}

async fn dispatch(State(app): State<Arc<App>>, request: Request) -> Response {
    let route = request
        .uri()
        .path()
        .strip_prefix("/2/")
        .unwrap_or_default()
        .to_string();
    let Some(style) = style(&route) else {
        return ApiError::UnknownRoute(route).into_response_for("", "");
    };
    app.count(&route);
    let location = match style {
        Style::Rpc => "request body",
        Style::Upload | Style::Download => "HTTP header \"Dropbox-API-Arg\"",
    };
    let (parts, body) = request.into_parts();
    match handle(&app, &route, style, parts, body).await {
        Ok(response) => response,
        Err(err) => err.into_response_for(&route, location),
    }
}

async fn handle(
    app: &App,
    route: &str,
    style: Style,
    parts: Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let allowed =
        parts.method == Method::POST || (style == Style::Download && parts.method == Method::GET);
    if !allowed {
        return Err(ApiError::MethodNotAllowed);
    }
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    authenticate(app, &parts.headers, &query)?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (arg, data) = match style {
        Style::Rpc => {
            let body = axum::body::to_bytes(body, MAX_RPC_BYTES)
                .await
                .map_err(|_| ApiError::BadRequest("request body too large".into()))?;
            (rpc_arg(content_type.as_deref(), &body)?, Bytes::new())
        }
        Style::Upload => {
            check_content_type(
                content_type.as_deref().unwrap_or_default(),
                &[
                    "application/octet-stream",
                    "text/plain; charset=dropbox-cors-hack",
                ],
            )?;
            let arg = header_arg(&parts.headers, &query)?;
            (arg, upload_body(&parts.headers, body).await?)
        }
        Style::Download => (header_arg(&parts.headers, &query)?, Bytes::new()),
    };
    if route.starts_with("users/") {
        routes_users::call(app, route, arg).await
    } else {
        routes_files::call(app, route, arg, data, &parts.headers).await
    }
}

/// `Authorization: Bearer <token>` (or the `authorization` URL parameter).
fn authenticate(
    app: &App,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let value = match headers.get(header::AUTHORIZATION) {
        Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        None => match query.get("authorization") {
            Some(value) => value.clone(),
            None => {
                return Err(ApiError::BadRequest(
                    "Must provide HTTP header \"Authorization\" or URL parameter \"authorization\"."
                        .into(),
                ));
            }
        },
    };
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && !token.contains(' '));
    let Some(token) = token else {
        return Err(ApiError::BadRequest(format!(
            "Invalid authorization value in HTTP header \"Authorization\": \"{value}\".  Expecting \"Bearer <oauth2-access-token>\"."
        )));
    };
    if token != app.token {
        return Err(ApiError::InvalidToken);
    }
    Ok(())
}

fn check_content_type(value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())) {
        return Ok(());
    }
    let expected = allowed
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::BadRequest(format!(
        "Bad HTTP \"Content-Type\" header: \"{value}\".  Expecting one of {expected}."
    )))
}

/// The JSON argument of an RPC route. No body and no Content-Type means `null` (void routes);
/// an empty body that claims to be JSON is not JSON.
fn rpc_arg(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    if content_type.is_none() && body.is_empty() {
        return Ok(Value::Null);
    }
    check_content_type(
        content_type.unwrap_or_default(),
        &[
            "application/json",
            "application/json; charset=utf-8",
            "text/plain; charset=dropbox-cors-hack",
        ],
    )?;
    serde_json::from_slice(body)
        .map_err(|_| ApiError::BadArg("could not decode input as JSON".into()))
}

/// The argument of upload and download routes: `Dropbox-API-Arg`, which must be ASCII (non-ASCII
/// characters have to be `\u`-escaped), or the `arg` URL parameter.
fn header_arg(headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let not_json = || ApiError::BadArg("could not decode input as JSON".into());
    if let Some(value) = headers.get("dropbox-api-arg") {
        let bytes = value.as_bytes();
        if !bytes.is_ascii() {
            return Err(not_json());
        }
        return serde_json::from_slice(bytes).map_err(|_| not_json());
    }
    if let Some(value) = query.get("arg") {
        return serde_json::from_str(value).map_err(|_| not_json());
    }
    Err(ApiError::BadRequest(
        "Must provide HTTP header \"Dropbox-API-Arg\" or URL parameter \"arg\".".into(),
    ))
}

/// Reads an upload body; more than 150 MiB is the route error `payload_too_large`.
async fn upload_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::route(tag("payload_too_large"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_uploads_are_payload_too_large() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from_static("157286401"),
        );
        let declared = upload_body(&headers, Body::empty()).await;
        assert!(matches!(declared, Err(ApiError::Route(v)) if v == tag("payload_too_large")));
        let actual = upload_body(
            &HeaderMap::new(),
            Body::from(vec![0u8; MAX_UPLOAD_BYTES + 1]),
        )
        .await;
        assert!(matches!(actual, Err(ApiError::Route(v)) if v == tag("payload_too_large")));
        let fine = upload_body(&HeaderMap::new(), Body::from(vec![1u8; 10])).await;
        assert_eq!(fine.map(|b| b.len()).ok(), Some(10));
    }
}
