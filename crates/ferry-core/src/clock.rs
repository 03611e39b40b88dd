//! The wall clock as Ferry reads it: the system's, or on a simulation's thread a simulated one.
//!
//! Every timestamp the engine and the store compare (when a task is due, when a lease or a
//! mirror expires, when a deletion was confirmed) comes from [`now_ms`]. The simulation sets
//! a clock that follows its runtime's paused, virtual time, so a retry due "in one second"
//! comes due after the same steps in every run of a seed, however fast the machine is.

use std::cell::{Cell, RefCell};

thread_local! {
    /// The simulated clock of this thread, if any.
    static SIMULATED: RefCell<Option<Box<dyn Fn() -> i64>>> = const { RefCell::new(None) };
    /// A reading held while the thread runs one lockstep call (its time stands still).
    static HELD: Cell<Option<i64>> = const { Cell::new(None) };
    /// Milliseconds the simulated clock has moved on for the lockstep calls made so far.
    static SPENT: Cell<i64> = const { Cell::new(0) };
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    if let Some(held) = HELD.with(Cell::get) {
        return held;
    }
    if let Some(simulated) = SIMULATED.with(|s| s.borrow().as_ref().map(|clock| clock())) {
        return simulated.saturating_add(SPENT.with(Cell::get));
    }
    system_ms()
}

fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Makes `clock` this thread's clock (simulation only). Reads on other threads are unchanged.
pub fn simulate_on_this_thread(clock: impl Fn() -> i64 + 'static) {
    SPENT.with(|s| s.set(0));
    SIMULATED.with(|s| *s.borrow_mut() = Some(Box::new(clock)));
}

/// Gives this thread back the system clock.
pub fn stop_simulating() {
    SIMULATED.with(|s| *s.borrow_mut() = None);
}

/// Runs `f` with this thread's clock standing at its current reading (the simulation's
/// lockstep calls, during which simulated time does not pass and cannot be read). A
/// simulated clock then moves on by a millisecond, as real I/O takes time: timestamps
/// written by successive calls differ, as they would on a real machine.
pub fn held<T>(f: impl FnOnce() -> T) -> T {
    let outer = HELD.with(Cell::get);
    HELD.with(|h| h.set(Some(outer.unwrap_or_else(now_ms))));
    struct Restore(Option<i64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            HELD.with(|h| h.set(self.0));
            if self.0.is_none() {
                SPENT.with(|s| s.set(s.get().saturating_add(1)));
            }
        }
    }
    let _restore = Restore(outer);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_is_read_on_its_thread_only_and_held_during_a_call() {
        std::thread::spawn(|| {
            let t = std::rc::Rc::new(Cell::new(1_000));
            let read = std::rc::Rc::clone(&t);
            simulate_on_this_thread(move || read.get());
            assert_eq!(now_ms(), 1_000);
            t.set(2_000);
            held(|| {
                t.set(3_000);
                assert_eq!(now_ms(), 2_000, "held at the reading before the call");
            });
            assert_eq!(now_ms(), 3_001, "a call takes a millisecond");
            simulate_on_this_thread(|| 5_000);
            assert_eq!(now_ms(), 5_000, "a new clock starts afresh");
            stop_simulating();
            assert!(now_ms() > 1_700_000_000_000, "the system clock again");
        })
        .join()
        .unwrap();
        assert!(
            now_ms() > 1_700_000_000_000,
            "other threads read the system clock"
        );
    }
}
