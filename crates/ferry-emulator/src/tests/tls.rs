//! HTTPS with the generated self-signed certificate.

use reqwest::StatusCode;
use serde_json::json;

use crate::{EmulatorConfig, RunningEmulator};

#[tokio::test]
async fn serves_https_with_a_stable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(dir.path());
    config.tls = true;
    let emulator = RunningEmulator::start(config.clone()).await.unwrap();
    assert!(emulator.base_url().starts_with("https://"));
    let cert_path = emulator.cert_path().unwrap().to_path_buf();
    let pem = std::fs::read(&cert_path).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    // The certificate names localhost as well as the IP.
    let url = format!(
        "https://localhost:{}/2/files/get_temporary_link",
        emulator.addr().port()
    );
    let upload = client
        .post(format!("{}/2/files/upload", emulator.base_url()))
        .bearer_auth(emulator.token())
        .header("Content-Type", "application/octet-stream")
        .header("Dropbox-API-Arg", json!({"path": "/t.txt"}).to_string())
        .body("secure")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), StatusCode::OK);
    let link: serde_json::Value = client
        .post(url)
        .bearer_auth(emulator.token())
        .json(&json!({"path": "/t.txt"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = link["link"].as_str().unwrap();
    assert!(link.starts_with("https://localhost:"), "{link}");
    let body = client.get(link).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "secure");
    // Plain HTTP clients do not get through.
    let plain = reqwest::get(format!(
        "http://{}/2/users/get_space_usage",
        emulator.addr()
    ))
    .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
    emulator.shutdown().await;
    // A restart reuses the certificate.
    let again = RunningEmulator::start(config).await.unwrap();
    assert_eq!(std::fs::read(again.cert_path().unwrap()).unwrap(), pem);
}
