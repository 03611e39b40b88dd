//! Dropbox connections: the token is checked against Dropbox, stored encrypted and never
//! shown again.

use super::extract::{JsonBody, PathParams, nonempty};
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::extract::State;
use ferry_core::secret::Secret;
use ferry_dropbox::Endpoints;
use ferry_dropbox::Refresh;
use ferry_engine::connect_flow::{ConnectError, ConnectRequest};
use ferry_engine::views::{
    AccountView, ConfirmedRecords, ConnectionList, ConnectionSaved, Disconnecting,
};
use ferry_engine::{AppAccess, ConnectionInput, Credentials, PathRootChoice};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One base URL for all hosts (the emulator), or the real Dropbox.
fn endpoints_for(base_url: Option<&str>) -> Result<Endpoints, ApiError> {
    match base_url {
        Some(base) => Endpoints::single(base).map_err(|e| ApiError::bad_request(e.to_string())),
        None => Ok(Endpoints::dropbox()),
    }
}

fn path_root(text: Option<&str>) -> Result<PathRootChoice, ApiError> {
    Ok(PathRootChoice::parse(text.unwrap_or("home").trim())?)
}

/// Body of `PUT /v1/connections/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    /// Dropbox access token (or use `refresh_token` + `app_key`).
    #[serde(default)]
    token: Option<String>,
    /// OAuth refresh token: access tokens are then refreshed as they expire.
    #[serde(default)]
    refresh_token: Option<String>,
    /// The Dropbox app key the refresh token belongs to.
    #[serde(default)]
    app_key: Option<String>,
    /// The app secret (leave out for PKCE apps).
    #[serde(default)]
    app_secret: Option<String>,
    /// Root folder for rule paths (`""` = whole Dropbox / app folder).
    #[serde(default)]
    root: String,
    /// One base URL for all Dropbox hosts (the emulator); default: the real Dropbox.
    #[serde(default)]
    base_url: Option<String>,
    /// With a team token: the team member Ferry acts as (`dbmid:…`).
    #[serde(default)]
    select_user: Option<String>,
    /// Where `root` is: `home` (default: the account's or member's own folder), `team` (the
    /// team space) or a namespace id.
    #[serde(default)]
    path_root: Option<String>,
    /// What the token's app can reach: `full_dropbox` or `app_folder` (Dropbox does not
    /// say; shown in the console). Left out: the configured OAuth app's setting for its
    /// credentials, else what was known for the same account.
    #[serde(default)]
    app_access: Option<AppAccess>,
}

/// `PUT /v1/connections/{name}`: checks the token against Dropbox, stores it encrypted.
#[utoipa::path(put, operation_id = "put_connection", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    request_body = ConnectionBody,
    responses((status = 200, body = ConnectionSaved), (status = 400, body = ErrorBody),
        (status = 409, description = "Credentials of another Dropbox account (`account_switch`)", body = ErrorBody),
        (status = 502, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<ConnectionBody>,
) -> Result<Json<ConnectionSaved>, ApiError> {
    let credentials = match (
        nonempty(&body.token),
        nonempty(&body.refresh_token),
        nonempty(&body.app_key),
    ) {
        (Some(token), None, _) => Credentials::Token(Secret::new(token)),
        (None, Some(refresh), Some(app_key)) => Credentials::Refresh(Refresh {
            refresh_token: Secret::new(refresh),
            app_key,
            app_secret: nonempty(&body.app_secret).map(Secret::new),
        }),
        (None, Some(_), None) => return Err(ApiError::bad_request("refresh_token needs app_key")),
        (Some(_), Some(_), _) => {
            return Err(ApiError::bad_request(
                "give either token or refresh_token, not both",
            ));
        }
        (None, None, _) => {
            return Err(ApiError::bad_request(
                "token (or refresh_token and app_key) must not be empty",
            ));
        }
    };
    let endpoints = endpoints_for(body.base_url.as_deref())?;
    let account = state
        .engine
        .put_connection(ConnectionInput {
            name: name.clone(),
            credentials,
            root: body.root.clone(),
            endpoints,
            select_user: nonempty(&body.select_user),
            path_root: path_root(body.path_root.as_deref())?,
            app_access: body.app_access,
        })
        .await?;
    Ok(Json(ConnectionSaved {
        name,
        root: body.root,
        account: AccountView {
            account_id: account.account_id,
            display_name: account.display_name,
            email: account.email,
        },
    }))
}

/// `DELETE /v1/connections/{name}`: reverse sync (every file only Dropbox holds comes back
/// into Ferry), then the connection goes. Answers at once; progress shows in `GET /v1/connections`.
#[utoipa::path(delete, operation_id = "delete_connection", path = "/v1/connections/{name}", tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    responses((status = 200, body = Disconnecting), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Disconnecting>, ApiError> {
    let records = state.engine.disconnect(&name).await?;
    Ok(Json(Disconnecting {
        disconnecting: name,
        records_to_bring_back: records as u64,
    }))
}

/// Body of `POST /v1/connections/{name}/root`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RootBody {
    /// The new root folder (`""` = the whole Dropbox / the app folder, else `/A/B`).
    root: String,
}

/// The root a connection moved to.
#[derive(Serialize, ToSchema)]
pub struct RootChanged {
    /// The connection.
    name: String,
    /// Its new root.
    root: String,
}

