//! Engine errors.

use ferry_core::retry::Retry;
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
    /// What the call names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The call contradicts what is stored.
    #[error("{0}")]
    Conflict(String),
    /// Another writer (a process or a task) changed what this call started from, and this
    /// call's write was refused so as not to undo it; the same call again starts from what is
    /// stored now.
    #[error("{0}")]
    Raced(String),
    /// Dropbox refused the connection's token; work waits until an admin reconnects it.
    #[error("connection {0:?} needs to be reconnected: {1}")]
    NeedsReconnect(String, String),
    /// A team token, and no member to act as: the admin picks one (`select_user`).
    #[error(
        "this is a team token: say which team member Ferry acts as with select_user (a member id, dbmid:…, from the team's member list)"
    )]
    TeamMemberNeeded,
    /// A connect for a different Dropbox account than the connection's: refused, since the
    /// new account holds none of the connection's files.
    #[error(
        "connection {connection:?} is connected to {before}, and these credentials are for {after}: \
         to switch accounts, disconnect {connection:?} first (that brings its files back from {before}) \
         and then connect it again, or connect the other account under a new name"
    )]
    AccountSwitch {
        /// The connection.
        connection: String,
        /// The account it is connected to.
        before: String,
        /// The account the new credentials are for.
        after: String,
    },
}

impl EngineError {
    /// Whether, and when, the same call may succeed later.
    pub fn retry(&self) -> Retry {
        match self {
            EngineError::Store(e) => e.retry(),
            EngineError::Dropbox(e) => e.retry(),
            EngineError::UnknownConnection(_)
            | EngineError::Invalid(_)
            | EngineError::NotFound(_)
            | EngineError::Conflict(_)
            | EngineError::NeedsReconnect(..)
            | EngineError::AccountSwitch { .. }
            | EngineError::TeamMemberNeeded => Retry::Never,
            EngineError::Raced(_) => Retry::Backoff,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.retry().is_retryable()
    }
}

/// A store failure during a step that talks to Dropbox, as that step's error: the cause and
/// its retry classification are kept.
pub(crate) fn store_step(what: &'static str, e: StoreError) -> DropboxError {
    DropboxError::local(what, e.retry(), e)
}
