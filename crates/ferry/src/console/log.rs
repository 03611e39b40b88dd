//! The sync log: filters, paging, and the export of the whole selection (CSV, JSON lines).

use super::render::{self, urlencode};
use super::session::Admin;
use crate::api::status::ExportFormat;
use crate::api::{ApiState, nonempty};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use ferry_engine::{EngineError, LogQuery};
use minijinja::context;
use serde::{Deserialize, Serialize};

/// Entries per page.
const PAGE: u32 = 100;

/// The filter form (times as the browser's `datetime-local`, read as UTC).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct LogForm {
    connection: Option<String>,
    record: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(skip_serializing)]
    cursor: Option<String>,
    #[serde(skip_serializing)]
    format: Option<String>,
}

/// `2026-12-01T10:00` (or with seconds) as UTC ms.
fn local_time(what: &str, value: &Option<String>) -> Result<Option<i64>, String> {
    let Some(text) = nonempty(value) else {
        return Ok(None);
    };
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(&text, f).ok())
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .ok_or_else(|| format!("{what}: {text:?} is not a time like 2026-12-01T10:00"))
}

impl LogForm {
    fn query(&self) -> Result<LogQuery, String> {
        Ok(LogQuery {
            connection: nonempty(&self.connection),
            record: nonempty(&self.record),
            action: nonempty(&self.action),
            outcome: nonempty(&self.outcome),
            since_ms: local_time("Since", &self.since)?,
            until_ms: local_time("Until", &self.until)?,
            cursor: nonempty(&self.cursor),
            limit: PAGE,
        })
    }

    /// The filters as a query string (for paging and the export links).
    fn query_string(&self) -> String {
        [
            ("connection", &self.connection),
            ("record", &self.record),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                urlencode(v.as_deref().unwrap_or_default().to_owned())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn bad_filter(admin: &Admin, message: &str) -> Response {
    render::message(
        StatusCode::BAD_REQUEST,
        Some(admin),
        "That filter does not work",
        message,
        Some("/console/log"),
    )
}

fn engine_message(e: &EngineError) -> Option<&str> {
    match e {
        EngineError::Invalid(m) | EngineError::NotFound(m) => Some(m),
        _ => None,
    }
}

/// `GET /console/log`.
pub async fn show(
    State(state): State<ApiState>,
    admin: Admin,
    form: Result<Query<LogForm>, QueryRejection>,
) -> Response {
    let form = form.map(|f| f.0).unwrap_or_default();
    let query = match form.query() {
        Ok(q) => q,
        Err(m) => return bad_filter(&admin, &m),
    };
    match state.engine.log(query).await {
        Ok(page) => {
            let next = page.next_cursor.map(|c| {
                format!(
                    "/console/log?{}&cursor={}",
                    form.query_string(),
                    urlencode(c)
                )
            });
            let entries: Vec<_> = page
                .entries
                .iter()
                .map(|l| {
                    context! { ..minijinja::Value::from_serialize(&l.entry), ..context! { kind => l.kind, key => l.key } }
                })
                .collect();
            render::page(
                &admin,
                "log",
                "log.html",
                context! {
                    title => "Sync log", entries => entries, next => next,
                    export_query => form.query_string(), q => form,
                },
            )
        }
        Err(e) => match engine_message(&e) {
            Some(m) => bad_filter(&admin, m),
            None => {
                tracing::error!(error = %e, "cannot read the log");
                render::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&admin),
                    "Ferry could not read its log",
                    "The database did not answer; try again in a moment.",
                    Some("/console"),
                )
            }
        },
    }
}

/// `GET /console/log/export?…&format=csv|jsonl`: the whole selection, streamed.
pub async fn export(
    State(state): State<ApiState>,
    admin: Admin,
    form: Result<Query<LogForm>, QueryRejection>,
) -> Response {
    let form = form.map(|f| f.0).unwrap_or_default();
    let format = match form.format.as_deref() {
        Some("csv") => ExportFormat::Csv,
        Some("jsonl") | None => ExportFormat::Jsonl,
        Some(other) => return bad_filter(&admin, &format!("{other:?} is not csv or jsonl")),
    };
    let mut query = match form.query() {
        Ok(q) => q,
        Err(m) => return bad_filter(&admin, &m),
    };
    query.cursor = None;
    match crate::api::status::stream_export(&state, query, format).await {
        Ok(response) => response,
        Err(e) => bad_filter(&admin, e.message()),
    }
}
