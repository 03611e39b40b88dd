//! Attachments: add or replace (raw body or multipart), remove, download.

use super::extract::{PathParams, QueryParams};
use super::records::find;
use super::{ApiError, ApiState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use ferry_core::model::validate_tag;
use ferry_core::names::validate_attachment_name;
use ferry_store::AttachmentInput;
use serde::Deserialize;
use serde_json::{Value, json};

/// Query of `PUT .../attachments/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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

fn check_name(name: &str) -> Result<(), ApiError> {
    validate_attachment_name(name)
        .map_err(|e| ApiError::bad_request(format!("attachment name {name:?}: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn store_attachment(
    state: &ApiState,
    kind: &str,
    key: &str,
    name: &str,
    tags: Vec<String>,
    content: Bytes,
    precondition: Option<String>,
) -> Result<Json<Value>, ApiError> {
    check_name(name)?;
    let record = find(state, kind, key).await?;
    let size = content.len() as u64;
    let content_hash = state.engine.blobs().put(content).await?;
    attach(state, &record, name, tags, content_hash, size, precondition).await
}

/// Makes stored content (`content_hash`, `size`) the attachment `name` of `record`.
async fn attach(
    state: &ApiState,
    record: &ferry_core::model::Record,
    name: &str,
    tags: Vec<String>,
    content_hash: String,
    size: u64,
    precondition: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.engine.store();
    // A file that came from Dropbox keeps its place there when the app replaces it.
    let origin_path = store
        .attachments(record.id)
        .await?
        .into_iter()
        .find(|a| a.name == name)
        .and_then(|a| a.origin_path);
    let upserted = store
        .put_attachment(&AttachmentInput {
            record_id: record.id,
            name: name.to_owned(),
            tags,
            content_hash,
            size,
            origin_path,
            source: ferry_core::model::Side::App,
            if_match: precondition,
        })
        .await?;
    // The store queued the record and its relatives with the change; workers start now.
    if upserted.changed {
        state.engine.wake();
    }
    let a = upserted.value;
    Ok(Json(json!({
        "name": a.name, "tags": a.tags, "size": a.size, "content_hash": a.content_hash,
        "changed": upserted.changed,
    })))
}

/// `PUT /v1/records/{kind}/{key}/attachments/{name}?tags=a,b` with the raw content as body.
///
/// The body streams into the blob store, hashed on the way: a large file is never held in
/// memory, and receiving, hashing and writing overlap. Name, tags and record are checked
/// before any byte is read.
pub async fn put_raw(
    State(state): State<ApiState>,
    PathParams((kind, key, name)): PathParams<(String, String, String)>,
    QueryParams(query): QueryParams<PutQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    use futures::StreamExt;
    check_name(&name)?;
    let tags = parse_tags(query.tags.as_deref())?;
    let precondition = if_match(&headers)?;
    let record = find(&state, &kind, &key).await?;
    let limit = state.max_attachment_bytes as u64;
    let mut writer = state.engine.blobs().writer().await?;
    let mut stream = body.into_data_stream();
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
    let (content_hash, size) = writer.finish(None).await?;
    attach(
        &state,
        &record,
        &name,
        tags,
        content_hash,
        size,
        precondition,
    )
    .await
}

/// `POST /v1/records/{kind}/{key}/attachments` as `multipart/form-data`: a `file` part (its
/// filename is the attachment name unless a `name` part is given) and an optional `tags` part.
pub async fn upload_multipart(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<Value>, ApiError> {
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
pub async fn remove(
    State(state): State<ApiState>,
    PathParams((kind, key, name)): PathParams<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &kind, &key).await?;
    if !state
        .engine
        .store()
        .remove_attachment(record.id, &name)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "record {kind}/{key} has no attachment {name:?}"
        )));
    }
    state.engine.wake();
    Ok(Json(json!({"removed": name})))
}

/// `GET /v1/records/{kind}/{key}/attachments/{name}`: the content.
pub async fn download(
    State(state): State<ApiState>,
    PathParams((kind, key, name)): PathParams<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let record = find(&state, &kind, &key).await?;
    let attachment = state
        .engine
        .store()
        .attachments(record.id)
        .await?
        .into_iter()
        .find(|a| a.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!("record {kind}/{key} has no attachment {name:?}"))
        })?;
    content_response(&state, &attachment.content_hash).await
}

/// Stored content as a download, with its content hash as the `ETag` (what `If-Match`
/// takes back).
pub(super) async fn content_response(
    state: &ApiState,
    content_hash: &str,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let data = state.engine.blobs().get(content_hash).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::ETAG, format!("\"{content_hash}\"")),
        ],
        data,
    ))
}
