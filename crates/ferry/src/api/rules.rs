//! Rules: list, create or replace (validated; `?dry_run=true` only checks), preview, delete.

use super::extract::{JsonBody, PathParams, QueryParams};
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::extract::State;
use ferry_core::rules::RuleSpec;
use ferry_core::sync_plan::Direction;
use ferry_engine::views::{RuleList, RulePreview, RuleRemoved, RuleSaved};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Body of `PUT /v1/rules/{name}` and `POST /v1/rules/{name}/preview` (the name comes from
/// the URL). See docs/rules.md.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    /// The record kind the rule applies to.
    record_kind: String,
    /// The connection the files go to.
    connection: String,
    /// Expression over the record context; the rule applies while it is true.
    #[serde(default)]
    condition: Option<String>,
    /// Template for the record's folder, relative to the connection root.
    folder: String,
    /// Template for a file's path inside the folder.
    #[serde(default)]
    file_path: Option<String>,
    /// Expression over `attachment`; a file syncs while it is true.
    #[serde(default)]
    file_filter: Option<String>,
    /// Which way files flow (default push).
    #[serde(default)]
    direction: Direction,
    /// When pulling, also import files from subfolders.
    #[serde(default)]
    pull_subfolders: bool,
    /// Folders made inside each record's folder when it is first created.
    #[serde(default)]
    subfolders: Vec<String>,
    /// Make missing subfolders again on every pass (default: a deleted one stays deleted).
    #[serde(default)]
    recreate_subfolders: bool,
    /// Shared links for synced files: `off` (default), `public` or `team`.
    #[serde(default)]
    links: ferry_core::rules::LinkMode,
    /// Links expire this many days after they are made (1–3650; paid accounts only).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3650)]
    link_expiry_days: Option<u32>,
    /// Also a link per record folder.
    #[serde(default)]
    folder_links: bool,
    /// Place among the rules (lower first, ties by name); the first of two rules that put a
    /// record in the same folder claims it.
    #[serde(default)]
    order: i32,
    /// Drop Ferry's copy of a file's content once Dropbox confirms it (read back on demand).
    #[serde(default)]
    offload: bool,
}

impl RuleBody {
    fn into_spec(self, name: String) -> RuleSpec {
        RuleSpec {
            name,
            record_kind: self.record_kind,
            connection: self.connection,
            condition: self.condition,
            folder: self.folder,
            file_path: self.file_path,
            file_filter: self.file_filter,
            direction: self.direction,
            pull_subfolders: self.pull_subfolders,
            subfolders: self.subfolders,
            recreate_subfolders: self.recreate_subfolders,
            links: self.links,
            link_expiry_days: self.link_expiry_days,
            folder_links: self.folder_links,
            order: self.order,
            offload: self.offload,
        }
    }
}

/// Query of `PUT /v1/rules/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Only check the rule (templates, connection, limits, overlaps); store nothing.
    dry_run: Option<bool>,
}

/// `GET /v1/rules`.
#[utoipa::path(get, operation_id = "list_rules", path = "/v1/rules", tag = "rules", responses((status = 200, body = RuleList)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<RuleList>, ApiError> {
    Ok(Json(state.engine.rules().await?))
}

/// `PUT /v1/rules/{name}`: checks every template and expression, stores, back-fills.
#[utoipa::path(put, operation_id = "put_rule", path = "/v1/rules/{name}", tag = "rules",
    params(("name" = String, Path, description = "Rule name"), PutQuery),
    request_body = RuleBody,
    responses((status = 200, body = RuleSaved), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    QueryParams(query): QueryParams<PutQuery>,
    JsonBody(body): JsonBody<RuleBody>,
) -> Result<Json<RuleSaved>, ApiError> {
    let dry_run = query.dry_run.unwrap_or(false);
    Ok(Json(
        state.engine.put_rule(body.into_spec(name), dry_run).await?,
    ))
}

/// `POST /v1/rules/{name}/preview`: the folders, file paths and planned actions the rule
/// would give the first existing records of its kind; nothing is stored or synced.
#[utoipa::path(post, operation_id = "preview_rule", path = "/v1/rules/{name}/preview", tag = "rules",
    params(("name" = String, Path, description = "Rule name")),
    request_body = RuleBody,
    responses((status = 200, body = RulePreview), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn preview(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<RuleBody>,
) -> Result<Json<RulePreview>, ApiError> {
    Ok(Json(state.engine.preview_rule(body.into_spec(name)).await?))
}

/// `DELETE /v1/rules/{name}`: files the rule placed leave Dropbox on the records' next pass.
#[utoipa::path(delete, operation_id = "delete_rule", path = "/v1/rules/{name}", tag = "rules",
    params(("name" = String, Path, description = "Rule name")),
    responses((status = 200, body = RuleRemoved), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<RuleRemoved>, ApiError> {
    Ok(Json(state.engine.delete_rule(&name).await?))
}
