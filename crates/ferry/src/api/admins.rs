//! Console admins, managed with the API key: set a password (creating the admin), and make
//! a one-time sign-in link (what `ferry admin login-link` and `ferry demo` print).

use super::extract::{JsonBody, PathParams};
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::extract::State;
use ferry_core::secret::Secret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `PUT /v1/admins/{name}/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// At least 10 characters, at most 1024 bytes.
    password: String,
}

/// A password was set.
#[derive(Serialize, ToSchema)]
pub struct PasswordSet {
    /// The admin.
    admin: String,
    /// The admin is new.
    created: bool,
}

/// A one-time sign-in link.
#[derive(Serialize, ToSchema)]
pub struct LoginLink {
    /// Path (under Ferry's base URL) that signs the admin in once.
    path: String,
    /// When it stops working, ms since the epoch.
    expires_at: i64,
}

/// `PUT /v1/admins/{name}/password`: creates the console admin or sets a new password
/// (which ends that admin's console sessions).
#[utoipa::path(put, operation_id = "set_admin_password", path = "/v1/admins/{name}/password", tag = "admins",
    params(("name" = String, Path, description = "Admin name")),
    request_body = PasswordBody,
    responses((status = 200, body = PasswordSet), (status = 400, body = ErrorBody)))]
pub async fn set_password(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<Json<PasswordSet>, ApiError> {
    let created = state
        .engine
        .set_admin_password(&name, &Secret::new(body.password))
        .await?;
    Ok(Json(PasswordSet {
        admin: name,
        created,
    }))
}

/// `POST /v1/admins/{name}/login-link`: a link that signs the admin in to the console once,
/// within ten minutes.
#[utoipa::path(post, operation_id = "admin_login_link", path = "/v1/admins/{name}/login-link", tag = "admins",
    params(("name" = String, Path, description = "Admin name")),
    responses((status = 200, body = LoginLink), (status = 404, body = ErrorBody)))]
pub async fn login_link(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<LoginLink>, ApiError> {
    let (token, expires_at) = state.engine.login_link(&name).await?;
    Ok(Json(LoginLink {
        path: format!("/console/login/link?token={}", token.expose()),
        expires_at,
    }))
}
