//! The link maker: shared links for the files (and record folders) of rules with `links`
//! on. It runs beside the sync workers, never inside a pass, so links never slow a sync:
//! after passes commit it is woken, takes what wants a link from the store in pages, and
//! asks Dropbox at a paced rate. A link already there is reused; an expired one is revoked
//! and made again; a refusal is kept on the file (and retried later, with backoff).

use crate::{Engine, EngineError, backoff_delay};
use ferry_core::rules::{LinkMode, RuleSpec};
use ferry_dropbox::{DropboxError, LinkAudience};
use ferry_store::{LinkResult, LinkTarget};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Targets read from the store at a time.
const PAGE: u32 = 100;
/// Longest wait before a refused or failed link is tried again.
const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);
/// How often the maker looks even without being woken (expiring links, due retries).
const IDLE: Duration = Duration::from_secs(30);
/// How often links of files that left Dropbox are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

use ferry_core::clock::now_ms;

fn rfc3339_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Whether a failure concerns the whole connection (stop asking for now), not one item.
fn stops_the_connection(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::NeedsReconnect(..)
            | EngineError::Dropbox(
                DropboxError::RateLimited { .. }
                    | DropboxError::Transport(_)
                    | DropboxError::Server(_)
                    | DropboxError::Auth(_)
            )
    )
}

/// Spaces calls out evenly: at most `per_second` a second across the whole engine.
#[derive(Debug)]
pub(crate) struct Pacer(tokio::sync::Mutex<tokio::time::Interval>);

impl Pacer {
    pub(crate) fn new(per_second: u32) -> Self {
        let period = Duration::from_secs(1) / per_second.max(1);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Pacer(tokio::sync::Mutex::new(interval))
    }

    async fn until_ready(&self) {
        self.0.lock().await.tick().await;
    }
}

impl Engine {
    /// Makes the links that are due, at most `links_per_second` a second. Returns how many
    /// items it worked on (made or failed).
    pub async fn make_links(&self) -> Result<usize, EngineError> {
        let rules: Vec<RuleSpec> = self
            .store
            .rules()
            .await?
            .into_iter()
            .filter(|r| !r.links.is_off())
            .collect();
        if rules.is_empty() {
            return Ok(0);
        }
        // Links of files that are gone are forgotten now and then, not on every round.
        let prune = {
            let mut at = self
                .links_pruned_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
            if due {
                *at = Some(Instant::now());
            }
            due
        };
        let mut worked = 0;
        for connection in self.store.connections().await? {
            if connection.needs_reconnect.is_some() || connection.disconnecting {
                continue;
            }
            if self.links_paused(&connection.name) {
                continue;
            }
            for rule in rules.iter().filter(|r| r.connection == connection.name) {
                match self.link_rule(rule).await {
                    Ok(n) => worked += n,
                    Err((n, e)) => {
                        worked += n;
                        let wait = match &e {
                            EngineError::Dropbox(d) => d.retry_after(),
                            _ => None,
                        };
                        self.pause_links(&connection.name, wait.unwrap_or(IDLE));
                        tracing::warn!(connection = %connection.name, rule = %rule.name, error = %e, "shared links paused for this connection");
                        break;
                    }
                }
            }
            if !prune || !rules.iter().any(|r| r.connection == connection.name) {
                continue;
            }
            if let Err(e) = self.store.prune_links(&connection.name).await {
                tracing::warn!(connection = %connection.name, error = %e, "could not forget stale links");
            }
        }
        Ok(worked)
    }

    /// One page of a rule's wanted links. A failure that concerns the whole connection stops
    /// the page (returned with the count so far).
    async fn link_rule(&self, rule: &RuleSpec) -> Result<usize, (usize, EngineError)> {
        let audience = match rule.links {
            LinkMode::Off => return Ok(0),
            LinkMode::Public => LinkAudience::Public,
            LinkMode::Team => LinkAudience::Team,
        };
        let targets = self
            .store
            .links_wanted(
                &rule.connection,
                &rule.name,
                rule.folder_links,
                now_ms(),
                PAGE,
            )
            .await
            .map_err(|e| (0, e.into()))?;
        let mut done = 0;
        for target in &targets {
            self.link_pacer.until_ready().await;
            let started = Instant::now();
            let made = self.make_link(rule, audience, target).await;
            let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (result, stop) = match made {
                Ok(result) => (result_made(result, duration_ms), None),
                Err(e) => {
                    let retry_after = match &e {
                        EngineError::Dropbox(d) => d.retry_after(),
                        _ => None,
                    };
                    let wait =
                        backoff_delay(target.attempts.saturating_add(6), MAX_RETRY, retry_after);
                    let result = LinkResult::Failed {
                        error: e.to_string(),
                        retry_at_ms: now_ms()
                            + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2),
                        duration_ms,
                    };
                    (result, stops_the_connection(&e).then_some(e))
                }
            };
            self.store
                .save_link(target, &result)
                .await
                .map_err(|e| (done, e.into()))?;
            done += 1;
            if let Some(e) = stop {
                return Err((done, e));
            }
        }
        Ok(done)
    }

    fn links_paused(&self, connection: &str) -> bool {
        let mut paused = self
            .links_paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match paused.get(connection) {
            Some(until) if *until > tokio::time::Instant::now() => true,
            Some(_) => {
                paused.remove(connection);
                false
            }
            None => false,
        }
    }

    fn pause_links(&self, connection: &str, wait: Duration) {
        self.links_paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(connection.to_owned(), tokio::time::Instant::now() + wait);
    }

    async fn make_link(
        &self,
        rule: &RuleSpec,
        audience: LinkAudience,
        target: &LinkTarget,
    ) -> Result<ferry_dropbox::SharedLink, EngineError> {
        let (client, _) = self.client(&rule.connection).await?;
        let expires = rule.link_expiry_days.map(|days| {
            (chrono::DateTime::from_timestamp_millis(ferry_core::clock::now_ms())
                .unwrap_or_default()
                + chrono::Duration::days(i64::from(days)))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
        });
        let path = target.path();
        let link = client
            .shared_link(&path, audience, expires.as_deref())
            .await?;
        let expired = link
            .expires
            .as_deref()
            .and_then(rfc3339_ms)
            .is_some_and(|t| t <= now_ms());
        if !expired {
            return Ok(link);
        }
        // An expired link Dropbox still hands back: revoke it and make a fresh one.
        client.revoke_shared_link(&link.url).await?;
        Ok(client
            .shared_link(&path, audience, expires.as_deref())
            .await?)
    }

    /// Runs the link maker until `shutdown`: woken after passes, and every half minute.
    pub fn spawn_links(
        self: &Arc<Self>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_rounds(
            "shared links",
            |e| &e.wake_links,
            IDLE,
            shutdown,
            |e| async move { e.make_links().await },
        )
    }
}

fn result_made(link: ferry_dropbox::SharedLink, duration_ms: u64) -> LinkResult {
    LinkResult::Made {
        expires_at: link.expires.as_deref().and_then(rfc3339_ms),
        url: link.url,
        audience: link.audience,
        duration_ms,
    }
}
