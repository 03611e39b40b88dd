//! A Dropbox team: a shared root namespace plus members (accounts of the emulator), a team
//! token that acts as a member through `Dropbox-API-Select-User`, and `Dropbox-API-Path-Root`
//! to address the team root (`root` / `namespace_id`) instead of a member's home.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::space::Space;
use crate::wire::{ApiError, random_token, tag, tagged};
use crate::{EmulatorError, io_error};

/// A team in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// The team's name (also its directory under `teams/`).
    pub name: String,
    /// The team token (`None`: generated and stored).
    #[serde(default)]
    pub token: Option<String>,
    /// Member account names (`"default"` is the primary account); at least one.
    pub members: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TeamFile {
    team_id: String,
    token: String,
    /// Account name → `dbmid:…`.
    member_ids: std::collections::BTreeMap<String, String>,
}

/// One member.
#[derive(Clone)]
pub struct Member {
    /// `dbmid:…`, for `Dropbox-API-Select-User`.
    pub member_id: String,
    /// The member's account.
    pub space: Arc<Space>,
}

/// The team at run time.
pub struct Team {
    /// Its name.
    pub name: String,
    /// `dbtid:…`.
    pub team_id: String,
    /// The team token.
    pub token: String,
    /// The shared root namespace.
    pub root: Arc<Space>,
    /// The members.
    pub members: Vec<Member>,
}

impl Team {
    /// Opens (or creates) `data_dir/teams/<name>/` for `spec`, resolving member names against
    /// `spaces`.
    pub fn open(
        data_dir: &Path,
        spec: &TeamSpec,
        spaces: &[Arc<Space>],
    ) -> Result<Team, EmulatorError> {
        let config = |m: String| EmulatorError::Config(m);
        if spec.members.is_empty() {
            return Err(config(format!("team {:?} has no members", spec.name)));
        }
        let valid = !spec.name.is_empty()
            && spec.name.len() <= 64
            && spec
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(config(format!("team name {:?} is invalid", spec.name)));
        }
        let dir = data_dir.join("teams").join(&spec.name);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let path = dir.join("team.json");
        let mut file: TeamFile = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| EmulatorError::Account {
                    path: path.clone(),
                    source,
                })?
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => TeamFile {
                team_id: format!("dbtid:{}", random_token(35)),
                ..TeamFile::default()
            },
            Err(err) => return Err(io_error(&path)(err)),
        };
        if let Some(token) = &spec.token {
            file.token = token.clone();
        } else if file.token.is_empty() {
            file.token = random_token(48);
        }
        let mut members = Vec::new();
        for name in &spec.members {
            let space = spaces
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| config(format!("team member {name:?} is not an account")))?;
            let member_id = file
                .member_ids
                .entry(name.clone())
                .or_insert_with(|| format!("dbmid:{}", random_token(35)))
                .clone();
            members.push(Member {
                member_id,
                space: Arc::clone(space),
            });
        }
        let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
        let tmp = dir.join("team.json.tmp");
        std::fs::write(&tmp, json).map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        let root = Space::open(
            &format!("team:{}", spec.name),
            &dir.join("root"),
            Some(&format!("team-root-not-a-token-{}", random_token(32))),
            u64::MAX,
        )?;
        Ok(Team {
            name: spec.name.clone(),
            team_id: file.team_id,
            token: file.token,
            root: Arc::new(root),
            members,
        })
    }

    /// The member behind an account, if it belongs to the team.
    pub fn member_of(&self, space: &Arc<Space>) -> Option<&Member> {
        self.members.iter().find(|m| Arc::ptr_eq(&m.space, space))
    }

    /// `RootInfo` of a member: the team root and the member's home.
    pub fn root_info(&self, member: &Space) -> Value {
        let mut fields = Map::new();
        fields.insert(
            "root_namespace_id".into(),
            self.root.account.namespace_id.clone().into(),
        );
        fields.insert(
            "home_namespace_id".into(),
            member.account.namespace_id.clone().into(),
        );
        fields.insert(
            "home_path".into(),
            format!("/{}", display_name(member)).into(),
        );
        tagged("team", fields)
    }

    /// The `team` field of a member's `FullAccount`.
    pub fn account_team(&self) -> Value {
        json!({
            "id": self.team_id,
            "name": self.name,
            "sharing_policies": {
                "shared_folder_member_policy": {".tag": "anyone"},
                "shared_folder_join_policy": {".tag": "from_anyone"},
                "shared_link_create_policy": {".tag": "default_public"},
                "group_creation_policy": {".tag": "admins_only"},
                "shared_folder_link_restriction_policy": {".tag": "anyone"},
                "enforce_link_password_policy": {".tag": "optional"},
                "default_link_expiration_days_policy": {".tag": "none"},
                "shared_link_default_permissions_policy": {".tag": "default"},
            },
            "office_addin_policy": {".tag": "disabled"},
            "top_level_content_policy": {".tag": "everyone"},
        })
    }
}

