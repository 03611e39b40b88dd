//! Engine errors.

use ferry_dropbox::DropboxError;
use ferry_store::StoreError;

/// What can stop a sync pass or an engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Dropbox failed in a way that concerns the whole call (not one file).
    #[error(transparent)]
    Dropbox(#[from] DropboxError),
    /// A connection name that does not exist.
    #[error("no connection named {0:?}")]
    UnknownConnection(String),
    /// Input the caller should fix.
    #[error("{0}")]
    Invalid(String),
    /// Dropbox refused the connection's token; work waits until an admin reconnects it.
    #[error("connection {0:?} needs to be reconnected: {1}")]
    NeedsReconnect(String, String),
}

impl EngineError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Store(e) => e.is_retryable(),
            EngineError::Dropbox(e) => e.is_retryable(),
            EngineError::UnknownConnection(_)
            | EngineError::Invalid(_)
            | EngineError::NeedsReconnect(..) => false,
        }
    }
}
