//! Lockstep I/O: a future run to completion on another runtime while the caller's thread waits.
//!
//! The simulation runs each seed on a single-threaded runtime with a paused clock, so the
//! order in which its tasks run, and virtual time, depend on nothing but the seed. Real I/O
//! (sockets, SQLite's worker threads, files) would break that: its answers arrive when the
//! kernel says, and a paused clock would jump ahead while a request is still in flight. Every
//! such call therefore runs in lockstep: the seed's thread blocks until the call is complete,
//! so, seen from the seed's runtime, I/O takes no time and always finishes in program order.

use std::future::Future;
use std::time::Duration;
use tokio::runtime::Handle;

/// The longest one lockstep call may take (real time) before it counts as a deadlock.
const CALL_LIMIT: Duration = Duration::from_secs(300);

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
    /// provide: hold no resource across calls.
    ///
    /// # Panics
    /// If the call takes longer than five minutes of real time (a deadlock of that kind), so
    /// that the simulation reports the seed instead of hanging.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        // The caller's clock stands still (and is read as it was) until the call is done:
        // inside, the runtime in context is the I/O one, whose time is real.
        ferry_core::clock::held(|| {
            let _io = self.io.enter();
            // Unconstrained: the caller's cooperative budget must not make I/O yield, since
            // nothing here would reset it. Limited in real time: a call that waits for
            // something only the blocked caller could provide would otherwise hang the run
            // without a word (the caller's own deadlines cannot fire meanwhile).
            let limited = tokio::time::timeout(CALL_LIMIT, future);
            match futures::executor::block_on(tokio::task::unconstrained(limited)) {
                Ok(output) => output,
                Err(_) => panic!(
                    "a lockstep call did not finish in {} s: it waits for something its blocked caller holds",
                    CALL_LIMIT.as_secs()
                ),
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Seen from a paused single-threaded runtime, a lockstep call takes no time and nothing
    /// else runs meanwhile, though it really sleeps (on the I/O runtime's real clock).
    #[test]
    fn a_lockstep_call_takes_no_virtual_time_and_lets_nothing_else_run() {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seed = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let lockstep = Lockstep::new(io.handle().clone());
        seed.block_on(async {
            let ran = Arc::new(AtomicBool::new(false));
            let other = tokio::spawn({
                let ran = Arc::clone(&ran);
                async move { ran.store(true, Ordering::SeqCst) }
            });
            let virtual_start = tokio::time::Instant::now();
            let real_start = std::time::Instant::now();
            let answer = lockstep.run(async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                tokio::spawn(async { 42 }).await.unwrap()
            });
            assert_eq!(answer, 42, "tasks spawned inside run on the I/O runtime");
            assert!(
                real_start.elapsed() >= Duration::from_millis(30),
                "it really slept"
            );
            assert_eq!(
                virtual_start.elapsed(),
                Duration::ZERO,
                "no virtual time passed"
            );
            assert!(!ran.load(Ordering::SeqCst), "the seed's other task waited");
            other.await.unwrap();
            assert!(ran.load(Ordering::SeqCst));
        });
    }
}
