//! Dropbox errors, classified by what the caller should do about them.

use dropbox_sdk::files;
use ferry_core::retry::Retry;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong talking to Dropbox.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DropboxError {
    /// Nothing at the path (or id).
    #[error("not found in Dropbox: {0}")]
    NotFound(String),
    /// Something else is in the way: a different file, a folder, or a newer revision.
    #[error("conflict in Dropbox: {0}")]
    Conflict(String),
    /// Dropbox refuses the path or name.
    #[error("Dropbox refuses the path: {0}")]
    BadPath(String),
    /// The Dropbox account is full.
    #[error("the Dropbox account is out of space")]
    InsufficientSpace,
    /// A cursor is no longer valid; list again from scratch.
    #[error("the Dropbox cursor was reset")]
    Reset,
    /// An upload session expects a different offset.
    #[error("upload session expects offset {correct}")]
    IncorrectOffset {
        /// Where the session really is.
        correct: u64,
    },
    /// The upload session was already closed (its data is complete).
    #[error("the upload session is already closed")]
    SessionClosed,
    /// Rate limit or namespace write lock; retry after the delay.
    #[error("Dropbox asked us to slow down ({reason}); retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// `too_many_requests` or `too_many_write_operations`.
        reason: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// The access token expired; a client with a refresh token gets a new one on the next try.
    #[error("the Dropbox access token expired")]
    TokenExpired,
    /// The token is invalid, expired or revoked, or lacks a scope.
    #[error("Dropbox rejected the access token: {0}")]
    Auth(String),
    /// Dropbox says the request itself is malformed (a bug on our side or bad input).
    #[error("Dropbox rejected the request: {0}")]
    BadRequest(String),
    /// Dropbox had an internal error.
    #[error("Dropbox server error: {0}")]
    Server(String),
    /// The network failed before an answer arrived.
    #[error("network error talking to Dropbox: {0}")]
    Transport(String),
    /// Content arrived different from what Dropbox reported.
    #[error("content check failed: {0}")]
    Integrity(String),
    /// Our own configuration is unusable.
    #[error("invalid Dropbox configuration: {0}")]
    Config(String),
    /// Any other Dropbox answer.
    #[error("Dropbox error: {0}")]
    Other(String),
    /// A step that talks to Dropbox failed on our side (the store, the blob store); the
    /// cause is kept, and so is whether retrying helps.
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: &'static str,
        /// Whether and when to retry, as the cause says.
        retry: Retry,
        /// The cause.
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl DropboxError {
    /// A failure on our side during a Dropbox step, classified by its cause.
    pub fn local(
        what: &'static str,
        retry: Retry,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> DropboxError {
        DropboxError::Local {
            what,
            retry,
            source: Arc::new(source),
        }
    }

    /// This failure, as each entry of a batch call that failed as a whole sees it: the same
    /// error, so a rate limit keeps its `Retry-After`.
    pub fn for_each_entry(&self) -> DropboxError {
        self.clone()
    }

    /// Whether and when the same call may succeed without any change on our side.
    pub fn retry(&self) -> Retry {
        match self {
            DropboxError::RateLimited { retry_after, .. } => Retry::Wait(Some(*retry_after)),
            DropboxError::Transport(_) => Retry::Wait(None),
            // A reset cursor met while listing a folder: list it again from the start (the
            // change watcher handles its own resets by re-reading from a fresh cursor).
            DropboxError::TokenExpired
            | DropboxError::Server(_)
            | DropboxError::Integrity(_)
            | DropboxError::Reset => Retry::Backoff,
            DropboxError::Local { retry, .. } => *retry,
            DropboxError::NotFound(_)
            | DropboxError::Conflict(_)
            | DropboxError::BadPath(_)
            | DropboxError::InsufficientSpace
            | DropboxError::IncorrectOffset { .. }
            | DropboxError::SessionClosed
            | DropboxError::Auth(_)
            | DropboxError::BadRequest(_)
            | DropboxError::Config(_)
            | DropboxError::Other(_) => Retry::Never,
        }
    }

    /// Whether the same call may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        self.retry().is_retryable()
    }

    /// How long Dropbox asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry().after()
    }

    /// Turns an SDK error into ours. `retry_after_header` is the call's `Retry-After` header,
    /// which the SDK does not read.
    pub(crate) fn from_sdk<E: Classify>(e: dropbox_sdk::Error<E>, retry_after_header: u64) -> Self {
        use dropbox_sdk::Error as E2;
        match e {
            E2::Api(api) => api.classify(),
            E2::HttpClient(inner) => DropboxError::Transport(inner.to_string()),
            E2::Json(inner) => {
                DropboxError::Other(format!("unexpected JSON from Dropbox: {inner}"))
            }
            E2::UnexpectedResponse(msg) => DropboxError::Other(msg),
            E2::BadRequest(msg) => DropboxError::BadRequest(msg),
            E2::Authentication(dropbox_sdk::auth::AuthError::ExpiredAccessToken) => {
                DropboxError::TokenExpired
            }
            E2::Authentication(auth) => DropboxError::Auth(format!("{auth}")),
            E2::RateLimited {
                reason,
                retry_after_seconds,
            } => DropboxError::RateLimited {
                reason: format!("{reason}"),
                retry_after: Duration::from_secs(
                    retry_after_header
                        .max(u64::from(retry_after_seconds))
                        .max(1),
                ),
            },
            E2::AccessDenied(access) => DropboxError::Auth(format!("access denied: {access}")),
            // A server error that says when to come back is a request to wait.
            E2::ServerError(msg) if retry_after_header > 0 => DropboxError::RateLimited {
                reason: format!("unavailable: {msg}"),
                retry_after: Duration::from_secs(retry_after_header),
            },
            E2::ServerError(msg) => DropboxError::Server(msg),
            E2::UnexpectedHttpError { code, .. } if code >= 500 && retry_after_header > 0 => {
                DropboxError::RateLimited {
                    reason: format!("unavailable (HTTP {code})"),
                    retry_after: Duration::from_secs(retry_after_header),
                }
            }
            // Dropbox-API-Path-Root refused (`invalid_root`, `no_permission`).
            E2::UnexpectedHttpError {
                code: 422,
                response,
            } => {
                let tag = serde_json::from_str::<serde_json::Value>(&response)
                    .ok()
                    .and_then(|v| v["error"][".tag"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "refused".into());
                DropboxError::BadRequest(format!("path root {tag}"))
            }
            E2::UnexpectedHttpError { code, response } if code >= 500 => {
                DropboxError::Server(format!("HTTP {code}: {response}"))
            }
            E2::UnexpectedHttpError { code, response } => {
                DropboxError::Other(format!("HTTP {code}: {response}"))
            }
        }
    }
}

/// Maps a route's error type onto [`DropboxError`].
pub(crate) trait Classify: std::fmt::Display {
    fn classify(self) -> DropboxError;
}

pub(crate) fn lookup(e: files::LookupError) -> DropboxError {
    match e {
        files::LookupError::NotFound => {
            DropboxError::NotFound("no file or folder at this path".into())
        }
        files::LookupError::MalformedPath(m) => {
            DropboxError::BadPath(m.unwrap_or_else(|| "malformed path".into()))
        }
        other => DropboxError::Other(format!("lookup failed: {other}")),
    }
}

fn write(e: files::WriteError) -> DropboxError {
    match e {
        files::WriteError::Conflict(c) => DropboxError::Conflict(match c {
            files::WriteConflictError::File => "a different file is already at this path".into(),
            files::WriteConflictError::Folder => "a folder is at this path".into(),
            files::WriteConflictError::FileAncestor => {
                "a file is in the way of a parent folder".into()
            }
            other => other.to_string(),
        }),
        files::WriteError::MalformedPath(m) => {
            DropboxError::BadPath(m.unwrap_or_else(|| "malformed path".into()))
        }
        files::WriteError::DisallowedName => {
            DropboxError::BadPath("Dropbox does not allow this name".into())
        }
        files::WriteError::InsufficientSpace => DropboxError::InsufficientSpace,
        files::WriteError::TooManyWriteOperations => too_many_writes(),
        other => DropboxError::Other(format!("write failed: {other}")),
    }
}

fn too_many_writes() -> DropboxError {
    DropboxError::RateLimited {
        reason: "too_many_write_operations".into(),
        retry_after: Duration::from_secs(1),
    }
}

impl Classify for files::UploadError {
    fn classify(self) -> DropboxError {
        match self {
            files::UploadError::Path(failed) => write(failed.reason),
            files::UploadError::ContentHashMismatch => {
                DropboxError::Integrity("Dropbox received different content than was sent".into())
            }
            files::UploadError::PayloadTooLarge => {
                DropboxError::Other("upload too large for one request".into())
            }
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::UploadSessionStartError {
    fn classify(self) -> DropboxError {
        match self {
            files::UploadSessionStartError::ContentHashMismatch => {
                DropboxError::Integrity("Dropbox received different content than was sent".into())
            }
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::UploadSessionAppendError {
    fn classify(self) -> DropboxError {
        match self {
            files::UploadSessionAppendError::IncorrectOffset(o) => DropboxError::IncorrectOffset {
                correct: o.correct_offset,
            },
            files::UploadSessionAppendError::NotFound => {
                DropboxError::NotFound("upload session expired or unknown".into())
            }
            files::UploadSessionAppendError::Closed => DropboxError::SessionClosed,
            files::UploadSessionAppendError::ContentHashMismatch => {
                DropboxError::Integrity("Dropbox received different content than was sent".into())
            }
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::UploadSessionAppendBatchError {
    fn classify(self) -> DropboxError {
        match self {
            files::UploadSessionAppendBatchError::ContentHashMismatch => {
                DropboxError::Integrity("Dropbox received different content than was sent".into())
            }
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::UploadSessionAppendBatchEntryError {
    fn classify(self) -> DropboxError {
        match self {
            files::UploadSessionAppendBatchEntryError::IncorrectOffset(o) => {
                DropboxError::IncorrectOffset {
                    correct: o.correct_offset,
                }
            }
            files::UploadSessionAppendBatchEntryError::NotFound => {
                DropboxError::NotFound("upload session expired or unknown".into())
            }
            files::UploadSessionAppendBatchEntryError::Closed => DropboxError::SessionClosed,
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::UploadSessionFinishError {
    fn classify(self) -> DropboxError {
        match self {
            files::UploadSessionFinishError::Path(w) => write(w),
            files::UploadSessionFinishError::LookupFailed(
                files::UploadSessionLookupError::IncorrectOffset(o),
            ) => DropboxError::IncorrectOffset {
                correct: o.correct_offset,
            },
            files::UploadSessionFinishError::LookupFailed(
                files::UploadSessionLookupError::NotFound,
            ) => DropboxError::NotFound("upload session expired or unknown".into()),
            files::UploadSessionFinishError::TooManyWriteOperations => too_many_writes(),
            files::UploadSessionFinishError::ContentHashMismatch => {
                DropboxError::Integrity("Dropbox received different content than was sent".into())
            }
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::DownloadError {
    fn classify(self) -> DropboxError {
        match self {
            files::DownloadError::Path(l) => lookup(l),
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::GetMetadataError {
    fn classify(self) -> DropboxError {
        match self {
            files::GetMetadataError::Path(l) => lookup(l),
        }
    }
}

impl Classify for files::ListFolderError {
    fn classify(self) -> DropboxError {
        match self {
            files::ListFolderError::Path(l) => lookup(l),
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::ListFolderContinueError {
    fn classify(self) -> DropboxError {
        match self {
            files::ListFolderContinueError::Path(l) => lookup(l),
            files::ListFolderContinueError::Reset => DropboxError::Reset,
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::CreateFolderError {
    fn classify(self) -> DropboxError {
        match self {
            files::CreateFolderError::Path(w) => write(w),
        }
    }
}

impl Classify for files::DeleteError {
    fn classify(self) -> DropboxError {
        match self {
            files::DeleteError::PathLookup(l) => lookup(l),
            files::DeleteError::PathWrite(w) => write(w),
            files::DeleteError::TooManyWriteOperations => too_many_writes(),
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::RelocationError {
    fn classify(self) -> DropboxError {
        match self {
            files::RelocationError::FromLookup(l) => lookup(l),
            files::RelocationError::FromWrite(w) | files::RelocationError::To(w) => write(w),
            files::RelocationError::CantMoveFolderIntoItself => {
                DropboxError::Conflict("cannot move a folder into itself".into())
            }
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for files::ListFolderLongpollError {
    fn classify(self) -> DropboxError {
        match self {
            files::ListFolderLongpollError::Reset => DropboxError::Reset,
            other => DropboxError::Other(other.to_string()),
        }
    }
}

impl Classify for dropbox_sdk::NoError {
    fn classify(self) -> DropboxError {
        DropboxError::Other("unexpected error".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch-wide 429 reaches every entry as a rate limit with its `Retry-After`, not as a
    /// server error without it.
    #[test]
    fn each_entry_of_a_rate_limited_batch_keeps_the_wait() {
        let batch = DropboxError::RateLimited {
            reason: "too_many_requests".into(),
            retry_after: Duration::from_secs(42),
        };
        let entry = batch.for_each_entry();
        assert_eq!(entry.retry(), Retry::Wait(Some(Duration::from_secs(42))));
        assert!(matches!(entry, DropboxError::RateLimited { .. }));
    }

    /// A failure on our side keeps its cause and its own retry classification.
    #[test]
    fn local_failures_keep_their_cause_and_classification() {
        let io = std::io::Error::other("disk busy");
        let e = DropboxError::local("storing an imported file", Retry::Backoff, io);
        assert!(e.is_retryable());
        let source = std::error::Error::source(&e).expect("the cause is kept");
        assert_eq!(source.to_string(), "disk busy");
        let never = DropboxError::local("x", Retry::Never, std::io::Error::other("gone"));
        assert!(!never.is_retryable());
    }

    #[test]
    fn network_failures_and_rate_limits_ask_to_wait_server_errors_back_off() {
        assert!(DropboxError::Transport("reset".into()).retry().is_wait());
        assert_eq!(DropboxError::Server("500".into()).retry(), Retry::Backoff);
        assert_eq!(DropboxError::Conflict("x".into()).retry(), Retry::Never);
    }
}
