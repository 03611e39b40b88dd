//! Connecting a Dropbox account the way a person does: Ferry hands out an authorize link
//! (OAuth 2 authorization code flow with PKCE S256, `token_access_type=offline`), the person
//! approves the app on Dropbox's page, and Dropbox sends the browser back to Ferry's callback,
//! where the code is exchanged for a refresh token and the connection is stored like any other
//! (checked against Dropbox, token encrypted).
//!
//! A state is random, single use (the callback takes it from the store) and expires after
//! ten minutes; the PKCE verifier is stored encrypted with it.

use crate::team_members::ConnectOutcome;
use crate::{ConnectionInput, Credentials, Engine, EngineError, PathRootChoice};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferry_core::secret::Secret;
use ferry_dropbox::{AccountInfo, Endpoints, OAuthApp};
use ferry_store::OAuthState;
use rand::RngCore;
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;

/// How long an authorize link works.
pub const STATE_LIFETIME: Duration = Duration::from_secs(600);

/// The Dropbox app an installation connects with, and where Dropbox sends people back.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// App key and (optional) secret.
    pub app: OAuthApp,
    /// `<public base URL>/oauth/dropbox/callback`, registered in the app's settings.
    pub redirect_uri: String,
    /// What the app can reach (its permission type in the App Console).
    pub access: crate::connections::AppAccess,
}

/// What an admin asks to connect.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    /// The connection's name.
    pub name: String,
    /// Its root folder.
    pub root: String,
    /// Dropbox hosts.
    pub endpoints: Endpoints,
    /// Team member to act as (with a team app).
    pub select_user: Option<String>,
    /// Where the root is.
    pub path_root: PathRootChoice,
    /// The console session asking (SHA-256 of its token): the callback must come back in
    /// it. `None` for the API and CLI, where the single-use state alone is the credential.
    pub session_hash: Option<String>,
}

/// An authorize link handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectStarted {
    /// Where to send the person.
    pub authorize_url: String,
    /// When the link stops working, ms since the epoch.
    pub expires_at: i64,
}

/// Why a callback did not connect, in words for the person in front of the browser.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The person chose Deny (or Dropbox reported another error in the redirect).
    #[error("Dropbox did not grant access: {0}")]
    Declined(String),
    /// No such state: never handed out, already used, or a forged link.
    #[error("this connect link is unknown or was already used; start again from Ferry")]
    UnknownState,
    /// The state expired.
    #[error("this connect link expired; start again from Ferry")]
    Expired,
    /// A team app: the admin picks the member Ferry acts as, in the console, at
    /// `/console/connections/pick/{id}`.
    #[error("this is a team account: pick the team member Ferry acts as")]
    PickMember(String),
    /// Another account than the connection's: the admin confirms the switch, in the
    /// console, at `/console/connections/switch/{id}`.
    #[error("these credentials are for another Dropbox account: confirm the account switch")]
    ConfirmSwitch(String),
    /// The link was started from a console session other than the browser's.
    #[error(
        "this connect link was started in another browser or console session: sign in to Ferry's console in the browser you started from, and start again"
    )]
    OtherSession,
    /// Connecting through a browser is not configured.
    #[error(
        "connecting through Dropbox's page is not set up: the operator sets dropbox_app_key and public_url"
    )]
    NotConfigured,
    /// The exchange or the connection check failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

fn path_root_text(choice: &PathRootChoice) -> Option<String> {
    match choice {
        PathRootChoice::Home => None,
        PathRootChoice::Team => Some("team".into()),
        PathRootChoice::Namespace(ns) => Some(ns.clone()),
    }
}

