//! Ferry's configuration: defaults, then a TOML file, then environment and flags (applied by
//! the CLI on top of [`Config::load`]).

use anyhow::{Context, bail};
use ferry_core::secret::Secret;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `ferry serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, blobs and key files live.
    pub data_dir: PathBuf,
    /// Address of the REST API.
    pub listen: SocketAddr,
    /// Database URL; default `sqlite://<data_dir>/ferry.db`.
    pub database_url: Option<String>,
    /// API key clients must send as `Authorization: Bearer <key>`; default: generated into
    /// `<data_dir>/api-key`.
    #[serde(deserialize_with = "secret_opt")]
    pub api_key: Option<Secret>,
    /// Key for stored tokens (64 hex digits); default: generated into `<data_dir>/secret.key`.
    #[serde(deserialize_with = "secret_opt")]
    pub secret_key: Option<Secret>,
    /// Records synced in parallel.
    pub workers: usize,
    /// Upload-session chunk size in MiB (files above it use sessions).
    pub chunk_size_mib: usize,
    /// Largest attachment accepted over the API, in MiB.
    pub max_attachment_mib: usize,
    /// A record whose passes keep failing is dead-lettered after failing this many seconds
    /// (never for failures that only ask to wait: rate limits, network down).
    pub give_up_after_secs: u64,
    /// Longest wait between two attempts of a failing record, in seconds.
    pub max_backoff_secs: u64,
    /// The deletion brake counts deletions over this many seconds.
    pub brake_window_secs: u64,
    /// Pause a binding whose deletions (this pass plus the window) exceed this share…
    pub brake_share: f64,
    /// …and at least this many files.
    pub brake_min: usize,
    /// Pause a connection whose deletions over the window exceed this share of its files…
    pub connection_brake_share: f64,
    /// …and at least this many files.
    pub connection_brake_min: usize,
    /// Let connections name Dropbox hosts of their own (`base_url`: an emulator, a proxy).
    /// Off by default, so a token only ever goes to Dropbox.
    pub custom_dropbox_hosts: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("ferry-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            api_key: None,
            secret_key: None,
            workers: 4,
            chunk_size_mib: 8,
            max_attachment_mib: 512,
            give_up_after_secs: 24 * 3600,
            max_backoff_secs: 300,
            brake_window_secs: 600,
            brake_share: 0.5,
            brake_min: 3,
            connection_brake_share: 0.5,
            connection_brake_min: 20,
            custom_dropbox_hosts: false,
        }
    }
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

impl Config {
    /// Defaults, overlaid with the TOML file at `path` if given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks value ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(key) = &self.api_key
            && key.expose().trim().is_empty()
        {
            bail!("api_key must not be empty (leave it out to have one generated)");
        }
        if let Some(url) = &self.database_url
            && !url.starts_with("sqlite:")
        {
            bail!(
                "database_url must be an SQLite URL (sqlite://path/to/ferry.db); other databases are not supported yet"
            );
        }
        if !(1..=64).contains(&self.workers) {
            bail!("workers must be between 1 and 64, not {}", self.workers);
        }
        if !(1..=150).contains(&self.chunk_size_mib) {
            bail!(
                "chunk_size_mib must be between 1 and 150 (Dropbox's per-request limit), not {}",
                self.chunk_size_mib
            );
        }
        for (name, share) in [
            ("brake_share", self.brake_share),
            ("connection_brake_share", self.connection_brake_share),
        ] {
            if !(share > 0.0 && share <= 1.0) {
                bail!("{name} must be above 0 and at most 1, not {share}");
            }
        }
        if !(1..=3600).contains(&self.max_backoff_secs) {
            bail!(
                "max_backoff_secs must be between 1 and 3600, not {}",
                self.max_backoff_secs
            );
        }
        if self.give_up_after_secs > 365 * 24 * 3600 || self.brake_window_secs > 7 * 24 * 3600 {
            bail!("give_up_after_secs is at most a year and brake_window_secs at most a week");
        }
        if !(1..=4096).contains(&self.max_attachment_mib) {
            bail!(
                "max_attachment_mib must be between 1 and 4096, not {}",
                self.max_attachment_mib
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nworkers = 2\napi_key = \"k\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.workers, 2);
        assert_eq!(format!("{:?}", c.api_key), "Some(Secret(***))");
        std::fs::write(&path, "listne = 1\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "workers = 0\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "api_key = \" \"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err(), "an empty API key");
        for url in ["garbage", "postgres://localhost/ferry"] {
            std::fs::write(&path, format!("database_url = {url:?}\n")).unwrap();
            let e = Config::load(Some(&path)).unwrap_err().to_string();
            assert!(e.contains("SQLite"), "{url}: {e}");
        }
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
