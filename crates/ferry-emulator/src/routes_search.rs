//! `files/search_v2` and `files/search/continue_v2`: a name search (every query word must
//! occur in the item's name, case-insensitively) over current items or tombstones, in path
//! order, paged by `max_results`. There is no indexing delay and no content search.

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::metadata;
use crate::paths::{self, PathKind};
use crate::routes_files::{lookup_failed, parse_path};
use crate::server::Ctx;
use crate::state::{Key, LookupErr};
use crate::wire::{self, ApiError, VoidUnion, from_arg, nested, tag};

/// Dropbox stops at 10,000 matches overall.
const MAX_MATCHES: usize = 10_000;

/// Runs one search route.
pub async fn call(cx: &Ctx<'_>, route: &str, arg: Value) -> Result<Response, ApiError> {
    match route {
        "files/search_v2" => search(cx, arg),
        "files/search/continue_v2" => search_continue(cx, arg),
        _ => Err(ApiError::UnknownRoute(route.to_string())),
    }
}

#[derive(Debug, Deserialize)]
struct SearchArg {
    query: String,
    #[serde(default)]
    options: Option<SearchOptions>,
}

#[derive(Debug, Default, Deserialize)]
struct SearchOptions {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    max_results: Option<u64>,
    #[serde(default)]
    file_status: Option<VoidUnion>,
    #[serde(default)]
    file_extensions: Option<Vec<String>>,
}

/// What a search cursor remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SearchCursor {
    q: String,
    p: String,
    d: bool,
    e: Vec<String>,
    m: usize,
    o: usize,
}

fn search(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: SearchArg = from_arg(arg)?;
    if arg.query.chars().count() > 1000 {
        return Err(ApiError::BadArg(
            "query: longer than 1000 characters".into(),
        ));
    }
    let options = arg.options.unwrap_or_default();
    let max = options.max_results.unwrap_or(100);
    if !(1..=1000).contains(&max) {
        return Err(ApiError::BadArg(format!(
            "options.max_results: {max} is not within the range 1 to 1000"
        )));
    }
    let deleted = match options.file_status {
        None => false,
        Some(VoidUnion(s)) if s == "active" => false,
        Some(VoidUnion(s)) if s == "deleted" => true,
        Some(VoidUnion(s)) => {
            return Err(ApiError::BadArg(format!(
                "options.file_status: unknown tag '{s}'"
            )));
        }
    };
    let scope = match options.path.as_deref() {
        None | Some("") => String::new(),
        Some(raw) => {
            let path = parse_path("options.path", raw, PathKind::ReadOrId, true, || {
                lookup_failed("path", LookupErr::Malformed)
            })?;
            let tree = cx.tree();
            match tree.resolve(&path).map_err(|e| lookup_failed("path", e))? {
                Key::Root => String::new(),
                Key::Path(lower) => match tree.get(&lower) {
                    Some(node) if node.file.is_none() => lower,
                    Some(_) => return Err(lookup_failed("path", LookupErr::NotFolder)),
                    None => return Err(lookup_failed("path", LookupErr::NotFound)),
                },
                Key::Rev(_) => return Err(lookup_failed("path", LookupErr::NotFolder)),
            }
        }
    };
    let cursor = SearchCursor {
        q: arg.query,
        p: scope,
        d: deleted,
        e: options
            .file_extensions
            .unwrap_or_default()
            .iter()
            .map(|e| e.trim_start_matches('.').to_lowercase())
            .collect(),
        m: max as usize,
        o: 0,
    };
    page(cx, cursor)
}

#[derive(Debug, Deserialize)]
struct ContinueArg {
    cursor: String,
}

fn search_continue(cx: &Ctx<'_>, arg: Value) -> Result<Response, ApiError> {
    let arg: ContinueArg = from_arg(arg)?;
    let cursor = URL_SAFE_NO_PAD
        .decode(arg.cursor.as_bytes())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<SearchCursor>(&bytes).ok())
        .ok_or_else(|| {
            ApiError::route(nested(
                "invalid_argument",
                Value::String("invalid cursor".into()),
            ))
        })?;
    page(cx, cursor)
}

fn page(cx: &Ctx<'_>, cursor: SearchCursor) -> Result<Response, ApiError> {
    let words: Vec<String> = cursor.q.split_whitespace().map(paths::lower).collect();
    let matches_name = |lower: &str| {
        let name = paths::file_name(lower);
        let in_scope = cursor.p.is_empty() || lower.starts_with(&format!("{}/", cursor.p));
        let ext_ok = cursor.e.is_empty()
            || name
                .rsplit_once('.')
                .is_some_and(|(_, ext)| cursor.e.iter().any(|e| e == ext));
        in_scope && ext_ok && !words.is_empty() && words.iter().all(|w| name.contains(w.as_str()))
    };
    let tree = cx.tree();
    let mut found: Vec<(String, Value)> = if cursor.d {
        tree.tombstones()
            .filter(|(lower, _)| matches_name(lower))
            .map(|(lower, display)| (lower.clone(), metadata::deleted(display)))
            .collect()
    } else {
        tree.nodes()
            .filter(|(lower, _)| matches_name(lower))
            .map(|(lower, node)| (lower.clone(), node.tagged_metadata()))
            .collect()
    };
    drop(tree);
    found.sort_by(|a, b| paths::listing_order(&a.0, &b.0));
    found.truncate(MAX_MATCHES);
    let rest = found.get(cursor.o..).unwrap_or_default();
    let taken: Vec<Value> = rest
        .iter()
        .take(cursor.m)
        .map(|(_, metadata)| {
            json!({
                "metadata": nested("metadata", metadata.clone()),
                "match_type": tag("filename"),
            })
        })
        .collect();
    let has_more = rest.len() > taken.len();
    let mut result = json!({ "matches": taken, "has_more": has_more });
    if has_more {
        let next = SearchCursor {
            o: cursor.o + cursor.m,
            ..cursor
        };
        let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&next).unwrap_or_default());
        result["cursor"] = Value::String(encoded);
    }
    Ok(wire::json(StatusCode::OK, &result))
}
