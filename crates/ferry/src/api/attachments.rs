//! Attachments: add or replace (raw body or multipart), remove, download.

use super::extract::{PathParams, QueryParams};
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use ferry_core::model::validate_tag;
use ferry_core::names::validate_attachment_name;
use ferry_engine::views::{AttachmentWritten, Removed};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Query of `PUT .../attachments/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutQuery {
    /// Comma-separated tags.
    #[serde(default)]
    tags: Option<String>,
}

fn parse_tags(raw: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut tags: Vec<String> = raw
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    for tag in &tags {
        validate_tag(tag).map_err(ApiError::bad_request)?;
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// The `If-Match` precondition of a write: a content hash (quoted like an ETag or not), or
/// `*` for "only if the attachment exists".
fn if_match(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match must be ASCII"))?
        .trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let valid = value == "*" || (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(ApiError::bad_request(
            "If-Match must be * or the attachment's content_hash (64 hex digits)",
        ));
    }
    Ok(Some(value.to_ascii_lowercase()))
}

pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    validate_attachment_name(name)
        .map_err(|e| ApiError::bad_request(format!("attachment name {name:?}: {e}")))
}

async fn store_attachment(
    state: &ApiState,
    kind: &str,
    key: &str,
    name: &str,
    tags: Vec<String>,
    content: Bytes,
    precondition: Option<String>,
) -> Result<Json<AttachmentWritten>, ApiError> {
    check_name(name)?;
    let record = state.engine.find_record(kind, key).await?;
    let size = content.len() as u64;
    // Held until the attachment row is committed, so the blob cannot be dropped meanwhile.
    let _hold = state.engine.blobs().hold().await;
    let content_hash = state.engine.blobs().put(content).await?;
    Ok(Json(
        state
            .engine
            .put_attachment(&record, name, tags, content_hash, size, precondition)
            .await?,
    ))
}

/// The parts of `POST .../attachments` (documentation only; the handler reads the stream).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AttachmentForm {
    /// The content; its filename is the attachment name unless `name` is given.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The attachment name.
    name: Option<String>,
    /// Comma-separated tags.
    tags: Option<String>,
}

/// `PUT /v1/records/{kind}/{key}/attachments/{name}?tags=a,b` with the raw content as body.
///
/// The body streams into the blob store, hashed on the way: a large file is never held in
/// memory, and receiving, hashing and writing overlap. Name, tags and record are checked
/// before any byte is read.
#[utoipa::path(put, operation_id = "put_attachment", path = "/v1/records/{kind}/{key}/attachments/{name}", tag = "attachments",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"),
           ("name" = String, Path, description = "Attachment name"), PutQuery,
           ("If-Match" = Option<String>, Header, description = "Write only if the attachment's content_hash is this (or `*`: only if it exists)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = AttachmentWritten), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 412, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn put_raw(
    State(state): State<ApiState>,
    PathParams((kind, key, name)): PathParams<(String, String, String)>,
    QueryParams(query): QueryParams<PutQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<AttachmentWritten>, ApiError> {
    check_name(&name)?;
    let tags = parse_tags(query.tags.as_deref())?;
    let precondition = if_match(&headers)?;
    let record = state.engine.find_record(&kind, &key).await?;
    let _hold = state.engine.blobs().hold().await;
    let (content_hash, size) = stream_into_blobs(&state, body.into_data_stream()).await?;
    Ok(Json(
        state
            .engine
            .put_attachment(&record, &name, tags, content_hash, size, precondition)
            .await?,
    ))
}

/// Streams content into the blob store, hashed on the way and cut off past the attachment
/// limit; returns its content hash and size. The caller holds the blob store's hold guard
/// until the attachment row is committed.
pub(crate) async fn stream_into_blobs<S, E>(
    state: &ApiState,
    mut stream: S,
) -> Result<(String, u64), ApiError>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    let limit = state.max_attachment_bytes as u64;
    let mut writer = state.engine.blobs().writer().await?;
    let mut size = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(piece) => piece,
            Err(e) => {
                writer.abort().await;
                return Err(ApiError::bad_request(format!("cannot read the body: {e}")));
            }
        };
        size += piece.len() as u64;
        if size > limit {
            writer.abort().await;
            return Err(ApiError::too_large(state.max_attachment_bytes));
        }
        writer.write(&piece).await?;
    }
    Ok(writer.finish(None).await?)
}

/// `POST /v1/records/{kind}/{key}/attachments` as `multipart/form-data`: a `file` part (its
/// filename is the attachment name unless a `name` part is given) and an optional `tags` part.
#[utoipa::path(post, operation_id = "upload_attachment", path = "/v1/records/{kind}/{key}/attachments", tag = "attachments",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"),
           ("If-Match" = Option<String>, Header, description = "Write only if the attachment's content_hash is this (or `*`)")),
    request_body(content = AttachmentForm, content_type = "multipart/form-data"),
    responses((status = 200, body = AttachmentWritten), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 412, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn upload_multipart(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<AttachmentWritten>, ApiError> {
    let precondition = if_match(&headers)?;
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!("expected multipart/form-data: {}", e.body_text()))
    })?;
    let mut file: Option<(Option<String>, Bytes)> = None;
    let mut name: Option<String> = None;
    let mut tags: Option<String> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::too_large(state.max_attachment_bytes));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "malformed multipart body: {}",
                    e.body_text()
                )));
            }
        };
        let field_name = field.name().unwrap_or_default().to_owned();
        match field_name.as_str() {
            "file" => {
                let filename = field.file_name().map(str::to_owned);
                let data = field.bytes().await.map_err(|e| {
                    ApiError::bad_request(format!("cannot read the file part: {}", e.body_text()))
                })?;
                file = Some((filename, data));
            }
            "name" | "tags" => {
                let text = field.text().await.map_err(|e| {
                    ApiError::bad_request(format!(
                        "cannot read the {field_name} part: {}",
                        e.body_text()
                    ))
                })?;
                if field_name == "name" {
                    name = Some(text)
                } else {
                    tags = Some(text)
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unexpected multipart part {other:?}; use file, name, tags"
                )));
            }
        }
    }
    let Some((filename, content)) = file else {
        return Err(ApiError::bad_request("missing the 'file' part"));
    };
    let Some(name) = name.or(filename) else {
        return Err(ApiError::bad_request(
            "the file part has no filename; add a 'name' part",
        ));
    };
    let tags = parse_tags(tags.as_deref())?;
    store_attachment(&state, &kind, &key, &name, tags, content, precondition).await
}

/// `DELETE /v1/records/{kind}/{key}/attachments/{name}`: the file leaves Dropbox on the next pass.
#[utoipa::path(delete, operation_id = "remove_attachment", path = "/v1/records/{kind}/{key}/attachments/{name}", tag = "attachments",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"),
           ("name" = String, Path, description = "Attachment name")),
    responses((status = 200, body = Removed), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    PathParams((kind, key, name)): PathParams<(String, String, String)>,
) -> Result<Json<Removed>, ApiError> {
    Ok(Json(
        state.engine.remove_attachment(&kind, &key, &name).await?,
    ))
}

/// `GET /v1/records/{kind}/{key}/attachments/{name}`: the content, streamed.
#[utoipa::path(get, operation_id = "download_attachment", path = "/v1/records/{kind}/{key}/attachments/{name}", tag = "attachments",
    params(("kind" = String, Path, description = "Record kind"), ("key" = String, Path, description = "Record key"),
           ("name" = String, Path, description = "Attachment name")),
    responses((status = 200, description = "The content; its content_hash is the ETag", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 404, body = ErrorBody)))]
pub async fn download(
    State(state): State<ApiState>,
    PathParams((kind, key, name)): PathParams<(String, String, String)>,
) -> Result<Response, ApiError> {
    let attachment = state.engine.attachment(&kind, &key, &name).await?;
    // Offloaded content is read back from Dropbox.
    let (size, stream) = state.engine.attachment_content(&attachment).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::ETAG, format!("\"{}\"", attachment.content_hash)),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Stored content as a streamed download, with its content hash as the `ETag` (what
/// `If-Match` takes back).
pub(crate) async fn content_response(
    state: &ApiState,
    content_hash: &str,
) -> Result<Response, ApiError> {
    let (size, stream) = state.engine.blobs().stream(content_hash).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::ETAG, format!("\"{content_hash}\"")),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
