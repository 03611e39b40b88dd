//! The memory all running passes may hold for file contents at once. A small file is read
//! whole before it is staged and a large one a chunk at a time; with many passes side by
//! side (`passes_per_worker`), unbounded, a back-fill of many large records could hold
//! gigabytes. Every read of content waits for its share of this budget first and gives it
//! back once the bytes are on their way to Dropbox.
//!
//! A holder takes all it needs in one step (never piece by piece), so two passes each
//! holding part of the budget can never wait on each other; a request larger than the whole
//! budget takes the whole budget.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Permits count KiB, so the largest budget (64 GiB) still fits a `u32` request.
const UNIT: u64 = 1024;

/// A share of the budget; given back when dropped.
pub(crate) type Held = Arc<OwnedSemaphorePermit>;

/// The engine's budget of content bytes in memory.
pub(crate) struct TransferBudget {
    permits: Arc<Semaphore>,
    capacity: u32,
}

impl TransferBudget {
    /// A budget of `bytes` (at least one unit).
    pub(crate) fn new(bytes: u64) -> Self {
        let capacity = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .max(1);
        TransferBudget {
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
        }
    }

    /// Waits until `bytes` of the budget are free and holds them (all of it when `bytes`
    /// exceeds the budget). `None` only if the budget was closed, which it never is.
    pub(crate) async fn hold(&self, bytes: u64) -> Option<Held> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity);
        Arc::clone(&self.permits)
            .acquire_many_owned(units)
            .await
            .ok()
            .map(Arc::new)
    }

    /// Bytes of the budget free now.
    #[cfg(test)]
    fn free(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_holder_waits_until_enough_is_given_back() {
        let budget = Arc::new(TransferBudget::new(10 * UNIT));
        let first = budget.hold(6 * UNIT).await.unwrap();
        assert_eq!(budget.free(), 4 * UNIT);
        let waiting = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.hold(5 * UNIT).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "5 of the 4 free units were held");
        drop(first);
        assert!(waiting.await.unwrap());
        assert_eq!(budget.free(), 10 * UNIT);
    }

    #[tokio::test]
    async fn more_than_the_budget_takes_all_of_it_and_a_byte_takes_a_unit() {
        let budget = TransferBudget::new(10 * UNIT);
        let all = budget.hold(1 << 40).await.unwrap();
        assert_eq!(budget.free(), 0);
        drop(all);
        let shares: Vec<Held> = vec![budget.hold(1).await.unwrap(), budget.hold(0).await.unwrap()];
        assert_eq!(budget.free(), 8 * UNIT);
        drop(shares);
        assert_eq!(budget.free(), 10 * UNIT);
    }
}
