//! The contention and fault model: the namespace write lock, the per-account request-rate
//! limit, added latency, and injected failures (5xx, dropped connections, cursor resets).
//!
//! The model is one serialisable struct ([`FaultModel`]), set at start from
//! [`crate::EmulatorConfig::model`] (flags or a TOML config file in the `ferry emulator`
//! command) and changeable at runtime through [`FaultsHandle`] or the admin endpoint
//! `GET/PUT /admin/model` (outside `/2/`).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

/// What the emulator does to make life realistic (or hard) for clients. Every field has a
/// default, so a partial TOML/JSON document only changes what it names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultModel {
    /// Per-namespace write lock: one commit at a time per namespace.
    pub write_lock: bool,
    /// How long each commit (one write route call, or one whole batch) holds the lock, plus
    /// `lock_hold_per_entry_ms` for each of its entries.
    pub lock_hold_ms: u64,
    /// What each entry of a commit adds to its hold (a batch of 1,000 holds the lock longer
    /// than one file, though far shorter than 1,000 single commits).
    pub lock_hold_per_entry_ms: f64,
    /// How long a write waits for the lock before it gets 429 `too_many_write_operations`.
    pub lock_wait_ms: u64,
    /// `Retry-After` (seconds) sent with lock-contention 429s (Dropbox sends 1).
    pub lock_retry_after_secs: u64,
    /// Per-account request-rate limit (token bucket).
    pub rate_limit: bool,
    /// Sustained requests per second per account.
    pub rate_per_sec: f64,
    /// Bucket size: requests an idle account may send at once.
    pub rate_burst: u32,
    /// Fixed latency added to every `/2/` request.
    pub latency_ms: u64,
    /// Random extra latency, uniformly 0..=this.
    pub latency_jitter_ms: u64,
    /// Probability (0–1) that a request fails with 503 before doing anything.
    pub p_server_error: f64,
    /// Probability (0–1) that a successful write's connection is dropped after the change
    /// was applied (the client never sees the result).
    pub p_drop_after_commit: f64,
    /// Probability (0–1) that `list_folder/continue` or `longpoll` answers `reset`.
    pub p_cursor_reset: f64,
    /// Probability (0–1) that one entry of a batch commit fails with the per-entry
    /// `too_many_write_operations` (the batch itself succeeds; other entries commit).
    pub p_batch_entry_contention: f64,
    /// Cursors issued longer ago than this are `reset` (`None`: never).
    pub cursor_max_age_secs: Option<u64>,
    /// `backoff` returned by every `list_folder/longpoll` (`None`: none).
    pub longpoll_backoff_secs: Option<u64>,
    /// Caps how long `list_folder/longpoll` blocks without changes (tests; `None`: the
    /// requested `timeout`).
    pub longpoll_cap_ms: Option<u64>,
    /// How many `check` calls of an async batch job answer `in_progress` before `complete`.
    pub async_job_polls: u32,
}

impl Default for FaultModel {
    /// Lock and rate limit on with Dropbox-like values; faults off.
    fn default() -> Self {
        FaultModel {
            write_lock: true,
            lock_hold_ms: 20,
            lock_hold_per_entry_ms: 0.5,
            lock_wait_ms: 100,
            lock_retry_after_secs: 1,
            rate_limit: true,
            rate_per_sec: 200.0,
            rate_burst: 1000,
            latency_ms: 0,
            latency_jitter_ms: 0,
            p_server_error: 0.0,
            p_drop_after_commit: 0.0,
            p_cursor_reset: 0.0,
            p_batch_entry_contention: 0.0,
            cursor_max_age_secs: None,
            longpoll_backoff_secs: None,
            longpoll_cap_ms: None,
            async_job_polls: 0,
        }
    }
}

impl FaultModel {
    /// How long a commit of `entries` entries holds the namespace lock.
    pub fn lock_hold(&self, entries: usize) -> Duration {
        let per_entry = self.lock_hold_per_entry_ms.max(0.0) * entries as f64;
        Duration::from_millis(self.lock_hold_ms)
            + Duration::try_from_secs_f64(per_entry / 1000.0).unwrap_or(Duration::from_secs(3600))
    }

    /// No lock, no rate limit, no faults: the fastest, most forgiving emulator.
    pub fn off() -> Self {
        FaultModel {
            write_lock: false,
            rate_limit: false,
            ..FaultModel::default()
        }
    }

