//! Dropbox connections: stored with an encrypted token, turned into clients on demand.

use crate::{Engine, EngineError};
use ferry_core::secret::Secret;
use ferry_dropbox::{AccountInfo, DropboxClient, DropboxError, Endpoints, Refresh};
use ferry_store::{SecretCipher, Store, StoredConnection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How Ferry authenticates to a Dropbox account.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A long-lived (or pasted) access token.
    Token(Secret),
    /// An OAuth refresh token: access tokens are refreshed when they expire.
    Refresh(Refresh),
}

/// What an admin gives to connect a Dropbox account.
#[derive(Debug, Clone)]
pub struct ConnectionInput {
    /// Name rules refer to.
    pub name: String,
    /// Token or refresh token.
    pub credentials: Credentials,
    /// Folder the rules' paths are under (`""` for the account root, else `/Folder`).
    pub root: String,
    /// Dropbox hosts (the real ones, or an emulator).
    pub endpoints: Endpoints,
    /// For a team token: the member Ferry acts as (`dbmid:…`).
    pub select_user: Option<String>,
    /// Where the root folder is: the member's home (default) or the team space.
    pub path_root: PathRootChoice,
    /// What the app behind the credentials can reach, if the caller knows; credentials from
    /// the configured OAuth app take the operator's setting.
    pub app_access: Option<AppAccess>,
}

/// What a connection's Dropbox app can reach. Dropbox's API does not say (an app-folder
/// app simply sees its folder as the root), so Ferry keeps what the admin or the operator's
/// app configuration told it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AppAccess {
    /// The whole Dropbox of the account (or of the team member).
    FullDropbox,
    /// Only the app's own folder, `Apps/<app name>`; `""` is that folder.
    AppFolder,
}

impl AppAccess {
    /// Reads `full_dropbox` or `app_folder`.
    pub fn parse(text: &str) -> Result<Self, EngineError> {
        match text {
            "full_dropbox" => Ok(AppAccess::FullDropbox),
            "app_folder" => Ok(AppAccess::AppFolder),
            other => Err(EngineError::Invalid(format!(
                "app_access must be \"full_dropbox\" or \"app_folder\", not {other:?}"
            ))),
        }
    }

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AppAccess::FullDropbox => "full_dropbox",
            AppAccess::AppFolder => "app_folder",
        }
    }
}

/// Where a connection's paths start, as an admin chooses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PathRootChoice {
    /// The account's (or team member's) own folder.
    #[default]
    Home,
    /// The team space: everything the member sees from the team's root namespace (team
    /// folders included).
    Team,
    /// One namespace by id (a team folder or a shared folder the account can reach).
    Namespace(String),
}

impl PathRootChoice {
    /// Reads `home`, `team` or a namespace id (digits).
    pub fn parse(text: &str) -> Result<Self, EngineError> {
        match text {
            "" | "home" => Ok(PathRootChoice::Home),
            "team" => Ok(PathRootChoice::Team),
            ns if !ns.is_empty() && ns.len() <= 20 && ns.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(PathRootChoice::Namespace(ns.to_owned()))
            }
            other => Err(EngineError::Invalid(format!(
                "path_root must be \"home\", \"team\" or a namespace id (digits), not {other:?}"
            ))),
        }
    }
}

impl PathRootChoice {
    /// As [`PathRootChoice::parse`] reads it.
    pub fn as_text(&self) -> String {
        match self {
            PathRootChoice::Home => "home".into(),
            PathRootChoice::Team => "team".into(),
            PathRootChoice::Namespace(ns) => ns.clone(),
        }
    }
}

/// Checks a `select_user` value's shape (`dbmid:` and a short id).
fn validate_select_user(id: &str) -> Result<(), EngineError> {
    let ok = id.strip_prefix("dbmid:").is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 128
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "select_user must be a team member id such as \"dbmid:AAB…\", not {id:?}"
        )))
    }
}

pub(crate) struct Connections {
    store: Arc<dyn Store>,
    pub(crate) cipher: SecretCipher,
    chunk_size: usize,
    attempts: u32,
    custom_hosts: bool,
    injector: Option<Arc<dyn ferry_dropbox::FaultInjector>>,
    /// Set in the simulation: clients run their requests in lockstep.
    pub(crate) lockstep: Option<ferry_dropbox::Lockstep>,
    observer: Arc<dyn ferry_dropbox::CallObserver>,
    /// Built clients with the stored row they were built from: a row another process (or
    /// this one) changed since — a new root, token or member — builds a new client.
    clients: Mutex<HashMap<String, (StoredConnection, DropboxClient)>>,
    /// Requests per second per connection (`None`: unpaced).
    pace: Option<std::num::NonZeroU32>,
    /// Each connection's pace, kept across the clients built for it.
    pacers: Mutex<HashMap<String, Arc<ferry_dropbox::Pacer>>>,
}

