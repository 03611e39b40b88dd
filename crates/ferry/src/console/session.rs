//! Who is asking: the session cookie (HttpOnly, SameSite=Lax, Secure over https), the
//! signed-in admin it opens, the CSRF check every form goes through, and the one-shot notice
//! that tells the next page what the last action did.

use super::render;
use crate::api::ApiState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ferry_session";
const NOTICE_COOKIE: &str = "ferry_notice";

/// What the last action did, shown once on the next page.
#[derive(Debug, Clone)]
pub struct Notice {
    /// In words.
    pub text: String,
    /// It failed.
    pub error: bool,
}

/// A signed-in admin (the extractor redirects to the sign-in page otherwise).
#[derive(Debug, Clone)]
pub struct Admin {
    /// Login name.
    pub name: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// SHA-256 of the session token (connect flows are bound to it).
    pub session_hash: String,
    /// The notice left by the action before, if any.
    pub notice: Option<Notice>,
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn attributes(secure: bool) -> &'static str {
    if secure {
        "; Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` for a new session. Lax (not Strict), so the browser still sends it when
/// Dropbox redirects back to the callback.
pub fn session_cookie(token: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    HeaderValue::try_from(format!(
        "{SESSION_COOKIE}={token}; Max-Age={max_age_secs}{}",
        attributes(secure)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("ferry_session=; Max-Age=0"))
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    HeaderValue::try_from(format!(
        "{SESSION_COOKIE}=; Max-Age=0{}",
        attributes(secure)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("ferry_session=; Max-Age=0"))
}

/// `Set-Cookie` that drops the notice once shown.
pub fn clear_notice_cookie() -> HeaderValue {
    HeaderValue::from_static("ferry_notice=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax")
}

/// After an action: back to `to`, with `text` shown there once.
pub fn done(to: &str, text: &str, error: bool) -> Response {
    let value = format!(
        "{}{}",
        if error { "e" } else { "o" },
        URL_SAFE_NO_PAD.encode(text.as_bytes())
    );
    let mut response = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::try_from(format!(
        "{NOTICE_COOKIE}={value}; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

fn notice(headers: &HeaderMap) -> Option<Notice> {
    let raw = cookie(headers, NOTICE_COOKIE)?;
    let (kind, text) = raw.split_at_checked(1)?;
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
    // A notice is a sentence; anything longer was not written by Ferry.
    (text.len() <= 2000).then_some(Notice {
        text,
        error: kind == "e",
    })
}

/// Where a signed-out visitor goes: the sign-in page, then back here.
fn to_login(parts: &Parts) -> Response {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/console", |p| p.as_str());
    let next = if parts.method == axum::http::Method::GET {
        path
    } else {
        "/console"
    };
    Redirect::to(&format!(
        "/console/login?next={}",
        render::urlencode(next.to_owned())
    ))
    .into_response()
}

/// A local console path to go to after signing in (never another site).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains(['\\', '\r', '\n']) => n.to_owned(),
        _ => "/console".to_owned(),
    }
}

impl FromRequestParts<ApiState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(parts));
        };
        match state.engine.console_session(&token).await {
            Ok(Some(session)) => Ok(Admin {
                name: session.admin,
                csrf: session.csrf,
                session_hash: session.id_hash,
                notice: notice(&parts.headers),
            }),
            Ok(None) => Err(to_login(parts)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the console session");
                Err(render::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "Ferry cannot check your session",
                    "The database did not answer; try again in a moment.",
                    None,
                ))
            }
        }
    }
}

/// Form fields every console form sends.
pub trait HasCsrf {
    /// The CSRF token the form carried.
    fn csrf(&self) -> &str;
}

/// A console form from a signed-in admin: parsed as `application/x-www-form-urlencoded`,
/// and refused unless it carries the session's CSRF token.
pub struct CheckedForm<T>(pub Admin, pub T);

impl<T> FromRequest<ApiState> for CheckedForm<T>
where
    T: DeserializeOwned + HasCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let form = match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(form)) => form,
            Err(rejection) => {
                return Err(render::message(
                    StatusCode::BAD_REQUEST,
                    Some(&admin),
                    "That form could not be read",
                    &rejection.body_text(),
                    Some("/console"),
                ));
            }
        };
        if !crate::api::keys_match(form.csrf(), &admin.csrf) {
            return Err(render::message(
                StatusCode::FORBIDDEN,
                Some(&admin),
                "This form has expired",
                "The form was not sent from this session's page (or the page is older than your sign-in). Nothing was changed. Go back, reload the page and try again.",
                Some("/console"),
            ));
        }
        Ok(CheckedForm(admin, form))
    }
}

/// The names of a form's ticked checkboxes called `<prefix><name>` (a form repeats a field
/// name for a list, which the flat form reader cannot take, so each box has its own).
pub fn ticked(fields: &std::collections::BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    fields
        .keys()
        .filter_map(|k| k.strip_prefix(prefix))
        .map(str::to_owned)
        .collect()
}

/// A form with nothing but its CSRF token (a button).
#[derive(Debug, serde::Deserialize)]
pub struct Button {
    csrf: String,
}

impl HasCsrf for Button {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(
            safe_next(Some("/console/records?q=1")),
            "/console/records?q=1"
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/v1/status",
            "/console\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ferry_session=tok; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn a_notice_round_trips() {
        let r = done("/console", "Rule saved", false);
        let set = r
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap();
        let value = set.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::try_from(value).unwrap());
        let n = notice(&h).unwrap();
        assert_eq!((n.text.as_str(), n.error), ("Rule saved", false));
    }
}
