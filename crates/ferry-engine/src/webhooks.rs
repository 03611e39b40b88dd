//! Webhook subscriptions and their delivery. Events are written by the store with the change
//! they report; this module signs and sends them, Standard Webhooks style:
//!
//! - headers `webhook-id` (the event id, the same on every retry), `webhook-timestamp` (unix
//!   seconds) and `webhook-signature` = `v1,` + base64(HMAC-SHA256(secret, "id.timestamp.body")),
//!   the secret being the base64 after `whsec_`;
//! - a 2xx answer delivers; anything else (or no answer in 10 s) is retried after 5 s, 30 s,
//!   2 min, 10 min, 30 min, 1 h, 2 h, 4 h and 8 h — about 16 hours — then the delivery is
//!   `failed` until redelivered by hand;
//! - receivers are outside Ferry's trust: no redirects are followed, and a URL whose host is
//!   (or resolves to) a loopback, private or link-local address is refused unless the
//!   operator allows it; the address checked is the one connected to.

use crate::{Engine, EngineError};
use base64::Engine as _;
use ferry_core::secret::Secret;
use ferry_store::{DeliveryView, StoredWebhook};
use hmac::Mac;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use utoipa::ToSchema;

/// Waits between attempts.
const RETRIES: &[u64] = &[5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800];
/// How long a receiver may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long ended deliveries stay in the delivery log.
const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);

/// A subscription as the API shows it (its secret only when created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookView {
    /// Subscription id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// Event types it receives (`["*"]`: all).
    pub events: Vec<String>,
    /// The signing secret (`whsec_…`), shown once, when the subscription is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When it was created, ms since the epoch.
    pub created_at: i64,
}

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Where to POST events (`https`, or `http`).
    pub url: String,
    /// Event types to receive; `["*"]` for all (see docs/operations.md).
    pub events: Vec<String>,
    /// A signing secret `whsec_<base64>`; generated when left out.
    #[serde(default)]
    pub secret: Option<String>,
}

/// All subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookList {
    /// By id.
    pub webhooks: Vec<WebhookView>,
}

/// A subscription's deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryView>,
}

/// The HMAC key of a `whsec_…` secret.
fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or("a webhook secret starts with whsec_")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "a webhook secret is whsec_ followed by base64")?;
    if !(24..=64).contains(&key.len()) {
        return Err("a webhook secret holds 24 to 64 bytes".into());
    }
    Ok(key)
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = secret_key(secret)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Whether an address is one a webhook may not reach without the operator's leave.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Checks a webhook URL's form (not its address: that is checked when sending).
fn check_url(url: &str) -> Result<reqwest::Url, EngineError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| EngineError::Invalid(format!("webhook url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(EngineError::Invalid(format!(
            "webhook url {url:?} must be http(s)://host/…"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(EngineError::Invalid(
            "a webhook url must not carry credentials; Ferry signs its requests".into(),
        ));
    }
    Ok(parsed)
}

/// The one address a delivery to `url` connects to, refused if internal (unless allowed).
async fn target_address(url: &reqwest::Url, allow_internal: bool) -> Result<SocketAddr, String> {
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    if !allow_internal && is_internal(addr.ip()) {
        return Err(format!(
            "{host} is an internal address ({}); the operator can allow those with webhooks_allow_internal = true",
            addr.ip()
        ));
    }
    Ok(addr)
}