/// Refuses endpoints other than Dropbox's own unless the operator allowed them.
pub(crate) fn allowed(endpoints: &Endpoints, custom_hosts: bool) -> Result<(), EngineError> {
    if endpoints.is_dropbox() || custom_hosts {
        return Ok(());
    }
    Err(EngineError::Invalid(format!(
        "Dropbox hosts other than Dropbox's own ({}) are not allowed on this installation; the operator can allow them with custom_dropbox_hosts = true",
        endpoints.api
    )))
}

impl Connections {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        cipher: SecretCipher,
        config: &crate::EngineConfig,
        observer: Arc<dyn ferry_dropbox::CallObserver>,
    ) -> Self {
        Connections {
            observer,
            store,
            cipher,
            chunk_size: config.chunk_size,
            attempts: config.client_attempts,
            custom_hosts: config.custom_dropbox_hosts,
            injector: config.injector.clone(),
            lockstep: config.lockstep.clone(),
            clients: Mutex::new(HashMap::new()),
            pace: std::num::NonZeroU32::new(config.dropbox_requests_per_second),
            pacers: Mutex::new(HashMap::new()),
        }
    }

    /// A client and root folder for a stored connection (cached until the connection changes).
    pub(crate) async fn client(&self, name: &str) -> Result<(DropboxClient, String), EngineError> {
        // The row is read every time: with several processes on one database, a root moved
        // or a reconnect made through another process must reach this one's next pass.
        let stored = self
            .store
            .connection(name)
            .await?
            .ok_or_else(|| EngineError::UnknownConnection(name.to_owned()))?;
        if let Some(reason) = stored.needs_reconnect {
            return Err(EngineError::NeedsReconnect(name.to_owned(), reason));
        }
        if let Some((built_from, client)) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            && *built_from == stored
        {
            return Ok((client.clone(), stored.root));
        }
        let endpoints = Endpoints::new(&stored.api_url, &stored.content_url, &stored.notify_url)?;
        allowed(&endpoints, self.custom_hosts)?;
        let credentials = match (&stored.refresh_ciphertext, &stored.app_key) {
            (Some(refresh), Some(app_key)) => Credentials::Refresh(Refresh {
                refresh_token: self.cipher.decrypt(refresh)?,
                app_key: app_key.clone(),
                app_secret: match &stored.app_secret_ciphertext {
                    Some(secret) => Some(self.cipher.decrypt(secret)?),
                    None => None,
                },
            }),
            _ => Credentials::Token(self.cipher.decrypt(&stored.token_ciphertext)?),
        };
        let path_root = stored
            .path_root
            .as_deref()
            .and_then(ferry_dropbox::PathRoot::from_stored);
        let mut client = build_client(endpoints, &credentials, self.lockstep.as_ref())
            .await?
            .acting_as(stored.select_user.as_deref(), path_root.as_ref())
            .with_chunk_size(self.chunk_size)
            .with_max_attempts(self.attempts)
            .with_observer(Arc::clone(&self.observer));
        if let Some(injector) = &self.injector {
            client = client.with_injector(Arc::clone(injector));
        }
        if let Some(pace) = self.pace {
            let pacer = Arc::clone(
                self.pacers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(name.to_owned())
                    .or_insert_with(|| Arc::new(ferry_dropbox::Pacer::new(pace))),
            );
            client = client.with_pacer(pacer);
        }
        let root = stored.root.clone();
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), (stored, client.clone()));
        Ok((client, root))
    }

    fn forget(&self, name: &str) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }
}

/// A client for `credentials` (an OAuth one gets its first access token now), in
/// `lockstep` when that is set.
pub(crate) async fn build_client(
    endpoints: Endpoints,
    credentials: &Credentials,
    lockstep: Option<&ferry_dropbox::Lockstep>,
) -> Result<DropboxClient, DropboxError> {
    let client = match credentials {
        Credentials::Token(token) => DropboxClient::new(endpoints, token)?,
        Credentials::Refresh(refresh) => {
            ferry_dropbox::Lockstep::maybe(
                lockstep,
                DropboxClient::with_refresh(endpoints, refresh.clone()),
            )
            .await?
        }
    };
    Ok(match lockstep {
        Some(lockstep) => client.with_lockstep(lockstep.clone()),
        None => client,
    })
}

