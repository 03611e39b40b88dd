//! The deterministic simulation, 300 seeds: random edits on both sides with injected faults
//! and crashes; every seed must converge without losing a version.

/// Runs seeds 0..300; a failure names the seed to replay with `ferry simulate --seed S`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_seeds_converge_without_loss() {
    let report = ferry::simulate::run_seeds(
        (0..300).collect(),
        60,
        4,
        ferry::simulate::SimBackend::Sqlite,
    )
    .await;
    assert_eq!(report.seeds, 300);
    // Failures first: the totals below only count seeds that passed.
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|(seed, e)| format!("seed {seed} (replay: ferry simulate --seed {seed}): {e}"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 300 seeds failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        report.totals.faults > 500,
        "faults were injected: {:?}",
        report.totals
    );
    assert!(
        report.totals.store_faults > 100,
        "store faults were injected: {:?}",
        report.totals
    );
    assert!(
        report.totals.crashes > 20,
        "crashes were simulated: {:?}",
        report.totals
    );
}

/// Seeds 0..40 on PostgreSQL with two engines sharing the store (either crashes, and some
/// passes run on both at once): the same invariants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_seeds_on_postgres_with_two_engines_converge_without_loss() {
    let report = ferry::simulate::run_seeds(
        (0..40).collect(),
        60,
        4,
        ferry::simulate::SimBackend::Postgres,
    )
    .await;
    assert_eq!(report.seeds, 40);
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|(seed, e)| {
            format!("seed {seed} (replay: ferry simulate --postgres --seed {seed}): {e}")
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 40 seeds failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        report.totals.second_engine_steps > 200 && report.totals.crashes > 2,
        "both engines worked and crashed: {:?}",
        report.totals
    );
}
