//! axum wiring: one catch-all route under `/2/`, request ids, authentication, Content-Type
//! checks, argument extraction per route style, and dispatch to the route families.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::Value;

use crate::faults::{self, FaultModel, FaultsHandle};
use crate::oauth::{self, Grant, OAuth, TokenState};
use crate::space::Space;
use crate::team::{self, Team};
use crate::wire::{self, ApiError, tag};
use crate::{
    AccountInfo, EmulatorConfig, EmulatorError, RouteCalls, approot, routes_batch, routes_files,
    routes_search, routes_sharing, routes_users,
};

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
        | "files/upload_session/append_batch"
        | "files/upload_session/finish" => Style::Upload,
        "files/download" => Style::Download,
        "files/get_metadata"
        | "files/list_folder"
        | "files/list_folder/continue"
        | "files/list_folder/get_latest_cursor"
        | "files/list_folder/longpoll"
        | "files/create_folder_v2"
        | "files/delete_v2"
        | "files/move_v2"
        | "files/copy_v2"
        | "files/get_temporary_link"
        | "files/upload_session/start_batch"
        | "files/upload_session/finish_batch"
        | "files/upload_session/finish_batch/check"
        | "files/upload_session/finish_batch_v2"
        | "files/create_folder_batch"
        | "files/create_folder_batch/check"
        | "files/delete_batch"
        | "files/delete_batch/check"
        | "files/move_batch_v2"
        | "files/move_batch/check_v2"
        | "files/search_v2"
        | "files/search/continue_v2"
        | "sharing/create_shared_link_with_settings"
        | "sharing/list_shared_links"
        | "sharing/revoke_shared_link"
        | "users/get_current_account"
        | "users/get_space_usage"
        | "team/members/list_v2"
        | "team/members/list/continue_v2"
        | "auth/token/revoke" => Style::Rpc,
        _ => return None,
    })
}

/// The style of a route we serve (for tests).
#[cfg(test)]
pub fn style_of(route: &str) -> Option<Style> {
    style(route)
}

/// Routes that change the namespace: a dropped connection after them is a lost result.
fn is_write(route: &str) -> bool {
    matches!(
        route,
        "files/upload"
            | "files/upload_session/finish"
            | "files/upload_session/finish_batch"
            | "files/upload_session/finish_batch_v2"
            | "files/create_folder_v2"
            | "files/create_folder_batch"
            | "files/delete_v2"
            | "files/delete_batch"
            | "files/move_v2"
            | "files/move_batch_v2"
            | "files/copy_v2"
    )
}

/// A file served by a temporary link.
#[derive(Clone)]
pub struct TempLink {
    /// The namespace holding the file.
    pub space: Arc<Space>,
    /// The blob.
    pub content_hash: String,
    /// When the link stops working (then 410).
    pub expires: Instant,
}

/// Everything a request handler needs.
pub struct App {
    /// The accounts; the primary one first.
    pub spaces: Vec<Arc<Space>>,
    /// Requests per route.
    pub calls: RouteCalls,
    /// Body bytes received by content-upload routes (what clients sent, accepted or not).
    pub upload_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// Upload sessions started open, to be appended to (a large file's), as against those
    /// closed at start (one small file staged for a batch commit).
    pub open_sessions: Arc<std::sync::atomic::AtomicU64>,
    /// The live contention and fault model.
    pub faults: FaultsHandle,
    /// Temporary links by their random key.
    pub temp_links: Mutex<HashMap<String, TempLink>>,
    /// Served over HTTPS (links we hand out use `https://`).
    pub tls: bool,
    /// OAuth apps and grants.
    pub oauth: OAuth,
    /// The team, if configured.
    pub team: Option<Team>,
    /// The seeded randomness requests draw from ([`crate::EmulatorConfig::seed`]).
    pub seeded: Option<Arc<Mutex<rand::rngs::StdRng>>>,
}

