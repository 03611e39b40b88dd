//! Store errors.

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
}

impl StoreError {
    /// Whether trying the same call again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(_) | StoreError::Blob(_) | StoreError::Io(_)
        )
    }
}
