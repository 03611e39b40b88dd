//! Dropbox connections: the token is checked against Dropbox, stored encrypted and never
//! shown again.

use super::extract::{JsonBody, PathParams};
use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::State;
use ferry_core::secret::Secret;
use ferry_dropbox::Endpoints;
use ferry_dropbox::Refresh;
use ferry_engine::{ConnectionInput, Credentials};
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `PUT /v1/connections/{name}`.
#[derive(Deserialize)]
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
}

/// `PUT /v1/connections/{name}`.
pub async fn put(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<ConnectionBody>,
) -> Result<Json<Value>, ApiError> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
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
    let endpoints = match &body.base_url {
        Some(base) => Endpoints::single(base).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => Endpoints::dropbox(),
    };
    let account = state
        .engine
        .put_connection(ConnectionInput {
            name: name.clone(),
            credentials,
            root: body.root.clone(),
            endpoints,
        })
        .await?;
    Ok(Json(json!({
        "name": name,
        "root": body.root,
        "account": {"account_id": account.account_id, "display_name": account.display_name, "email": account.email},
    })))
}

/// `DELETE /v1/connections/{name}`: reverse sync (every file only Dropbox holds comes back
/// into Ferry), then the connection goes. Answers at once; progress shows in `GET /v1/connections`.
pub async fn remove(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let records = state.engine.disconnect(&name).await?;
    Ok(Json(
        json!({"disconnecting": name, "records_to_bring_back": records}),
    ))
}

/// `GET /v1/connections`: names, roots and hosts; never tokens.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let connections: Vec<Value> = state
        .engine
        .store()
        .connections()
        .await?
        .into_iter()
        .map(|c| {
            json!({"name": c.name, "root": c.root, "api_url": c.api_url, "content_url": c.content_url,
                   "needs_reconnect": c.needs_reconnect, "disconnecting": c.disconnecting})
        })
        .collect();
    Ok(Json(json!({"connections": connections})))
}

/// `POST /v1/connections/{name}/confirm-deletions`: lets the deletions the connection-wide
/// brake stopped go ahead (the brake's window starts anew), and re-runs the paused records.
pub async fn confirm_deletions(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.engine.store();
    if store.connection(&name).await?.is_none() {
        return Err(ApiError::not_found(format!("no connection named {name:?}")));
    }
    let records = store.confirm_connection_deletions(&name).await?;
    store
        .enqueue(&records, ferry_store::Priority::Normal)
        .await?;
    state.engine.wake();
    Ok(Json(json!({"confirmed_records": records.len()})))
}