impl App {
    /// Opens the data directory and every account in it.
    pub fn open(config: &EmulatorConfig) -> Result<App, EmulatorError> {
        let seeded = config.seed.map(|seed| {
            Arc::new(Mutex::new(
                <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed),
            ))
        });
        let mut app = crate::wire::seeded_sync(seeded.as_ref(), || App::open_accounts(config))?;
        app.seeded = seeded;
        Ok(app)
    }

    fn open_accounts(config: &EmulatorConfig) -> Result<App, EmulatorError> {
        let dir = &config.data_dir;
        let mut spaces = vec![Arc::new(Space::open(
            "default",
            dir,
            config.token.as_deref(),
            config.quota_bytes,
        )?)];
        for spec in &config.accounts {
            spec.validate()?;
            if spaces.iter().any(|s| s.name == spec.name) {
                return Err(EmulatorError::Config(format!(
                    "account {:?} is configured twice",
                    spec.name
                )));
            }
            let space = Space::open(
                &spec.name,
                &dir.join("accounts").join(&spec.name),
                spec.token.as_deref(),
                spec.quota_bytes.unwrap_or(crate::DEFAULT_QUOTA_BYTES),
            )?;
            if spaces.iter().any(|s| s.token == space.token) {
                return Err(EmulatorError::Config(format!(
                    "account {:?} has the same token as another account",
                    spec.name
                )));
            }
            spaces.push(Arc::new(space));
        }
        let team = match &config.team {
            Some(spec) => Some(Team::open(dir, spec, &spaces)?),
            None => None,
        };
        Ok(App {
            team,
            spaces,
            calls: Arc::new(Mutex::new(HashMap::new())),
            upload_bytes: Arc::default(),
            open_sessions: Arc::default(),
            faults: FaultsHandle::new(config.model.clone()),
            temp_links: Mutex::new(HashMap::new()),
            tls: false,
            oauth: OAuth::new(
                config.apps.clone(),
                std::time::Duration::from_secs(config.token_lifetime_secs),
            ),
            seeded: None,
        })
    }

    /// Names, tokens and ids of all accounts.
    pub fn account_infos(&self) -> Vec<AccountInfo> {
        self.spaces
            .iter()
            .map(|s| AccountInfo {
                name: s.name.clone(),
                token: s.token.clone(),
                account_id: s.account.account_id.clone(),
                namespace_id: s.account.namespace_id.clone(),
            })
            .collect()
    }

    /// The namespace (an account's, or the team root) whose cursors carry this journal id.
    pub fn space_by_journal(&self, journal_id: &str) -> Option<Arc<Space>> {
        self.spaces
            .iter()
            .chain(self.team.as_ref().map(|t| &t.root))
            .find(|s| s.account.journal_id == journal_id)
            .cloned()
    }

    fn count(&self, route: &str) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        *calls.entry(route.to_string()).or_default() += 1;
    }
}

/// One request's view: the app, the namespace it works on, the caller's account, the model
/// in force, and the origin (`http://host:port`) the client used (for links we serve).
pub struct Ctx<'a> {
    /// The whole emulator.
    pub app: &'a App,
    /// The namespace the request works on: the caller's home, or the team root
    /// (`Dropbox-API-Path-Root`).
    pub space: &'a Arc<Space>,
    /// The caller's account (for `users/*`).
    pub user: &'a Arc<Space>,
    /// The fault model for this request.
    pub model: FaultModel,
    /// Scheme, host and port as the client addressed us.
    pub origin: String,
}

impl std::ops::Deref for Ctx<'_> {
    type Target = Space;
    fn deref(&self) -> &Space {
        self.space
    }
}

/// The router for an app.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/2/{*route}", any(dispatch))
        .route("/temp/{key}", get(temp_link))
        .route("/temp/{key}/{name}", get(temp_link_named))
        .route("/admin/model", get(admin_get_model).put(admin_put_model))
        .route(
            "/oauth2/authorize",
            get(oauth::authorize_page).post(oauth::authorize_decision),
        )
        .route("/oauth2/token", axum::routing::post(oauth::token))
        .fallback(unknown)
        // Slightly above the upload limit so that we, not axum, answer oversized uploads.
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 1024 * 1024))
        .layer(map_response(add_request_id))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            seeded,
        ))
        .with_state(app)
}

