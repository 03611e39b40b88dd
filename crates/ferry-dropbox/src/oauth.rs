//! OAuth 2 refresh: trading a long-lived refresh token for short-lived access tokens.

use crate::{DropboxError, Endpoints};
use ferry_core::secret::Secret;

/// A refresh token and the app it belongs to.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// The refresh token (never logged).
    pub refresh_token: Secret,
    /// The app key (`client_id`).
    pub app_key: String,
    /// The app secret; `None` for PKCE apps.
    pub app_secret: Option<Secret>,
}

impl Refresh {
    /// Asks `/oauth2/token` for a fresh access token. A refused refresh token (revoked,
    /// `invalid_grant`) is [`DropboxError::Auth`]: the connection must be reconnected.
    pub(crate) async fn access_token(
        &self,
        http: &reqwest::Client,
        endpoints: &Endpoints,
    ) -> Result<String, DropboxError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.expose()),
            ("client_id", self.app_key.as_str()),
        ];
        if let Some(secret) = &self.app_secret {
            form.push(("client_secret", secret.expose()));
        }
        let url = endpoints.rewrite("https://api.dropboxapi.com/oauth2/token");
        let response = http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| DropboxError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| {
            DropboxError::Other(format!(
                "token endpoint answered something else than JSON: {}",
                e.without_url()
            ))
        })?;
        if status.is_success() {
            return body["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| {
                    DropboxError::Other("token endpoint answered without an access_token".into())
                });
        }
        // Only the error code and Dropbox's description; never the tokens we sent.
        let code = body["error"].as_str().unwrap_or("unknown_error");
        let description = body["error_description"].as_str().unwrap_or("");
        match (status.as_u16(), code) {
            (400 | 401, "invalid_grant" | "invalid_client") => Err(DropboxError::Auth(format!(
                "refresh refused: {code} {description}"
            ))),
            (s, _) if s >= 500 => Err(DropboxError::Server(format!("token endpoint: {code}"))),
            _ => Err(DropboxError::Other(format!(
                "token endpoint: {code} {description}"
            ))),
        }
    }
}
