//! `ferry bench --quick`: every scenario still runs and the JSON report is well-formed. No
//! figure is judged here (timings on a shared CI machine prove nothing): only that each
//! scenario produced figures of the documented shape.

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const SCENARIOS: [&str; 6] = [
    "small_files",
    "large_files",
    "latency",
    "scale",
    "content_hash",
    "processes",
];

#[test]
fn quick_bench_runs_every_scenario_and_writes_a_well_formed_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("bench")
        .arg("--quick")
        .arg("--json")
        .arg(&report)
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .expect("ferry bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ferry bench --quick failed:\n{stdout}\n{stderr}"
    );
    // Not a terminal: plain progress lines, no carriage-return redraws.
    assert!(stdout.contains("progress: "), "{stdout}");
    assert!(
        !stdout.contains('\r'),
        "progress redraws outside a terminal"
    );

    let text = std::fs::read_to_string(&report).expect("report written");
    let figures: Vec<Value> = serde_json::from_str(&text).expect("report is JSON");
    assert!(!figures.is_empty());
    let keys: BTreeSet<&str> = [
        "name",
        "value",
        "unit",
        "baseline_name",
        "baseline_value",
        "ratio",
        "goal",
    ]
    .into_iter()
    .collect();
    let mut seen = BTreeSet::new();
    for f in &figures {
        let object = f.as_object().expect("each figure is an object");
        let got: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(got, keys, "figure fields: {f}");
        let name = f["name"].as_str().expect("name is a string");
        assert!(f["value"].as_f64().is_some_and(f64::is_finite), "{f}");
        assert!(!f["unit"].as_str().unwrap_or("").is_empty(), "{f}");
        assert!(
            f["baseline_name"].is_null() || f["baseline_name"].is_string(),
            "{f}"
        );
        assert!(
            f["baseline_value"].is_null() || f["baseline_value"].is_number(),
            "{f}"
        );
        assert!(f["ratio"].is_null() || f["ratio"].is_number(), "{f}");
        assert!(f["goal"].is_null() || f["goal"].is_string(), "{f}");
        // A ratio always comes with the baseline it was computed from.
        if f["ratio"].is_number() {
            assert!(f["baseline_value"].is_number(), "{f}");
        }
        seen.insert(name.split('.').next().unwrap_or("").to_owned());
    }
    for scenario in SCENARIOS {
        assert!(
            seen.contains(scenario),
            "no figures from scenario {scenario}: {seen:?}\n{stdout}"
        );
    }
    // The scale scenario's generated state must really be "all synced", and the engine's
    // reconciliation must have compared every file (200 records × 10 at --quick size).
    let value = |name: &str| {
        figures
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["value"].as_f64())
            .unwrap_or_else(|| panic!("{name} not reported"))
    };
    assert_eq!(value("scale.reconcile_engine.records_queued"), 0.0);
    assert_eq!(value("scale.reconcile_engine.files_compared"), 2000.0);
    let changes = figures
        .iter()
        .find(|f| f["name"] == "scale.reconcile_engine.changes_found")
        .expect("engine reconciliation reported");
    assert_eq!(changes["value"].as_f64(), Some(0.0), "{changes}");
}

#[test]
fn bad_bench_flags_are_clear_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["bench", "--only", "nonsense"])
        .output()
        .expect("ferry runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown scenario"), "{stderr}");
}
