//! The API's one error type: every failure becomes a JSON body
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_dropbox::DropboxError;
use ferry_engine::EngineError;
use ferry_store::StoreError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds to send as `Retry-After` (transient failures).
    retry_after: Option<u64>,
}

impl ApiError {
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What it says (safe to show: never a secret or a remote host's text).
    pub fn message(&self) -> &str {
        &self.message
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with a message for the caller.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method; see docs/api.md",
        )
    }

    /// 415: the body is not in the format the route takes.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 500 for a handler that panicked: logged with an id, answered without details.
    pub fn panicked() -> Self {
        ApiError::hidden(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed inside Ferry".to_owned(),
            None,
        )
    }

    /// A failure whose detail stays in the log: the caller gets a general message and an id
    /// to quote, never the internal text (SQL, paths).
    fn hidden(
        status: StatusCode,
        code: &'static str,
        detail: String,
        retry_after: Option<u64>,
    ) -> Self {
        let id = hex::encode(rand::random::<[u8; 6]>());
        tracing::error!(error_id = %id, %detail, status = status.as_u16(), "API call failed");
        let general = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "Ferry's storage is busy or unavailable; try again shortly"
            }
            StatusCode::BAD_GATEWAY => "details are in Ferry's log",
            _ => "the request failed inside Ferry",
        };
        ApiError {
            status,
            code,
            message: format!("{general} (error id {id})"),
            retry_after,
        }
    }

    /// 404 for something that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request contradicts what is stored.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 401: missing or wrong API key.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the API key as 'Authorization: Bearer <key>'",
        )
    }

    /// 413: body above the configured limit.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("attachments may be at most {} MiB", limit / (1024 * 1024)),
        )
    }

    /// 413 for a request body above a route's limit.
    pub fn body_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is larger than this route accepts",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PreconditionFailed { current } => ApiError {
                status: StatusCode::PRECONDITION_FAILED,
                code: "precondition_failed",
                retry_after: None,
                message: match current {
                    Some(hash) => format!(
                        "If-Match does not hold: the attachment's content_hash is now {hash}; nothing was written"
                    ),
                    None => {
                        "If-Match does not hold: there is no such attachment; nothing was written"
                            .into()
                    }
                },
            },
            // A busy or failing store may heal: 503 with Retry-After, details in the log.
            other if other.is_retryable() => ApiError::hidden(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                other.to_string(),
                Some(1),
            ),
            other => ApiError::hidden(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
                None,
            ),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ApiError::bad_request(m),
            EngineError::NotFound(m) => ApiError::not_found(m),
            EngineError::Conflict(m) | EngineError::Raced(m) => ApiError::conflict(m),
            EngineError::UnknownConnection(name) => {
                ApiError::not_found(format!("no connection named {name:?}"))
            }
            EngineError::Dropbox(DropboxError::Auth(m)) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "dropbox_token_rejected",
                format!("Dropbox rejected the token: {m}"),
            ),
            EngineError::Dropbox(DropboxError::Config(m)) => ApiError::bad_request(m),
            // What the remote host said stays in the log: its text is not ours to relay.
            EngineError::Dropbox(e) => {
                let what = match &e {
                    DropboxError::Transport(_) => "Dropbox could not be reached",
                    DropboxError::Server(_) => "Dropbox answered with a server error",
                    DropboxError::RateLimited { .. } => "Dropbox asked Ferry to slow down",
                    _ => "Dropbox answered unexpectedly",
                };
                let mut error = ApiError::hidden(
                    StatusCode::BAD_GATEWAY,
                    "dropbox_unavailable",
                    e.to_string(),
                    e.retry_after().map(|d| d.as_secs().max(1)),
                );
                error.message = format!("{what} ({})", error.message);
                error
            }
            EngineError::NeedsReconnect(name, reason) => ApiError::new(
                StatusCode::CONFLICT,
                "needs_reconnect",
                format!("connection {name:?} needs to be reconnected: {reason}"),
            ),
            e @ EngineError::TeamMemberNeeded => {
                ApiError::new(StatusCode::BAD_REQUEST, "team_member_needed", e.to_string())
            }
            e @ EngineError::AccountSwitch { .. } => {
                ApiError::new(StatusCode::CONFLICT, "account_switch", e.to_string())
            }
            EngineError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transient store failure is a 503 with `Retry-After` and a general message with an
    /// error id; the store's own text (SQL, paths) stays in the log.
    #[tokio::test]
    async fn transient_store_failures_are_503_without_internals() {
        let e = StoreError::Io(std::io::Error::other(
            "disk I/O error at /var/lib/ferry/ferry.db",
        ));
        let response = ApiError::from(e).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("error id"), "{message}");
        assert!(!message.contains("/var/lib"), "{message}");
        // Corrupt data will not heal: 500, also without the detail.
        let response =
            ApiError::from(StoreError::Corrupt("row 7: bad tags".into())).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !response
                .headers()
                .contains_key(axum::http::header::RETRY_AFTER)
        );
    }
}
