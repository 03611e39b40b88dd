//! Records: upsert, show, sync state, forced re-sync.

use super::extract::{JsonBody, PathParams};
use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::State;
use ferry_core::model::{Record, validate_record_ident};
use ferry_store::{RecordInput, SyncCounts, SyncState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Body of `PUT /v1/records/{kind}/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// Fields (a JSON object); default `{}`.
    #[serde(default)]
    fields: Option<Value>,
    /// Parent record.
    #[serde(default)]
    parent: Option<RecordRef>,
}

/// A record reference.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    kind: String,
    key: String,
}

/// Looks a record up or answers 404.
pub(super) async fn find(state: &ApiState, kind: &str, key: &str) -> Result<Record, ApiError> {
    state
        .engine
        .store()
        .record(kind, key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no record {kind}/{key}")))
}

pub(super) async fn record_json(state: &ApiState, record: &Record) -> Result<Value, ApiError> {
    let store = state.engine.store();
    let parent = match record.parent_id {
        Some(id) => store
            .record_by_id(id)
            .await?
            .map(|p| json!({"kind": p.kind, "key": p.key})),
        None => None,
    };
    let attachments: Vec<Value> = store
        .attachments(record.id)
        .await?
        .into_iter()
        .map(|a| json!({"name": a.name, "tags": a.tags, "size": a.size, "content_hash": a.content_hash}))
        .collect();
    let children: Vec<Value> = store
        .children(record.id)
        .await?
        .into_iter()
        .map(|c| json!({"kind": c.kind, "key": c.key}))
        .collect();
    Ok(json!({
        "kind": record.kind,
        "key": record.key,
        "fields": record.fields,
        "parent": parent,
        "children": children,
        "attachments": attachments,
    }))
}

/// `PUT /v1/records/{kind}/{key}`: create or update; queues a sync pass when anything changed.
pub async fn upsert(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<RecordBody>,
) -> Result<Json<Value>, ApiError> {
    validate_record_ident("kind", &kind).map_err(ApiError::bad_request)?;
    validate_record_ident("key", &key).map_err(ApiError::bad_request)?;
    let fields = body.fields.unwrap_or_else(|| json!({}));
    if !fields.is_object() {
        return Err(ApiError::bad_request("fields must be a JSON object"));
    }
    let parent_id = match &body.parent {
        Some(p) => {
            let parent = state
                .engine
                .store()
                .record(&p.kind, &p.key)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "parent record {}/{} does not exist",
                        p.kind, p.key
                    ))
                })?;
            if parent.kind == kind && parent.key == key {
                return Err(ApiError::bad_request("a record cannot be its own parent"));
            }
            Some(parent.id)
        }
        None => None,
    };
    let upserted = state
        .engine
        .store()
        .upsert_record(&RecordInput {
            kind,
            key,
            fields,
            parent_id,
        })
        .await?;
    // The store queued the record and its relatives with the change; workers start now.
    if upserted.changed {
        state.engine.wake();
    }
    let mut out = record_json(&state, &upserted.value).await?;
    out["changed"] = json!(upserted.changed);
    Ok(Json(out))
}

/// `GET /v1/records/{kind}/{key}`.
pub async fn show(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &kind, &key).await?;
    Ok(Json(record_json(&state, &record).await?))
}

/// `GET /v1/records/{kind}/{key}/sync`: each file's Dropbox path, hash, state and last error,
/// the record's bindings (folders; paused ones with the reason) and its queue entry.
pub async fn sync_state(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &kind, &key).await?;
    let store = state.engine.store();
    let names: std::collections::HashMap<i64, String> = store
        .attachments(record.id)
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    let bindings = store.bindings_for_record(record.id).await?;
    let folder_of = |id: Option<i64>| {
        id.and_then(|id| bindings.iter().find(|b| b.id == id))
            .map(|b| b.folder_display.clone())
    };
    let rows = store.sync_rows(record.id).await?;
    let mut counts = SyncCounts::default();
    let files: Vec<Value> = rows
        .iter()
        .map(|r| {
            match r.state {
                SyncState::Synced => counts.synced += 1,
                SyncState::Pending => counts.pending += 1,
                SyncState::Failed => counts.failed += 1,
            }
            let path = match (folder_of(r.binding_id), &r.rel_display) {
                (Some(folder), Some(rel)) => Some(format!("{folder}/{rel}")),
                _ => None,
            };
            json!({
                "attachment": r.attachment_id.and_then(|id| names.get(&id).cloned()),
                "rule": r.rule_name,
                "connection": r.connection,
                "path": path,
                "content_hash": r.content_hash,
                "rev": r.rev,
                "dropbox_id": r.dropbox_id,
                "state": r.state,
                "last_error": r.last_error,
            })
        })
        .collect();
    let bindings: Vec<Value> = bindings
        .iter()
        .map(|b| {
            json!({"id": b.id, "rule": b.rule_name, "connection": b.connection,
                   "folder": b.folder_display, "paused": b.paused_reason})
        })
        .collect();
    let queue = store.queue_entry(record.id).await?;
    Ok(Json(json!({
        "kind": record.kind,
        "key": record.key,
        "queued": queue.is_some(),
        "queue": queue,
        "summary": counts,
        "bindings": bindings,
        "files": files,
    })))
}

/// `GET /v1/records/{kind}/{key}/archive`: versions that left the record (deleted in
/// Dropbox, replaced by a newer Dropbox version), content kept.
pub async fn archive(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &kind, &key).await?;
    let archived = state.engine.store().archived_attachments(record.id).await?;
    Ok(Json(json!({"archived": archived})))
}

/// The archived version `id` of a record, or 404.
async fn find_archived(
    state: &ApiState,
    record: &Record,
    id: i64,
) -> Result<ferry_store::ArchivedAttachment, ApiError> {
    state
        .engine
        .store()
        .archived_attachments(record.id)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "record {}/{} has no archived version {id}",
                record.kind, record.key
            ))
        })
}

/// `GET /v1/records/{kind}/{key}/archive/{id}`: the content of an archived version.
pub async fn archived_content(
    State(state): State<ApiState>,
    PathParams((kind, key, id)): PathParams<(String, String, i64)>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let record = find(&state, &kind, &key).await?;
    let archived = find_archived(&state, &record, id).await?;
    super::attachments::content_response(&state, &archived.content_hash).await
}

/// `POST /v1/records/{kind}/{key}/archive/{id}/restore`: the archived version becomes the
/// record's current attachment of its name again (the version it replaces is archived in
/// turn) and syncs like any change.
pub async fn restore(
    State(state): State<ApiState>,
    PathParams((kind, key, id)): PathParams<(String, String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &kind, &key).await?;
    let Some(restored) = state.engine.store().restore_archived(record.id, id).await? else {
        return Err(ApiError::not_found(format!(
            "record {kind}/{key} has no archived version {id}"
        )));
    };
    state.engine.wake();
    let a = restored.value;
    Ok(Json(json!({
        "restored": {"name": a.name, "tags": a.tags, "size": a.size, "content_hash": a.content_hash},
        "changed": restored.changed,
    })))
}

/// `POST /v1/records/{kind}/{key}/confirm-deletions`: lets the record's paused bindings run
/// the deletions the brake stopped, once.
pub async fn confirm_deletions(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &kind, &key).await?;
    let store = state.engine.store();
    let mut confirmed = 0;
    for mut binding in store.bindings_for_record(record.id).await? {
        if binding.paused_reason.is_some() {
            binding.confirm_deletions = true;
            store.save_binding(&binding).await?;
            confirmed += 1;
        }
    }
    state.engine.enqueue_related(record.id).await?;
    Ok(Json(json!({"confirmed_bindings": confirmed})))
}

/// `POST /v1/records/{kind}/{key}/sync`: force regeneration (a pass now, also reviving a
/// dead-lettered record). Each pass compares with what Dropbox holds, so files deleted there
/// come back on push bindings.
pub async fn resync(
    State(state): State<ApiState>,
    PathParams((kind, key)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &kind, &key).await?;
    state.engine.enqueue_related(record.id).await?;
    Ok(Json(json!({"queued": true})))
}
