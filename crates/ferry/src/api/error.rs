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
}

impl ApiError {
    /// 400 with a message for the caller.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// 404 for something that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// 409: the request contradicts what is stored.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
        }
    }

    /// 401: missing or wrong API key.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "send the API key as 'Authorization: Bearer <key>'".into(),
        }
    }

    /// 413: body above the configured limit.
    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: format!("attachments may be at most {} MiB", limit / (1024 * 1024)),
        }
    }

    fn internal(message: String) -> Self {
        tracing::error!(%message, "internal error answering an API call");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PreconditionFailed { current } => ApiError {
                status: StatusCode::PRECONDITION_FAILED,
                code: "precondition_failed",
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
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => ApiError::bad_request(m),
            EngineError::UnknownConnection(name) => {
                ApiError::not_found(format!("no connection named {name:?}"))
            }
            EngineError::Dropbox(DropboxError::Auth(m)) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "dropbox_token_rejected",
                message: format!("Dropbox rejected the token: {m}"),
            },
            EngineError::Dropbox(DropboxError::Config(m)) => ApiError::bad_request(m),
            EngineError::Dropbox(e) => ApiError {
                status: StatusCode::BAD_GATEWAY,
                code: "dropbox_unavailable",
                message: e.to_string(),
            },
            EngineError::NeedsReconnect(name, reason) => ApiError {
                status: StatusCode::CONFLICT,
                code: "needs_reconnect",
                message: format!("connection {name:?} needs to be reconnected: {reason}"),
            },
            EngineError::Store(e) => e.into(),
        }
    }
}