/// Serves a request with the app's seeded randomness, if it has any.
async fn seeded(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    crate::wire::seeded(app.seeded.clone(), next.run(request)).await
}

async fn add_request_id(mut response: Response) -> Response {
    let id: String = format!("{:032x}", crate::wire::random::<u128>());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-dropbox-request-id", value);
    }
    response
}

async fn unknown(request: Request) -> Response {
    let route = request.uri().path().trim_start_matches('/').to_string();
    ApiError::UnknownRoute(route).into_response_for("", "")
}

/// `GET /admin/model`: the current fault model as JSON.
async fn admin_get_model(State(app): State<Arc<App>>) -> Response {
    let value = serde_json::to_value(app.faults.model()).unwrap_or_default();
    wire::json(StatusCode::OK, &value)
}

/// `PUT /admin/model`: a JSON object with the knobs to change; answers the new model.
/// Changing state needs the primary account's token (`Authorization: Bearer <token>`).
async fn admin_put_model(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let primary = app.spaces.first().map(|s| s.token.as_str());
    if presented.is_none() || presented != primary {
        return wire::text(
            StatusCode::UNAUTHORIZED,
            "PUT /admin/model needs \"Authorization: Bearer <token of the primary account>\""
                .to_string(),
        );
    }
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return wire::text(StatusCode::BAD_REQUEST, format!("not JSON: {e}")),
    };
    match app.faults.model().patched(&patch) {
        Ok(model) => {
            tracing::info!(?model, "fault model changed");
            app.faults.set_model(model);
            admin_get_model(State(app)).await
        }
        Err(e) => wire::text(StatusCode::BAD_REQUEST, e),
    }
}

/// `GET /temp/<key>/<name>`: the name only makes the URL readable.
async fn temp_link_named(
    state: State<Arc<App>>,
    Path((key, _name)): Path<(String, String)>,
) -> Response {
    temp_link(state, Path(key)).await
}

/// `GET /temp/<key>`: the content behind a temporary link, 410 once it expired.
async fn temp_link(State(app): State<Arc<App>>, Path(key): Path<String>) -> Response {
    let link = {
        let links = app.temp_links.lock().unwrap_or_else(|p| p.into_inner());
        links.get(&key).cloned()
    };
    let Some(link) = link else {
        return wire::text(StatusCode::NOT_FOUND, "Not Found".into());
    };
    if Instant::now() >= link.expires {
        return wire::text(StatusCode::GONE, "This link has expired.".into());
    }
    match link.space.blobs.read(&link.content_hash).await {
        Ok(bytes) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Err(err) => ApiError::from(err).into_response_for("temporary link", ""),
    }
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
    let model = app.faults.model();
    let delay = model.latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if faults::roll(model.p_server_error) {
        return ApiError::ServiceUnavailable.into_response_for(&route, location);
    }
    let (parts, body) = request.into_parts();
    let response = match handle(&app, &route, style, parts, body, model.clone()).await {
        Ok(response) => response,
        Err(err) => err.into_response_for(&route, location),
    };
    if is_write(&route) && response.status().is_success() && faults::roll(model.p_drop_after_commit)
    {
        tracing::debug!(route, "fault: dropping the connection after a commit");
        return dropped_connection();
    }
    response
}

/// A response whose body fails at once, so the server aborts the connection: the client
/// never sees a result although the change was applied.
fn dropped_connection() -> Response {
    let failing = futures::stream::iter([Err::<Bytes, std::io::Error>(std::io::Error::other(
        "fault injection: connection dropped",
    ))]);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(failing))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn origin(headers: &HeaderMap, tls: bool) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost");
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

