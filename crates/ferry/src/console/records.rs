//! Records: search, one record's folders, files and archived versions; re-sync, confirm
//! held deletions, download, restore.

use super::render::{self, urlencode};
use super::session::{self, Admin, Button, CheckedForm};
use crate::api::{ApiState, nonempty};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use ferry_engine::EngineError;
use ferry_engine::service::RecordQuery;
use ferry_store::RecordState;
use minijinja::context;
use serde::{Deserialize, Serialize};

/// Records per page.
const PAGE: u32 = 50;

/// The search form.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct SearchQuery {
    kind: Option<String>,
    q: Option<String>,
    state: Option<String>,
    #[serde(skip_serializing)]
    cursor: Option<String>,
}

/// A failed console action as a page: what the engine said, or — for a failure that is not
/// the input's — that nothing changed and the reason is in the log.
pub(super) fn engine_failed(admin: &Admin, e: &EngineError, back: &str) -> Response {
    match e {
        EngineError::UnknownConnection(name) => render::message(
            StatusCode::NOT_FOUND,
            Some(admin),
            "Not done",
            &format!("There is no connection named {name:?}."),
            Some(back),
        ),
        EngineError::NotFound(m) | EngineError::Invalid(m) | EngineError::Conflict(m) => {
            let status = match e {
                EngineError::NotFound(_) => StatusCode::NOT_FOUND,
                EngineError::Conflict(_) => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            render::message(status, Some(admin), "Not done", m, Some(back))
        }
        other => {
            tracing::error!(error = %other, "console action failed");
            render::message(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(admin),
                "Not done",
                "Ferry could not do this just now; nothing changed. Try again; the reason is in Ferry's log.",
                Some(back),
            )
        }
    }
}

/// A record's console page.
pub(super) fn record_url(kind: &str, key: &str) -> String {
    format!(
        "/console/records/{}/{}",
        urlencode(kind.to_owned()),
        urlencode(key.to_owned())
    )
}

/// `GET /console/records`.
pub async fn list(
    State(state): State<ApiState>,
    admin: Admin,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let record_state = match q.state.as_deref().unwrap_or("") {
        "" => None,
        "synced" => Some(RecordState::Synced),
        "pending" => Some(RecordState::Pending),
        "failed" => Some(RecordState::Failed),
        "dead" => Some(RecordState::Dead),
        other => {
            return render::message(
                StatusCode::BAD_REQUEST,
                Some(&admin),
                "Unknown state",
                &format!("{other:?} is not a record state (synced, pending, failed, dead)."),
                Some("/console/records"),
            );
        }
    };
    let page = state
        .engine
        .list_records(RecordQuery {
            kind: nonempty(&q.kind),
            q: nonempty(&q.q),
            state: record_state,
            cursor: nonempty(&q.cursor),
            limit: PAGE,
        })
        .await;
    match page {
        Ok(page) => {
            let next = page.next_cursor.map(|cursor| {
                format!(
                    "/console/records?kind={}&q={}&state={}&cursor={}",
                    urlencode(q.kind.clone().unwrap_or_default()),
                    urlencode(q.q.clone().unwrap_or_default()),
                    urlencode(q.state.clone().unwrap_or_default()),
                    urlencode(cursor)
                )
            });
            render::page(
                &admin,
                "records",
                "records.html",
                context! { title => "Records", records => page.records, q => q, next => next },
            )
        }
        Err(e) => engine_failed(&admin, &e, "/console/records"),
    }
}

/// `GET /console/records/{kind}/{key}`.
pub async fn show(
    State(state): State<ApiState>,
    admin: Admin,
    Path((kind, key)): Path<(String, String)>,
) -> Response {
    let engine = &state.engine;
    let loaded = async {
        let sync = engine.record_sync(&kind, &key).await?;
        let record = engine.find_record(&kind, &key).await?;
        let view = engine.record_view(&record).await?;
        let archive = engine.archive(&kind, &key).await?;
        let maps = engine.folder_maps_of(&kind, &key).await?;
        Ok::<_, EngineError>((sync, view, archive, maps))
    }
    .await;
    let (sync, view, archive, maps) = match loaded {
        Ok(all) => all,
        Err(e) => return engine_failed(&admin, &e, "/console/records"),
    };
    let placed: std::collections::HashSet<&str> = sync
        .files
        .iter()
        .filter_map(|f| f.attachment.as_deref())
        .collect();
    let unplaced: Vec<&str> = view
        .attachments
        .iter()
        .map(|a| a.name.as_str())
        .filter(|n| !placed.contains(n))
        .collect();
    let paused = sync.bindings.iter().any(|b| b.paused.is_some());
    render::page(
        &admin,
        "records",
        "record.html",
        context! {
            title => format!("{kind}/{key}"),
            base => record_url(&kind, &key),
            sync => sync,
            unplaced => unplaced,
            archived => archive.archived,
            paused => paused,
            movable => view.attachments.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
            fields => view.fields,
            maps => maps,
        },
    )
}

/// `POST …/resync`.
pub async fn resync(
    State(state): State<ApiState>,
    Path((kind, key)): Path<(String, String)>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    let url = record_url(&kind, &key);
    match state.engine.resync(&kind, &key).await {
        Ok(_) => session::done(
            &url,
            "Queued a sync pass; this page shows the files' state as it changes.",
            false,
        ),
        Err(e) => engine_failed(&admin, &e, &url),
    }
}

/// `POST …/confirm-deletions`.
pub async fn confirm_deletions(
    State(state): State<ApiState>,
    Path((kind, key)): Path<(String, String)>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    let url = record_url(&kind, &key);
    match state.engine.confirm_record_deletions(&kind, &key).await {
        Ok(done) => session::done(
            &url,
            &format!(
                "Confirmed: the held deletions of {} folders go ahead once.",
                done.confirmed_bindings
            ),
            false,
        ),
        Err(e) => engine_failed(&admin, &e, &url),
    }
}

/// `POST …/archive/{id}/restore`.
pub async fn restore(
    State(state): State<ApiState>,
    Path((kind, key, id)): Path<(String, String, i64)>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    let url = record_url(&kind, &key);
    match state.engine.restore_archived(&kind, &key, id).await {
        Ok(restored) if restored.changed => session::done(
            &url,
            &format!(
                "Restored {}: it is the current version again and syncs now (the version it replaced is archived).",
                restored.restored.name
            ),
            false,
        ),
        Ok(restored) => session::done(
            &url,
            &format!(
                "{} already has that content; nothing changed.",
                restored.restored.name
            ),
            false,
        ),
        Err(e) => engine_failed(&admin, &e, &url),
    }
}

fn as_download(mut response: Response, name: &str) -> Response {
    if let Ok(v) = HeaderValue::try_from(format!(
        "attachment; filename*=UTF-8''{}",
        urlencode(name.to_owned())
    )) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

fn download_failed(admin: &Admin, e: crate::api::ApiError, back: &str) -> Response {
    render::message(
        e.status(),
        Some(admin),
        "Cannot download",
        e.message(),
        Some(back),
    )
}

/// `GET …/files/{name}`: the current content (read back from Dropbox when offloaded).
pub async fn download(
    State(state): State<ApiState>,
    admin: Admin,
    Path((kind, key, name)): Path<(String, String, String)>,
) -> Response {
    let url = record_url(&kind, &key);
    let result = async {
        let attachment = state.engine.attachment(&kind, &key, &name).await?;
        let (size, stream) = state.engine.attachment_content(&attachment).await?;
        Ok::<_, EngineError>((size, stream))
    }
    .await;
    match result {
        Ok((size, stream)) => {
            let mut response = Response::new(axum::body::Body::from_stream(stream));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            as_download(response, &name)
        }
        Err(e) => download_failed(&admin, e.into(), &url),
    }
}

/// `GET …/archive/{id}`: an archived version's content.
pub async fn download_archived(
    State(state): State<ApiState>,
    admin: Admin,
    Path((kind, key, id)): Path<(String, String, i64)>,
) -> Response {
    let url = record_url(&kind, &key);
    let archived = match state.engine.archived(&kind, &key, id).await {
        Ok(a) => a,
        Err(e) => return download_failed(&admin, e.into(), &url),
    };
    match crate::api::attachments::content_response(&state, &archived.content_hash).await {
        Ok(response) => as_download(response, &archived.name),
        Err(e) => download_failed(&admin, e, &url),
    }
}
