//! The OpenAPI document: generated from the code, committed as `docs/openapi.json`, served at
//! `GET /v1/openapi.json`, and covering every route docs/api.md describes (and no other).
//! After an intended API change: `FERRY_BLESS=1 cargo test openapi` rewrites the committed copy.

use crate::support::Stack;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn docs(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name)
}

/// The committed document is exactly what the code generates.
#[test]
fn committed_openapi_matches_the_code() {
    let generated = ferry::api::openapi::json();
    let path = docs("openapi.json");
    if std::env::var_os("FERRY_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json is not what the code generates (first difference at line {}); \
             run `FERRY_BLESS=1 cargo test openapi` and commit it",
            first + 1
        );
    }
    let doc: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}

/// Every operation is in docs/api.md as `` `METHOD /path` ``, and every route docs/api.md
/// describes is an operation.
#[test]
fn api_md_describes_exactly_the_documented_operations() {
    let doc = ferry::api::openapi::openapi();
    let mut operations = BTreeSet::new();
    let as_value: Value = serde_json::to_value(&doc).unwrap();
    for (path, item) in as_value["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let md = std::fs::read_to_string(docs("api.md")).unwrap();
    let mut described = BTreeSet::new();
    for piece in md.split('`').skip(1).step_by(2) {
        let mut words = piece.splitn(2, ' ');
        let (Some(method), Some(rest)) = (words.next(), words.next()) else {
            continue;
        };
        if !["GET", "PUT", "POST", "DELETE", "PATCH"].contains(&method) {
            continue;
        }
        let path = rest.split(['?', ' ']).next().unwrap_or_default();
        if path.starts_with('/') {
            described.insert(format!("{method} {path}"));
        }
    }
    let undocumented: Vec<_> = operations.difference(&described).collect();
    let unknown: Vec<_> = described.difference(&operations).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "operations missing from docs/api.md: {undocumented:?}; routes docs/api.md names that the API lacks: {unknown:?}"
    );
}

/// The running server serves the same document, without the API key.
#[tokio::test]
async fn the_server_serves_its_document() {
    let stack = Stack::start().await;
    let response = reqwest::get(format!("{}/v1/openapi.json", stack.app.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.unwrap();
    let generated: Value = serde_json::from_str(&ferry::api::openapi::json()).unwrap();
    assert_eq!(served, generated);
    // Every operation but the two public ones requires the key.
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = op["security"] == serde_json::json!([{}]);
            assert_eq!(
                public,
                ["/health", "/ready", "/v1/openapi.json"].contains(&path.as_str()),
                "{method} {path}: security {}",
                op["security"]
            );
        }
    }
}