async fn handle(
    app: &App,
    route: &str,
    style: Style,
    parts: Parts,
    body: Body,
    model: FaultModel,
) -> Result<Response, ApiError> {
    let allowed =
        parts.method == Method::POST || (style == Style::Download && parts.method == Method::GET);
    if !allowed {
        return Err(ApiError::MethodNotAllowed);
    }
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|q| q.0)
        .unwrap_or_default();
    if route == "files/list_folder/longpoll" {
        // The notify host takes no authentication, and refuses it when sent.
        if parts.headers.contains_key(header::AUTHORIZATION) || query.contains_key("authorization")
        {
            return Err(ApiError::BadRequest(
                "Your request includes an Authorization header, but this function does not use it."
                    .into(),
            ));
        }
        let content_type = content_type(&parts.headers);
        let body = axum::body::to_bytes(body, MAX_RPC_BYTES)
            .await
            .map_err(|_| ApiError::BadRequest("request body too large".into()))?;
        let arg = rpc_arg(content_type.as_deref(), &body)?;
        return routes_files::longpoll(app, arg, &model).await;
    }
    if route.starts_with("team/members/list") {
        // Team-level routes: the team token alone, no member selected.
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let body = axum::body::to_bytes(body, MAX_RPC_BYTES)
            .await
            .map_err(|_| ApiError::BadRequest("request body too large".into()))?;
        let arg = rpc_arg(content_type(&parts.headers).as_deref(), &body)?;
        let result = team::members_route(app.team.as_ref(), route, &token, &arg)?;
        return Ok(wire::json(StatusCode::OK, &result));
    }
    let caller = authenticate(app, &parts.headers, &query)?;
    let space = caller.space;
    if let Some(grant) = &caller.grant
        && let Some(scope) = oauth::required_scope(route)
        && !grant.scopes.iter().any(|s| s == scope)
    {
        return Err(ApiError::MissingScope(scope));
    }
    if model.rate_limit
        && let Err(wait) = space.limiter.take(model.rate_per_sec, model.rate_burst)
    {
        return Err(ApiError::TooManyRequests(wait));
    }
    let content_type = content_type(&parts.headers);
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
            let data = upload_body(&parts.headers, body).await?;
            app.upload_bytes
                .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            (arg, data)
        }
        Style::Download => (header_arg(&parts.headers, &query)?, Bytes::new()),
    };
    let namespace = team::path_root(
        parts
            .headers
            .get("dropbox-api-path-root")
            .map(|v| v.as_bytes()),
        space,
        app.team.as_ref(),
    )?;
    let cx = Ctx {
        app,
        space: &namespace,
        user: space,
        model,
        origin: origin(&parts.headers, app.tls),
    };
    if route == "auth/token/revoke" {
        if !arg.is_null() {
            return Err(ApiError::BadArg("expected null, got a value".into()));
        }
        // Static account tokens cannot be revoked; OAuth ones (and their family) can.
        if caller.grant.is_some() {
            app.oauth.revoke(&caller.token);
        }
        return Ok(wire::json(StatusCode::OK, &Value::Null));
    }
    let app_folder = caller.grant.as_ref().and_then(|g| g.app_folder.clone());
    let Some(folder) = app_folder else {
        return route_call(&cx, route, arg, data, &parts.headers).await;
    };
    // App-folder app: root the arguments at /Apps/<name> and make results relative again.
    let prefix = format!("/Apps/{folder}");
    ensure_folder(&cx, &prefix).await?;
    let mut arg = arg;
    approot::rewrite_arg(route, &mut arg, &prefix);
    let response = route_call(&cx, route, arg, data, &parts.headers).await?;
    Ok(relative_response(response, &crate::paths::lower(&prefix)).await)
}

