//! Wire conventions shared by all routes: error responses, `.tag`-first JSON, the ASCII-safe
//! `Dropbox-API-Result` header, and the argument types that need hand-written parsing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex, PoisonError};

/// Every way a request can fail, mapped to Dropbox's status codes and body shapes.
#[derive(Debug)]
pub enum ApiError {
    /// 400 about the argument; the dispatcher prefixes where the argument came from
    /// (`request body: ` or `HTTP header "Dropbox-API-Arg": `).
    BadArg(String),
    /// 400 with the text after `Error in call to API function "<route>": `.
    BadRequest(String),
    /// 401 `invalid_access_token`.
    InvalidToken,
    /// 401 `expired_access_token`.
    ExpiredToken,
    /// 401 `missing_scope` with the scope the route needs.
    MissingScope(&'static str),
    /// 404 for a route we do not implement.
    UnknownRoute(String),
    /// 405: wrong HTTP method.
    MethodNotAllowed,
    /// 409 with the route's error value (`.tag` first).
    Route(Value),
    /// 416 for a `Range` outside the file.
    RangeNotSatisfiable(u64),
    /// 500; the text is logged, not sent.
    Internal(String),
    /// 429 `too_many_requests` with `Retry-After` (seconds, also in the body).
    TooManyRequests(u64),
    /// 429 `too_many_write_operations` (namespace lock contention) with `Retry-After`; the
    /// body has no `retry_after` field, as Dropbox's.
    TooManyWriteOperations(u64),
    /// 503 (injected fault).
    ServiceUnavailable,
    /// 422 with a `PathRootError` (bad `Dropbox-API-Path-Root`).
    PathRoot(Value),
    /// 401 `invalid_select_user`.
    InvalidSelectUser,
}

impl ApiError {
    /// A 409 whose `error` is `value`.
    pub fn route(value: Value) -> Self {
        ApiError::Route(value)
    }

    /// Renders the error for `route`; `arg_location` names where the argument was read from.
    pub fn into_response_for(self, route: &str, arg_location: &str) -> Response {
        match self {
            ApiError::BadArg(detail) => text(
                StatusCode::BAD_REQUEST,
                format!("Error in call to API function \"{route}\": {arg_location}: {detail}"),
            ),
            ApiError::BadRequest(detail) => text(
                StatusCode::BAD_REQUEST,
                format!("Error in call to API function \"{route}\": {detail}"),
            ),
            ApiError::InvalidToken => {
                let error = tagged("invalid_access_token", Map::new());
                let mut response = error_body(StatusCode::UNAUTHORIZED, error);
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"Dropbox-API\""),
                );
                response
            }
            ApiError::ExpiredToken => {
                let error = tagged("expired_access_token", Map::new());
                let mut response = error_body(StatusCode::UNAUTHORIZED, error);
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"Dropbox-API\""),
                );
                response
            }
            ApiError::MissingScope(scope) => {
                let mut fields = Map::new();
                fields.insert("required_scope".into(), scope.into());
                error_body(StatusCode::UNAUTHORIZED, tagged("missing_scope", fields))
            }
            ApiError::UnknownRoute(route) => text(
                StatusCode::NOT_FOUND,
                format!("Unknown API function: \"{route}\""),
            ),
            ApiError::MethodNotAllowed => text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("Error in call to API function \"{route}\": Use POST."),
            ),
            ApiError::Route(error) => error_body(StatusCode::CONFLICT, error),
            ApiError::RangeNotSatisfiable(size) => {
                let mut response = text(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "Requested range not satisfiable".to_string(),
                );
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                response
            }
            ApiError::TooManyRequests(secs) => rate_limited("too_many_requests", secs, true),
            ApiError::TooManyWriteOperations(secs) => {
                rate_limited("too_many_write_operations", secs, false)
            }
            ApiError::PathRoot(error) => error_body(StatusCode::UNPROCESSABLE_ENTITY, error),
            ApiError::InvalidSelectUser => error_body(
                StatusCode::UNAUTHORIZED,
                tagged("invalid_select_user", Map::new()),
            ),
            ApiError::ServiceUnavailable => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable".to_string(),
            ),
            ApiError::Internal(reason) => {
                tracing::error!(route, %reason, "internal emulator error");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error".to_string(),
                )
            }
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(err: std::io::Error) -> Self {
        ApiError::Internal(err.to_string())
    }
}