    /// Checks ranges (probabilities in 0–1, a positive rate).
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("p_server_error", self.p_server_error),
            ("p_drop_after_commit", self.p_drop_after_commit),
            ("p_cursor_reset", self.p_cursor_reset),
            ("p_batch_entry_contention", self.p_batch_entry_contention),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be within 0..=1, not {p}"));
            }
        }
        if self.rate_limit && !(self.rate_per_sec > 0.0 && self.rate_per_sec.is_finite()) {
            return Err("rate_per_sec must be positive".into());
        }
        if self.rate_limit && self.rate_burst == 0 {
            return Err("rate_burst must be at least 1".into());
        }
        Ok(())
    }

    /// This model with the fields present in `patch` (a JSON object) replaced.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<FaultModel, String> {
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let (Some(target), Some(fields)) = (current.as_object_mut(), patch.as_object()) else {
            return Err("expected a JSON object".into());
        };
        for (key, value) in fields {
            target.insert(key.clone(), value.clone());
        }
        let model: FaultModel = serde_json::from_value(current).map_err(|e| e.to_string())?;
        model.validate()?;
        Ok(model)
    }

    /// This model with one `knob=value` setting applied (the value is JSON, or else taken
    /// as a string), e.g. `lock_hold_ms=20`, `write_lock=false`, `cursor_max_age_secs=null`.
    pub fn with_setting(&self, setting: &str) -> Result<FaultModel, String> {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("expected knob=value, got {setting:?}"))?;
        let value = serde_json::from_str(value.trim())
            .unwrap_or_else(|_| serde_json::Value::String(value.trim().to_string()));
        let mut patch = serde_json::Map::new();
        patch.insert(key.trim().to_string(), value);
        self.patched(&serde_json::Value::Object(patch))
    }

    /// The latency to add to one request.
    pub(crate) fn latency(&self) -> Duration {
        let jitter = if self.latency_jitter_ms > 0 {
            rand::thread_rng().gen_range(0..=self.latency_jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms.saturating_add(jitter))
    }
}

/// Whether a random event with probability `p` happens.
pub(crate) fn roll(p: f64) -> bool {
    p > 0.0 && rand::thread_rng().gen_bool(p.clamp(0.0, 1.0))
}

/// A shared, runtime-changeable [`FaultModel`].
#[derive(Debug, Clone)]
pub struct FaultsHandle {
    model: Arc<RwLock<FaultModel>>,
}

impl FaultsHandle {
    pub(crate) fn new(model: FaultModel) -> Self {
        FaultsHandle {
            model: Arc::new(RwLock::new(model)),
        }
    }

    /// The current model.
    pub fn model(&self) -> FaultModel {
        self.model.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the model (takes effect for the next request).
    pub fn set_model(&self, model: FaultModel) {
        *self.model.write().unwrap_or_else(|p| p.into_inner()) = model;
    }

    /// Changes the model in place.
    pub fn update(&self, change: impl FnOnce(&mut FaultModel)) {
        change(&mut self.model.write().unwrap_or_else(|p| p.into_inner()));
    }
}

/// A token bucket: `rate` tokens per second, at most `burst`.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    state: std::sync::Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(crate) fn new() -> Self {
        RateLimiter {
            state: std::sync::Mutex::new((f64::MAX, Instant::now())),
        }
    }

    /// Takes one token, or returns how many whole seconds until one is available (≥ 1).
    pub(crate) fn take(&self, rate: f64, burst: u32) -> Result<(), u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let burst = f64::from(burst.max(1));
        let elapsed = now.duration_since(state.1).as_secs_f64();
        let tokens = (state.0.min(burst) + elapsed * rate).min(burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            // Rejected requests count too (as on Dropbox): they do not refill the bucket.
            *state = (tokens, now);
            let wait = (1.0 - tokens) / rate;
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_patches() {
        let model = FaultModel::default();
        assert!(model.write_lock && model.rate_limit);
        assert_eq!(model.p_server_error, 0.0);
        let patched = model
            .patched(&json!({"lock_hold_ms": 50, "p_server_error": 0.5}))
            .unwrap();
        assert_eq!(patched.lock_hold_ms, 50);
        assert_eq!(patched.p_server_error, 0.5);
        assert_eq!(patched.rate_burst, model.rate_burst);
        assert!(model.patched(&json!({"p_server_error": 2.0})).is_err());
        assert!(model.patched(&json!({"no_such_knob": 1})).is_err());
        assert!(model.patched(&json!([1])).is_err());
        let set = model.with_setting("write_lock=false").unwrap();
        assert!(!set.write_lock);
        assert!(model.with_setting("write_lock").is_err());
        let off = FaultModel::off();
        assert!(!off.write_lock && !off.rate_limit);
    }

    #[test]
    fn toml_partial() {
        let model: FaultModel = toml::from_str("rate_per_sec = 5.0\nwrite_lock = false\n").unwrap();
        assert_eq!(model.rate_per_sec, 5.0);
        assert!(!model.write_lock);
        assert_eq!(model.lock_hold_ms, FaultModel::default().lock_hold_ms);
    }

    #[test]
    fn a_batch_holds_the_lock_longer_than_one_write_and_far_shorter_than_its_entries_alone() {
        let model = FaultModel::default();
        let one = model.lock_hold(1);
        let batch = model.lock_hold(1000);
        assert!(batch > one, "{batch:?} vs {one:?}");
        assert!(batch < one * 1000 / 10, "{batch:?} vs 1000 × {one:?}");
        let negative = FaultModel {
            lock_hold_per_entry_ms: -5.0,
            ..FaultModel::default()
        };
        assert_eq!(
            negative.lock_hold(1000),
            Duration::from_millis(model.lock_hold_ms)
        );
    }

    #[test]
    fn bucket_empties_and_asks_to_wait() {
        let limiter = RateLimiter::new();
        for _ in 0..3 {
            assert_eq!(limiter.take(0.5, 3), Ok(()));
        }
        assert_eq!(limiter.take(0.5, 3), Err(2));
    }
}
