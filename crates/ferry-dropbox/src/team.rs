//! A team's members (`team/members/list_v2`), so an admin can pick the member a team token
//! acts as. This one call goes over plain HTTP instead of `dropbox-sdk`: its `dbx_team`
//! feature compiles some 35,000 lines of generated code for a single route.

use crate::{DropboxClient, DropboxError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Most members read (a page is 200; this bounds memory for a huge team).
pub const MAX_MEMBERS: usize = 10_000;
/// Largest answer body accepted for one page.
const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// One member of a Dropbox team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMember {
    /// `dbmid:…`, what `Dropbox-API-Select-User` takes.
    pub member_id: String,
    /// The member's account, `dbid:…`.
    pub account_id: Option<String>,
    /// Display name.
    pub display_name: String,
    /// E-mail address.
    pub email: String,
    /// `active`, `invited`, `suspended` or `removed`.
    pub status: String,
}

#[derive(Deserialize)]
struct Page {
    members: Vec<MemberInfo>,
    cursor: String,
    has_more: bool,
}

#[derive(Deserialize)]
struct MemberInfo {
    profile: Profile,
}

#[derive(Deserialize)]
struct Profile {
    team_member_id: String,
    #[serde(default)]
    account_id: Option<String>,
    email: String,
    status: Tagged,
    name: Name,
}

#[derive(Deserialize)]
struct Tagged {
    #[serde(rename = ".tag")]
    tag: String,
}

#[derive(Deserialize)]
struct Name {
    display_name: String,
}

impl DropboxClient {
    /// The members of the token's team, every page (at most [`MAX_MEMBERS`]). Needs a team
    /// token; a token of one account is refused by Dropbox ([`DropboxError::BadRequest`] or
    /// [`DropboxError::Auth`]).
    pub async fn team_members(&self) -> Result<Vec<TeamMember>, DropboxError> {
        let mut members = Vec::new();
        let mut page: Page = self
            .team_call("team/members/list_v2", json!({ "limit": 200 }))
            .await?;
        loop {
            members.extend(page.members.into_iter().map(|m| TeamMember {
                member_id: m.profile.team_member_id,
                account_id: m.profile.account_id,
                display_name: m.profile.name.display_name,
                email: m.profile.email,
                status: m.profile.status.tag,
            }));
            if !page.has_more || members.len() >= MAX_MEMBERS {
                members.truncate(MAX_MEMBERS);
                return Ok(members);
            }
            page = self
                .team_call(
                    "team/members/list/continue_v2",
                    json!({ "cursor": page.cursor }),
                )
                .await?;
        }
    }

    /// One team-level RPC with the client's token (no member selected, no path root),
    /// refreshing an expired access token once.
    async fn team_call<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        arg: Value,
    ) -> Result<T, DropboxError> {
        let url = self
            .transport
            .endpoints
            .rewrite(&format!("https://api.dropboxapi.com/2/{route}"));
        for attempt in 0..2 {
            let token = self.transport.current_token();
            let mut response = self
                .transport
                .http
                .post(&url)
                .bearer_auth(token.as_str())
                .json(&arg)
                .send()
                .await
                .map_err(|e| DropboxError::Transport(e.without_url().to_string()))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| DropboxError::Transport(e.without_url().to_string()))?
            {
                if body.len() + chunk.len() > MAX_PAGE_BYTES {
                    return Err(DropboxError::Other(format!(
                        "{route} answered more than {MAX_PAGE_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            let text = String::from_utf8_lossy(&body);
            match status {
                200 => {
                    return serde_json::from_slice(&body).map_err(|e| {
                        DropboxError::Other(format!("{route} answered unexpected JSON: {e}"))
                    });
                }
                401 if attempt == 0
                    && text.contains("expired_access_token")
                    && self.transport.refresh.is_some() =>
                {
                    // Then the loop tries once more with the fresh token.
                    self.transport.refresh_access_token(&token).await?;
                }
                400 => return Err(DropboxError::BadRequest(text.chars().take(500).collect())),
                401 | 403 => return Err(DropboxError::Auth(text.chars().take(500).collect())),
                429 => {
                    return Err(DropboxError::RateLimited {
                        reason: "too_many_requests".into(),
                        retry_after: Duration::from_secs(retry_after.unwrap_or(1)),
                    });
                }
                500..=599 => return Err(DropboxError::Server(format!("{route}: HTTP {status}"))),
                _ => {
                    return Err(DropboxError::Other(format!(
                        "{route}: HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )));
                }
            }
        }
        Err(DropboxError::TokenExpired)
    }
}
