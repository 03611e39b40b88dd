//! Accounts and the TOML config file of the emulator.

use std::path::Path;

use serde::Deserialize;

use crate::{EmulatorConfig, EmulatorError};

/// Default quota: 2 TiB (a Plus plan).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 40;

/// A further account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// A unique name (letters, digits, `-`, `_`); also its directory under `accounts/`.
    pub name: String,
    /// Its token (`None`: generated and stored with the account).
    #[serde(default)]
    pub token: Option<String>,
    /// Its quota in bytes (`None`: [`DEFAULT_QUOTA_BYTES`]).
    #[serde(default)]
    pub quota_bytes: Option<u64>,
}

impl AccountSpec {
    /// An account with a generated token and the default quota.
    pub fn new(name: impl Into<String>) -> Self {
        AccountSpec {
            name: name.into(),
            token: None,
            quota_bytes: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), EmulatorError> {
        let ok = !self.name.is_empty()
            && self.name != "default"
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(EmulatorError::Config(format!(
                "account name {:?} must be 1–64 letters, digits, '-' or '_' (and not \"default\")",
                self.name
            )))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    quota_bytes: Option<u64>,
    #[serde(default)]
    model: Option<toml::Value>,
    #[serde(default)]
    accounts: Vec<AccountSpec>,
    #[serde(default)]
    apps: Option<Vec<crate::AppSpec>>,
    #[serde(default)]
    token_lifetime_secs: Option<u64>,
    #[serde(default)]
    team: Option<crate::TeamSpec>,
}

pub(crate) fn apply_file(config: &mut EmulatorConfig, path: &Path) -> Result<(), EmulatorError> {
    let text = std::fs::read_to_string(path).map_err(crate::io_error(path))?;
    let file: FileConfig = toml::from_str(&text)
        .map_err(|e| EmulatorError::Config(format!("{}: {e}", path.display())))?;
    if let Some(quota) = file.quota_bytes {
        config.quota_bytes = quota;
    }
    if let Some(model) = file.model {
        let patch = serde_json::to_value(model)
            .map_err(|e| EmulatorError::Config(format!("{}: {e}", path.display())))?;
        config.model = config
            .model
            .patched(&patch)
            .map_err(|e| EmulatorError::Config(format!("{}: [model] {e}", path.display())))?;
    }
    config.accounts.extend(file.accounts);
    if let Some(apps) = file.apps {
        config.apps = apps;
    }
    if file.team.is_some() {
        config.team = file.team;
    }
    if let Some(secs) = file.token_lifetime_secs {
        config.token_lifetime_secs = secs;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FaultModel;

    #[test]
    fn file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emulator.toml");
        std::fs::write(
            &path,
            "quota_bytes = 1000\n[model]\nlock_hold_ms = 20\n[[accounts]]\nname = \"bob\"\ntoken = \"t-bob\"\n",
        )
        .unwrap();
        let mut config = EmulatorConfig::new(dir.path());
        config.apply_file(&path).unwrap();
        assert_eq!(config.quota_bytes, 1000);
        assert_eq!(config.model.lock_hold_ms, 20);
        assert_eq!(
            config.model.rate_burst,
            FaultModel::default().rate_burst,
            "unnamed knobs keep their defaults"
        );
        assert_eq!(config.accounts[0].token.as_deref(), Some("t-bob"));
        std::fs::write(&path, "[model]\nbogus = 1\n").unwrap();
        assert!(config.apply_file(&path).is_err());
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../../docs/emulator.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emulator.toml");
        std::fs::write(&path, example).unwrap();
        let mut config = EmulatorConfig::new(dir.path());
        config.apply_file(&path).unwrap();
        assert_eq!(config.token_lifetime_secs, 14400);
        assert_eq!(config.model.lock_hold_ms, 20);
        assert_eq!(config.accounts[0].name, "bob");
        assert_eq!(config.apps[0].key, "my-app");
        assert_eq!(config.team.as_ref().map(|t| t.members.len()), Some(2));
    }
}
