//! Rules: list, create or replace (validated), delete.

use super::extract::{JsonBody, PathParams};
use super::{ApiError, ApiState};
use axum::Json;
use axum::extract::State;
use ferry_core::rules::RuleSpec;
use ferry_core::sync_plan::Direction;
use ferry_store::Priority;
use serde::Deserialize;
use serde_json::{Value, json};

/// Body of `PUT /v1/rules/{name}` (the name comes from the URL).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    record_kind: String,
    connection: String,
    #[serde(default)]
    condition: Option<String>,
    folder: String,
    #[serde(default)]
    file_path: Option<String>,
    #[serde(default)]
    file_filter: Option<String>,
    #[serde(default)]
    direction: Direction,
    #[serde(default)]
    pull_subfolders: bool,
}

/// `GET /v1/rules`.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"rules": state.engine.store().rules().await?})))
}

/// `PUT /v1/rules/{name}`: checks every template and expression, stores, back-fills: every
/// record of the kind (old and new kind) gets a pass.
pub async fn put(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<RuleBody>,
) -> Result<Json<Value>, ApiError> {
    let spec = RuleSpec {
        name,
        record_kind: body.record_kind,
        connection: body.connection,
        condition: body.condition,
        folder: body.folder,
        file_path: body.file_path,
        file_filter: body.file_filter,
        direction: body.direction,
        pull_subfolders: body.pull_subfolders,
    };
    // Two rules placing one record in one folder: refused when either pulls (both would
    // import the same files), otherwise accepted with a warning (the runtime lets only the
    // first binding sync each file there).
    let overlaps = state.engine.check_rule(&spec).await?;
    if let Some(o) = overlaps.iter().find(|o| o.pulls) {
        return Err(ApiError::conflict(format!(
            "rule {:?} would place {} in the same folder {:?} as rule {:?}, and one of them pulls from Dropbox; give one rule another folder",
            spec.name,
            o.record.as_deref().unwrap_or("every record"),
            o.folder,
            o.rule
        )));
    }
    let warnings: Vec<String> = overlaps
        .iter()
        .map(|o| {
            format!(
                "rule {:?} places {} in the same folder {:?}; a file both select is synced by whichever rule placed it first",
                o.rule,
                o.record.as_deref().unwrap_or("every record"),
                o.folder
            )
        })
        .collect();
    let store = state.engine.store();
    let old = store
        .rules()
        .await?
        .into_iter()
        .find(|r| r.name == spec.name);
    store.put_rule(&spec).await?;
    // Moving a rule to another connection is reverse sync first: most urgent.
    let priority = match &old {
        Some(o) if o.connection != spec.connection => Priority::Reverse,
        _ => Priority::Normal,
    };
    let mut queued = state
        .engine
        .enqueue_kind(&spec.record_kind, priority)
        .await?;
    if let Some(old_kind) = old
        .map(|o| o.record_kind)
        .filter(|k| *k != spec.record_kind)
    {
        queued += state
            .engine
            .enqueue_kind(&old_kind, Priority::Normal)
            .await?;
    }
    Ok(Json(
        json!({"rule": spec, "queued_records": queued, "warnings": warnings}),
    ))
}

/// `DELETE /v1/rules/{name}`: files the rule placed leave Dropbox on the records' next pass.
pub async fn remove(
    State(state): State<ApiState>,
    PathParams(name): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.engine.store();
    let Some(rule) = store.rules().await?.into_iter().find(|r| r.name == name) else {
        return Err(ApiError::not_found(format!("no rule named {name:?}")));
    };
    store.delete_rule(&name).await?;
    let queued = state
        .engine
        .enqueue_kind(&rule.record_kind, Priority::Normal)
        .await?;
    Ok(Json(json!({"removed": name, "queued_records": queued})))
}
