//! Whether, and when, a failed call is worth trying again. Every error type in Ferry answers
//! with a [`Retry`], so the classification survives from the store or the Dropbox client up
//! to the queue, which turns it into a backoff, a wait, or giving up.

use std::time::Duration;

/// What a caller should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Trying the same call again cannot help until something changes (bad input, a missing
    /// file, a refused token).
    Never,
    /// A transient failure (a busy database, an I/O error, a server error): try again with
    /// exponential backoff; give up only after failing for a long time.
    Backoff,
    /// The other side said to wait (rate limit, `503` with `Retry-After`, network down): try
    /// again after at least this long, and never give up for it.
    Wait(Option<Duration>),
}

impl Retry {
    /// Whether the call may succeed later.
    pub fn is_retryable(self) -> bool {
        !matches!(self, Retry::Never)
    }

    /// Whether the failure only asks to wait (so it never counts toward giving up).
    pub fn is_wait(self) -> bool {
        matches!(self, Retry::Wait(_))
    }

    /// The least delay asked for, if any.
    pub fn after(self) -> Option<Duration> {
        match self {
            Retry::Wait(d) => d,
            _ => None,
        }
    }
}
