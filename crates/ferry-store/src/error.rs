//! Store errors.

use ferry_core::retry::Retry;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; retrying may help (busy, I/O).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed at start-up.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The blob store failed.
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    /// Stored data does not decode (corruption or a newer schema).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A secret could not be encrypted, decrypted or loaded.
    #[error("secret handling failed: {0}")]
    Secret(String),
    /// Reading or writing a local file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A conditional write's precondition (`If-Match`) did not hold; nothing was written.
    #[error("precondition failed: the current content hash is {}", current.as_deref().unwrap_or("(none)"))]
    PreconditionFailed {
        /// The content hash the attachment has now (`None`: no such attachment).
        current: Option<String>,
    },
    /// The write would archive or drop a version whose content only Dropbox holds now
    /// (offloaded); the engine brings it back first.
    #[error("the content of attachment {0} is offloaded to Dropbox and must be brought back first")]
    Offloaded(ferry_core::model::AttachmentId),
}

impl StoreError {
    /// Whether, and how, trying the same call again later can succeed: a busy or failing
    /// database, blob store or disk may heal; a constraint violation, missing content,
    /// corrupt data or a bad secret will not by itself.
    pub fn retry(&self) -> Retry {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::Database(db) => match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation
                    | sqlx::error::ErrorKind::ForeignKeyViolation
                    | sqlx::error::ErrorKind::NotNullViolation
                    | sqlx::error::ErrorKind::CheckViolation => Retry::Never,
                    _ => Retry::Backoff,
                },
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => Retry::Backoff,
                _ => Retry::Never,
            },
            StoreError::Blob(object_store::Error::NotFound { .. }) => Retry::Never,
            StoreError::Blob(_) | StoreError::Io(_) => Retry::Backoff,
            StoreError::Migration(_)
            | StoreError::Corrupt(_)
            | StoreError::Secret(_)
            | StoreError::PreconditionFailed { .. } => Retry::Never,
            // The engine brings the content back, then the write goes through.
            StoreError::Offloaded(_) => Retry::Backoff,
        }
    }

    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        self.retry().is_retryable()
    }
}
