//! Status, the log (filtered, paged, exported) and the dead-letter queue.

use super::extract::QueryParams;
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ferry_engine::LogQuery;
use ferry_engine::views::{DeadList, LogPage, Requeued, StatusView};
use ferry_store::LogLine;
use serde::Deserialize;
use utoipa::IntoParams;

/// Queue length, retries, and files by state.
#[utoipa::path(get, operation_id = "status", path = "/v1/status", tag = "status", responses((status = 200, body = StatusView)))]
pub async fn show(State(state): State<ApiState>) -> Result<Json<StatusView>, ApiError> {
    Ok(Json(state.engine.status().await?))
}

/// Filters of `GET /v1/log` and `GET /v1/log/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only this connection.
    connection: Option<String>,
    /// Only this record, written `kind/key`.
    record: Option<String>,
    /// Only this action (`upload`, `delete`, `import`, `move`, ...).
    action: Option<String>,
    /// Only this outcome (`ok`, `failed`, `skipped`).
    outcome: Option<String>,
    /// Only entries at or after this time (RFC 3339, e.g. `2026-12-01T10:00:00Z`).
    since: Option<String>,
    /// Only entries before this time (RFC 3339).
    until: Option<String>,
    /// The `next_cursor` of the previous page (`GET /v1/log` only).
    cursor: Option<String>,
    /// Page size (default 100, at most 10000; `GET /v1/log` only).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// Export format (`GET /v1/log/export` only): `jsonl` (default) or `csv`.
    format: Option<ExportFormat>,
}

/// How `GET /v1/log/export` writes entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// Comma-separated, with a header line.
    Csv,
}

fn time_ms(what: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "{what} must be an RFC 3339 time such as 2026-12-01T10:00:00Z: {e}"
                    ))
                })
        })
        .transpose()
}

impl LogParams {
    fn query(self) -> Result<(LogQuery, Option<ExportFormat>), ApiError> {
        Ok((
            LogQuery {
                since_ms: time_ms("since", self.since.as_deref())?,
                until_ms: time_ms("until", self.until.as_deref())?,
                connection: self.connection,
                record: self.record,
                action: self.action,
                outcome: self.outcome,
                cursor: self.cursor,
                limit: self.limit.unwrap_or(100),
            },
            self.format,
        ))
    }
}

/// `GET /v1/log`: executed actions, newest first, filtered and paged.
#[utoipa::path(get, operation_id = "log", path = "/v1/log", tag = "status", params(LogParams),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn log(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<LogParams>,
) -> Result<Json<LogPage>, ApiError> {
    let (query, format) = params.query()?;
    if format.is_some() {
        return Err(ApiError::bad_request(
            "format applies to GET /v1/log/export",
        ));
    }
    Ok(Json(state.engine.log(query).await?))
}

/// Entries read per page while exporting.
const EXPORT_PAGE: u32 = 1000;

const CSV_HEADER: &str = "id,at,connection,kind,key,path,action,outcome,bytes,duration_ms,error\n";

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn export_line(line: &LogLine, format: ExportFormat) -> String {
    match format {
        ExportFormat::Jsonl => {
            let mut s = serde_json::to_string(line).unwrap_or_default();
            s.push('\n');
            s
        }
        ExportFormat::Csv => {
            let e = &line.entry;
            let at = chrono::DateTime::from_timestamp_millis(e.at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default();
            let fields = [
                e.id.to_string(),
                at,
                csv_field(&e.connection),
                csv_field(line.kind.as_deref().unwrap_or("")),
                csv_field(line.key.as_deref().unwrap_or("")),
                csv_field(&e.path),
                csv_field(&e.action),
                csv_field(&e.outcome),
                e.bytes.to_string(),
                e.duration_ms.to_string(),
                csv_field(e.error.as_deref().unwrap_or("")),
            ];
            let mut s = fields.join(",");
            s.push('\n');
            s
        }
    }
}

/// `GET /v1/log/export?format=jsonl|csv`: every entry the filters select, newest first,
/// streamed page by page (memory stays flat however long the log is).
#[utoipa::path(get, operation_id = "export_log", path = "/v1/log/export", tag = "status", params(LogParams),
    responses((status = 200, description = "JSON lines (`format=jsonl`) or CSV with a header line (`format=csv`)",
               content((String = "application/x-ndjson"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export(
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<LogParams>,
) -> Result<Response, ApiError> {
    if params.cursor.is_some() || params.limit.is_some() {
        return Err(ApiError::bad_request(
            "cursor and limit apply to GET /v1/log; the export is the whole selection",
        ));
    }
    let (query, format) = params.query()?;
    stream_export(&state, query, format.unwrap_or_default()).await
}

/// Every entry `query` selects as a streamed download (the API's export and the console's).
pub(crate) async fn stream_export(
    state: &ApiState,
    mut query: LogQuery,
    format: ExportFormat,
) -> Result<Response, ApiError> {
    use futures::StreamExt;
    query.limit = EXPORT_PAGE;
    // The first page is read before answering, so a bad filter is a clean JSON error.
    let first = state.engine.log(query.clone()).await?;
    let engine = std::sync::Arc::clone(&state.engine);
    let header_line = match format {
        ExportFormat::Csv => Some(Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            CSV_HEADER.as_bytes(),
        ))),
        ExportFormat::Jsonl => None,
    };
    let pages = futures::stream::unfold(Some(first), move |page| {
        let engine = std::sync::Arc::clone(&engine);
        let mut query = query.clone();
        async move {
            let page = page?;
            let chunk: String = page
                .entries
                .iter()
                .map(|l| export_line(l, format))
                .collect();
            let next = match page.next_cursor {
                Some(cursor) => {
                    query.cursor = Some(cursor);
                    match engine.log(query).await {
                        Ok(next) => Some(next),
                        // The status line is sent; a failure now can only end the body early.
                        Err(e) => {
                            tracing::error!(error = %e, "log export stopped early");
                            return Some((Err(std::io::Error::other("log export failed")), None));
                        }
                    }
                }
                None => None,
            };
            Some((Ok(bytes::Bytes::from(chunk)), next))
        }
    });
    let body = futures::stream::iter(header_line).chain(pages);
    let (content_type, disposition) = match format {
        ExportFormat::Jsonl => (
            "application/x-ndjson",
            "attachment; filename=\"ferry-log.jsonl\"",
        ),
        ExportFormat::Csv => (
            "text/csv; charset=utf-8",
            "attachment; filename=\"ferry-log.csv\"",
        ),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// `POST /v1/queue/dead/requeue`: every dead-lettered record back in the queue, due now,
/// with a fresh failure budget.
#[utoipa::path(post, operation_id = "requeue_dead", path = "/v1/queue/dead/requeue", tag = "status", responses((status = 200, body = Requeued)))]
pub async fn requeue_dead(State(state): State<ApiState>) -> Result<Json<Requeued>, ApiError> {
    Ok(Json(Requeued {
        requeued: state.engine.requeue_dead().await?,
    }))
}

/// `GET /v1/queue/dead`: records that failed too long; `POST .../sync` re-queues one.
#[utoipa::path(get, operation_id = "dead_letters", path = "/v1/queue/dead", tag = "status", responses((status = 200, body = DeadList)))]
pub async fn dead(State(state): State<ApiState>) -> Result<Json<DeadList>, ApiError> {
    Ok(Json(state.engine.dead().await?))
}