/// Dropbox's refusal of a root folder in Ferry's words.
fn root_refused(root: &str, e: DropboxError) -> EngineError {
    let why = match &e {
        DropboxError::Conflict(_) => "a file, not a folder, is at that path",
        DropboxError::BadPath(_) => "Dropbox does not accept that folder name",
        DropboxError::InsufficientSpace => "the Dropbox account is full",
        DropboxError::BadRequest(d) if d.starts_with("path root") => {
            return EngineError::Invalid(format!(
                "Dropbox refused path_root ({}): the account cannot reach that namespace",
                d.trim_start_matches("path root ")
            ));
        }
        _ => return EngineError::Dropbox(e),
    };
    EngineError::Invalid(format!("Dropbox refused the root folder {root:?}: {why}"))
}

/// Checks a connection root: `""` or `/A/B` with no empty, `.` or `..` parts and no trailing
/// slash or whitespace.
pub(crate) fn validate_root(root: &str) -> Result<(), EngineError> {
    if root.is_empty() {
        return Ok(());
    }
    let bad = |why: &str| Err(EngineError::Invalid(format!("root {root:?} {why}")));
    if !root.starts_with('/') {
        return bad("must start with '/' (or be empty for the whole Dropbox)");
    }
    if root.ends_with('/') || root.ends_with(char::is_whitespace) {
        return bad("must not end with '/' or whitespace");
    }
    for part in root[1..].split('/') {
        if part.is_empty() || part == "." || part == ".." || part.chars().any(char::is_control) {
            return bad("has an empty, '.', '..' or control-character component");
        }
    }
    Ok(())
}

impl Engine {
    /// Checks the token against Dropbox, then stores the connection with its token encrypted.
    /// Records of every rule on this connection are queued, since their target changed.
    pub async fn put_connection(
        self: &Arc<Self>,
        input: ConnectionInput,
    ) -> Result<AccountInfo, EngineError> {
        if input.name.trim().is_empty() {
            return Err(EngineError::Invalid(
                "connection name must not be empty".into(),
            ));
        }
        validate_root(&input.root)?;
        allowed(&input.endpoints, self.connections.custom_hosts)?;
        if let Some(id) = &input.select_user {
            validate_select_user(id)?;
        }
        let base = build_client(
            input.endpoints.clone(),
            &input.credentials,
            self.connections.lockstep.as_ref(),
        )
        .await?
        .with_observer(Arc::clone(&self.connections.observer));
        let member = input.select_user.as_deref();
        let account = base
            .clone()
            .acting_as(member, None)
            .current_account()
            .await
            .map_err(|e| match e {
            // Dropbox's 400 for a token that is not one account's: say so in our words.
            DropboxError::BadRequest(detail) if detail.contains("Dropbox Business team") => {
                EngineError::TeamMemberNeeded
            }
            DropboxError::Auth(detail) if member.is_some() && detail.contains("Select-User") => {
                EngineError::Invalid(format!(
                    "Dropbox says team member {:?} (select_user) is not on this token's team",
                    member.unwrap_or_default()
                ))
            }
            DropboxError::BadRequest(detail) => {
                tracing::warn!(%detail, "Dropbox refused the account check");
                EngineError::Invalid(
                    "Dropbox refused to check these credentials as one account's (details are in Ferry's log)".into(),
                )
            }
            other => other.into(),
        })?;
        if let Some(id) = member
            && account.team_member_id.as_deref() != Some(id)
        {
            return Err(EngineError::Invalid(
                "select_user is for team tokens, and this token is one account's: leave it out"
                    .into(),
            ));
        }
        let path_root = match &input.path_root {
            PathRootChoice::Home => ferry_dropbox::PathRoot::Home,
            PathRootChoice::Team
                if account.root_namespace_id.is_empty()
                    || account.root_namespace_id == account.home_namespace_id =>
            {
                return Err(EngineError::Invalid(
                    "this account has no team space (its root is its own folder): use path_root \"home\"".into(),
                ));
            }
            PathRootChoice::Team => {
                ferry_dropbox::PathRoot::Root(account.root_namespace_id.clone())
            }
            PathRootChoice::Namespace(ns) => ferry_dropbox::PathRoot::Namespace(ns.clone()),
        };
        let client = base.acting_as(member, Some(&path_root));
        crate::watcher::ensure_folder(&client, &input.root)
            .await
            .map_err(|e| root_refused(&input.root, e))?;
        let previous = self.store.connection(&input.name).await?;
        let app_access = self.app_access_of(&input, previous.as_ref(), &account.account_id);
        let stored = StoredConnection {
            name: input.name.clone(),
            api_url: input.endpoints.api.clone(),
            content_url: input.endpoints.content.clone(),
            notify_url: input.endpoints.notify.clone(),
            root: input.root,
            token_ciphertext: match &input.credentials {
                Credentials::Token(token) => self.connections.cipher.encrypt(token)?,
                Credentials::Refresh(_) => Vec::new(),
            },
            refresh_ciphertext: match &input.credentials {
                Credentials::Refresh(r) => Some(self.connections.cipher.encrypt(&r.refresh_token)?),
                Credentials::Token(_) => None,
            },
            app_key: match &input.credentials {
                Credentials::Refresh(r) => Some(r.app_key.clone()),
                Credentials::Token(_) => None,
            },
            app_secret_ciphertext: match &input.credentials {
                Credentials::Refresh(Refresh {
                    app_secret: Some(secret),
                    ..
                }) => Some(self.connections.cipher.encrypt(secret)?),
                _ => None,
            },
            needs_reconnect: None,
            disconnecting: false,
            select_user: input.select_user.clone(),
            path_root: path_root.to_stored(),
            account: Some(ferry_store::ConnectionAccount {
                id: account.account_id.clone(),
                name: account.display_name.clone(),
                email: account.email.clone(),
            }),
            app_access: app_access.map(|a| a.as_str().to_owned()),
        };
        if let Some(before) = previous.as_ref().and_then(|c| c.account.as_ref())
            && before.id != account.account_id
        {
            // Another account would see none of the files Ferry put in this one, and its
            // edits there would go unnoticed: bring them back first (disconnect).
            return Err(EngineError::AccountSwitch {
                connection: input.name.clone(),
                before: format!("{} <{}>", before.name, before.email),
                after: format!("{} <{}>", account.display_name, account.email),
            });
        }
        let existed = previous.is_some();
        // A new account or root: its change feed starts from now, and its rules' records are
        // queued, with the connection itself. The cached client goes before and after, so no
        // pass picks up the old one in between.
        self.connections.forget(&input.name);
        self.store.put_connection(&stored).await?;
        self.connections.forget(&input.name);
        let shutdown = self
            .watch_shutdown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let (false, Some(shutdown)) = (existed, shutdown) {
            // Detached: it ends with its connection or at shutdown.
            drop(self.spawn_watcher(input.name.clone(), shutdown));
        }
        self.wake();
        Ok(account)
    }

