//! Where the three Dropbox hosts are.

use crate::DropboxError;

/// Base URLs for Dropbox's api, content and notify hosts (no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Stands in for `https://api.dropboxapi.com`.
    pub api: String,
    /// Stands in for `https://content.dropboxapi.com`.
    pub content: String,
    /// Stands in for `https://notify.dropboxapi.com`.
    pub notify: String,
}

const REAL_API: &str = "https://api.dropboxapi.com";
const REAL_CONTENT: &str = "https://content.dropboxapi.com";
const REAL_NOTIFY: &str = "https://notify.dropboxapi.com";

impl Endpoints {
    /// The real Dropbox.
    pub fn dropbox() -> Self {
        Endpoints {
            api: REAL_API.into(),
            content: REAL_CONTENT.into(),
            notify: REAL_NOTIFY.into(),
        }
    }

    /// One server for all three hosts (Ferry's emulator).
    pub fn single(base: &str) -> Result<Self, DropboxError> {
        let base = normalize(base)?;
        Ok(Endpoints {
            api: base.clone(),
            content: base.clone(),
            notify: base,
        })
    }

    /// Three explicit base URLs, each checked.
    pub fn new(api: &str, content: &str, notify: &str) -> Result<Self, DropboxError> {
        Ok(Endpoints {
            api: normalize(api)?,
            content: normalize(content)?,
            notify: normalize(notify)?,
        })
    }

    /// Maps a URL the SDK built for the real hosts onto these endpoints.
    pub fn rewrite(&self, url: &str) -> String {
        for (real, base) in [
            (REAL_API, &self.api),
            (REAL_CONTENT, &self.content),
            (REAL_NOTIFY, &self.notify),
        ] {
            if let Some(rest) = url.strip_prefix(real) {
                return format!("{base}{rest}");
            }
        }
        url.to_owned()
    }
}

fn normalize(base: &str) -> Result<String, DropboxError> {
    let parsed = url::Url::parse(base.trim())
        .map_err(|e| DropboxError::Config(format!("invalid base URL {base:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(DropboxError::Config(format!(
            "base URL {base:?} must be http(s)://host[:port]"
        )));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_each_host() {
        let e = Endpoints::single("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            e.rewrite("https://content.dropboxapi.com/2/files/upload"),
            "http://127.0.0.1:8080/2/files/upload"
        );
        assert_eq!(
            e.rewrite("https://api.dropboxapi.com/oauth2/token"),
            "http://127.0.0.1:8080/oauth2/token"
        );
        let real = Endpoints::dropbox();
        assert_eq!(
            real.rewrite("https://notify.dropboxapi.com/2/files/list_folder/longpoll"),
            "https://notify.dropboxapi.com/2/files/list_folder/longpoll"
        );
        assert!(Endpoints::single("ftp://x").is_err());
        assert!(Endpoints::single("not a url").is_err());
    }
}
