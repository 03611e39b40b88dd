//! The emulated user's account, kept in `account.json` so that ids (account, namespace,
//! journal) and the generated token stay the same across restarts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EmulatorError;
use crate::wire::random_token;

/// Persistent account facts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// `dbid:` + 35 characters (40 in total, as Dropbox's).
    pub account_id: String,
    /// Numeric root/home namespace id.
    pub namespace_id: String,
    /// Identifies this data directory's journal inside cursors.
    pub journal_id: String,
    /// The generated token, when none was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_token: Option<String>,
}

impl Account {
    fn generate() -> Self {
        let namespace: u64 = crate::wire::random_in(1_000_000_000..10_000_000_000);
        Account {
            account_id: format!("dbid:{}", random_token(35)),
            namespace_id: namespace.to_string(),
            journal_id: random_token(16),
            generated_token: None,
        }
    }

    /// Loads `data_dir/account.json`, creating it on first start. Returns the account and the
    /// token to require: the configured one, else the stored generated one, else a new one.
    pub fn load_or_create(
        data_dir: &Path,
        configured_token: Option<&str>,
    ) -> Result<(Account, String), EmulatorError> {
        let path = data_dir.join("account.json");
        let io = |source| EmulatorError::DataDir {
            path: path.clone(),
            source,
        };
        let mut account = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Account>(&bytes).map_err(|source| {
                EmulatorError::Account {
                    path: path.clone(),
                    source,
                }
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Account::generate(),
            Err(err) => return Err(io(err)),
        };
        let token = match configured_token {
            Some(token) => token.to_string(),
            None => account
                .generated_token
                .get_or_insert_with(|| random_token(48))
                .clone(),
        };
        let json = serde_json::to_vec_pretty(&account).unwrap_or_default();
        let tmp = data_dir.join("account.json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok((account, token))
    }
}
