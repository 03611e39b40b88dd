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

    /// Where a person approves an app: `https://www.dropbox.com/oauth2/authorize`, or the
    /// same path on a custom API host (the emulator serves its consent page there).
    pub fn authorize_url(&self) -> String {
        if self.api == REAL_API {
            "https://www.dropbox.com/oauth2/authorize".to_owned()
        } else {
            format!("{}/oauth2/authorize", self.api)
        }
    }

    /// Whether these are Dropbox's own hosts.
    pub fn is_dropbox(&self) -> bool {
        self.api == REAL_API && self.content == REAL_CONTENT && self.notify == REAL_NOTIFY
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
    // Tokens travel in every request: in clear text only to this machine.
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if parsed.scheme() == "http" && !loopback {
        return Err(DropboxError::Config(format!(
            "base URL {base:?} must use https (plain http only to this machine: 127.0.0.1, ::1, localhost)"
        )));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_go_in_clear_text_only_to_this_machine() {
        for ok in [
            "http://127.0.0.1:8090",
            "http://[::1]:1",
            "http://localhost:9",
            "https://dropbox.example.com",
        ] {
            assert!(Endpoints::single(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.5:8090",
            "http://evil.example.com",
            "ftp://127.0.0.1",
        ] {
            assert!(
                matches!(Endpoints::single(refused), Err(DropboxError::Config(_))),
                "{refused}"
            );
        }
        assert!(Endpoints::dropbox().is_dropbox());
        assert!(
            !Endpoints::single("http://127.0.0.1:1")
                .unwrap()
                .is_dropbox()
        );
    }

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
