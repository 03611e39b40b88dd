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

/// The app an installation connects with (Dropbox's app console: key, and the secret unless
/// it is a PKCE-only app).
#[derive(Debug, Clone)]
pub struct OAuthApp {
    /// The app key (`client_id`).
    pub app_key: String,
    /// The app secret (`None`: PKCE only).
    pub app_secret: Option<Secret>,
}

impl OAuthApp {
    /// Trades an authorization code (from the redirect) for a refresh token, proving the
    /// PKCE `verifier`. A refused code (used, expired, another app's) is
    /// [`DropboxError::Auth`].
    pub async fn exchange_code(
        &self,
        endpoints: &Endpoints,
        code: &str,
        verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<Refresh, DropboxError> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DropboxError::Config(format!("HTTP client: {e}")))?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", self.app_key.as_str()),
            ("code_verifier", verifier.expose()),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(secret) = &self.app_secret {
            form.push(("client_secret", secret.expose()));
        }
        let body = token_call(
            &http,
            endpoints,
            &form,
            "code exchange",
            &["invalid_grant", "invalid_client", "invalid_request"],
        )
        .await?;
        let refresh = body["refresh_token"].as_str().ok_or_else(|| {
            DropboxError::Other(
                "Dropbox gave no refresh token (was token_access_type=offline asked?)".into(),
            )
        })?;
        Ok(Refresh {
            refresh_token: Secret::new(refresh),
            app_key: self.app_key.clone(),
            app_secret: self.app_secret.clone(),
        })
    }
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
        let body = token_call(
            http,
            endpoints,
            &form,
            "refresh",
            &["invalid_grant", "invalid_client"],
        )
        .await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                DropboxError::Other("token endpoint answered without an access_token".into())
            })
    }
}

/// One call to `/oauth2/token`: its JSON on success. An error code in `refused` (with a 400
/// or 401) is [`DropboxError::Auth`]; only Dropbox's error code and description are kept,
/// never the tokens sent.
async fn token_call(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    form: &[(&str, &str)],
    what: &str,
    refused: &[&str],
) -> Result<serde_json::Value, DropboxError> {
    let url = endpoints.rewrite("https://api.dropboxapi.com/oauth2/token");
    let response = http
        .post(url)
        .form(form)
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
        return Ok(body);
    }
    let code = body["error"].as_str().unwrap_or("unknown_error");
    let description = body["error_description"].as_str().unwrap_or("");
    match (status.as_u16(), code) {
        (400 | 401, code) if refused.contains(&code) => Err(DropboxError::Auth(format!(
            "{what} refused: {code} {description}"
        ))),
        (s, _) if s >= 500 => Err(DropboxError::Server(format!("token endpoint: {code}"))),
        _ => Err(DropboxError::Other(format!(
            "token endpoint: {code} {description}"
        ))),
    }
}
