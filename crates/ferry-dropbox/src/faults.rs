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