/// Creates the app folder on first use (Dropbox creates it when the app is linked).
async fn ensure_folder(cx: &Ctx<'_>, display: &str) -> Result<(), ApiError> {
    let lower = crate::paths::lower(display);
    if cx.tree().get(&lower).is_some() {
        return Ok(());
    }
    let lock = cx.lock_writes(&cx.model, 1).await?;
    let created = {
        let mut tree = cx.tree();
        if tree.get(&lower).is_some() {
            Ok(())
        } else {
            tree.create_folder(display, false).map(|_| ())
        }
    };
    lock.release().await;
    match created {
        Ok(()) => Ok(()),
        Err(crate::state::OpError::Io(err)) => Err(err.into()),
        Err(_) => Err(ApiError::Internal(format!("cannot create {display}"))),
    }
}

/// Rewrites the JSON body (and `Dropbox-API-Result`) of a response for an app-folder app.
async fn relative_response(response: Response, prefix_lower: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    if let Some(result) = parts
        .headers
        .get("dropbox-api-result")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
    {
        let mut result = result;
        approot::rewrite_result(&mut result, prefix_lower);
        if let Ok(value) = HeaderValue::from_str(&wire::ascii_json(&result)) {
            parts.headers.insert("dropbox-api-result", value);
        }
        return Response::from_parts(parts, body);
    }
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_RPC_BYTES).await else {
        return ApiError::Internal("response body".into()).into_response_for("", "");
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    approot::rewrite_result(&mut value, prefix_lower);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}

async fn route_call(
    cx: &Ctx<'_>,
    route: &str,
    arg: Value,
    data: Bytes,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if route.starts_with("users/") {
        routes_users::call(cx, route, arg).await
    } else if route.starts_with("sharing/") {
        routes_sharing::call(cx, route, arg).await
    } else if route.starts_with("files/search") {
        routes_search::call(cx, route, arg).await
    } else if route.contains("batch") && route != "files/upload_session/append_batch" {
        routes_batch::call(cx, route, arg).await
    } else {
        routes_files::call(cx, route, arg, data, headers).await
    }
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `Authorization: Bearer <token>` (or the `authorization` URL parameter).
/// Who is calling: the account, and for OAuth tokens the grant (scopes, app folder).
struct Caller<'a> {
    space: &'a Arc<Space>,
    grant: Option<Grant>,
    token: String,
}

/// The Select-User member for a team token; 400 without the header, 401 for an unknown id.
fn select_user<'a>(team: &'a Team, headers: &HeaderMap) -> Result<&'a Arc<Space>, ApiError> {
    let Some(value) = headers.get("dropbox-api-select-user") else {
        return Err(ApiError::BadRequest(
            "This API function operates on a single Dropbox account, but the OAuth 2 access token you provided is for an entire Dropbox Business team.  Since your API app key has team member file access permissions, you can operate on a team member's Dropbox by providing the \"Dropbox-API-Select-User\" HTTP header or \"select_user\" URL parameter.".into(),
        ));
    };
    let id = String::from_utf8_lossy(value.as_bytes());
    team.members
        .iter()
        .find(|m| m.member_id == id.trim())
        .map(|m| &m.space)
        .ok_or(ApiError::InvalidSelectUser)
}

fn authenticate<'a>(
    app: &'a App,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Caller<'a>, ApiError> {
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
    if let Some(team) = &app.team
        && team.token == token
    {
        return Ok(Caller {
            space: select_user(team, headers)?,
            grant: None,
            token: token.to_string(),
        });
    }
    if let Some(space) = app.spaces.iter().find(|s| s.token == token) {
        return Ok(Caller {
            space,
            grant: None,
            token: token.to_string(),
        });
    }
    match app.oauth.lookup(token) {
        Ok(grant) => {
            let space = app.spaces.get(grant.space).ok_or(ApiError::InvalidToken)?;
            Ok(Caller {
                space,
                grant: Some(grant),
                token: token.to_string(),
            })
        }
        Err(TokenState::Expired) => Err(ApiError::ExpiredToken),
        Err(TokenState::Unknown) => Err(ApiError::InvalidToken),
    }
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
