//! Backups of Ferry's database: make one now, list them, download one (for `ferry restore`).

use super::extract::PathParams;
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferry_engine::backup::{BackupList, BackupReport, BackupSettings};

fn settings(state: &ApiState) -> Result<&BackupSettings, ApiError> {
    state.backup.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "backups are not configured: set [backup] connection = \"…\" in the config (docs/operations.md)",
        )
    })
}

/// `POST /v1/backups`: a verified backup now (snapshot, compress, upload, test restore,
/// prune); answers when it is done.
#[utoipa::path(post, path = "/v1/backups", operation_id = "backup_now", tag = "backups",
    responses((status = 200, body = BackupReport), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn now(State(state): State<ApiState>) -> Result<Json<BackupReport>, ApiError> {
    let settings = settings(&state)?;
    Ok(Json(
        state.engine.backup_now(settings, &state.scratch).await?,
    ))
}

/// `GET /v1/backups`: the backups in Dropbox, newest first.
#[utoipa::path(get, path = "/v1/backups", operation_id = "list_backups", tag = "backups",
    responses((status = 200, body = BackupList), (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<BackupList>, ApiError> {
    let settings = settings(&state)?;
    Ok(Json(state.engine.backups(settings).await?))
}

/// `GET /v1/backups/{name}`: one backup's content (zstd-compressed SQLite), streamed.
#[utoipa::path(get, path = "/v1/backups/{name}", operation_id = "backup_content", tag = "backups",
    params(("name" = String, Path, description = "Backup file name")),
    responses((status = 200, description = "The compressed database", content_type = "application/zstd", body = Vec<u8>),
              (status = 404, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn content(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Response, ApiError> {
    stream_backup(&state, &name).await
}

/// The file name a download is saved as: the backup's, when it is plain.
fn download_name(name: &str) -> &str {
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        name
    } else {
        "ferry-backup.db.zst"
    }
}

/// A backup's content as a streamed response (the API's and the console's download).
pub(crate) async fn stream_backup(state: &ApiState, name: &str) -> Result<Response, ApiError> {
    use futures::StreamExt;
    let settings = settings(state)?;
    let (size, body) = state.engine.backup_content(settings, name).await?;
    let stream = tokio_util::io::ReaderStream::new(
        tokio_util::compat::FuturesAsyncReadCompatExt::compat(body),
    )
    .map(|r| r.map_err(std::io::Error::other));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", download_name(name)),
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
