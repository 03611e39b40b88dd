//! Switching a connection to another Dropbox account, confirmed by the admin. The other
//! account holds none of the connection's files, and edits made in the old one would go
//! unnoticed, so a switch is a disconnect first — the reverse sync brings every file only
//! the old account holds back into Ferry — and then a connect of the new account under the
//! same name, which syncs everything there anew. The new credentials wait encrypted (30
//! days at most) until the old connection is gone.

use crate::{Engine, EngineError};
use std::time::Duration;

/// How long a confirmed switch waits for the reverse sync.
pub const SWITCH_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// An account switch for the admin to confirm.
#[derive(Debug, Clone)]
pub struct SwitchView {
    /// The connection.
    pub connection: String,
    /// The account it is connected to (`name <email>`).
    pub before: String,
    /// The account the new credentials are for.
    pub after: String,
}

impl Engine {
    /// What switching would change, for the confirmation page.
    pub async fn pending_switch_view(
        &self,
        id: &str,
        session_hash: &str,
    ) -> Result<SwitchView, EngineError> {
        let (pending, held, endpoints) = self.pending(id, session_hash).await?;
        let before = self
            .store
            .connection(&pending.connection)
            .await?
            .and_then(|c| c.account)
            .map(|a| format!("{} <{}>", a.name, a.email))
            .unwrap_or_else(|| "its current account".into());
        let client = crate::connections::build_client(
            endpoints,
            &held.credentials,
            self.connections.lockstep.as_ref(),
        )
        .await?
        .acting_as(held.select_user.as_deref(), None);
        let account = client.current_account().await?;
        Ok(SwitchView {
            connection: pending.connection,
            before,
            after: format!("{} <{}>", account.display_name, account.email),
        })
    }

    /// Confirms a switch: the connection is disconnected (reverse sync first), and the new
    /// account is connected under its name once that is done. Returns how many records are
    /// brought back first.
    pub async fn confirm_switch(&self, id: &str, session_hash: &str) -> Result<usize, EngineError> {
        let (pending, _, _) = self.pending(id, session_hash).await?;
        let expires_at = ferry_core::clock::now_ms() + SWITCH_LIFETIME.as_millis() as i64;
        self.store.confirm_pending_switch(id, expires_at).await?;
        tracing::info!(connection = %pending.connection, "account switch confirmed: disconnecting first");
        self.disconnect(&pending.connection).await
    }

    /// Finishes the confirmed switches whose old connection is already gone (Ferry stopped
    /// between removing it and connecting the new account). Run when the workers start.
    pub async fn resume_switches(&self) -> Result<usize, EngineError> {
        let mut resumed = 0;
        for connection in self.store.pending_switch_connections().await? {
            if self.store.connection(&connection).await?.is_none() {
                self.finish_switch(&connection).await;
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    /// Called when a connection is gone after its reverse sync: a confirmed switch connects
    /// the new account now. A failure is logged; the admin connects again from the console.
    pub(crate) async fn finish_switch(&self, connection: &str) {
        let Some(engine) = self.me.upgrade() else {
            return;
        };
        let pending = match self.store.pending_switch(connection).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(%connection, error = %e, "cannot read the account switch");
                return;
            }
        };
        let connected = async {
            let held = crate::team_members::unseal(
                &self
                    .connections
                    .cipher
                    .decrypt(&pending.credentials_ciphertext)?,
            )?;
            let endpoints = ferry_dropbox::Endpoints::new(
                &pending.api_url,
                &pending.content_url,
                &pending.notify_url,
            )?;
            engine
                .put_connection(held.input(
                    pending.connection.clone(),
                    pending.root.clone(),
                    endpoints,
                ))
                .await
        }
        .await;
        match connected {
            Ok(account) => {
                tracing::info!(%connection, account = %account.email, "account switch done: connected the new account");
                if let Err(e) = self.store.delete_pending_connection(&pending.id).await {
                    tracing::error!(%connection, error = %e, "cannot forget the finished switch");
                }
            }
            Err(e) => {
                tracing::error!(%connection, error = %e, "the old account is disconnected, but connecting the new one failed; connect it again from the console");
                let _ = self.store.delete_pending_connection(&pending.id).await;
            }
        }
    }
}
