//! Retry delays.

use rand::Rng;
use std::time::Duration;

/// Delay before attempt `attempts + 1`: 1 s doubling per failure, capped at `max`, with ±20%
/// jitter so that many failing records do not retry in lock-step, and never shorter than what
/// Dropbox asked for.
pub fn backoff_delay(attempts: u32, max: Duration, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << attempts.min(20));
    let capped = base.min(max);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    let delay = capped.mul_f64(jitter).min(max);
    delay.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let max = Duration::from_secs(300);
        let first = backoff_delay(0, max, None);
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
        let fifth = backoff_delay(5, max, None);
        assert!(fifth >= Duration::from_millis(25_600) && fifth <= Duration::from_millis(38_400));
        assert!(backoff_delay(40, max, None) <= max);
        assert_eq!(
            backoff_delay(0, max, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
    }
}
