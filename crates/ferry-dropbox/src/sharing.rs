//! Shared links: one per file or folder, reused when Dropbox already has one.

use crate::error::Classify;
use crate::{DropboxClient, DropboxError};
use dropbox_sdk::async_routes::sharing as routes;
use dropbox_sdk::sharing;

/// Who a shared link lets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAudience {
    /// Anyone with the link.
    Public,
    /// Members of the account's team only (Dropbox Business).
    Team,
}

/// A shared link as Dropbox reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLink {
    /// The link.
    pub url: String,
    /// The linked item's id (`id:…`), when Dropbox says.
    pub id: Option<String>,
    /// Who the link lets in, as Dropbox resolved it (`public`, `team`, `no_one`…).
    pub audience: Option<String>,
    /// When it stops working (ISO 8601), if ever.
    pub expires: Option<String>,
    /// Whether Dropbox made it now (false: an existing link was reused).
    pub created: bool,
}

fn from_metadata(m: sharing::SharedLinkMetadata, created: bool) -> Option<SharedLink> {
    let (url, id, expires, permissions) = match m {
        sharing::SharedLinkMetadata::File(f) => (f.url, f.id, f.expires, f.link_permissions),
        sharing::SharedLinkMetadata::Folder(f) => (f.url, f.id, f.expires, f.link_permissions),
        _ => return None,
    };
    let audience = permissions.effective_audience.map(|a| match a {
        sharing::LinkAudience::Public => "public".to_owned(),
        sharing::LinkAudience::Team => "team".to_owned(),
        sharing::LinkAudience::NoOne => "no_one".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    });
    Some(SharedLink {
        url,
        id,
        audience,
        expires,
        created,
    })
}

impl Classify for sharing::CreateSharedLinkWithSettingsError {
    fn classify(self) -> DropboxError {
        match self {
            sharing::CreateSharedLinkWithSettingsError::Path(l) => crate::error::lookup(l),
            sharing::CreateSharedLinkWithSettingsError::SettingsError(
                sharing::SharedLinkSettingsError::NotAuthorized,
            ) => DropboxError::BadRequest(
                "this account may not make links with these settings (team-only links need a \
                 Dropbox Business account, link expiry a paid one)"
                    .into(),
            ),
            sharing::CreateSharedLinkWithSettingsError::SettingsError(e) => {
                DropboxError::BadRequest(format!("shared link settings refused: {e}"))
            }
            sharing::CreateSharedLinkWithSettingsError::EmailNotVerified => {
                DropboxError::BadRequest(
                    "the account's e-mail address is not verified, which shared links need".into(),
                )
            }
            other => DropboxError::BadRequest(format!("shared link refused: {other}")),
        }
    }
}

impl Classify for sharing::RevokeSharedLinkError {
    fn classify(self) -> DropboxError {
        match self {
            sharing::RevokeSharedLinkError::SharedLinkNotFound => {
                DropboxError::NotFound("no such shared link".into())
            }
            other => DropboxError::BadRequest(format!("cannot revoke the link: {other}")),
        }
    }
}

impl Classify for sharing::ListSharedLinksError {
    fn classify(self) -> DropboxError {
        match self {
            sharing::ListSharedLinksError::Path(l) => crate::error::lookup(l),
            sharing::ListSharedLinksError::Reset => DropboxError::Reset,
            other => DropboxError::Other(other.to_string()),
        }
    }
}

/// What a create call gave: a new link, or word that one exists (with it, if Dropbox said).
enum Created {
    New(sharing::SharedLinkMetadata),
    Exists(Option<sharing::SharedLinkMetadata>),
}

impl DropboxClient {
    /// The shared link of `path`: made now with `audience` and `expires` (ISO 8601), or the
    /// one Dropbox already has for the item, which is kept as it is.
    pub async fn shared_link(
        &self,
        path: &str,
        audience: LinkAudience,
        expires: Option<&str>,
    ) -> Result<SharedLink, DropboxError> {
        crate::client::check_path(path)?;
        let mut settings = sharing::SharedLinkSettings::default().with_audience(match audience {
            LinkAudience::Public => sharing::LinkAudience::Public,
            LinkAudience::Team => sharing::LinkAudience::Team,
        });
        if let Some(expires) = expires {
            settings = settings.with_expires(expires.to_owned());
        }
        let arg =
            sharing::CreateSharedLinkWithSettingsArg::new(path.to_owned()).with_settings(settings);
        let created = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = match routes::create_shared_link_with_settings(&c, &arg).await {
                        Ok(m) => Ok(Created::New(m)),
                        Err(dropbox_sdk::Error::Api(
                            sharing::CreateSharedLinkWithSettingsError::SharedLinkAlreadyExists(
                                existing,
                            ),
                        )) => Ok(Created::Exists(existing.and_then(|e| match e {
                            sharing::SharedLinkAlreadyExistsMetadata::Metadata(m) => Some(m),
                            _ => None,
                        }))),
                        Err(e) => Err(e),
                    };
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        let unreadable =
            || DropboxError::Other("Dropbox answered with an unknown link type".into());
        match created {
            Created::New(m) => from_metadata(m, true).ok_or_else(unreadable),
            Created::Exists(Some(m)) => from_metadata(m, false).ok_or_else(unreadable),
            // Dropbox leaves the existing link out when the settings differ from it.
            Created::Exists(None) => self.direct_link(path).await?.ok_or_else(|| {
                DropboxError::Conflict("Dropbox says a link exists but lists none".into())
            }),
        }
    }

    /// Revokes a link (an expired one, before making a fresh one). A link already gone is
    /// fine.
    pub async fn revoke_shared_link(&self, url: &str) -> Result<(), DropboxError> {
        let arg = sharing::RevokeSharedLinkArg::new(url.to_owned());
        let revoked = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::revoke_shared_link(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await;
        match revoked {
            Ok(()) | Err(DropboxError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The link made for `path` itself (not one to a folder above it), if any.
    pub async fn direct_link(&self, path: &str) -> Result<Option<SharedLink>, DropboxError> {
        crate::client::check_path(path)?;
        let arg = sharing::ListSharedLinksArg::default()
            .with_path(path.to_owned())
            .with_direct_only(true);
        let listed = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::list_shared_links(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        Ok(listed
            .links
            .into_iter()
            .find_map(|m| from_metadata(m, false)))
    }
}