/// A member's display name (also their home folder's name in the team root).
pub fn display_name(space: &Space) -> String {
    if space.name == "default" {
        "Ferry Emulator".into()
    } else {
        format!("Ferry {}", space.name)
    }
}

/// `RootInfo` of an account outside any team.
pub fn user_root_info(space: &Space) -> Value {
    json!({
        ".tag": "user",
        "root_namespace_id": space.account.namespace_id,
        "home_namespace_id": space.account.namespace_id,
    })
}

/// Chooses the namespace for `Dropbox-API-Path-Root` (`None`: home).
pub fn path_root(
    header: Option<&[u8]>,
    user: &Arc<Space>,
    team: Option<&Team>,
) -> Result<Arc<Space>, ApiError> {
    let Some(raw) = header else {
        return Ok(Arc::clone(user));
    };
    let bad = |detail: String| ApiError::BadRequest(format!("Dropbox-API-Path-Root: {detail}"));
    let value: Value = std::str::from_utf8(raw)
        .ok()
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| bad("could not decode input as JSON".into()))?;
    let tag_name = match &value {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get(".tag")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("missing '.tag' key".into()))?
            .to_string(),
        _ => return Err(bad("expected a PathRoot union".into())),
    };
    let member_team = team.filter(|t| t.member_of(user).is_some());
    let root_info = match member_team {
        Some(t) => t.root_info(user),
        None => user_root_info(user),
    };
    let root_ns = root_info["root_namespace_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let field = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(format!("{name}: missing")))
    };
    let team_root = || match member_team {
        Some(t) => Arc::clone(&t.root),
        None => Arc::clone(user),
    };
    match tag_name.as_str() {
        "home" => Ok(Arc::clone(user)),
        "root" => {
            if field("root")? == root_ns {
                Ok(team_root())
            } else {
                let mut error = Map::new();
                error.insert("invalid_root".into(), root_info);
                Err(ApiError::PathRoot(tagged("invalid_root", error)))
            }
        }
        "namespace_id" => {
            let ns = field("namespace_id")?;
            if ns == user.account.namespace_id {
                Ok(Arc::clone(user))
            } else if ns == root_ns {
                Ok(team_root())
            } else {
                Err(ApiError::PathRoot(tag("no_permission")))
            }
        }
        other => Err(bad(format!("unknown tag '{other}'"))),
    }
}

/// `team/members/list_v2` and `team/members/list/continue_v2`: the members, in pages. Only
/// the team token may call them (a member is not selected for team-level routes).
pub fn members_route(
    team: Option<&Team>,
    route: &str,
    token: &str,
    arg: &Value,
) -> Result<Value, ApiError> {
    let Some(team) = team.filter(|t| t.token == token) else {
        return Err(ApiError::BadRequest(
            "This API function operates on a Dropbox Business team, but the OAuth 2 access token you provided is not a team token.".into(),
        ));
    };
    let (offset, limit) = match route {
        "team/members/list_v2" => {
            let limit = match arg.get("limit") {
                None => 1000,
                Some(v) => v
                    .as_u64()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| ApiError::BadArg("limit: must be between 1 and 1000".into()))?,
            };
            (0usize, limit as usize)
        }
        "team/members/list/continue_v2" => {
            let cursor = arg
                .get("cursor")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::BadArg("missing field `cursor`".into()))?;
            let parsed = cursor
                .strip_prefix("members:")
                .and_then(|rest| rest.split_once(':'))
                .and_then(|(o, l)| Some((o.parse::<usize>().ok()?, l.parse::<usize>().ok()?)));
            match parsed {
                Some(p) => p,
                None => {
                    return Err(ApiError::route(tag("invalid_cursor")));
                }
            }
        }
        other => return Err(ApiError::UnknownRoute(other.to_string())),
    };
    let page: Vec<Value> = team
        .members
        .iter()
        .skip(offset)
        .take(limit)
        .map(|m| {
            let (surname, email) = crate::routes_users::identity(&m.space);
            json!({
                "profile": {
                    "team_member_id": m.member_id,
                    "account_id": m.space.account.account_id,
                    "email": email,
                    "email_verified": true,
                    "status": tag("active"),
                    "name": crate::routes_users::name(&surname),
                    "membership_type": tag("full"),
                    "groups": [],
                    "member_folder_id": m.space.account.account_id.trim_start_matches("dbid:"),
                },
                "roles": [],
            })
        })
        .collect();
    let next = offset + page.len();
    Ok(json!({
        "members": page,
        "cursor": format!("members:{next}:{limit}"),
        "has_more": next < team.members.len(),
    }))
}
