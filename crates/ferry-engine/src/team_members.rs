//! Team tokens in the console. A team token acts as one member, and the admin who pasted it
//! (or approved a team app on Dropbox's page) picks which from the team's member list. Until
//! then the credentials wait encrypted, for fifteen minutes, usable only by that console
//! session.

use crate::connections::AppAccess;
use crate::{ConnectionInput, Credentials, Engine, EngineError, PathRootChoice};
use ferry_core::secret::Secret;
use ferry_dropbox::{AccountInfo, Endpoints, Refresh, TeamMember};
use ferry_store::PendingConnection;
use rand::RngCore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How long a team token waits for its member to be picked.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(900);

/// What a connect from the console led to.
#[derive(Debug, Clone)]
pub enum ConnectOutcome {
    /// Connected.
    Connected(AccountInfo),
    /// A team token: the admin picks the member at `/console/connections/pick/{id}`.
    PickMember(String),
    /// Another account than the connection's: the admin confirms the switch at
    /// `/console/connections/switch/{id}`.
    ConfirmSwitch(String),
}

/// A pending team connection as the picker shows it.
#[derive(Debug, Clone)]
pub struct PendingTeam {
    /// The connection's name.
    pub connection: String,
    /// Its root folder.
    pub root: String,
    /// The team's members.
    pub members: Vec<TeamMember>,
}

/// Credentials held for a console session, with what was chosen along with them.
pub(crate) struct Held {
    pub(crate) credentials: Credentials,
    pub(crate) select_user: Option<String>,
    pub(crate) path_root: PathRootChoice,
    pub(crate) app_access: Option<AppAccess>,
}

impl Held {
    /// The connection these credentials make, under `name` at `root`.
    pub(crate) fn input(self, name: String, root: String, endpoints: Endpoints) -> ConnectionInput {
        ConnectionInput {
            name,
            credentials: self.credentials,
            root,
            endpoints,
            select_user: self.select_user,
            path_root: self.path_root,
            app_access: self.app_access,
        }
    }
}

fn seal(input: &ConnectionInput) -> Secret {
    let mut value = match &input.credentials {
        Credentials::Token(token) => json!({ "token": token.expose() }),
        Credentials::Refresh(r) => json!({
            "refresh_token": r.refresh_token.expose(),
            "app_key": r.app_key,
            "app_secret": r.app_secret.as_ref().map(|s| s.expose().to_owned()),
        }),
    };
    value["select_user"] = json!(input.select_user);
    value["path_root"] = json!(input.path_root.as_text());
    value["app_access"] = json!(input.app_access.map(AppAccess::as_str));
    Secret::new(value.to_string())
}

pub(crate) fn unseal(secret: &Secret) -> Result<Held, EngineError> {
    let value: Value = serde_json::from_str(secret.expose())
        .map_err(|e| EngineError::Conflict(format!("stored credentials are unreadable: {e}")))?;
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    let credentials = match (text("token"), text("refresh_token"), text("app_key")) {
        (Some(token), _, _) => Credentials::Token(Secret::new(token)),
        (None, Some(refresh_token), Some(app_key)) => Credentials::Refresh(Refresh {
            refresh_token: Secret::new(refresh_token),
            app_key,
            app_secret: text("app_secret").map(Secret::new),
        }),
        _ => {
            return Err(EngineError::Conflict(
                "stored credentials are incomplete".into(),
            ));
        }
    };
    Ok(Held {
        credentials,
        select_user: text("select_user"),
        path_root: PathRootChoice::parse(text("path_root").as_deref().unwrap_or("home"))?,
        app_access: text("app_access")
            .map(|a| AppAccess::parse(&a))
            .transpose()?,
    })
}

fn expired() -> EngineError {
    EngineError::NotFound(
        "this team connection is unknown or waited too long; connect again".into(),
    )
}

impl Engine {
    /// Connects like [`Engine::put_connection`]; a team token without a member, from a
    /// console session, is kept for that session to pick the member instead of refused.
    pub async fn connect_or_pick(
        self: &Arc<Self>,
        input: ConnectionInput,
        session_hash: Option<&str>,
    ) -> Result<ConnectOutcome, EngineError> {
        match (self.put_connection(input.clone()).await, session_hash) {
            (Err(EngineError::TeamMemberNeeded), Some(session)) if input.select_user.is_none() => {
                Ok(ConnectOutcome::PickMember(
                    self.hold_pending(&input, session).await?,
                ))
            }
            (Err(EngineError::AccountSwitch { .. }), Some(session)) => Ok(
                ConnectOutcome::ConfirmSwitch(self.hold_pending(&input, session).await?),
            ),
            (result, _) => result.map(ConnectOutcome::Connected),
        }
    }

