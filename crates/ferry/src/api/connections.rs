//! Dropbox connections: the token is checked against Dropbox, stored encrypted and never
//! shown again.

use super::extract::{JsonBody, PathParams};
use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::State;
use ferry_core::secret::Secret;
use ferry_dropbox::Endpoints;
use ferry_engine::ConnectionInput;
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `PUT /v1/connections/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    /// Dropbox access token.
    token: String,
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
    if body.token.trim().is_empty() {
        return Err(ApiError::bad_request("token must not be empty"));
    }
    let endpoints = match &body.base_url {
        Some(base) => Endpoints::single(base).map_err(|e| ApiError::bad_request(e.to_string()))?,
        None => Endpoints::dropbox(),
    };
    let account = state
        .engine
        .put_connection(ConnectionInput {
            name: name.clone(),
            token: Secret::new(body.token.trim()),
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