impl Engine {
    /// Starts connecting `request.name`: checks what can be checked now (name, root, hosts)
    /// and returns the link to Dropbox's authorize page.
    pub async fn connect_start(
        &self,
        request: ConnectRequest,
    ) -> Result<ConnectStarted, ConnectError> {
        let settings = self
            .config
            .oauth
            .as_ref()
            .ok_or(ConnectError::NotConfigured)?;
        if request.name.trim().is_empty() {
            return Err(EngineError::Invalid("connection name must not be empty".into()).into());
        }
        crate::connections::validate_root(&request.root)?;
        crate::connections::allowed(&request.endpoints, self.config.custom_dropbox_hosts)?;
        let verifier = random_token(48);
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let state = random_token(24);
        let now = ferry_core::clock::now_ms();
        let expires_at = now + STATE_LIFETIME.as_millis() as i64;
        self.store
            .put_oauth_state(&OAuthState {
                state: state.clone(),
                connection: request.name.clone(),
                root: request.root.clone(),
                api_url: request.endpoints.api.clone(),
                content_url: request.endpoints.content.clone(),
                notify_url: request.endpoints.notify.clone(),
                select_user: request.select_user.clone(),
                path_root: path_root_text(&request.path_root),
                verifier_ciphertext: self
                    .connections
                    .cipher
                    .encrypt(&Secret::new(verifier))
                    .map_err(EngineError::from)?,
                created_at: now,
                expires_at,
                session_hash: request.session_hash.clone(),
            })
            .await
            .map_err(EngineError::from)?;
        let mut url = reqwest::Url::parse(&request.endpoints.authorize_url())
            .map_err(|e| EngineError::Invalid(format!("authorize URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.app.app_key)
            .append_pair("redirect_uri", &settings.redirect_uri)
            .append_pair("token_access_type", "offline")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        Ok(ConnectStarted {
            authorize_url: url.to_string(),
            expires_at,
        })
    }

    /// Finishes a connect flow from Dropbox's redirect: takes the state (once), exchanges the
    /// code with the PKCE verifier, and stores the connection. Returns its name, root and the
    /// account. `session_hash` is the console session the browser presents, if any: a link
    /// started from the console works only in that session.
    pub async fn connect_finish(
        self: &Arc<Self>,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
        session_hash: Option<&str>,
    ) -> Result<(String, String, AccountInfo), ConnectError> {
        let settings = self
            .config
            .oauth
            .clone()
            .ok_or(ConnectError::NotConfigured)?;
        // A state is used up by any answer, a refusal included.
        let stored = self
            .store
            .take_oauth_state(state)
            .await
            .map_err(EngineError::from)?
            .ok_or(ConnectError::UnknownState)?;
        if stored.expires_at < ferry_core::clock::now_ms() {
            return Err(ConnectError::Expired);
        }
        if let Some(started_in) = &stored.session_hash
            && session_hash != Some(started_in.as_str())
        {
            return Err(ConnectError::OtherSession);
        }
        if let Some(error) = error {
            return Err(ConnectError::Declined(match error {
                "access_denied" => "the request was declined on Dropbox's page".into(),
                other => format!("Dropbox answered {other:?}"),
            }));
        }
        let code = code.ok_or_else(|| ConnectError::Declined("no code in the redirect".into()))?;
        let endpoints = Endpoints::new(&stored.api_url, &stored.content_url, &stored.notify_url)
            .map_err(EngineError::from)?;
        let verifier = self
            .connections
            .cipher
            .decrypt(&stored.verifier_ciphertext)
            .map_err(EngineError::from)?;
        let refresh = settings
            .app
            .exchange_code(&endpoints, code, &verifier, &settings.redirect_uri)
            .await
            .map_err(|e| match e {
                ferry_dropbox::DropboxError::Auth(detail) => {
                    tracing::warn!(%detail, "Dropbox refused the authorization code");
                    ConnectError::Declined(
                        "Dropbox refused the authorization code (expired, used, or for another app)"
                            .into(),
                    )
                }
                other => ConnectError::Engine(other.into()),
            })?;
        let path_root = match stored.path_root.as_deref() {
            Some(text) => PathRootChoice::parse(text)?,
            None => PathRootChoice::Home,
        };
        let outcome = self
            .connect_or_pick(
                ConnectionInput {
                    name: stored.connection.clone(),
                    credentials: Credentials::Refresh(refresh),
                    root: stored.root.clone(),
                    endpoints,
                    select_user: stored.select_user.clone(),
                    path_root,
                    app_access: None,
                },
                stored.session_hash.as_deref(),
            )
            .await?;
        match outcome {
            ConnectOutcome::Connected(account) => Ok((stored.connection, stored.root, account)),
            ConnectOutcome::PickMember(id) => Err(ConnectError::PickMember(id)),
            ConnectOutcome::ConfirmSwitch(id) => Err(ConnectError::ConfirmSwitch(id)),
        }
    }
}
