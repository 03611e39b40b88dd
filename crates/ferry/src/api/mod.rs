//! The REST API (`/v1`). Every route but `/health` needs `Authorization: Bearer <api key>`.
//! Documented in `docs/api.md`.

mod admins;
pub(crate) mod attachments;
pub(crate) mod backups;
mod connections;
mod error;
mod extract;
mod oauth_pages;
pub mod openapi;
mod records;
mod rules;
pub(crate) mod status;
mod webhooks;

pub use error::ApiError;
pub(crate) use extract::nonempty;
pub use openapi::ErrorBody;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, put};
use ferry_core::secret::Secret;
use ferry_engine::Engine;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The engine (and through it the store and blobs).
    pub engine: Arc<Engine>,
    /// The key clients must present.
    pub api_key: Secret,
    /// Largest attachment body accepted.
    pub max_attachment_bytes: usize,
    /// Where backups go (`None`: not configured).
    pub backup: Option<ferry_engine::backup::BackupSettings>,
    /// A directory for backup snapshots (the data dir).
    pub scratch: std::path::PathBuf,
    /// Browsers reach Ferry over https: console cookies are `Secure`.
    pub console_secure_cookies: bool,
    /// Where connections made in the console go (the real Dropbox, or an emulator).
    pub console_endpoints: ferry_dropbox::Endpoints,
}

/// Builds the API router.
pub fn router(state: ApiState) -> Router {
    let attachment_limit =
        DefaultBodyLimit::max(state.max_attachment_bytes.saturating_add(64 * 1024));
    let v1 = Router::new()
        .route("/records", get(records::list))
        .route(
            "/records/{kind}/{key}",
            put(records::upsert)
                .get(records::show)
                .delete(records::delete),
        )
        .route(
            "/records/{kind}/{key}/sync",
            get(records::sync_state).post(records::resync),
        )
        .route(
            "/records/{kind}/{key}/folders",
            get(records::folders).post(records::map_folder),
        )
        .route(
            "/records/{kind}/{key}/folders/{id}",
            axum::routing::delete(records::unmap_folder),
        )
        .route("/records/{kind}/{key}/archive", get(records::archive))
        .route(
            "/records/{kind}/{key}/archive/{id}",
            get(records::archived_content),
        )
        .route(
            "/records/{kind}/{key}/archive/{id}/restore",
            axum::routing::post(records::restore),
        )
        .route(
            "/records/{kind}/{key}/confirm-deletions",
            axum::routing::post(records::confirm_deletions),
        )
        .route(
            "/records/{kind}/{key}/attachments",
            axum::routing::post(attachments::upload_multipart).layer(attachment_limit),
        )
        .route(
            "/records/{kind}/{key}/attachments/{name}",
            put(attachments::put_raw)
                .delete(attachments::remove)
                .get(attachments::download)
                .layer(attachment_limit),
        )
        .route("/rules", get(rules::list))
        .route("/rules/{name}", put(rules::put).delete(rules::remove))
        .route("/rules/{name}/preview", axum::routing::post(rules::preview))
        .route("/connections", get(connections::list))
        .route(
            "/connections/{name}",
            put(connections::put).delete(connections::remove),
        )
        .route("/status", get(status::show))
        .route("/backups", get(backups::list).post(backups::now))
        .route("/backups/{name}", get(backups::content))
        .route("/webhooks", get(webhooks::list).post(webhooks::add))
        .route("/webhooks/{id}", axum::routing::delete(webhooks::remove))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/deliveries/{id}/redeliver",
            axum::routing::post(webhooks::redeliver),
        )
        .route("/log", get(status::log))
        .route("/log/export", get(status::export))
        .route("/queue/dead", get(status::dead))
        .route(
            "/queue/dead/requeue",
            axum::routing::post(status::requeue_dead),
        )
        .route(
            "/connections/{name}/confirm-deletions",
            axum::routing::post(connections::confirm_deletions),
        )
        .route(
            "/connections/{name}/authorize",
            axum::routing::post(connections::authorize),
        )
        .route("/connections/{name}/members", get(connections::members))
        .route(
            "/connections/{name}/root",
            axum::routing::post(connections::change_root),
        )
        .route("/admins/{name}/password", put(admins::set_password))
        .route(
            "/admins/{name}/login-link",
            axum::routing::post(admins::login_link),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    let metrics = Router::new()
        .route("/metrics", get(openapi::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    Router::new()
        .nest("/v1", v1)
        .merge(metrics)
        .route("/v1/openapi.json", get(openapi::document))
        .route("/health", get(openapi::health))
        // The browser comes back from Dropbox here: the single-use state is its credential.
        .route("/oauth/dropbox/callback", get(oauth_pages::callback))
        .route("/ready", get(openapi::ready))
        .merge(crate::console::router())
        .fallback(|| async { ApiError::not_found("no such route; see docs/api.md") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe_requests,
        ))
        .layer(middleware::from_fn(catch_panics))
        .with_state(state)
}

/// Each request runs in a span naming its method, route template and an id (its log lines
/// carry them), and is counted in the metrics by route template — never by raw path, which
/// holds record keys.
async fn observe_requests(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    use tracing::Instrument;
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = hex::encode(rand::random::<[u8; 4]>());
    let span = tracing::info_span!("request", %method, %route, %id);
    let started = std::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    state
        .engine
        .metrics()
        .api_request(&method, &route, status, started.elapsed());
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    response
}

/// A handler that panics answers 500 in JSON (the detail goes to the log), and the
/// connection stays up.
async fn catch_panics(request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => ApiError::panicked().into_response(),
    }
}

async fn require_api_key(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(key) if keys_match(key, state.api_key.expose()) => Ok(next.run(request).await),
        _ => Err(ApiError::unauthorized()),
    }
}

/// Compares the presented key with ours exactly (no trimming) in time that depends on
/// neither key's content nor its length: both are hashed first, and the digests compared.
pub(crate) fn keys_match(presented: &str, key: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(presented), Sha256::digest(key));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panicking handler answers 500 in the documented JSON shape.
    #[tokio::test]
    async fn a_panic_in_a_handler_is_a_json_500() {
        let app: Router = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("handler bug");
                    }
                    "unreachable"
                }),
            )
            .layer(middleware::from_fn(catch_panics));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        for _ in 0..2 {
            // The same client again: the server is still there after the panic.
            let response = http
                .get(format!("http://{addr}/boom"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 500);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "internal");
        }
    }
}
