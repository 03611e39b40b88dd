//! Hostile clients at the HTTP edge: thousands of half-open connections, headers that never
//! finish, bodies that stop arriving. Real sockets against the real server.

use crate::support::Stack;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or answers); how long that took.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Duration, Vec<u8>) {
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {limit:?}; it said {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    (started.elapsed(), answer)
}

/// 10,000 connections that send half a request header and then nothing: the API still
/// answers other clients, because at the connection limit the oldest idle connection makes
/// room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_do_not_lock_clients_out() {
    let stack = Stack::start_with(|c| c.max_connections = 512).await;
    let addr = stack.app.addr();
    let mut held = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        match TcpStream::connect(addr).await {
            Ok(mut s) => {
                // Some are closed by the server as later ones arrive; that is the point.
                let _ = s
                    .write_all(b"GET /health HTTP/1.1\r\nHost: ferry\r\n")
                    .await;
                held.push(s);
            }
            Err(e) => panic!("connection {i} refused by the kernel: {e}"),
        }
    }
    for attempt in 0..20 {
        let answered = tokio::time::timeout(
            Duration::from_secs(10),
            reqwest::Client::new()
                .get(format!("{}/health", stack.app.base_url()))
                .send(),
        )
        .await
        .unwrap_or_else(|_| {
            panic!("attempt {attempt}: no answer while 10,000 connections are held")
        })
        .expect("answer");
        assert_eq!(answered.status(), 200, "attempt {attempt}");
    }
    // Authenticated work goes on too.
    stack.api.get("/v1/status").await.expect("status answers");
    drop(held);
}

/// A client that never finishes its headers is disconnected after `header_timeout_secs`.
#[tokio::test]
async fn unfinished_headers_are_cut_off() {
    let stack = Stack::start_with(|c| c.header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(stack.app.addr()).await.unwrap();
    stream
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: ferry\r\nX-Slow: ")
        .await
        .unwrap();
    let (took, _) = until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // A connection that sends nothing at all goes the same way.
    let mut silent = TcpStream::connect(stack.app.addr()).await.unwrap();
    until_closed(&mut silent, Duration::from_secs(10)).await;
}

/// A body that stops arriving fails the request with a JSON error; nothing is stored.
#[tokio::test]
async fn a_stalled_body_fails_cleanly() {
    let stack = Stack::start_with(|c| c.body_idle_timeout_secs = 1).await;
    stack
        .api
        .put_json("/v1/records/ticket/S", &serde_json::json!({}))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(stack.app.addr()).await.unwrap();
    let request = format!(
        "PUT /v1/records/ticket/S/attachments/slow.bin HTTP/1.1\r\nHost: ferry\r\n\
         Authorization: Bearer {}\r\nContent-Length: 1000\r\n\r\nonly ten b",
        stack.app.api_key().expose()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (_, answer) = until_closed(&mut stream, Duration::from_secs(15)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("stopped arriving"), "{answer}");
    let record = stack.api.get("/v1/records/ticket/S").await.unwrap();
    assert_eq!(record["attachments"], serde_json::json!([]));
}

/// Shutdown waits for a pass stuck on Dropbox for the drain time only, then stops it and
/// releases its claim, so another process takes the record at once.
#[tokio::test]
async fn shutdown_is_bounded_by_the_drain_time() {
    let emu = crate::support::Emu::start().await;
    let stack = Stack::start_on(emu, |c| c.drain_secs = 1).await;
    stack
        .api
        .put_json(
            "/v1/rules/t",
            &serde_json::json!({"record_kind": "t", "connection": "dropbox", "folder": "T/{{ record.key }}"}),
        )
        .await
        .unwrap();
    // Every Dropbox call now takes a minute: the pass for the new record hangs.
    stack.emu.emulator.set_model(ferry_emulator::FaultModel {
        latency_ms: 60_000,
        ..ferry_emulator::FaultModel::off()
    });
    stack
        .api
        .put_json("/v1/records/t/stuck", &serde_json::json!({}))
        .await
        .unwrap();
    let engine = std::sync::Arc::clone(stack.app.engine());
    let record = engine.store().record("t", "stuck").await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine
        .store()
        .queue_entry(record.id)
        .await
        .unwrap()
        .and_then(|q| q.claimed_by)
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pass never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = tokio::time::Instant::now();
    stack.app.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
    let entry = engine
        .store()
        .queue_entry(record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.claimed_by, None, "the claim was released");
}
