//! The transport under `dropbox-sdk`: reqwest, any base URL, and the `Retry-After` header that
//! the SDK itself ignores.

use crate::Endpoints;
use bytes::Bytes;
use dropbox_sdk::async_client_trait::{
    HttpClient, HttpRequest, HttpRequestResultRaw, NoauthClient, UserAuthClient,
};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shared transport state: one connection pool per client.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    /// For long-poll only: waits up to 480 s plus Dropbox's jitter.
    pub(crate) http_long: reqwest::Client,
    pub(crate) endpoints: Endpoints,
    pub(crate) token: std::sync::RwLock<Arc<String>>,
    /// Set for OAuth connections: how to get a new access token when one expires.
    pub(crate) refresh: Option<crate::oauth::Refresh>,
    pub(crate) injector: Option<Arc<dyn crate::FaultInjector>>,
    pub(crate) observer: Option<Arc<dyn crate::CallObserver>>,
    /// `Dropbox-API-Select-User`: the team member a team token acts as.
    pub(crate) team_select: Option<dropbox_sdk::async_client_trait::TeamSelect>,
    /// `Dropbox-API-Path-Root` (a serialised `PathRoot`): the namespace paths start from.
    pub(crate) path_root: Option<String>,
    /// The account's pace (`pacing.rs`), if any.
    pub(crate) pacer: Option<Arc<crate::Pacer>>,
    /// Set in the simulation: every exchange runs in lockstep (`lockstep.rs`).
    pub(crate) lockstep: Option<crate::Lockstep>,
}

impl Transport {
    /// Replaces the expired access token `old` with a fresh one from the refresh token —
    /// once per expired token, however many calls noticed. False without a refresh token.
    pub(crate) async fn refresh_access_token(
        &self,
        old: &str,
    ) -> Result<bool, crate::DropboxError> {
        let Some(refresh) = &self.refresh else {
            return Ok(false);
        };
        if self.current_token().as_str() != old {
            return Ok(true);
        }
        let fresh = crate::Lockstep::maybe(
            self.lockstep.as_ref(),
            refresh.access_token(&self.http, &self.endpoints),
        )
        .await?;
        *self
            .token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(true)
    }

    pub(crate) fn current_token(&self) -> Arc<String> {
        Arc::clone(
            &self
                .token
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// One call's view of the transport. A fresh one per call lets us report that call's own
/// `Retry-After` header.
pub(crate) struct FerryHttpClient {
    transport: Arc<Transport>,
    retry_after_secs: AtomicU64,
    /// False for `list_folder/longpoll`, which must be sent without a token.
    authenticated: bool,
}

impl FerryHttpClient {
    pub(crate) fn new(transport: Arc<Transport>) -> Self {
        FerryHttpClient {
            transport,
            retry_after_secs: AtomicU64::new(0),
            authenticated: true,
        }
    }

    /// A client that sends no token (Dropbox answers 400 if long-poll carries one).
    pub(crate) fn noauth(transport: Arc<Transport>) -> Self {
        FerryHttpClient {
            authenticated: false,
            ..FerryHttpClient::new(transport)
        }
    }

    /// `Retry-After` of the last response, in seconds (0 if none).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.retry_after_secs.load(Ordering::Relaxed)
    }

    /// Sends `request` (paced) and reads the answer's status and headers; the body is handed
    /// on as it streams in.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        injected: crate::Injected,
        observe: &(dyn Fn(Option<u16>, Option<u64>, Option<u64>) + Sync),
    ) -> Result<HttpRequestResultRaw, dropbox_sdk::Error> {
        let pacer = self.transport.pacer.as_ref().filter(|_| self.authenticated);
        if let Some(pacer) = pacer {
            pacer.ready().await;
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                observe(None, None, None);
                return Err(dropbox_sdk::Error::HttpClient(Box::new(e.without_url())));
            }
        };
        if injected == crate::Injected::DropAfterApply {
            let _ = response.bytes().await;
            return Err(dropbox_sdk::Error::HttpClient(Box::new(
                std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection dropped after the request was applied (injected)",
                ),
            )));
        }
        let status = response.status().as_u16();
        let headers = response.headers();
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(secs) = retry_after {
            self.retry_after_secs.store(secs, Ordering::Relaxed);
        }
        observe(Some(status), retry_after, response.content_length());
        let result_header = match headers.get("Dropbox-API-Result") {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| {
                        dropbox_sdk::Error::UnexpectedResponse(
                            "invalid Dropbox-API-Result header".into(),
                        )
                    })?
                    .to_owned(),
            ),
            None => None,
        };
        if status == 429
            && let Some(pacer) = pacer
        {
            // The reason tells a rate limit from write contention: read the (small) body,
            // then hand it on as it came.
            let body = read_capped(response, MAX_ERROR_BODY).await;
            let rate = !String::from_utf8_lossy(&body).contains("too_many_write_operations");
            pacer.rate_limited(rate, retry_after.map(std::time::Duration::from_secs));
            return Ok(HttpRequestResultRaw {
                status,
                result_header,
                content_length: Some(body.len() as u64),
                body: Box::new(futures::io::Cursor::new(body)),
            });
        }
        let content_length = response.content_length();
        let body = response
            .bytes_stream()
            .map_err(std::io::Error::other)
            .into_async_read();
        Ok(HttpRequestResultRaw {
            status,
            result_header,
            content_length,
            body: Box::new(body),
        })
    }
}

/// The most of an error answer's body read to classify it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Up to `cap` bytes of a response's body (the rest is dropped; a broken body gives what
/// came before the break).
async fn read_capped(response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}

