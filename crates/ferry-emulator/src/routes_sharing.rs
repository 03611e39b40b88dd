//! The `sharing/*` routes: one shared link per item (`create_shared_link_with_settings`,
//! with `shared_link_already_exists` carrying the existing link), `list_shared_links` and
//! `revoke_shared_link`.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::links::Link;
use crate::paths::{self, PathKind};
use crate::routes_files::{lookup_failed, parse_path};
use crate::server::Ctx;
use crate::state::{Key, LookupErr, Node, Tree};
use crate::wire::{self, ApiError, VoidUnion, check_timestamp, from_arg, nested, tag, tagged};

/// Runs one `sharing/*` route.
pub async fn call(cx: &Ctx<'_>, route: &str, arg: Value) -> Result<Response, ApiError> {
    match route {
        "sharing/create_shared_link_with_settings" => create(cx, arg),
        "sharing/list_shared_links" => list(cx, arg),
        "sharing/revoke_shared_link" => revoke(cx, arg),
        _ => Err(ApiError::UnknownRoute(route.to_string())),
    }
}

fn ok(value: &Value) -> Result<Response, ApiError> {
    Ok(wire::json(StatusCode::OK, value))
}

/// `SharedLinkMetadata` (`.tag` file or folder) for a link to `node`.
fn link_metadata(link: &Link, node: &Node) -> Value {
    let policy = |name: &str, allowed: bool| {
        json!({
            "policy": tag(name),
            "resolved_policy": tag(name),
            "allowed": allowed,
        })
    };
    let resolved = match link.audience.as_str() {
        "team" => "team_only",
        "no_one" => "no_one",
        _ => "public",
    };
    let permissions = json!({
        "can_revoke": true,
        "resolved_visibility": tag(resolved),
        "visibility_policies": [policy("public", true), policy("team_only", true), policy("password", false)],
        "can_set_expiry": true,
        "can_remove_expiry": true,
        "allow_download": true,
        "can_allow_download": true,
        "can_disallow_download": true,
        "allow_comments": true,
        "team_restricts_comments": false,
        "effective_audience": tag(&link.audience),
        "link_access_level": tag("viewer"),
    });
    let mut fields = Map::new();
    fields.insert("url".into(), link.url.clone().into());
    fields.insert("id".into(), node.id.clone().into());
    fields.insert("name".into(), paths::file_name(&node.display).into());
    fields.insert("path_lower".into(), paths::lower(&node.display).into());
    if let Some(expires) = &link.expires {
        fields.insert("expires".into(), expires.clone().into());
    }
    fields.insert("link_permissions".into(), permissions);
    match &node.file {
        Some(info) => {
            fields.insert(
                "client_modified".into(),
                info.client_modified.clone().into(),
            );
            fields.insert(
                "server_modified".into(),
                info.server_modified.clone().into(),
            );
            fields.insert("rev".into(), info.rev.clone().into());
            fields.insert("size".into(), info.size.into());
            tagged("file", fields)
        }
        None => tagged("folder", fields),
    }
}

/// Resolves a `ReadPath` to an existing node (`path/<LookupError>` otherwise).
fn resolve(tree: &Tree, raw: &str) -> Result<Node, ApiError> {
    let path = parse_path("path", raw, PathKind::Read, false, || {
        lookup_failed("path", LookupErr::Malformed)
    })?;
    match tree.resolve(&path).map_err(|e| lookup_failed("path", e))? {
        Key::Path(lower) => tree
            .get(&lower)
            .cloned()
            .ok_or_else(|| lookup_failed("path", LookupErr::NotFound)),
        Key::Rev(rev) => tree
            .rev(&rev)
            .cloned()
            .ok_or_else(|| lookup_failed("path", LookupErr::NotFound)),
        Key::Root => Err(lookup_failed("path", LookupErr::NotFound)),
    }
}

#[derive(Debug, Deserialize)]
struct CreateArg {
    path: String,
    #[serde(default)]
    settings: Option<Settings>,
}

