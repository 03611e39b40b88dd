//! Fault injection for deterministic simulation: a hook that decides, per call, whether the
//! call fails before it is sent, loses its answer after Dropbox applied it, or never returns
//! (the process "crashes"). Production clients have no injector.

/// What happens to one Dropbox call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// The call goes through normally.
    Nothing,
    /// Dropbox answers 503 without doing anything.
    ServerError,
    /// Dropbox answers 429 `too_many_write_operations` (Retry-After 0).
    RateLimited,
    /// Dropbox applies the call, then the connection drops: the caller sees a network error.
    DropAfterApply,
    /// The call never returns (the simulation drops the pass: a crash between two steps).
    Hang,
    /// `list_folder/continue` answers `reset`: the cursor is no longer valid.
    CursorReset,
    /// Dropbox answers 401 `expired_access_token` (an OAuth client refreshes and retries).
    TokenExpired,
}

/// Decides the fate of each call; `route` is e.g. `files/upload`.
pub trait FaultInjector: Send + Sync + std::fmt::Debug {
    /// Called once per HTTP request, in order.
    fn decide(&self, route: &str) -> Injected;
}

/// Told about every HTTP request the client sends (metrics). Must be cheap: it runs on the
/// request path.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// One request: its route (`files/upload`, ...), the status (`None` when no answer came),
    /// the `Retry-After` it carried, the bytes sent and (when known) received, and how long
    /// it took until the answer's headers.
    fn observe(&self, call: &ObservedCall<'_>);
}

/// What a [`CallObserver`] learns about one request.
#[derive(Debug, Clone, Copy)]
pub struct ObservedCall<'a> {
    /// The API route, without the `/2/` prefix.
    pub route: &'a str,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// The answer's `Retry-After`, in seconds.
    pub retry_after_secs: Option<u64>,
    /// Request body bytes.
    pub bytes_sent: u64,
    /// Response body bytes, when the answer says.
    pub bytes_received: Option<u64>,
    /// Until the answer's headers.
    pub elapsed: std::time::Duration,
}
