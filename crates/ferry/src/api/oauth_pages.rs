//! The page a browser lands on when Dropbox sends it back (`/oauth/dropbox/callback`):
//! connected (account, root, **Currently active**), or why not — in words, never a trace.
//! Rendered with MiniJinja, auto-escaping everything from outside.

use super::ApiState;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_engine::connect_flow::ConnectError;
use serde::Deserialize;

/// What Dropbox appends to the redirect URI.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ferry — {{ title }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em;color:#222}
.ok{color:#146c2e}.bad{color:#a4262c}dt{font-weight:600}dd{margin:0 0 .6em 0}</style></head>
<body><h1 class="{{ class }}">{{ title }}</h1>
{% if account %}<dl><dt>Connection</dt><dd>{{ connection }}</dd>
<dt>Dropbox account</dt><dd>{{ account }} ({{ email }})</dd>
<dt>Root folder</dt><dd>{{ root or "(the whole Dropbox or app folder)" }}</dd>
<dt>Status</dt><dd class="ok">Currently active</dd></dl>
<p>Files start syncing under the connection's rules. You can close this page.</p>
{% else %}<p>{{ message }}</p>{% endif %}
</body></html>"#;

fn page(status: StatusCode, context: minijinja::Value) -> Response {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    let html = env
        .template_from_str(PAGE)
        .and_then(|t| t.render(context))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "the connect page did not render");
            "<!doctype html><p>Ferry could not show this page; see its log.</p>".to_owned()
        });
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

fn failed(status: StatusCode, message: &str) -> Response {
    page(
        status,
        minijinja::context! { title => "Not connected", class => "bad", message => message },
    )
}

/// `GET /oauth/dropbox/callback?state=…&code=…` (or `&error=…`).
pub async fn callback(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A browser signed in to the console presents its session: a link started there needs
    // it, and the admin lands back on the connections page.
    let session = match crate::console::session_cookie_value(&headers) {
        Some(token) => state.engine.console_session(&token).await.ok().flatten(),
        None => None,
    };
    let Ok(Query(query)) = query else {
        return failed(
            StatusCode::BAD_REQUEST,
            "This page was opened with a broken link.",
        );
    };
    let Some(flow) = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 128)
    else {
        return failed(
            StatusCode::BAD_REQUEST,
            "This page is where Dropbox sends you back after you approve Ferry; it was opened without a connect link.",
        );
    };
    let result = state
        .engine
        .connect_finish(
            flow,
            query.code.as_deref(),
            query.error.as_deref(),
            session.as_ref().map(|s| s.id_hash.as_str()),
        )
        .await;
    match &result {
        Err(ConnectError::PickMember(id)) => {
            return axum::response::Redirect::to(&format!("/console/connections/pick/{id}"))
                .into_response();
        }
        Err(ConnectError::ConfirmSwitch(id)) => {
            return axum::response::Redirect::to(&format!("/console/connections/switch/{id}"))
                .into_response();
        }
        _ => {}
    }
    // From the console: back to its connections page, which says how it went.
    if session.is_some()
        && let Err(e) = &result
        && !matches!(e, ConnectError::Engine(e) if !matches!(e, ferry_engine::EngineError::Invalid(_) | ferry_engine::EngineError::AccountSwitch { .. }))
    {
        return crate::console::done("/console/connections", &format!("Not connected: {e}"), true);
    }
    match result {
        Ok((connection, _, account)) if session.is_some() => crate::console::done(
            "/console/connections",
            &format!(
                "Connected {connection} to {} ({}): currently active.",
                account.display_name, account.email
            ),
            false,
        ),
        Ok((connection, root, account)) => page(
            StatusCode::OK,
            minijinja::context! {
                title => "Connected to Dropbox", class => "ok", connection => connection,
                account => account.display_name, email => account.email, root => root,
            },
        ),
        Err(
            e @ (ConnectError::UnknownState | ConnectError::Expired | ConnectError::OtherSession),
        ) => failed(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e @ ConnectError::Declined(_)) => failed(StatusCode::FORBIDDEN, &e.to_string()),
        Err(e @ ConnectError::NotConfigured) => failed(StatusCode::NOT_FOUND, &e.to_string()),
        Err(ConnectError::Engine(ferry_engine::EngineError::Invalid(message))) => {
            failed(StatusCode::BAD_REQUEST, &message)
        }
        Err(ConnectError::Engine(e @ ferry_engine::EngineError::AccountSwitch { .. })) => {
            failed(StatusCode::CONFLICT, &e.to_string())
        }
        Err(ConnectError::Engine(ferry_engine::EngineError::TeamMemberNeeded)) => failed(
            StatusCode::BAD_REQUEST,
            "This is a Dropbox team account: start again from Ferry's console, which lets you pick the team member, or give the member with --select-user.",
        ),
        // Handled above (the console takes over).
        Err(ConnectError::PickMember(id)) => {
            axum::response::Redirect::to(&format!("/console/connections/pick/{id}")).into_response()
        }
        Err(ConnectError::ConfirmSwitch(id)) => {
            axum::response::Redirect::to(&format!("/console/connections/switch/{id}"))
                .into_response()
        }
        Err(ConnectError::Engine(e)) => {
            let id = uuid_like();
            tracing::error!(error = %e, error_id = %id, "connecting through Dropbox failed");
            failed(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "Ferry could not finish connecting (Dropbox may be unreachable); start again from Ferry. Error id {id} in Ferry's log."
                ),
            )
        }
    }
}

fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().r#gen::<u64>())
}
