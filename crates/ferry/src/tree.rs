//! Renders a Dropbox folder as an indented tree.

use ferry_dropbox::{DropboxClient, DropboxError, Entry};

/// Lists `root` recursively and renders it, folders before files at each level.
pub async fn render_tree(client: &DropboxClient, root: &str) -> Result<String, DropboxError> {
    let (entries, _cursor) = client.list_all(root, true).await?;
    Ok(render_entries(root, &entries))
}

/// Renders listing entries under `root` (entries outside it are ignored).
pub fn render_entries(root: &str, entries: &[Entry]) -> String {
    let prefix = format!("{}/", root.to_lowercase());
    let mut items: Vec<(Vec<String>, bool, String)> = entries
        .iter()
        .filter_map(|e| {
            let (is_folder, size) = match e {
                Entry::Folder(_) => (true, String::new()),
                Entry::File(f) => (false, format!("  ({} bytes)", f.size)),
                Entry::Deleted { .. } => return None,
            };
            let display = e.path_display();
            if !e.path_lower().starts_with(&prefix) {
                return None;
            }
            let rel = display.get(prefix.len()..)?;
            let parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
            Some((parts, is_folder, size))
        })
        .collect();
    // Sort so that each folder comes before its contents and folders before files.
    items.sort_by(|a, b| {
        let key = |i: &(Vec<String>, bool, String)| {
            i.0.iter()
                .enumerate()
                .map(|(n, p)| {
                    let folder = n + 1 < i.0.len() || i.1;
                    (if folder { 0 } else { 1 }, p.to_lowercase())
                })
                .collect::<Vec<_>>()
        };
        key(a).cmp(&key(b))
    });
    let mut out = format!("{}/\n", if root.is_empty() { "" } else { root });
    for (parts, is_folder, size) in items {
        let depth = parts.len();
        let name = parts.last().cloned().unwrap_or_default();
        out.push_str(&"    ".repeat(depth));
        out.push_str(&name);
        if is_folder {
            out.push('/');
        }
        out.push_str(&size);
        out.push('\n');
    }
    out
}
