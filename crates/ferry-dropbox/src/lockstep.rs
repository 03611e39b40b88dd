//! Lockstep I/O: a future run to completion on another runtime while the caller's thread waits.
//!
//! The simulation runs each seed on a single-threaded runtime with a paused clock, so the
//! order in which its tasks run, and virtual time, depend on nothing but the seed. Real I/O
//! (sockets, SQLite's worker threads, files) would break that: its answers arrive when the
//! kernel says, and a paused clock would jump ahead while a request is still in flight. Every
//! such call therefore runs in lockstep: the seed's thread blocks until the call is complete,
//! so, seen from the seed's runtime, I/O takes no time and always finishes in program order.

use std::future::Future;
use tokio::runtime::Handle;

/// Runs futures on an I/O runtime of their own, blocking the calling thread until each is
/// done. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lockstep {
    io: Handle,
}

impl Lockstep {
    /// Lockstep calls whose sockets, timers and spawned tasks live on `io` (a multi-threaded
    /// runtime other than the caller's).
    pub fn new(io: Handle) -> Self {
        Lockstep { io }
    }

    /// Runs `future` to completion and returns its output; the caller's runtime does not run
    /// in the meantime. A call must not wait for anything only the caller's runtime could
    /// provide (it would wait forever): hold no resource across calls.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        // The caller's clock stands still (and is read as it was) until the call is done:
        // inside, the runtime in context is the I/O one, whose time is real.
        ferry_core::clock::held(|| {
            let _io = self.io.enter();
            // Unconstrained: the caller's cooperative budget must not make I/O yield, since
            // nothing here would reset it.
            futures::executor::block_on(tokio::task::unconstrained(future))
        })
    }

    /// `future` in lockstep when `lockstep` is set, as an ordinary await otherwise.
    pub async fn maybe<F: Future>(lockstep: Option<&Lockstep>, future: F) -> F::Output {
        match lockstep {
            Some(lockstep) => lockstep.run(future),
            None => future.await,
        }
    }
}
