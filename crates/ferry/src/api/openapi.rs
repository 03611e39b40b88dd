//! The API's OpenAPI 3.1 document, generated from the handlers' annotations and the typed
//! request and response structs. Served at `GET /v1/openapi.json`; a copy is committed as
//! `docs/openapi.json`, and a test fails when the two drift.

use super::{attachments, connections, records, rules, status};
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

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferry", description = "Ferry keeps business records' files in Dropbox. See docs/api.md.", license(name = "Apache-2.0")),
    modifiers(&BearerKey),
    security(("api_key" = [])),
    paths(
        health, document,
        records::list, records::upsert, records::show, records::delete, records::sync_state,
        records::resync, records::archive, records::archived_content, records::restore,
        records::confirm_deletions,
        attachments::upload_multipart, attachments::put_raw, attachments::remove,
        attachments::download,
        rules::list, rules::put, rules::preview, rules::remove,
        connections::list, connections::put, connections::remove, connections::confirm_deletions,
        status::show, status::log, status::export, status::dead, status::requeue_dead,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "records", description = "Records, their sync state and archive"),
        (name = "attachments", description = "A record's files"),
        (name = "rules", description = "Folder rules"),
        (name = "connections", description = "Dropbox connections"),
        (name = "status", description = "Status, log, dead letters"),
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