    /// Keeps `input`'s credentials encrypted for `session` (fifteen minutes); their id.
    pub(crate) async fn hold_pending(
        &self,
        input: &ConnectionInput,
        session: &str,
    ) -> Result<String, EngineError> {
        let mut id = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut id);
        let id = hex::encode(id);
        self.store
            .put_pending_connection(&PendingConnection {
                id: id.clone(),
                session_hash: session.to_owned(),
                connection: input.name.clone(),
                root: input.root.clone(),
                api_url: input.endpoints.api.clone(),
                content_url: input.endpoints.content.clone(),
                notify_url: input.endpoints.notify.clone(),
                credentials_ciphertext: self.connections.cipher.encrypt(&seal(input))?,
                expires_at: ferry_core::clock::now_ms() + PENDING_LIFETIME.as_millis() as i64,
                after_disconnect: false,
            })
            .await?;
        Ok(id)
    }

    pub(crate) async fn pending(
        &self,
        id: &str,
        session_hash: &str,
    ) -> Result<(PendingConnection, Held, Endpoints), EngineError> {
        let pending = self
            .store
            .pending_connection(id, ferry_core::clock::now_ms())
            .await?
            .filter(|p| p.session_hash == session_hash)
            .ok_or_else(expired)?;
        let held = unseal(
            &self
                .connections
                .cipher
                .decrypt(&pending.credentials_ciphertext)?,
        )?;
        let endpoints =
            Endpoints::new(&pending.api_url, &pending.content_url, &pending.notify_url)?;
        Ok((pending, held, endpoints))
    }

    /// A pending team connection and the team's members, asked of Dropbox now.
    pub async fn pending_team(
        &self,
        id: &str,
        session_hash: &str,
    ) -> Result<PendingTeam, EngineError> {
        let (pending, held, endpoints) = self.pending(id, session_hash).await?;
        let client = crate::connections::build_client(
            endpoints,
            &held.credentials,
            self.connections.lockstep.as_ref(),
        )
        .await?;
        Ok(PendingTeam {
            connection: pending.connection,
            root: pending.root,
            members: client.team_members().await?,
        })
    }

    /// Finishes a pending team connection as `member`, in the member's home or the team
    /// space. When the member is another account than the connection's, the switch waits
    /// for the admin's confirmation (with the member and space kept).
    pub async fn finish_pending(
        self: &Arc<Self>,
        id: &str,
        session_hash: &str,
        member: &str,
        path_root: PathRootChoice,
    ) -> Result<(String, ConnectOutcome), EngineError> {
        let (pending, mut held, endpoints) = self.pending(id, session_hash).await?;
        held.select_user = Some(member.to_owned());
        held.path_root = path_root;
        let input = held.input(pending.connection.clone(), pending.root, endpoints);
        let outcome = self.connect_or_pick(input, Some(session_hash)).await?;
        self.store.delete_pending_connection(id).await?;
        Ok((pending.connection, outcome))
    }

    /// The members of a team connection's team (its token, no member selected).
    pub async fn connection_members(&self, name: &str) -> Result<Vec<TeamMember>, EngineError> {
        let (client, _) = self.client(name).await?;
        Ok(client.team_members().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(credentials: Credentials) -> ConnectionInput {
        ConnectionInput {
            name: "c".into(),
            credentials,
            root: "/R".into(),
            endpoints: Endpoints::dropbox(),
            select_user: None,
            path_root: PathRootChoice::Home,
            app_access: None,
        }
    }

    #[test]
    fn credentials_survive_sealing() {
        let refresh = Credentials::Refresh(Refresh {
            refresh_token: Secret::new("r"),
            app_key: "k".into(),
            app_secret: None,
        });
        let held = unseal(&seal(&input(refresh))).unwrap();
        match held.credentials {
            Credentials::Refresh(r) => {
                assert_eq!((r.refresh_token.expose(), r.app_key.as_str()), ("r", "k"));
                assert!(r.app_secret.is_none());
            }
            Credentials::Token(_) => panic!("a refresh token came back as a token"),
        }
        assert_eq!(
            (held.select_user, held.path_root, held.app_access),
            (None, PathRootChoice::Home, None)
        );
        // What was chosen with a team token is kept with it (a switch that waits for the
        // reverse sync connects the member the admin picked, in the space they picked).
        let chosen = ConnectionInput {
            select_user: Some("dbmid:bob".into()),
            path_root: PathRootChoice::Team,
            app_access: Some(AppAccess::AppFolder),
            ..input(Credentials::Token(Secret::new("t")))
        };
        let held = unseal(&seal(&chosen)).unwrap();
        match held.credentials {
            Credentials::Token(t) => assert_eq!(t.expose(), "t"),
            Credentials::Refresh(_) => panic!("a token came back as a refresh token"),
        }
        assert_eq!(
            (held.select_user.as_deref(), held.path_root, held.app_access),
            (
                Some("dbmid:bob"),
                PathRootChoice::Team,
                Some(AppAccess::AppFolder)
            )
        );
    }
}