/// A JSON 429 (`RateLimitError`) with `Retry-After`.
fn rate_limited(reason: &str, retry_after: u64, with_field: bool) -> Response {
    let mut error = Map::new();
    error.insert("reason".into(), tag(reason));
    if with_field {
        error.insert("retry_after".into(), retry_after.into());
    }
    let dots = random_in(0..4);
    let mut body = Map::new();
    body.insert(
        "error_summary".into(),
        Value::String(format!("{reason}/{}", ".".repeat(dots))),
    );
    body.insert("error".into(), Value::Object(error));
    let mut response = json(StatusCode::TOO_MANY_REQUESTS, &Value::Object(body));
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A JSON response with a compact body.
pub fn json(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// `{"error_summary": "a/b/..", "error": error}`.
fn error_body(status: StatusCode, error: Value) -> Response {
    let mut body = Map::new();
    body.insert("error_summary".into(), Value::String(error_summary(&error)));
    body.insert("error".into(), error);
    json(status, &Value::Object(body))
}

/// The union tags of `error` joined by `/`, a trailing `/` and 0–3 random dots (Dropbox adds
/// the dots so that clients do not parse the summary). Descends into the member value named
/// like the tag, or else into a flattened struct field holding a union (e.g.
/// `UploadWriteFailed.reason`).
pub fn error_summary(error: &Value) -> String {
    let mut tags = Vec::new();
    collect_tags(error, &mut tags);
    let dots = random_in(0..4);
    format!("{}/{}", tags.join("/"), ".".repeat(dots))
}

fn collect_tags(value: &Value, tags: &mut Vec<String>) {
    let Some(map) = value.as_object() else { return };
    let Some(tag) = map.get(".tag").and_then(Value::as_str) else {
        return;
    };
    tags.push(tag.to_string());
    if let Some(inner) = map.get(tag).filter(|v| v.get(".tag").is_some()) {
        collect_tags(inner, tags);
        return;
    }
    if let Some(inner) = map
        .iter()
        .find(|(k, v)| k.as_str() != ".tag" && v.get(".tag").is_some())
        .map(|(_, v)| v)
    {
        collect_tags(inner, tags);
    }
}

/// An object whose first key is `.tag` (whatever map ordering serde_json uses), followed by
/// `fields`.
pub fn tagged(tag: &str, fields: Map<String, Value>) -> Value {
    let mut map = Map::new();
    map.insert(".tag".into(), Value::String(tag.into()));
    map.extend(fields);
    Value::Object(map)
}

/// A void union member: `{".tag": tag}`.
pub fn tag(tag_name: &str) -> Value {
    tagged(tag_name, Map::new())
}

/// A union member with a nested value: `{".tag": tag, tag: value}`.
pub fn nested(tag_name: &str, value: Value) -> Value {
    let mut fields = Map::new();
    fields.insert(tag_name.into(), value);
    tagged(tag_name, fields)
}

/// JSON with every character ≥ 0x7F written as `\uXXXX` (UTF-16, so surrogate pairs above
/// U+FFFF), as HTTP headers must be visible ASCII.
pub fn ascii_json(value: &Value) -> String {
    let raw = value.to_string();
    let mut out = String::with_capacity(raw.len());
    let mut units = [0u16; 2];
    for c in raw.chars() {
        if (c as u32) < 0x7F {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Parses an argument JSON value into `T`, mapping serde's complaint to a 400.
pub fn from_arg<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|err| ApiError::BadArg(err.to_string()))
}

/// Stone's `WriteMode`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Never overwrite an existing file with different content.
    #[default]
    Add,
    /// Replace an existing file.
    Overwrite,
    /// Replace only if the existing file has this rev.
    Update(String),
}

impl<'de> Deserialize<'de> for WriteMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let (tag_name, map) = match &value {
            // The void-member shorthand: "add".
            Value::String(s) => (s.as_str(), None),
            Value::Object(map) => match map.get(".tag").and_then(Value::as_str) {
                Some(t) => (t, Some(map)),
                None => return Err(de::Error::custom("missing '.tag' key")),
            },
            _ => return Err(de::Error::custom("expected a WriteMode union")),
        };
        match tag_name {
            "add" => Ok(WriteMode::Add),
            "overwrite" => Ok(WriteMode::Overwrite),
            "update" => {
                let rev = map
                    .and_then(|m| m.get("update"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| de::Error::custom("update: missing the rev"))?;
                let valid =
                    rev.len() >= 9 && rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                if !valid {
                    return Err(de::Error::custom(format!(
                        "update: '{rev}' did not match pattern '[0-9a-f]+'"
                    )));
                }
                Ok(WriteMode::Update(rev.to_string()))
            }
            other => Err(de::Error::custom(format!("unknown tag '{other}'"))),
        }
    }
}

/// A union whose members we only need by tag (`"x"` or `{".tag":"x"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidUnion(pub String);

impl<'de> Deserialize<'de> for VoidUnion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(VoidUnion(s)),
            Value::Object(map) => match map.get(".tag").and_then(Value::as_str) {
                Some(t) => Ok(VoidUnion(t.to_string())),
                None => Err(de::Error::custom("missing '.tag' key")),
            },
            _ => Err(de::Error::custom("expected a union")),
        }
    }
}

/// Stone's `DropboxTimestamp` format.
pub const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// Accepts only `%Y-%m-%dT%H:%M:%SZ` (whole seconds, UTC).
pub fn check_timestamp(field: &str, value: &str) -> Result<(), ApiError> {
    match chrono::NaiveDateTime::parse_from_str(value, TIMESTAMP_FORMAT) {
        Ok(parsed) if parsed.format(TIMESTAMP_FORMAT).to_string() == value => Ok(()),
        _ => Err(ApiError::BadArg(format!(
            "{field}: time data '{value}' does not match format '{TIMESTAMP_FORMAT}'"
        ))),
    }
}

