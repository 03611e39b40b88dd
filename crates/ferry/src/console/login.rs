//! Signing in and out: the password form, one-time links, and logout.

use super::render;
use super::session::{self, Button, CheckedForm};
use crate::api::ApiState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::secret::Secret;
use ferry_engine::console_auth::{LoginError, NewSession, SESSION_LIFETIME};
use minijinja::context;
use serde::Deserialize;

/// `?next=` on the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// `?token=` of a one-time link.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

async fn login_page(
    state: &ApiState,
    status: StatusCode,
    next: &str,
    name: &str,
    error: Option<String>,
) -> Response {
    let no_admin = matches!(state.engine.admin_count().await, Ok(0));
    render::render(
        status,
        None,
        "",
        "login.html",
        context! { title => "Sign in", next => next, name => name, error => error, no_admin => no_admin },
    )
}

/// `GET /console/login`.
pub async fn form(
    State(state): State<ApiState>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let next = session::safe_next(query.as_ref().ok().and_then(|q| q.next.as_deref()));
    login_page(&state, StatusCode::OK, &next, "", None).await
}

fn signed_in(state: &ApiState, new: NewSession, to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::session_cookie(
            new.token.expose(),
            SESSION_LIFETIME.as_secs(),
            state.console_secure_cookies,
        ),
    );
    response
}

/// `POST /console/login`. The form needs no CSRF token (there is no session yet); a
/// cross-site post can at most sign the visitor in as someone whose password it knows.
pub async fn submit(
    State(state): State<ApiState>,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            "/console",
            "",
            Some("Enter a name and a password.".into()),
        )
        .await;
    };
    let next = session::safe_next(form.next.as_deref());
    match state
        .engine
        .login(form.name.trim(), &Secret::new(form.password))
        .await
    {
        Ok(new) => signed_in(&state, new, &next),
        Err(e @ (LoginError::Wrong | LoginError::Throttled(_))) => {
            let status = match e {
                LoginError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            login_page(&state, status, &next, &form.name, Some(e.to_string())).await
        }
        Err(e) => {
            tracing::error!(error = %e, "console sign-in failed");
            login_page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                &form.name,
                Some("Ferry could not check the password just now; try again.".into()),
            )
            .await
        }
    }
}

/// `GET /console/login/link?token=…`: a one-time link signs in once.
pub async fn link(
    State(state): State<ApiState>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    let token = query.ok().and_then(|q| q.0.token).unwrap_or_default();
    if token.is_empty() || token.len() > 128 {
        return login_page(
            &state,
            StatusCode::BAD_REQUEST,
            "/console",
            "",
            Some(LoginError::BadLink.to_string()),
        )
        .await;
    }
    match state.engine.redeem_login_link(&token).await {
        Ok(new) => signed_in(&state, new, "/console"),
        Err(e) => {
            login_page(
                &state,
                StatusCode::BAD_REQUEST,
                "/console",
                "",
                Some(e.to_string()),
            )
            .await
        }
    }
}

/// `POST /console/logout`.
pub async fn logout(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    CheckedForm(_admin, _): CheckedForm<Button>,
) -> Response {
    if let Some(token) = session::cookie(&headers, session::SESSION_COOKIE)
        && let Err(e) = state.engine.logout(&token).await
    {
        tracing::error!(error = %e, "cannot end a console session");
    }
    let mut response = render::message(
        StatusCode::OK,
        None,
        "Signed out",
        "You are signed out of Ferry's console.",
        Some("/console/login"),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        session::clear_session_cookie(state.console_secure_cookies),
    );
    response
}
