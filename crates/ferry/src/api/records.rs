//! Records: list, upsert, show, delete, sync state, forced re-sync, archive.

use super::extract::{JsonBody, PathParams, QueryParams};
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::extract::State;
use ferry_engine::views::*;
use ferry_engine::{DeletePolicy, RecordQuery};
use ferry_store::RecordState;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Body of `PUT /v1/records/{kind}/{key}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// Fields (a JSON object); default `{}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    fields: Option<Value>,
    /// Parent record (it must exist).
    #[serde(default)]
    parent: Option<RecordRef>,
}

/// Query of `GET /v1/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only records of this kind.
    kind: Option<String>,
    /// Only keys containing this text (case-insensitive).
    q: Option<String>,
    /// Only records in this state.
    state: Option<RecordState>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Query of `DELETE /v1/records/{kind}/{key}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// What happens to the record's files in Dropbox: `keep` (default), `delete` or `archive`.
    files: Option<DeletePolicy>,
}

/// `GET /v1/records`: a page of records with their sync summaries.
#[utoipa::path(get, operation_id = "list_records", path = "/v1/records", tag = "records", params(ListQuery),
    responses((status = 200, body = RecordPage), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<RecordPage>, ApiError> {
    Ok(Json(
        state
            .engine
            .list_records(RecordQuery {
                kind: query.kind,
                q: query.q,
                state: query.state,
                cursor: query.cursor,
                limit: query.limit.unwrap_or(100),
            })
            .await?,
    ))
}

/// `PUT /v1/records/{kind}/{key}`: create or update; a change queues a sync pass.
#[utoipa::path(put, operation_id = "upsert_record", path = "/v1/records/{kind}/{key}", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    request_body = RecordBody,
    responses((status = 200, body = RecordWritten), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn upsert(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<RecordBody>,
) -> Result<Json<RecordWritten>, ApiError> {
    let fields = body.fields.unwrap_or_else(|| serde_json::json!({}));
    Ok(Json(
        state
            .engine
            .upsert_record(&kind, &key, fields, body.parent.as_ref())
            .await?,
    ))
}

/// `GET /v1/records/{kind}/{key}`.
#[utoipa::path(get, operation_id = "show_record", path = "/v1/records/{kind}/{key}", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    responses((status = 200, body = RecordView), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<RecordView>, ApiError> {
    let record = state.engine.find_record(&kind, &key).await?;
    Ok(Json(state.engine.record_view(&record).await?))
}

/// `DELETE /v1/records/{kind}/{key}?files=keep|delete|archive`.
#[utoipa::path(delete, operation_id = "delete_record", path = "/v1/records/{kind}/{key}", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"), DeleteQuery),
    responses((status = 200, body = RecordDeleted), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
    QueryParams(query): QueryParams<DeleteQuery>,
) -> Result<Json<RecordDeleted>, ApiError> {
    Ok(Json(
        state
            .engine
            .delete_record(&kind, &key, query.files.unwrap_or_default())
            .await?,
    ))
}

/// `GET /v1/records/{kind}/{key}/sync`: each file's Dropbox path, hash, state and last error,
/// the record's folders (paused ones with the reason) and its queue entry.
#[utoipa::path(get, operation_id = "record_sync_state", path = "/v1/records/{kind}/{key}/sync", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    responses((status = 200, body = RecordSyncView), (status = 404, body = ErrorBody)))]
pub async fn sync_state(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<RecordSyncView>, ApiError> {
    Ok(Json(state.engine.record_sync(&kind, &key).await?))
}

/// `POST /v1/records/{kind}/{key}/sync`: a pass now (also reviving a dead letter).
#[utoipa::path(post, operation_id = "resync_record", path = "/v1/records/{kind}/{key}/sync", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    responses((status = 200, body = Queued), (status = 404, body = ErrorBody)))]
pub async fn resync(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<Queued>, ApiError> {
    Ok(Json(state.engine.resync(&kind, &key).await?))
}

/// `GET /v1/records/{kind}/{key}/archive`: versions that left the record, content kept.
#[utoipa::path(get, operation_id = "record_archive", path = "/v1/records/{kind}/{key}/archive", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    responses((status = 200, body = ArchiveList), (status = 404, body = ErrorBody)))]
pub async fn archive(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<ArchiveList>, ApiError> {
    Ok(Json(state.engine.archive(&kind, &key).await?))
}

/// `GET /v1/records/{kind}/{key}/archive/{id}`: the content of an archived version.
#[utoipa::path(get, operation_id = "archived_content", path = "/v1/records/{kind}/{key}/archive/{id}", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"), ("id" = i64, Path, description = "Archived version id")),
    responses((status = 200, description = "The content", content_type = "application/octet-stream", body = Vec<u8>), (status = 404, body = ErrorBody)))]
pub async fn archived_content(
    State(state): State<ApiState>,
    PathParams((kind, key, id)): PathParams<(String, String, i64)>,
) -> Result<axum::response::Response, ApiError> {
    let archived = state.engine.archived(&kind, &key, id).await?;
    super::attachments::content_response(&state, &archived.content_hash).await
}

/// `POST /v1/records/{kind}/{key}/archive/{id}/restore`: the archived version becomes the
/// current attachment of its name again and syncs.
#[utoipa::path(post, operation_id = "restore_archived", path = "/v1/records/{kind}/{key}/archive/{id}/restore", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"), ("id" = i64, Path, description = "Archived version id")),
    responses((status = 200, body = Restored), (status = 404, body = ErrorBody)))]
pub async fn restore(
    State(state): State<ApiState>,
    PathParams((kind, key, id)): PathParams<(String, String, i64)>,
) -> Result<Json<Restored>, ApiError> {
    Ok(Json(state.engine.restore_archived(&kind, &key, id).await?))
}

/// `POST /v1/records/{kind}/{key}/confirm-deletions`: the record's paused bindings run the
/// deletions the brake stopped, once.
#[utoipa::path(post, operation_id = "confirm_record_deletions", path = "/v1/records/{kind}/{key}/confirm-deletions", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    responses((status = 200, body = ConfirmedBindings), (status = 404, body = ErrorBody)))]
pub async fn confirm_deletions(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<ConfirmedBindings>, ApiError> {
    Ok(Json(
        state.engine.confirm_record_deletions(&kind, &key).await?,
    ))
}

/// Body of `POST /v1/records/{kind}/{key}/folders`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MapBody {
    /// The connection the folder is in.
    connection: String,
    /// The folder's path, inside the connection's root (`/Ferry/Projects/Alpha`).
    path: String,
    /// Which way files flow (default `both`: the folder already holds people's files).
    #[serde(default = "both")]
    direction: ferry_core::sync_plan::Direction,
    /// When pulling, also files in its subfolders.
    #[serde(default)]
    pull_subfolders: bool,
}

fn both() -> ferry_core::sync_plan::Direction {
    ferry_core::sync_plan::Direction::Both
}

/// A record's folders mapped by hand.
#[derive(Serialize, ToSchema)]
pub struct FolderMaps {
    /// By id.
    folders: Vec<ferry_store::FolderMap>,
}

/// A mapping removed.
#[derive(Serialize, ToSchema)]
pub struct Unmapped {
    /// The mapping's id.
    unmapped: i64,
}

/// `GET /v1/records/{kind}/{key}/folders`: the existing Dropbox folders mapped to the record.
#[utoipa::path(get, operation_id = "folder_maps", path = "/v1/records/{kind}/{key}/folders", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    responses((status = 200, body = FolderMaps), (status = 404, body = ErrorBody)))]
pub async fn folders(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<FolderMaps>, ApiError> {
    Ok(Json(FolderMaps {
        folders: state.engine.folder_maps_of(&kind, &key).await?,
    }))
}

/// `POST /v1/records/{kind}/{key}/folders`: maps an existing Dropbox folder to the record.
/// It syncs like a rule's folder (every attachment, by name) and is found by its Dropbox id,
/// so a rename or move in Dropbox is followed.
#[utoipa::path(post, operation_id = "map_folder", path = "/v1/records/{kind}/{key}/folders", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key")),
    request_body = MapBody,
    responses((status = 200, body = ferry_store::FolderMap), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn map_folder(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<MapBody>,
) -> Result<Json<ferry_store::FolderMap>, ApiError> {
    Ok(Json(
        state
            .engine
            .map_folder(
                &kind,
                &key,
                ferry_engine::folder_map::MapRequest {
                    connection: body.connection,
                    path: body.path,
                    direction: body.direction,
                    pull_subfolders: body.pull_subfolders,
                },
            )
            .await?,
    ))
}

/// `DELETE /v1/records/{kind}/{key}/folders/{id}`: Ferry stops syncing the folder; its files
/// stay in Dropbox.
#[utoipa::path(delete, operation_id = "unmap_folder", path = "/v1/records/{kind}/{key}/folders/{id}", tag = "records",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"),
           ("id" = i64, Path, description = "Mapping id")),
    responses((status = 200, body = Unmapped), (status = 404, body = ErrorBody)))]
pub async fn unmap_folder(
    State(state): State<ApiState>,
    PathParams((kind, key, id)): PathParams<(String, String, i64)>,
) -> Result<Json<Unmapped>, ApiError> {
    let removed = state.engine.unmap_folder(&kind, &key, id).await?;
    Ok(Json(Unmapped {
        unmapped: removed.id,
    }))
}