/// The current time as a Dropbox timestamp.
pub fn now_timestamp() -> String {
    chrono::Utc::now().format(TIMESTAMP_FORMAT).to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

tokio::task_local! {
    /// The randomness of an emulator started with a seed ([`crate::EmulatorConfig::seed`]),
    /// set around each request it serves: ids, revs, tokens and cursors then follow from the
    /// seed and the order of requests.
    static SEEDED: Arc<Mutex<StdRng>>;
}

thread_local! {
    static LOCAL: std::cell::RefCell<StdRng> = std::cell::RefCell::new(StdRng::from_entropy());
}

/// Runs `f` with the seeded randomness when in a seeded scope, else with this thread's own.
pub(crate) fn with_rng<T>(f: impl FnOnce(&mut StdRng) -> T) -> T {
    if let Ok(seeded) = SEEDED.try_with(Arc::clone) {
        return f(&mut seeded.lock().unwrap_or_else(PoisonError::into_inner));
    }
    LOCAL.with(|rng| f(&mut rng.borrow_mut()))
}

/// `future` with `rng` (if any) as its randomness.
pub(crate) async fn seeded<F: std::future::Future>(
    rng: Option<Arc<Mutex<StdRng>>>,
    future: F,
) -> F::Output {
    match rng {
        Some(rng) => SEEDED.scope(rng, future).await,
        None => future.await,
    }
}

/// `f()` with `rng` (if any) as its randomness.
pub(crate) fn seeded_sync<T>(rng: Option<&Arc<Mutex<StdRng>>>, f: impl FnOnce() -> T) -> T {
    match rng {
        Some(rng) => SEEDED.sync_scope(Arc::clone(rng), f),
        None => f(),
    }
}

/// A random number in `range` (seeded when in a seeded scope).
pub(crate) fn random_in<T: rand::distributions::uniform::SampleUniform + PartialOrd>(
    range: std::ops::Range<T>,
) -> T {
    with_rng(|rng| rng.gen_range(range))
}

/// A random value (seeded when in a seeded scope).
pub(crate) fn random<T>() -> T
where
    rand::distributions::Standard: rand::distributions::Distribution<T>,
{
    with_rng(|rng| rng.r#gen())
}

/// `n` random URL-safe characters (`A-Z a-z 0-9 - _`).
pub fn random_token(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    with_rng(|rng| {
        (0..n)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ascii_escaping() {
        let value = json!({"name": "Café 😀\u{7f}.txt"});
        let escaped = ascii_json(&value);
        assert_eq!(escaped, r#"{"name":"Caf\u00e9 \ud83d\ude00\u007f.txt"}"#);
        assert!(escaped.bytes().all(|b| (0x20..0x7f).contains(&b)));
        let back: Value = serde_json::from_str(&escaped).unwrap_or_default();
        assert_eq!(back, value);
    }

    #[test]
    fn tag_comes_first() {
        let v = nested("path", tag("not_found"));
        assert_eq!(
            v.to_string(),
            r#"{".tag":"path","path":{".tag":"not_found"}}"#
        );
    }

    #[test]
    fn summaries() {
        let strip = |s: String| s.trim_end_matches('.').to_string();
        assert_eq!(
            strip(error_summary(&nested("path", tag("not_found")))),
            "path/not_found/"
        );
        // UploadWriteFailed is flattened; the summary follows `reason`.
        let upload = json!({".tag": "path", "reason": {".tag": "conflict", "conflict": {".tag": "file"}}, "upload_session_id": "x"});
        assert_eq!(strip(error_summary(&upload)), "path/conflict/file/");
        let offset = json!({".tag": "incorrect_offset", "correct_offset": 5});
        assert_eq!(strip(error_summary(&offset)), "incorrect_offset/");
        let dots = error_summary(&tag("reset"));
        assert!(dots.starts_with("reset/") && dots.len() <= "reset/...".len());
    }

    #[test]
    fn write_mode_forms() {
        let parse = |v: Value| serde_json::from_value::<WriteMode>(v).ok();
        assert_eq!(parse(json!("add")), Some(WriteMode::Add));
        assert_eq!(
            parse(json!({".tag": "overwrite"})),
            Some(WriteMode::Overwrite)
        );
        assert_eq!(
            parse(json!({".tag": "update", "update": "0123456789a"})),
            Some(WriteMode::Update("0123456789a".into()))
        );
        assert_eq!(parse(json!("update")), None);
        assert_eq!(parse(json!({".tag": "update", "update": "XYZ"})), None);
    }

    #[test]
    fn timestamps() {
        assert!(check_timestamp("client_modified", "2015-05-15T15:50:38Z").is_ok());
        for bad in [
            "2015-05-15T15:50:38",
            "2015-05-15T15:50:38.5Z",
            "2015-5-15T15:50:38Z",
            "x",
        ] {
            assert!(check_timestamp("client_modified", bad).is_err(), "{bad}");
        }
    }
}
