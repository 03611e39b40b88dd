//! Shared links, persisted in `links.json` (the whole list, rewritten via a temp file on
//! each change). A link belongs to a node id, so it follows the item through moves and
//! disappears with it.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::EmulatorError;
use crate::io_error;

/// One shared link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The URL handed out (opaque to clients).
    pub url: String,
    /// The id of the linked file or folder.
    pub node_id: String,
    /// `public`, `team` or `no_one`.
    pub audience: String,
    /// Expiry timestamp, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// The account's shared links.
#[derive(Debug)]
pub struct Links {
    path: PathBuf,
    links: Mutex<Vec<Link>>,
}

impl Links {
    /// Loads `path` (missing = no links).
    pub fn open(path: PathBuf) -> Result<Links, EmulatorError> {
        let links = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| EmulatorError::Account {
                    path: path.clone(),
                    source,
                })?
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(io_error(&path)(err)),
        };
        Ok(Links {
            path,
            links: Mutex::new(links),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Link>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, links: &[Link]) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(links).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)
    }

    /// All links, oldest first.
    pub fn all(&self) -> Vec<Link> {
        self.lock().clone()
    }

    /// The link of a node, if one exists.
    pub fn for_node(&self, node_id: &str) -> Option<Link> {
        self.lock().iter().find(|l| l.node_id == node_id).cloned()
    }

    /// Adds a link.
    pub fn add(&self, link: Link) -> std::io::Result<()> {
        let mut links = self.lock();
        links.push(link);
        self.save(&links)
    }

    /// Removes the link with this URL; `false` if there was none.
    pub fn revoke(&self, url: &str) -> std::io::Result<bool> {
        let mut links = self.lock();
        let before = links.len();
        links.retain(|l| l.url != url);
        if links.len() == before {
            return Ok(false);
        }
        self.save(&links)?;
        Ok(true)
    }
}
