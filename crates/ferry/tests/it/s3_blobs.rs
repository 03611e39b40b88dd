//! Attachment content in an S3-compatible bucket, against a real S3 server process: moto's
//! `moto_server` (from PyPI, installed into a venv under the target dir on first use),
//! listening on 127.0.0.1. The blob contract passes on it, and Ferry stores, syncs and
//! serves attachments from it with nothing under its data dir.

use crate::support::Stack;
use ferry_core::content_hash::content_hash;
use ferry_core::secret::Secret;
use ferry_store::{BlobStore, S3Settings};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

const MOTO: &str = "5.2.5";

/// A running `moto_server`, killed on drop.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    async fn start() -> S3Server {
        let venv = tokio::task::spawn_blocking(|| {
            crate::support::python_with_extra("moto", Some("server"), MOTO)
        })
        .await
        .unwrap();
        let mut child = Command::new(venv.join("bin").join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server starts");
        // It prints "Running on http://127.0.0.1:PORT" once it listens.
        let stderr = child.stderr.take().unwrap();
        let endpoint = tokio::task::spawn_blocking(move || {
            let mut lines = std::io::BufReader::new(stderr).lines();
            let found = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|l| {
                    l.split_whitespace()
                        .find(|w| w.starts_with("http://127.0.0.1:"))
                        .map(str::to_owned)
                })
                .expect("moto_server says where it listens");
            // Keep draining its log so it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            found
        })
        .await
        .unwrap();
        S3Server { child, endpoint }
    }

    /// Makes a bucket (moto takes any credentials).
    async fn bucket(&self, name: &str) {
        let made = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success(), "{}", made.status());
    }

    fn settings(&self, bucket: &str, prefix: &str) -> S3Settings {
        S3Settings {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            access_key_id: "ferry-test".into(),
            secret_access_key: Secret::new("ferry-test-secret"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blobs_keep_the_contract() {
    let s3 = S3Server::start().await;
    s3.bucket("contract").await;
    // Twice under two prefixes of one bucket: they do not see each other's content.
    let a = BlobStore::s3(&s3.settings("contract", "a")).unwrap();
    ferry_store::blob_contract::run_all(&a).await;
    let b = BlobStore::s3(&s3.settings("contract", "b/")).unwrap();
    let hash = a
        .put(bytes::Bytes::from_static(b"only under a"))
        .await
        .unwrap();
    assert!(!b.contains(&hash).await.unwrap(), "prefixes keep apart");
    ferry_store::blob_contract::run_all(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_live_in_the_bucket_and_sync_from_it() {
    let s3 = S3Server::start().await;
    s3.bucket("ferry").await;
    let endpoint = s3.endpoint.clone();
    let stack = Stack::start_with(move |c| {
        c.s3_bucket = Some("ferry".into());
        c.s3_prefix = "install-1".into();
        c.s3_endpoint = Some(endpoint);
        c.s3_access_key_id = Some("ferry-test".into());
        c.s3_secret_access_key = Some(Secret::new("ferry-test-secret"));
    })
    .await;
    stack
        .push_rule("orders", "order", "Orders/{{ record.key }}")
        .await;
    stack.record_with("order", "S1", &["small.txt"]).await;
    // A large one streams in parts (a multipart upload to the bucket).
    let large: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    stack
        .api
        .put_bytes("/v1/records/order/S1/attachments/large.bin", large.clone())
        .await
        .unwrap();
    stack.settle().await;
    let state = stack.api.get("/v1/records/order/S1/sync").await.unwrap();
    assert_eq!(state["summary"]["synced"], 2, "{state}");
    // Dropbox got the very content.
    let (info, body) = stack
        .emu
        .client()
        .download("/Ferry/Orders/S1/large.bin")
        .await
        .unwrap();
    assert_eq!(body.len(), large.len());
    assert_eq!(
        info.content_hash.as_deref(),
        Some(content_hash(&large).as_str())
    );
    // It is in the bucket under the prefix, and nothing is on local disk.
    let bucket = BlobStore::s3(&s3.settings("ferry", "install-1")).unwrap();
    assert!(bucket.contains(&content_hash(&large)).await.unwrap());
    assert!(
        bucket
            .contains(&content_hash(b"S1/small.txt"))
            .await
            .unwrap()
    );
    let local = stack.emu.dir.path().join("ferry").join("blobs");
    assert!(
        !local.exists() || std::fs::read_dir(&local).unwrap().next().is_none(),
        "no content under the data dir"
    );
    // Served back from the bucket.
    let (status, served) =
        crate::no_loss::get_bytes(&stack, "/v1/records/order/S1/attachments/large.bin").await;
    assert_eq!(status, 200);
    assert_eq!(served, large);
}

/// A bucket that is not there: the write answers a JSON error (no secret in it), and nothing
/// is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_clear_error_and_records_nothing() {
    let s3 = S3Server::start().await;
    let endpoint = s3.endpoint.clone();
    let stack = Stack::start_with(move |c| {
        c.s3_bucket = Some("not-made".into());
        c.s3_endpoint = Some(endpoint);
        c.s3_access_key_id = Some("ferry-test".into());
        c.s3_secret_access_key = Some(Secret::new("ferry-test-secret"));
    })
    .await;
    stack
        .api
        .put_json("/v1/records/order/M1", &serde_json::json!({}))
        .await
        .unwrap();
    let (status, body) = stack
        .api
        .raw(
            reqwest::Method::PUT,
            "/v1/records/order/M1/attachments/a.txt",
            Some((b"content".to_vec(), "application/octet-stream")),
        )
        .await
        .unwrap();
    assert!(status.is_server_error(), "{status} {body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(!body.to_string().contains("ferry-test-secret"), "{body}");
    let record = stack.api.get("/v1/records/order/M1").await.unwrap();
    assert_eq!(record["attachments"], serde_json::json!([]), "{record}");
}
