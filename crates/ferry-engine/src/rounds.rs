//! Work that runs beside the sync in rounds (the link maker, the offloader): a round right
//! away while the last one found work, else a wait for a wake-up after a pass, the idle
//! timeout, or shutdown.

use crate::{Engine, EngineError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// Spawns `round` in a loop until `shutdown`; `wake` picks the notifier passes poke.
    pub(crate) fn spawn_rounds<F, Fut>(
        self: &Arc<Self>,
        what: &'static str,
        wake: fn(&Engine) -> &tokio::sync::Notify,
        idle: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        round: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn(Arc<Engine>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<usize, EngineError>> + Send,
    {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                // One process runs each kind of round for the installation.
                if !engine.await_duty(what, &mut shutdown).await {
                    return;
                }
                let woke = wake(&engine).notified();
                let worked = match round(Arc::clone(&engine)).await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "{what} paused for now");
                        false
                    }
                };
                if worked {
                    continue;
                }
                tokio::select! {
                    _ = woke => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        })
    }
}
