//! Change detection on the Dropbox side: one recursive cursor per connection, long-poll,
//! and dispatch of each change to the binding whose folder holds it. A periodic full
//! reconciliation is the safety net; a cursor reset triggers one at once.

use crate::duties::watch_duty;
use crate::{Engine, EngineError, backoff_delay};
use ferry_dropbox::{DropboxError, Entry};
use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a process looks for connections it does not watch yet (stored by another).
const DISCOVER_EVERY: Duration = Duration::from_secs(10);

/// Shortest time between two reads of the feed. A change after a quiet spell is read at once;
/// under a stream of changes (Ferry's own back-fill writes each come back through the feed)
/// rounds are spaced so each reads many changes in one request, not one request per change.
const FEED_ROUND_GAP: Duration = Duration::from_millis(250);

impl Engine {
    /// Starts one watcher per stored connection and the periodic reconciliation; connections
    /// added later get a watcher when `put_connection` stores them.
    pub async fn spawn_watchers(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, EngineError> {
        let mut tasks = Vec::new();
        for connection in self.store.connections().await? {
            tasks.extend(self.spawn_watcher(connection.name, shutdown.clone()));
        }
        let engine = Arc::clone(self);
        let mut stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(engine.config.reconcile_every) => {}
                    _ = stop.changed() => return,
                }
                // One process reconciles for the installation.
                if !engine.holds_duty("reconcile").await {
                    continue;
                }
                if let Err(e) = engine.reconcile_all().await {
                    tracing::error!(error = %e, "periodic reconciliation failed to queue");
                }
            }
        }));
        // Connections another process stored get a watcher here too, so their watching
        // moves here if that process dies.
        let engine = Arc::clone(self);
        let mut stop = shutdown.clone();
        let spawn_shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(DISCOVER_EVERY) => {}
                    _ = stop.changed() => return,
                }
                match engine.store.connections().await {
                    Ok(connections) => {
                        for c in connections {
                            // Detached: it ends with its connection or at shutdown.
                            drop(engine.spawn_watcher(c.name, spawn_shutdown.clone()));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list connections to watch"),
                }
            }
        }));
        *self
            .watch_shutdown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shutdown);
        Ok(tasks)
    }

    /// Starts watching `connection` unless this process already does (`None`). The watcher
    /// long-polls only while this process holds the connection's watch duty.
    pub(crate) fn spawn_watcher(
        self: &Arc<Self>,
        connection: String,
        shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        let fresh = self
            .watching
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(connection.clone());
        if !fresh {
            return None;
        }
        let engine = Arc::clone(self);
        Some(tokio::spawn(async move {
            let duty = watch_duty(&connection);
            engine.watch(&connection, &duty, shutdown).await;
            // Given up first: a watcher started after this one leaves `watching` keeps what
            // it takes.
            if let Err(e) = engine.store.release_duty(&duty, engine.process_id()).await {
                tracing::warn!(%connection, error = %e, "cannot give the watch duty up; it is held until this process stops");
            }
            engine
                .watching
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&connection);
        }))
    }

    async fn watch(&self, connection: &str, duty: &str, mut shutdown: watch::Receiver<bool>) {
        let connection = connection.to_owned();
        let mut failures = 0u32;
        let mut last_read: Option<tokio::time::Instant> = None;
        while !*shutdown.borrow() {
            if !self.await_duty(duty, &mut shutdown).await {
                return;
            }
            let wait = match self
                .watch_once(&connection, &mut shutdown, &mut last_read)
                .await
            {
                Ok(backoff) => {
                    failures = 0;
                    backoff
                }
                Err(EngineError::UnknownConnection(_)) => return,
                Err(EngineError::NeedsReconnect(..)) => Some(Duration::from_secs(30)),
                Err(EngineError::Dropbox(DropboxError::Auth(reason))) => {
                    if let Err(e) = self.mark_needs_reconnect(&connection, &reason).await {
                        tracing::error!(error = %e, "cannot record the reconnect need");
                    }
                    Some(Duration::from_secs(30))
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(%connection, error = %e, "change watcher failed; retrying");
                    Some(backoff_delay(
                        failures.min(6),
                        Duration::from_secs(60),
                        None,
                    ))
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// One long-poll round; returns how long to wait before the next. `last_read` is when
    /// the feed was last read (see [`FEED_ROUND_GAP`]).
    async fn watch_once(
        &self,
        connection: &str,
        shutdown: &mut watch::Receiver<bool>,
        last_read: &mut Option<tokio::time::Instant>,
    ) -> Result<Option<Duration>, EngineError> {
        let (client, root) = self.client(connection).await?;
        let cursor = tokio::select! {
            cursor = self.current_cursor(&client, &root, connection) => cursor?,
            // A first listing of a large tree takes a while: stopping drops it (a mirror it
            // left unfinished goes when the next one is put in use).
            _ = shutdown.changed() => return Ok(None),
        };
        // While this long-poll waits, nothing changed that the mirror lacks.
        self.store
            .mirror_live(
                connection,
                crate::mirror::live_until(self.config.longpoll_secs),
            )
            .await?;
        let polled = tokio::select! {
            r = client.longpoll(&cursor, self.config.longpoll_secs) => r,
            _ = shutdown.changed() => return Ok(None),
        };
        match polled {
            Ok((false, backoff)) => Ok(backoff),
            Ok((true, backoff)) => {
                if let Some(at) = *last_read {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at + FEED_ROUND_GAP) => {}
                        _ = shutdown.changed() => return Ok(None),
                    }
                }
                *last_read = Some(tokio::time::Instant::now());
                self.dispatch_changes(&client, connection, &root, cursor)
                    .await?;
                Ok(backoff)
            }
            Err(DropboxError::Reset) => self.reset_cursor(connection).await.map(|_| None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads whatever changed since the connection's cursor and queues the affected records,
    /// without waiting (the long-poll loop and the simulation both use it).
    pub async fn drain_changes(&self, connection: &str) -> Result<(), EngineError> {
        let (client, root) = self.client(connection).await?;
        let cursor = self.current_cursor(&client, &root, connection).await?;
        self.dispatch_changes(&client, connection, &root, cursor)
            .await
    }

    async fn current_cursor(
        &self,
        client: &ferry_dropbox::DropboxClient,
        root: &str,
        connection: &str,
    ) -> Result<String, EngineError> {
        if let Some(cursor) = self.store.connection_cursor(connection).await? {
            return Ok(cursor);
        }
        ensure_folder(client, root).await?;
        // One full listing builds a new mirror (beside any old one) and reconciles: changes
        // before its cursor are in it. The cursor is saved only once that is done, so a
        // failure here repeats it.
        let epoch = rand::random::<i64>().checked_abs().unwrap_or(1).max(1);
        let (_, listed) = self
            .reconcile_connection_with(connection, Some(epoch))
            .await?;
        let cursor = match listed {
            Some(cursor) => cursor,
            // The root vanished after it was made: an empty tree from this cursor on.
            None => client.latest_cursor(root, true).await?,
        };
        // Saved only if nothing moved the root or took a cursor meanwhile: a cursor of the
        // old root would watch the wrong folder from then on.
        let live = crate::mirror::live_until(self.config.longpoll_secs);
        if !self
            .store
            .finish_mirror(connection, root, epoch, &cursor, live)
            .await?
        {
            return Err(cursor_moved(connection));
        }
        Ok(cursor)
    }

    async fn dispatch_changes(
        &self,
        client: &ferry_dropbox::DropboxClient,
        connection: &str,
        root: &str,
        started_from: String,
    ) -> Result<(), EngineError> {
        let mut cursor = started_from;
        loop {
            let page = match client.list_folder_continue(&cursor).await {
                Ok(page) => page,
                Err(DropboxError::Reset) => return self.reset_cursor(connection).await,
                Err(e) => return Err(e.into()),
            };
            let mut records = BTreeSet::new();
            for entry in &page.entries {
                if let Entry::File(f) = entry
                    && (self.own_writes.contains(f)
                        || self
                            .store
                            .knows_revision(&f.id, &f.rev, &f.path_lower)
                            .await?)
                {
                    continue; // Our own write coming back: in the mirror, but no news.
                }
                if let Some(binding) = self
                    .store
                    .bindings_containing(connection, entry.path_lower())
                    .await?
                    .into_iter()
                    .next()
                {
                    // A folder at a binding's own folder is no news to it: what it holds
                    // comes as entries of their own, and its going as a deletion. (Every
                    // first upload into a record's folder makes that folder, which would
                    // otherwise queue the record for a second pass with nothing to do.)
                    if matches!(entry, Entry::Folder(_))
                        && binding.folder_lower == entry.path_lower()
                    {
                        continue;
                    }
                    records.insert(binding.record_id);
                }
            }
            let changes: Vec<_> = page
                .entries
                .iter()
                .map(crate::mirror::mirror_change)
                .collect();
            let ids: Vec<i64> = records.into_iter().collect();
            // The page's entries, its cursor and its records' queue entries commit together:
            // a pass of a queued record sees the mirror with the change, and a crash before
            // the commit reads the page again. Only over the cursor the page was read from,
            // under the same root: a root change or a reconnect meanwhile cleared it, and the
            // next round starts afresh.
            let applied = self
                .store
                .apply_feed_page(&ferry_store::FeedPage {
                    connection,
                    root,
                    from: &cursor,
                    to: &page.cursor,
                    changes: &changes,
                    records: &ids,
                    live_until_ms: crate::mirror::live_until(self.config.longpoll_secs),
                })
                .await?;
            if !applied {
                tracing::info!(%connection, "the change cursor was replaced meanwhile (root moved or reconnected); starting afresh");
                return Ok(());
            }
            if !ids.is_empty() {
                tracing::debug!(%connection, records = ids.len(), "changes in Dropbox");
                self.wake();
            }
            cursor = page.cursor;
            if !page.has_more {
                return Ok(());
            }
        }
    }

    async fn reset_cursor(&self, connection: &str) -> Result<(), EngineError> {
        // The next round takes a fresh cursor and reconciles the connection's records.
        tracing::warn!(%connection, "Dropbox reset the change cursor; reconciling");
        self.store.set_connection_cursor(connection, None).await?;
        Ok(())
    }
}

/// The connection changed under a round that was taking its first cursor; retried.
/// Another round (of this process or another) saved a cursor first, or the root moved: this
/// round's cursor is not saved, and the next round starts from what is stored. Retryable.
fn cursor_moved(connection: &str) -> EngineError {
    EngineError::Raced(format!(
        "connection {connection:?} changed while its change feed started; starting again"
    ))
}

/// Creates the connection root if it is missing (an existing one is fine).
pub(crate) async fn ensure_folder(
    client: &ferry_dropbox::DropboxClient,
    root: &str,
) -> Result<(), DropboxError> {
    if root.is_empty() {
        return Ok(());
    }
    match client.create_folder(root).await {
        Ok(_) => Ok(()),
        // Only a folder already there will do; a file in the way is refused.
        Err(DropboxError::Conflict(what)) if what == "a folder is at this path" => Ok(()),
        Err(e) => Err(e),
    }
}
