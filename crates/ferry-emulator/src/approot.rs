//! App-folder apps: every path a client sends is relative to `/Apps/<app name>`, and every
//! `path_lower` / `path_display` it receives is relative to it again. Implemented as a
//! rewrite of the argument before routing and of the JSON result after it.

use serde_json::Value;

use crate::paths;

/// Routes whose path field may be `""` (the root): it then means the app folder.
fn root_allowed(route: &str) -> bool {
    matches!(
        route,
        "files/list_folder" | "files/list_folder/get_latest_cursor" | "files/search_v2"
    )
}

fn prefix_path(value: &mut Value, prefix: &str, allow_root: bool) {
    if let Value::String(s) = value {
        // "/" stays as it is, so that it is still the 400 it is on Dropbox.
        if s.starts_with('/') && s != "/" {
            *s = format!("{prefix}{s}");
        } else if s.is_empty() && allow_root {
            *s = prefix.to_string();
        }
    }
}

/// Roots the path fields of an argument at `prefix` (`/Apps/<name>`).
pub fn rewrite_arg(route: &str, arg: &mut Value, prefix: &str) {
    let allow_root = root_allowed(route);
    let Some(map) = arg.as_object_mut() else {
        return;
    };
    for key in ["path", "from_path", "to_path"] {
        if let Some(v) = map.get_mut(key) {
            prefix_path(v, prefix, allow_root);
        }
    }
    if let Some(Value::Object(commit)) = map.get_mut("commit")
        && let Some(v) = commit.get_mut("path")
    {
        prefix_path(v, prefix, false);
    }
    if let Some(Value::Array(items)) = map.get_mut("paths") {
        for v in items {
            prefix_path(v, prefix, false);
        }
    }
    if let Some(Value::Array(entries)) = map.get_mut("entries") {
        for entry in entries {
            rewrite_arg("", entry, prefix);
        }
    }
    if route == "files/search_v2" {
        let options = map
            .entry("options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(options) = options.as_object_mut() {
            let path = options
                .entry("path")
                .or_insert_with(|| Value::String(String::new()));
            prefix_path(path, prefix, true);
        }
    }
}

/// Strips `prefix` from a path in a result (`None` if the path is the app folder itself or
/// outside it).
fn strip(path: &str, prefix_lower: &str) -> Option<String> {
    let n = prefix_lower.len();
    if !path.is_char_boundary(n.min(path.len())) || path.len() < n {
        return None;
    }
    if paths::lower(&path[..n]) != prefix_lower {
        return None;
    }
    let rest = &path[n..];
    rest.starts_with('/').then(|| rest.to_string())
}

/// Makes the paths in a result relative to the app folder; list entries for the app folder
/// itself are dropped.
pub fn rewrite_result(value: &mut Value, prefix_lower: &str) {
    match value {
        Value::Object(map) => {
            for key in ["path_lower", "path_display"] {
                if let Some(Value::String(s)) = map.get(key)
                    && let Some(stripped) = strip(s, prefix_lower)
                {
                    map.insert(key.to_string(), Value::String(stripped));
                }
            }
            if let Some(Value::Array(entries)) = map.get_mut("entries") {
                entries
                    .retain(|e| e.get("path_lower").and_then(Value::as_str) != Some(prefix_lower));
            }
            for (key, child) in map.iter_mut() {
                if key != "path_lower" && key != "path_display" {
                    rewrite_result(child, prefix_lower);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_result(item, prefix_lower);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_are_rooted() {
        let mut arg = json!({"path": "/a.txt", "commit": {"path": "/b"}, "entries": [{"from_path": "/x", "to_path": "/y"}], "paths": ["/p"]});
        rewrite_arg("files/upload", &mut arg, "/Apps/Ferry");
        assert_eq!(
            arg,
            json!({"path": "/Apps/Ferry/a.txt", "commit": {"path": "/Apps/Ferry/b"}, "entries": [{"from_path": "/Apps/Ferry/x", "to_path": "/Apps/Ferry/y"}], "paths": ["/Apps/Ferry/p"]})
        );
        let mut root = json!({"path": ""});
        rewrite_arg("files/list_folder", &mut root, "/Apps/Ferry");
        assert_eq!(root["path"], "/Apps/Ferry");
        let mut slash = json!({"path": "/"});
        rewrite_arg("files/list_folder", &mut slash, "/Apps/Ferry");
        assert_eq!(slash["path"], "/", "still the 400 of Dropbox");
        let mut meta_root = json!({"path": ""});
        rewrite_arg("files/get_metadata", &mut meta_root, "/Apps/Ferry");
        assert_eq!(meta_root["path"], "");
    }

    #[test]
    fn results_are_relative() {
        let mut result = json!({"entries": [
            {"path_lower": "/apps/ferry", "path_display": "/Apps/Ferry"},
            {"path_lower": "/apps/ferry/a.txt", "path_display": "/Apps/Ferry/a.txt"},
        ], "metadata": {"path_lower": "/apps/ferry/b", "path_display": "/apps/FERRY/b"}});
        rewrite_result(&mut result, "/apps/ferry");
        assert_eq!(
            result,
            json!({"entries": [{"path_lower": "/a.txt", "path_display": "/a.txt"}], "metadata": {"path_lower": "/b", "path_display": "/b"}})
        );
    }
}
