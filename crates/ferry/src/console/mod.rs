//! The admin console: server-rendered pages under `/console` (MiniJinja templates compiled
//! into the binary, one stylesheet, no script). Every page needs a signed-in admin; every
//! form carries its session's CSRF token; every action ends on a page that says what
//! happened. The pages call the same engine methods as the REST API. See docs/console.md.

mod backups;
mod connections;
mod dashboard;
mod files;
mod folder_map;
mod log;
mod login;
mod records;
mod render;
mod rules;
mod session;
mod webhooks;

use crate::api::ApiState;
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};

pub use session::{SESSION_COOKIE, done};

/// The session token a request's cookie carries, if any.
pub fn session_cookie_value(headers: &axum::http::HeaderMap) -> Option<String> {
    session::cookie(headers, SESSION_COOKIE)
}

/// The console's routes (merged into the API's router, sharing its state).
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(dashboard::show))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/login/link", get(login::link))
        .route("/console/logout", post(login::logout))
        .route("/console/queue/requeue", post(dashboard::requeue_all))
        .route("/console/connections", get(connections::list))
        .route("/console/connections/connect", post(connections::connect))
        .route("/console/connections/token", post(connections::paste_token))
        .route(
            "/console/connections/pick/{id}",
            get(connections::pick).post(connections::picked),
        )
        .route(
            "/console/connections/switch/{id}",
            get(connections::confirm_switch).post(connections::switch),
        )
        .route(
            "/console/connections/{name}/disconnect",
            get(connections::confirm_disconnect).post(connections::disconnect),
        )
        .route(
            "/console/connections/{name}/root",
            get(connections::root_picker).post(connections::change_root),
        )
        .route("/console/records", get(records::list))
        .route("/console/records/{kind}/{key}", get(records::show))
        .route(
            "/console/records/{kind}/{key}/resync",
            post(records::resync),
        )
        .route(
            "/console/records/{kind}/{key}/confirm-deletions",
            post(records::confirm_deletions),
        )
        .route(
            "/console/records/{kind}/{key}/files/{name}",
            get(records::download),
        )
        .route(
            "/console/records/{kind}/{key}/archive/{id}",
            get(records::download_archived),
        )
        .route(
            "/console/records/{kind}/{key}/archive/{id}/restore",
            post(records::restore),
        )
        .route(
            "/console/records/{kind}/{key}/map",
            get(folder_map::picker).post(folder_map::map),
        )
        .route(
            "/console/records/{kind}/{key}/folders/{id}/remove",
            post(folder_map::remove),
        )
        .route("/console/files", get(files::browse))
        .route(
            "/console/files/zip",
            get(files::zip).post(files::zip_selection),
        )
        .route(
            "/console/records/{kind}/{key}/upload",
            post(files::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/console/records/{kind}/{key}/files/{name}/move",
            post(files::move_file),
        )
        .route("/console/log", get(log::show))
        .route("/console/log/export", get(log::export))
        .route("/console/webhooks", get(webhooks::list).post(webhooks::add))
        .route("/console/webhooks/{id}", get(webhooks::deliveries))
        .route(
            "/console/webhooks/{id}/remove",
            get(webhooks::confirm_remove).post(webhooks::remove),
        )
        .route(
            "/console/webhooks/deliveries/{id}/redeliver",
            post(webhooks::redeliver),
        )
        .route("/console/backups", get(backups::show).post(backups::now))
        .route("/console/backups/{name}", get(backups::download))
        .route("/console/rules", get(rules::list))
        .route("/console/rules/new", get(rules::new))
        .route("/console/rules/save", post(rules::save))
        .route("/console/rules/{name}", get(rules::edit))
        .route("/console/rules/{name}/delete", post(rules::delete))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("templates/console.css"),
    )
}