impl Engine {
    /// Creates a subscription; the answer carries its secret, the only time it is shown.
    pub async fn add_webhook(&self, input: WebhookInput) -> Result<WebhookView, EngineError> {
        let url = check_url(&input.url)?;
        if input.events.is_empty() {
            return Err(EngineError::Invalid(
                "events must name at least one event type, or \"*\"".into(),
            ));
        }
        for e in &input.events {
            if e != "*" && !ferry_store::EVENT_TYPES.contains(&e.as_str()) {
                return Err(EngineError::Invalid(format!(
                    "unknown event type {e:?}; known: {}",
                    ferry_store::EVENT_TYPES.join(", ")
                )));
            }
        }
        let secret = match input.secret {
            Some(s) => {
                secret_key(&s).map_err(EngineError::Invalid)?;
                s
            }
            None => format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
            ),
        };
        // Refused now rather than at every delivery.
        target_address(&url, self.config.webhooks_allow_internal)
            .await
            .map_err(EngineError::Invalid)?;
        let ciphertext = self
            .connections
            .cipher
            .encrypt(&Secret::new(secret.clone()))?;
        let stored = StoredWebhook {
            id: 0,
            url: input.url,
            events: input.events,
            secret_ciphertext: ciphertext,
            created_at: 0,
        };
        let id = self.store.put_webhook(&stored).await?;
        self.wake_webhooks.notify_one();
        Ok(WebhookView {
            id,
            url: stored.url,
            events: stored.events,
            secret: Some(secret),
            created_at: ferry_core::clock::now_ms(),
        })
    }

    /// All subscriptions (without secrets).
    pub async fn webhooks(&self) -> Result<WebhookList, EngineError> {
        Ok(WebhookList {
            webhooks: self
                .store
                .webhooks()
                .await?
                .into_iter()
                .map(|w| WebhookView {
                    id: w.id,
                    url: w.url,
                    events: w.events,
                    secret: None,
                    created_at: w.created_at,
                })
                .collect(),
        })
    }

    /// Deletes a subscription and its pending deliveries.
    pub async fn delete_webhook(&self, id: i64) -> Result<(), EngineError> {
        if !self.store.delete_webhook(id).await? {
            return Err(EngineError::NotFound(format!("no webhook {id}")));
        }
        Ok(())
    }

    /// A subscription's deliveries, newest first.
    pub async fn webhook_deliveries(&self, id: i64) -> Result<DeliveryList, EngineError> {
        if !self.store.webhooks().await?.iter().any(|w| w.id == id) {
            return Err(EngineError::NotFound(format!("no webhook {id}")));
        }
        Ok(DeliveryList {
            deliveries: self.store.deliveries(id, 200).await?,
        })
    }

    /// Sends a delivery again now (also one that was given up on).
    pub async fn redeliver(&self, delivery_id: i64) -> Result<(), EngineError> {
        if !self.store.redeliver(delivery_id).await? {
            return Err(EngineError::NotFound(format!("no delivery {delivery_id}")));
        }
        self.wake_webhooks.notify_one();
        Ok(())
    }

    /// Sends what is due; returns how many deliveries were attempted.
    pub async fn deliver_webhooks(&self) -> Result<usize, EngineError> {
        let now = ferry_core::clock::now_ms();
        let due = self
            .store
            .due_deliveries(now, 20, (TIMEOUT.as_millis() as i64) * 3)
            .await?;
        let n = due.len();
        for d in due {
            let secret = self.connections.cipher.decrypt(&d.secret_ciphertext)?;
            let result = self.send_one(&d, secret.expose()).await;
            let attempts = usize::try_from(d.attempts).unwrap_or(usize::MAX);
            let retry_at = RETRIES
                .get(attempts)
                .map(|secs| ferry_core::clock::now_ms() + (*secs as i64) * 1000);
            match result {
                Ok(status) => {
                    self.store
                        .finish_delivery(d.id, true, Some(status), None, None)
                        .await?
                }
                Err((status, error)) => {
                    tracing::warn!(delivery = d.id, url = %d.url, %error, "webhook delivery failed");
                    self.store
                        .finish_delivery(d.id, false, status, Some(&error), retry_at)
                        .await?
                }
            }
        }
        Ok(n)
    }

    /// One POST; the status on success, or the status (if any) and what went wrong.
    async fn send_one(
        &self,
        d: &ferry_store::DueDelivery,
        secret: &str,
    ) -> Result<u16, (Option<u16>, String)> {
        let url = reqwest::Url::parse(&d.url).map_err(|e| (None, e.to_string()))?;
        let addr = target_address(&url, self.config.webhooks_allow_internal)
            .await
            .map_err(|e| (None, e))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // Connect to the address just checked, whatever DNS says a moment later.
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr)
            .build()
            .map_err(|e| (None, e.to_string()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(secret, &d.event_id, timestamp, &d.payload).map_err(|e| (None, e))?;
        let response = http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| (None, format!("no answer: {}", e.without_url())))?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err((Some(status), format!("the receiver answered {status}")))
        }
    }

    /// Delivers webhooks until `shutdown` turns true: at once when an event may be waiting,
    /// else every second.
    pub fn spawn_webhooks(
        self: &std::sync::Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let engine = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            let mut pruned_at: Option<tokio::time::Instant> = None;
            loop {
                // One process sends webhooks for the installation.
                if !engine.await_duty("webhooks", &mut shutdown).await {
                    return;
                }
                // Once an hour, the log of ended deliveries is trimmed to a week.
                if pruned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                    let before = ferry_core::clock::now_ms() - KEEP_ENDED.as_millis() as i64;
                    if let Err(e) = engine.store.prune_webhook_deliveries(before).await {
                        tracing::warn!(error = %e, "could not trim the webhook delivery log");
                    }
                    pruned_at = Some(tokio::time::Instant::now());
                }
                let worked = match engine.deliver_webhooks().await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::error!(error = %e, "webhook delivery stopped for now");
                        false
                    }
                };
                if worked {
                    continue;
                }
                tokio::select! {
                    _ = engine.wake_webhooks.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks example: a fixed secret, id, timestamp and body give the
    /// published signature.
    #[test]
    fn signatures_follow_standard_webhooks() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(sign("nope", "a", 1, "b").is_err());
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "100.64.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
