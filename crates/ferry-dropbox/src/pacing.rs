//! Client-side pacing per Dropbox account, so Ferry rarely meets a 429 at all: every request
//! waits for a token bucket (GCRA, the `governor` crate) sized by the operator, and after a
//! 429 `too_many_requests` every request of the account waits out its `Retry-After` — not
//! only the call that met it, which would otherwise be followed by the account's other
//! requests running into the same limit. A 429 `too_many_write_operations` is contention for
//! one namespace's write lock, not a rate: only the write that met it waits (and retries).
//!
//! Long-polls are not paced: Dropbox does not count them, and one waits for minutes.

use governor::{Quota, RateLimiter, clock::DefaultClock, state::InMemoryState, state::NotKeyed};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The longest a `Retry-After` holds the account (a wilder value is capped).
const MAX_HOLD: Duration = Duration::from_secs(300);

/// One Dropbox account's pace: share it between every client of the account.
#[derive(Debug)]
pub struct Pacer {
    limiter: RateLimiter<NotKeyed, InMemoryState, DefaultClock>,
    /// Requests wait until then: the latest rate-limit answer's `Retry-After`.
    hold_until: Mutex<Option<Instant>>,
    /// 429 answers seen, of either kind.
    rate_limited: AtomicU64,
}

impl Pacer {
    /// At most `per_second` requests per second on average, and as many at once after a
    /// quiet second.
    pub fn new(per_second: NonZeroU32) -> Self {
        Pacer {
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
            hold_until: Mutex::new(None),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// Waits until the account may send the next request.
    pub(crate) async fn ready(&self) {
        loop {
            let until = *self
                .hold_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match until {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => break,
            }
        }
        self.limiter.until_ready().await;
    }

    /// A 429 answer: a rate limit (`rate == true`) holds every request of the account for
    /// `retry_after`; write contention only counts.
    pub(crate) fn rate_limited(&self, rate: bool, retry_after: Option<Duration>) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
        let Some(wait) = retry_after.filter(|w| rate && !w.is_zero()) else {
            return;
        };
        let at = Instant::now() + wait.min(MAX_HOLD);
        let mut hold = self
            .hold_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if hold.is_none_or(|h| h < at) {
            *hold = Some(at);
        }
    }

    /// 429 answers the account's requests met so far.
    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lower bounds only: a pacer can make a request late on a busy machine, never early.
    #[tokio::test]
    async fn a_rate_limit_holds_every_request_for_its_retry_after() {
        let pacer = Pacer::new(NonZeroU32::new(1000).unwrap());
        pacer.ready().await;
        let started = Instant::now();
        pacer.rate_limited(true, Some(Duration::from_millis(300)));
        // A shorter Retry-After later never shortens the hold.
        pacer.rate_limited(true, Some(Duration::from_millis(100)));
        pacer.ready().await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(pacer.rate_limited_total(), 2);
    }

    #[tokio::test]
    async fn write_contention_holds_no_one() {
        let pacer = Pacer::new(NonZeroU32::new(1000).unwrap());
        pacer.rate_limited(false, Some(Duration::from_secs(3600)));
        // Were the hold taken, this would wait an hour (and the test time out).
        tokio::time::timeout(Duration::from_secs(60), pacer.ready())
            .await
            .expect("write contention held the account");
        assert_eq!(pacer.rate_limited_total(), 1);
    }

    #[tokio::test]
    async fn requests_beyond_the_burst_wait_for_the_bucket() {
        let pacer = Pacer::new(NonZeroU32::new(50).unwrap());
        let started = std::time::Instant::now();
        // 50 at once, then one every 20 ms: 60 take at least 200 ms.
        for _ in 0..60 {
            pacer.ready().await;
        }
        assert!(
            started.elapsed() >= Duration::from_millis(180),
            "{:?}",
            started.elapsed()
        );
    }
}