/// `POST /v1/connections/{name}/root`: moves the connection's root, keeping its credentials.
/// The new root folder is made if missing; each record's folder moves there (one Dropbox
/// move, on the record's next pass; nothing is uploaded again).
#[utoipa::path(post, operation_id = "change_connection_root", path = "/v1/connections/{name}/root", tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    request_body = RootBody,
    responses((status = 200, body = RootChanged), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn change_root(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<RootBody>,
) -> Result<Json<RootChanged>, ApiError> {
    let root = body.root.trim().to_owned();
    state.engine.change_root(&name, &root).await?;
    Ok(Json(RootChanged { name, root }))
}

/// `GET /v1/connections`: names, roots and hosts; never tokens.
#[utoipa::path(get, operation_id = "list_connections", path = "/v1/connections", tag = "connections",
    responses((status = 200, body = ConnectionList)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<ConnectionList>, ApiError> {
    Ok(Json(state.engine.connections().await?))
}

/// `POST /v1/connections/{name}/confirm-deletions`: lets the deletions the connection-wide
/// brake stopped go ahead (the brake's window starts anew), and re-runs the paused records.
#[utoipa::path(post, operation_id = "confirm_connection_deletions", path = "/v1/connections/{name}/confirm-deletions", tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    responses((status = 200, body = ConfirmedRecords), (status = 404, body = ErrorBody)))]
pub async fn confirm_deletions(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<ConfirmedRecords>, ApiError> {
    Ok(Json(
        state.engine.confirm_connection_deletions(&name).await?,
    ))
}

/// Body of `POST /v1/connections/{name}/authorize`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeBody {
    /// Root folder for rule paths (`""` = whole Dropbox / app folder).
    #[serde(default)]
    root: String,
    /// One base URL for all Dropbox hosts (the emulator); default: the real Dropbox.
    #[serde(default)]
    base_url: Option<String>,
    /// With a team app: the team member Ferry acts as (`dbmid:…`).
    #[serde(default)]
    select_user: Option<String>,
    /// `home` (default), `team` or a namespace id.
    #[serde(default)]
    path_root: Option<String>,
}

/// An authorize link to send the admin to.
#[derive(Serialize, ToSchema)]
pub struct AuthorizeLink {
    /// Dropbox's authorize page for this installation's app, with a single-use state.
    authorize_url: String,
    /// When the link stops working, ms since the epoch.
    expires_at: i64,
}

/// `POST /v1/connections/{name}/authorize`: starts connecting through Dropbox's own page
/// (OAuth 2 code flow with PKCE). Open `authorize_url` in a browser and approve; Dropbox
/// sends the browser back to Ferry's callback, which stores the connection.
#[utoipa::path(post, operation_id = "authorize_connection", path = "/v1/connections/{name}/authorize", tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    request_body = AuthorizeBody,
    responses((status = 200, body = AuthorizeLink), (status = 400, body = ErrorBody)))]
pub async fn authorize(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<AuthorizeBody>,
) -> Result<Json<AuthorizeLink>, ApiError> {
    let started = state
        .engine
        .connect_start(ConnectRequest {
            name,
            root: body.root,
            endpoints: endpoints_for(body.base_url.as_deref())?,
            select_user: nonempty(&body.select_user),
            path_root: path_root(body.path_root.as_deref())?,
            session_hash: None,
        })
        .await
        .map_err(|e| match e {
            ConnectError::Engine(e) => ApiError::from(e),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(Json(AuthorizeLink {
        authorize_url: started.authorize_url,
        expires_at: started.expires_at,
    }))
}

/// A member of a team connection's team.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    /// `dbmid:…`: what `select_user` takes.
    member_id: String,
    /// The member's account, `dbid:…`.
    account_id: Option<String>,
    /// Display name.
    display_name: String,
    /// E-mail address.
    email: String,
    /// `active`, `invited`, `suspended` or `removed`.
    status: String,
}

/// The members of a team connection's team.
#[derive(Serialize, ToSchema)]
pub struct MemberList {
    /// As Dropbox lists them (at most 10,000).
    members: Vec<MemberView>,
}

/// `GET /v1/connections/{name}/members`: the members of a team connection's team (to choose
/// another `select_user`). A connection of one account answers 400.
#[utoipa::path(get, operation_id = "connection_members", path = "/v1/connections/{name}/members", tag = "connections",
    params(("name" = String, Path, description = "Connection name")),
    responses((status = 200, body = MemberList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn members(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<MemberList>, ApiError> {
    let members = state.engine.connection_members(&name).await.map_err(|e| match e {
        ferry_engine::EngineError::Dropbox(
            ferry_dropbox::DropboxError::BadRequest(_) | ferry_dropbox::DropboxError::Auth(_),
        ) => ApiError::bad_request(format!(
            "connection {name:?} is not a team connection (Dropbox refused to list team members with its token)"
        )),
        other => other.into(),
    })?;
    Ok(Json(MemberList {
        members: members
            .into_iter()
            .map(|m| MemberView {
                member_id: m.member_id,
                account_id: m.account_id,
                display_name: m.display_name,
                email: m.email,
                status: m.status,
            })
            .collect(),
    }))
}
