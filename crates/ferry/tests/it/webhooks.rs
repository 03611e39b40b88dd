//! Signed webhooks from Ferry to a receiver on 127.0.0.1: delivered with the change they
//! report, retried when the receiver fails, redelivered by hand, and signed so that the
//! Standard Webhooks reference library (Python, from PyPI) accepts them.

use crate::support::Stack;
use axum::http::HeaderMap;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// What the test receiver saw: headers we care about and the body.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) id: String,
    timestamp: String,
    signature: String,
    pub(crate) body: String,
}

/// A receiver that fails the first request (with `fail_first`), then accepts.
pub(crate) async fn receiver_with(fail_first: bool) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = Arc::clone(&log);
            async move {
                let h = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let mut log = log.lock().unwrap();
                log.push(Seen {
                    id: h("webhook-id"),
                    timestamp: h("webhook-timestamp"),
                    signature: h("webhook-signature"),
                    body,
                });
                if fail_first && log.len() == 1 {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// A receiver that fails the first request, then accepts.
async fn receiver() -> (String, Arc<Mutex<Vec<Seen>>>) {
    receiver_with(true).await
}

pub(crate) async fn wait_for(seen: &Arc<Mutex<Vec<Seen>>>, n: usize, secs: u64) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while seen.lock().unwrap().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} requests arrived",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_delivered_retried_and_redelivered() {
    let (url, seen) = receiver().await;
    let stack = Stack::start_with(|c| c.webhooks_allow_internal = true).await;
    let sub = stack
        .api
        .post_json(
            "/v1/webhooks",
            &json!({"url": url, "events": ["file.synced", "file.failed"]}),
        )
        .await
        .unwrap();
    let secret = sub["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = stack.api.get("/v1/webhooks").await.unwrap();
    assert!(
        listed["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );

    stack
        .push_rule("tickets", "ticket", "Tickets/{{ record.key }}")
        .await;
    stack.record_with("ticket", "W-1", &["a.txt"]).await;
    stack.settle().await;
    // The first attempt fails (500); the retry 5 s later is accepted.
    wait_for(&seen, 2, 30).await;
    let requests = seen.lock().unwrap().clone();
    assert_eq!(
        requests[0].id, requests[1].id,
        "a retry carries the same webhook-id"
    );
    let event: Value = serde_json::from_str(&requests[1].body).unwrap();
    assert_eq!(event["type"], "file.synced");
    assert_eq!(
        event["data"]["record"],
        json!({"kind": "ticket", "key": "W-1"})
    );
    assert_eq!(event["data"]["path"], "/Ferry/Tickets/W-1/a.txt");

    let id = sub["id"].as_i64().unwrap();
    let log = stack
        .api
        .get(&format!("/v1/webhooks/{id}/deliveries"))
        .await
        .unwrap();
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["state"], "delivered", "{log}");
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["last_status"], 204);

    // By hand, once more.
    let delivery_id = delivery["id"].as_i64().unwrap();
    stack
        .api
        .post(&format!("/v1/webhooks/deliveries/{delivery_id}/redeliver"))
        .await
        .unwrap();
    wait_for(&seen, 3, 10).await;
    assert_eq!(seen.lock().unwrap()[2].id, requests[0].id);

    // The reference implementation accepts every signature Ferry made.
    let python = tokio::task::spawn_blocking(|| {
        crate::support::python_with("standardwebhooks", "1.1.0")
            .join("bin")
            .join("python")
    })
    .await
    .unwrap();
    let captured: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| json!({"id": s.id, "timestamp": s.timestamp, "signature": s.signature, "body": s.body}))
        .collect();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, captured = sys.argv[1], json.load(sys.stdin)
wh = Webhook(secret)
for c in captured:
    wh.verify(c["body"], {"webhook-id": c["id"], "webhook-timestamp": c["timestamp"], "webhook-signature": c["signature"]})
try:
    c = captured[0]
    wh.verify(c["body"] + " ", {"webhook-id": c["id"], "webhook-timestamp": c["timestamp"], "webhook-signature": c["signature"]})
    print("tampered body accepted")
    sys.exit(1)
except Exception:
    pass
print("verified", len(captured))
"#;
    let mut child = tokio::process::Command::new(python)
        .args(["-c", script, &secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(&captured).unwrap().as_bytes())
            .await
            .unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified 3"));
}

/// Webhook targets are outside Ferry's trust: internal addresses are refused unless the
/// operator allows them, and so are malformed subscriptions.
#[tokio::test]
async fn bad_or_internal_targets_are_refused() {
    let stack = Stack::start().await;
    for (body, expect) in [
        (
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
            "internal address",
        ),
        (
            json!({"url": "http://10.0.0.7/hook", "events": ["*"]}),
            "internal address",
        ),
        (
            json!({"url": "http://user:pw@93.184.216.34/hook", "events": ["*"]}),
            "credentials",
        ),
        (
            json!({"url": "ftp://93.184.216.34/hook", "events": ["*"]}),
            "http(s)",
        ),
        (
            json!({"url": "https://93.184.216.34/hook", "events": ["file.eaten"]}),
            "unknown event type",
        ),
        (
            json!({"url": "https://93.184.216.34/hook", "events": []}),
            "at least one",
        ),
        (
            json!({"url": "https://93.184.216.34/hook", "events": ["*"], "secret": "plain"}),
            "whsec_",
        ),
    ] {
        let (status, answer) = stack
            .api
            .raw(
                Method::POST,
                "/v1/webhooks",
                Some((body.to_string().into_bytes(), "application/json")),
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{body}: {message}");
    }
    assert_eq!(
        stack.api.get("/v1/webhooks").await.unwrap()["webhooks"],
        json!([])
    );
}

/// `record.synced` says once per pass that changed something that all of a record's files
/// are in step; a pass with nothing to do says nothing. `link.created` carries each link.
#[tokio::test]
async fn record_synced_and_link_created_are_sent() {
    let (url, seen) = receiver_with(false).await;
    let stack = Stack::start_with(|c| c.webhooks_allow_internal = true).await;
    stack
        .api
        .post_json(
            "/v1/webhooks",
            &json!({"url": url, "events": ["record.synced", "link.created"]}),
        )
        .await
        .unwrap();
    stack
        .api
        .put_json(
            "/v1/rules/orders",
            &json!({"record_kind": "order", "connection": "dropbox",
                    "folder": "Orders/{{ record.key }}", "links": "public"}),
        )
        .await
        .unwrap();
    stack.record_with("order", "9", &["a.pdf", "b.pdf"]).await;
    stack.settle().await;
    // One record.synced (the passes may be one or two, as the files arrive) and two links.
    let types = || -> Vec<Value> {
        seen.lock()
            .unwrap()
            .iter()
            .map(|s| serde_json::from_str::<Value>(&s.body).unwrap())
            .collect()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while types()
        .iter()
        .filter(|e| e["type"] == "link.created")
        .count()
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", types());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let events = types();
    let synced: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "record.synced")
        .collect();
    assert!(!synced.is_empty() && synced.len() <= 2, "{events:?}");
    assert_eq!(
        synced[0]["data"]["record"],
        json!({"kind": "order", "key": "9"})
    );
    assert_eq!(synced[0]["data"]["path"], "/Ferry/Orders/9");
    let link = events.iter().find(|e| e["type"] == "link.created").unwrap();
    assert!(
        link["data"]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{link}"
    );
    assert_eq!(link["data"]["audience"], "public");
    // A pass with nothing to do sends nothing.
    let before = synced.len();
    stack.api.post("/v1/records/order/9/sync").await.unwrap();
    stack.settle().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = types()
        .iter()
        .filter(|e| e["type"] == "record.synced")
        .count();
    assert_eq!(after, before);
}

/// docs/operations.md names every event type Ferry sends.
#[test]
fn every_event_type_is_documented() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
    )
    .unwrap();
    for event in ferry_store::EVENT_TYPES {
        assert!(
            doc.contains(&format!("`{event}`")),
            "docs/operations.md does not describe {event}"
        );
    }
}