fn canned(status: u16, body: &'static str) -> HttpRequestResultRaw {
    HttpRequestResultRaw {
        status,
        result_header: None,
        content_length: Some(body.len() as u64),
        body: Box::new(futures::io::Cursor::new(body.as_bytes())),
    }
}

/// A request under construction.
pub(crate) struct FerryRequest {
    builder: reqwest::RequestBuilder,
    /// The API route (`files/upload`), for fault injection and metrics.
    route: String,
}

impl HttpRequest for FerryRequest {
    fn set_header(self, name: &str, value: &str) -> Self {
        FerryRequest {
            builder: self.builder.header(name, value),
            route: self.route,
        }
    }
}

/// The route of a Dropbox API URL: its path without the version prefix.
fn route_of(url: &str) -> String {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split_once('/')
        .map_or("", |(_, path)| path);
    path.split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_start_matches("2/")
        .to_owned()
}

impl HttpClient for FerryHttpClient {
    type Request = FerryRequest;

    async fn execute(
        &self,
        request: Self::Request,
        body: Bytes,
    ) -> Result<HttpRequestResultRaw, dropbox_sdk::Error> {
        let route = request.route;
        let bytes_sent = body.len() as u64;
        let request = if body.is_empty() {
            request.builder
        } else {
            request.builder.body(body)
        };
        let injected = match &self.transport.injector {
            Some(injector) => injector.decide(&route),
            None => crate::Injected::Nothing,
        };
        let started = std::time::Instant::now();
        let observe =
            |status: Option<u16>, retry_after_secs: Option<u64>, bytes_received: Option<u64>| {
                if let Some(observer) = &self.transport.observer {
                    observer.observe(&crate::ObservedCall {
                        route: &route,
                        status,
                        retry_after_secs,
                        bytes_sent,
                        bytes_received,
                        elapsed: started.elapsed(),
                    });
                }
            };
        match injected {
            crate::Injected::Nothing | crate::Injected::DropAfterApply => {}
            crate::Injected::ServerError => return Ok(canned(503, "injected server error")),
            crate::Injected::RateLimited => {
                return Ok(canned(
                    429,
                    r#"{"error_summary": "too_many_write_operations/", "error": {"reason": {".tag": "too_many_write_operations"}, "retry_after": 0}}"#,
                ));
            }
            crate::Injected::Hang => std::future::pending::<()>().await,
            crate::Injected::CursorReset => {
                return Ok(canned(
                    409,
                    r#"{"error_summary": "reset/..", "error": {".tag": "reset"}}"#,
                ));
            }
            crate::Injected::TokenExpired => {
                return Ok(canned(
                    401,
                    r#"{"error_summary": "expired_access_token/", "error": {".tag": "expired_access_token"}}"#,
                ));
            }
        }
        let exchange = self.exchange(request, injected, &observe);
        match &self.transport.lockstep {
            None => exchange.await,
            // The body is read whole inside the lockstep call: reading it later would be I/O
            // the caller's runtime waits for.
            Some(lockstep) => lockstep.run(async {
                let mut answer = exchange.await?;
                let mut body = Vec::new();
                futures::AsyncReadExt::read_to_end(&mut answer.body, &mut body)
                    .await
                    .map_err(|e| dropbox_sdk::Error::HttpClient(Box::new(e)))?;
                answer.content_length = Some(body.len() as u64);
                answer.body = Box::new(futures::io::Cursor::new(body));
                Ok(answer)
            }),
        }
    }
    fn new_request(&self, url: &str) -> Self::Request {
        let url = self.transport.endpoints.rewrite(url);
        let http = if self.authenticated {
            &self.transport.http
        } else {
            &self.transport.http_long
        };
        FerryRequest {
            route: route_of(&url),
            builder: http.post(url),
        }
    }

    // Long-poll carries neither: it is unauthenticated, and its cursor already names the
    // namespace.
    fn path_root(&self) -> Option<&str> {
        self.transport
            .path_root
            .as_deref()
            .filter(|_| self.authenticated)
    }

    fn team_select(&self) -> Option<&dropbox_sdk::async_client_trait::TeamSelect> {
        self.transport
            .team_select
            .as_ref()
            .filter(|_| self.authenticated)
    }

    fn token(&self) -> Option<Arc<String>> {
        self.authenticated.then(|| self.transport.current_token())
    }

    /// Called by the SDK when Dropbox says the access token expired: refresh it (once per
    /// expired token, however many calls noticed) and let the SDK retry.
    async fn update_token(&self, old_token: Arc<String>) -> Result<bool, dropbox_sdk::Error> {
        self.transport
            .refresh_access_token(&old_token)
            .await
            .map_err(|e| match e {
                crate::DropboxError::Auth(_) => dropbox_sdk::Error::Authentication(
                    dropbox_sdk::auth::AuthError::InvalidAccessToken,
                ),
                other => dropbox_sdk::Error::HttpClient(Box::new(std::io::Error::other(
                    other.to_string(),
                ))),
            })
    }
}

impl UserAuthClient for FerryHttpClient {}
impl NoauthClient for FerryHttpClient {}

#[cfg(test)]
mod tests {
    /// Metrics and fault injection see the route, whatever the host or query.
    #[test]
    fn routes_are_paths_without_the_version() {
        assert_eq!(
            super::route_of("https://content.dropboxapi.com/2/files/upload_session/append_v2"),
            "files/upload_session/append_v2"
        );
        assert_eq!(
            super::route_of("http://127.0.0.1:8090/2/users/get_current_account?x=1"),
            "users/get_current_account"
        );
        assert_eq!(
            super::route_of("https://api.dropboxapi.com/oauth2/token"),
            "oauth2/token"
        );
    }
}