#[derive(Debug, Default, Deserialize)]
struct Settings {
    #[serde(default)]
    audience: Option<VoidUnion>,
    #[serde(default)]
    requested_visibility: Option<VoidUnion>,
    #[serde(default)]
    expires: Option<String>,
}

fn settings_error(reason: &str) -> ApiError {
    ApiError::route(nested("settings_error", tag(reason)))
}

fn create(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: CreateArg = from_arg(arg)?;
    let settings = arg.settings.unwrap_or_default();
    if let Some(expires) = &settings.expires {
        check_timestamp("settings.expires", expires)?;
        if expires.as_str() <= wire::now_timestamp().as_str() {
            return Err(settings_error("invalid_settings"));
        }
    }
    let audience = match (&settings.audience, &settings.requested_visibility) {
        (Some(VoidUnion(a)), _) => a.clone(),
        (None, Some(VoidUnion(v))) if v == "team_only" => "team".into(),
        (None, Some(VoidUnion(v))) if v == "public" => "public".into(),
        (None, Some(VoidUnion(_))) => return Err(settings_error("invalid_settings")),
        (None, None) => "public".into(),
    };
    if !matches!(audience.as_str(), "public" | "team" | "no_one") {
        return Err(settings_error("invalid_settings"));
    }
    // Basic accounts may only make public links that never expire; team links need a team.
    let on_team = cx
        .app
        .team
        .as_ref()
        .is_some_and(|t| t.member_of(cx.user).is_some());
    if !on_team && (audience == "team" || settings.expires.is_some()) {
        return Err(settings_error("not_authorized"));
    }
    let tree = cx.tree();
    let node = resolve(&tree, &arg.path)?;
    if let Some(existing) = cx.links.for_node(&node.id) {
        // As Dropbox does, the existing link is only returned when the settings asked for
        // could not make it a different one.
        let asked_other = (settings.audience.is_some() || settings.requested_visibility.is_some())
            && existing.audience != audience
            || settings.expires.is_some() && existing.expires != settings.expires;
        if asked_other {
            return Err(ApiError::route(tag("shared_link_already_exists")));
        }
        let metadata = nested("metadata", link_metadata(&existing, &node));
        return Err(ApiError::route(nested(
            "shared_link_already_exists",
            metadata,
        )));
    }
    let kind = if node.file.is_some() { "fi" } else { "fo" };
    let link = Link {
        url: format!(
            "https://www.dropbox.com/scl/{kind}/{}/{}?rlkey={}&dl=0",
            wire::random_token(21).to_lowercase(),
            url_component(paths::file_name(&node.display)),
            wire::random_token(25).to_lowercase(),
        ),
        node_id: node.id.clone(),
        audience,
        expires: settings.expires,
    };
    cx.links.add(link.clone())?;
    ok(&link_metadata(&link, &node))
}

fn url_component(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct ListArg {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    direct_only: bool,
}

fn list(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: ListArg = from_arg(arg)?;
    if arg.cursor.is_some() {
        // All links fit in one page, so no cursor is ever handed out.
        return Err(ApiError::route(tag("reset")));
    }
    let tree = cx.tree();
    let target = match &arg.path {
        Some(raw) => Some(resolve(&tree, raw)?),
        None => None,
    };
    let mut links = Vec::new();
    for link in cx.links.all() {
        let Some(node) = tree.by_id(&link.node_id) else {
            continue;
        };
        let wanted = match &target {
            None => true,
            Some(t) if t.id == node.id => true,
            // Links to a parent folder also give access, unless only direct links are asked.
            Some(t) => {
                !arg.direct_only
                    && node.file.is_none()
                    && paths::lower(&t.display)
                        .starts_with(&format!("{}/", paths::lower(&node.display)))
            }
        };
        if wanted {
            links.push(link_metadata(&link, node));
        }
    }
    ok(&json!({ "links": links, "has_more": false }))
}

#[derive(Debug, Deserialize)]
struct RevokeArg {
    url: String,
}

fn revoke(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: RevokeArg = from_arg(arg)?;
    if cx.links.revoke(&arg.url)? {
        ok(&Value::Null)
    } else {
        Err(ApiError::route(tag("shared_link_not_found")))
    }
}
