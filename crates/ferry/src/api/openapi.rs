//! The API's OpenAPI 3.1 document, generated from the handlers' annotations and the typed
//! request and response structs. Served at `GET /v1/openapi.json`; a copy is committed as
//! `docs/openapi.json`, and a test fails when the two drift.

use super::{admins, attachments, backups, connections, records, rules, status, webhooks};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The error body every failure answers with.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (`bad_request`, `not_found`, `conflict`,
    /// `precondition_failed`, `too_large`, `unavailable`, `dropbox_unavailable`, ...).
    pub code: String,
    /// For people; transient and internal failures carry an error id to quote.
    pub message: String,
}

/// `GET /health`'s answer.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Health {
    /// Always true while the process serves requests.
    pub ok: bool,
}

/// Liveness: answers while the process serves requests (no authentication).
#[utoipa::path(get, operation_id = "health", path = "/health", tag = "status", security(()),
    responses((status = 200, body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health { ok: true })
}

/// `GET /ready`'s answer.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Readiness {
    /// True when the store answers and the sync workers run.
    pub ready: bool,
    /// Whether the store answered.
    pub store: bool,
    /// Sync workers running.
    pub workers: usize,
}

/// Readiness (no authentication): 200 when the store answers and the sync workers run, 503
/// otherwise (a load balancer then sends traffic elsewhere).
#[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "status", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(
    axum::extract::State(state): axum::extract::State<super::ApiState>,
) -> (axum::http::StatusCode, axum::Json<Readiness>) {
    let store = state.engine.status().await.is_ok();
    let workers = state.engine.running_workers();
    let ready = store && workers > 0;
    let status = if ready {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(Readiness {
            ready,
            store,
            workers,
        }),
    )
}

/// Prometheus metrics in the OpenMetrics text format (with the API key, like every route
/// that is not a probe).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "status",
    responses((status = 200, description = "OpenMetrics text; docs/operations.md lists the metrics", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<super::ApiState>,
) -> Result<axum::response::Response, super::ApiError> {
    use axum::response::IntoResponse;
    let text = state.engine.metrics_text().await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            ferry_engine::metrics::METRICS_CONTENT_TYPE,
        )],
        text,
    )
        .into_response())
}

/// This document (no authentication).
#[utoipa::path(get, operation_id = "openapi", path = "/v1/openapi.json", tag = "status", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn document() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json(),
    )
        .into_response()
}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The API key (`ferry-data/api-key` or `FERRY_API_KEY`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Answers every operation can give besides its own: the error statuses that come from the
/// edge (authentication, body format and size, a store that is busy, a failure inside
/// Ferry), in the one error shape. Added here so no operation can forget one.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        let retry_after = HeaderBuilder::new()
            .schema(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer),
            )
            .description(Some("Seconds to wait before trying again"))
            .build();
        let invalid = [("400", error("The request is malformed or invalid").build())];
        let common = vec![
            (
                "500",
                error("A failure inside Ferry (the message carries an error id)").build(),
            ),
            (
                "503",
                error("The store is busy or failing in a way that may heal")
                    .header("Retry-After", retry_after)
                    .build(),
            ),
        ];
        let secured = [("401", error("Missing or wrong API key").build())];
        let json_body = [
            (
                "413",
                error("The body is larger than this operation accepts").build(),
            ),
            ("415", error("The body is not `application/json`").build()),
        ];
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                // `security(())`: the requirement list holds one empty requirement.
                let public = op.security.as_ref().is_some_and(|s| {
                    s.iter()
                        .all(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
                });
                let takes_json = op
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                let mut wanted: Vec<(&str, utoipa::openapi::Response)> = common.clone();
                if !public {
                    wanted.extend(secured.iter().cloned());
                    wanted.extend(invalid.iter().cloned());
                }
                if takes_json {
                    wanted.extend(json_body.iter().cloned());
                }
                for (code, response) in wanted {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| RefOr::T(response));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferry", description = "Ferry keeps business records' files in Dropbox. See docs/api.md.", license(name = "Apache-2.0")),
    modifiers(&BearerKey, &CommonErrors),
    security(("api_key" = [])),
    paths(
        health, ready, document, metrics,
        records::list, records::upsert, records::show, records::delete, records::sync_state,
        records::resync, records::archive, records::archived_content, records::restore,
        records::confirm_deletions, records::folders, records::map_folder, records::unmap_folder,
        attachments::upload_multipart, attachments::put_raw, attachments::remove,
        attachments::download,
        rules::list, rules::put, rules::preview, rules::remove,
        connections::list, connections::put, connections::remove, connections::confirm_deletions,
        connections::authorize, connections::members, connections::change_root,
        status::show, status::log, status::export, status::dead, status::requeue_dead,
        backups::now, backups::list, backups::content,
        webhooks::add, webhooks::list, webhooks::remove, webhooks::deliveries, webhooks::redeliver,
        admins::set_password, admins::login_link,
    ),
    components(schemas(ErrorBody, ErrorDetail, ferry_store::RecordState, status::ExportFormat, ferry_engine::DeletePolicy)),
    tags(
        (name = "records", description = "Records, their sync state and archive"),
        (name = "attachments", description = "A record's files"),
        (name = "rules", description = "Folder rules"),
        (name = "connections", description = "Dropbox connections"),
        (name = "status", description = "Status, log, dead letters"),
        (name = "backups", description = "Verified backups of Ferry's database to Dropbox"),
        (name = "webhooks", description = "Signed event notifications"),
        (name = "admins", description = "Console admins: passwords and one-time sign-in links"),
    )
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The OpenAPI document as pretty JSON (what `docs/openapi.json` holds).
pub fn json() -> String {
    let mut text = openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
