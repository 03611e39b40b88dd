//! The whole API fuzzed from its OpenAPI document by schemathesis (installed from PyPI into a
//! cached venv): schema-valid and schema-violating requests, stateful sequences, requests
//! without the key. The run is bounded (a fixed seed and example count) and must find
//! nothing: no 5xx, every status and content type documented, every body as documented,
//! schema-violating input refused, no dropped connection. Ferry must still answer afterwards.

use crate::support::Stack;

/// The schemathesis release the run is written against.
const SCHEMATHESIS: &str = "4.32.5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let venv =
        tokio::task::spawn_blocking(|| crate::support::python_with("schemathesis", SCHEMATHESIS))
            .await
            .expect("venv task");
    let stack = Stack::start().await;
    // Something to reach past the 404s: a rule and records with files.
    stack
        .push_rule("tickets", "ticket", "Tickets/{{ record.key }}")
        .await;
    for key in ["0", "T-1"] {
        stack.record_with("ticket", key, &["a.txt"]).await;
    }
    stack.settle().await;

    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemathesis/schemathesis.toml");
    let url = format!("{}/v1/openapi.json", stack.app.base_url());
    let auth = format!("Authorization: Bearer {}", stack.app.api_key().expose());
    let workdir = tempfile::tempdir().expect("temp dir");
    let output = tokio::process::Command::new(venv.join("bin").join("st"))
        .current_dir(workdir.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &url, "-H", &auth])
        // One worker: Python 3.11's `ast` is not thread-safe ("AST constructor recursion depth
        // mismatch" inside Hypothesis under load), and a crash of the fuzzer is no finding.
        .args(["--max-examples", "40", "--seed", "7", "--workers", "1"])
        .args([
            "--request-timeout",
            "10",
            "--no-color",
            "--generation-database",
            "none",
        ])
        // Two operations would have Ferry reach hosts the fuzzer makes up (a webhook target,
        // a connection's Dropbox hosts — or the real Dropbox when `base_url` is left out);
        // the tests talk only to 127.0.0.1. tests/it/webhooks.rs and api_e2e.rs cover them.
        .args(["--exclude-operation-id", "add_webhook"])
        .args(["--exclude-operation-id", "put_connection"])
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The figures for the record: how many test cases, and what was found.
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(
        output.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(" generated") && !stdout.contains("Network Error"),
        "unexpected schemathesis output:\n{stdout}"
    );
    // Still up, and still answering with the key.
    let health = reqwest::get(format!("{}/health", stack.app.base_url()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    stack.api.get("/v1/status").await.expect("status answers");
}