    /// What the app behind `input`'s credentials reaches: as the caller said, else the
    /// configured OAuth app's setting when the credentials are that app's, else what was
    /// known when the same account (`account_id`) was connected before.
    fn app_access_of(
        &self,
        input: &ConnectionInput,
        previous: Option<&StoredConnection>,
        account_id: &str,
    ) -> Option<AppAccess> {
        input
            .app_access
            .or_else(|| match (&input.credentials, &self.config.oauth) {
                (Credentials::Refresh(r), Some(oauth)) if r.app_key == oauth.app.app_key => {
                    Some(oauth.access)
                }
                _ => None,
            })
            .or_else(|| {
                previous
                    .filter(|p| p.account.as_ref().is_some_and(|a| a.id == account_id))
                    .and_then(|p| p.app_access.as_deref())
                    .and_then(|a| AppAccess::parse(a).ok())
            })
    }

    /// Dropbox refused the connection's token: mark it, log the event, stop using it until an
    /// admin reconnects (`put_connection`). Queued work waits; nothing is dropped.
    pub async fn mark_needs_reconnect(&self, name: &str, reason: &str) -> Result<(), EngineError> {
        tracing::error!(connection = %name, %reason, "Dropbox refused the token; connection needs a reconnect");
        self.store.set_needs_reconnect(name, Some(reason)).await?;
        self.connections.forget(name);
        self.store
            .log(&ferry_store::LogEntry {
                id: 0,
                at: 0,
                connection: name.to_owned(),
                binding_id: None,
                record_id: 0,
                path: String::new(),
                action: "needs_reconnect".into(),
                outcome: "failed".into(),
                bytes: 0,
                duration_ms: 0,
                error: Some(reason.to_owned()),
            })
            .await?;
        Ok(())
    }

