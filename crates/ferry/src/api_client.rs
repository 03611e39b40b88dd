//! A small Rust client for Ferry's own REST API (used by the demo and the tests; integrators
//! can use it too).

use anyhow::{Context, bail};
use ferry_core::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Talks to one Ferry instance with one API key.
#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl ApiClient {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>, key: Secret) -> Self {
        ApiClient {
            http: reqwest::Client::new(),
            base: base.into(),
            key,
        }
    }

    /// The base URL it talks to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns the status and the JSON body (`Null` if not JSON).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.key.expose());
        if let Some((bytes, content_type)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("{method} {path}: reading body"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.raw(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!("{method} {path} failed with {status}: {value}");
        }
        Ok(value)
    }

    /// `PUT` a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.ok(
            Method::PUT,
            path,
            Some((body.to_string().into_bytes(), "application/json")),
        )
        .await
    }

    /// `PUT` raw bytes (an attachment).
    pub async fn put_bytes(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        self.ok(Method::PUT, path, Some((bytes, "application/octet-stream")))
            .await
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.ok(Method::GET, path, None).await
    }

    /// `POST` without a body.
    pub async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.ok(Method::POST, path, None).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.ok(Method::DELETE, path, None).await
    }

    /// `POST` a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.ok(
            Method::POST,
            path,
            Some((body.to_string().into_bytes(), "application/json")),
        )
        .await
    }

    /// `GET` whose answer is read as it arrives (exports, downloads); fails on an error status
    /// with Ferry's error message.
    pub async fn get_streaming(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key.expose())
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            bail!("GET {path} failed with {status}: {body}");
        }
        Ok(response)
    }
}