    /// Disconnects a connection: first every file only Dropbox holds is brought into Ferry
    /// (reverse sync, ahead of all other work), then its bindings and the connection go.
    /// Returns how many records are reverse-synced; the connection disappears after the last.
    pub async fn disconnect(&self, name: &str) -> Result<usize, EngineError> {
        if self.store.connection(name).await?.is_none() {
            return Err(EngineError::UnknownConnection(name.to_owned()));
        }
        // Marked and queued (or, with nothing bound, deleted) in one transaction.
        let ids = self.store.set_disconnecting(name).await?;
        if ids.is_empty() {
            self.connections.forget(name);
            self.finish_switch(name).await;
        } else {
            self.wake();
        }
        Ok(ids.len())
    }

    /// The connection's Dropbox storage: used and allocated (asked of Dropbox now).
    pub async fn connection_space(
        &self,
        name: &str,
    ) -> Result<ferry_dropbox::SpaceUsage, EngineError> {
        let (client, _) = self.client(name).await?;
        Ok(client.space_usage().await?)
    }

    /// Whether connecting through Dropbox's authorize page is set up (app key, public URL).
    pub fn connect_configured(&self) -> bool {
        self.config.oauth.is_some()
    }

    /// What the configured OAuth app can reach, when connecting through Dropbox's page is
    /// set up.
    pub fn connect_access(&self) -> Option<AppAccess> {
        self.config.oauth.as_ref().map(|o| o.access)
    }

    /// Moves a connection's root: every record's folder moves (one Dropbox move each, on
    /// its next pass) from under the old root to under `root`, which is made if missing.
    /// The stored credentials, member and space stay.
    pub async fn change_root(&self, name: &str, root: &str) -> Result<(), EngineError> {
        validate_root(root)?;
        let Some(stored) = self.store.connection(name).await? else {
            return Err(EngineError::UnknownConnection(name.to_owned()));
        };
        if stored.disconnecting {
            return Err(EngineError::Conflict(format!(
                "connection {name:?} is being disconnected; its root stays until it is gone"
            )));
        }
        if stored.root == root {
            return Ok(());
        }
        // Record folders move under the new root: it cannot be inside one of them (a folder
        // would have to move into itself).
        use crate::folder_map::{inside, is_mapped};
        let bindings = self.store.bindings_of_connection(name).await?;
        if let Some(b) = bindings.iter().find(|b| {
            ferry_core::names::dropbox_lower(root) == b.folder_lower
                || inside(&b.folder_display, root).is_some()
        }) {
            return Err(EngineError::Invalid(format!(
                "{root:?} is inside {:?}, a record's folder; choose a root outside the record folders",
                b.folder_display
            )));
        }
        // A folder mapped by hand stays where it is in Dropbox: outside the new root it
        // could no longer sync.
        if let Some(b) = bindings
            .iter()
            .find(|b| is_mapped(b) && inside(root, &b.folder_display).is_none())
        {
            return Err(EngineError::Invalid(format!(
                "the mapped folder {:?} would be outside the new root {root:?}; unmap it first or choose a root that contains it",
                b.folder_display
            )));
        }
        let (client, _) = self.client(name).await?;
        crate::watcher::ensure_folder(&client, root)
            .await
            .map_err(|e| root_refused(root, e))?;
        self.connections.forget(name);
        let moved = self
            .store
            .set_connection_root(name, &stored.root, root)
            .await?;
        self.connections.forget(name);
        if !moved {
            return Err(EngineError::Conflict(format!(
                "connection {name:?} changed meanwhile (moved, disconnected); look again and retry"
            )));
        }
        tracing::info!(connection = %name, %root, "connection root changed; records move on their next pass");
        self.wake();
        Ok(())
    }

    /// Records still to be brought back before a disconnecting connection goes.
    pub async fn records_to_bring_back(&self, name: &str) -> Result<u64, EngineError> {
        Ok(self.store.queued_on_connection(name).await?)
    }

    /// A ready client for a stored connection, and its root folder. A refresh token Dropbox
    /// refuses marks the connection `needs_reconnect`.
    pub async fn client(&self, name: &str) -> Result<(DropboxClient, String), EngineError> {
        match self.connections.client(name).await {
            Err(EngineError::Dropbox(DropboxError::Auth(reason))) => {
                self.mark_needs_reconnect(name, &reason).await?;
                Err(EngineError::NeedsReconnect(name.to_owned(), reason))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate_root;

    #[test]
    fn roots() {
        for ok in ["", "/Ferry", "/Print Shop/Orders", "/Ünïcode"] {
            assert!(validate_root(ok).is_ok(), "{ok}");
        }
        for bad in ["Ferry", "/", "/a/", "/a//b", "/a/../b", "/a ", "/a\nb"] {
            assert!(validate_root(bad).is_err(), "{bad}");
        }
    }
}
