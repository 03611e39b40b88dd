//! `Metadata` JSON as the SDK expects it: plain objects where the field's type is a concrete
//! subtype (`FileMetadata`, `FolderMetadata`), `.tag`-first objects where it is `Metadata`.

use serde_json::{Map, Value};

use crate::journal::FileInfo;
use crate::paths;
use crate::wire::tagged;

fn common(display: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("name".into(), paths::file_name(display).into());
    map.insert("path_lower".into(), paths::lower(display).into());
    map.insert("path_display".into(), display.into());
    map
}

fn file_fields(display: &str, id: &str, info: &FileInfo) -> Map<String, Value> {
    let mut map = common(display);
    map.insert("id".into(), id.into());
    map.insert(
        "client_modified".into(),
        info.client_modified.clone().into(),
    );
    map.insert(
        "server_modified".into(),
        info.server_modified.clone().into(),
    );
    map.insert("rev".into(), info.rev.clone().into());
    map.insert("size".into(), info.size.into());
    map.insert("content_hash".into(), info.content_hash.clone().into());
    map.insert("is_downloadable".into(), true.into());
    map
}

fn folder_fields(display: &str, id: &str) -> Map<String, Value> {
    let mut map = common(display);
    map.insert("id".into(), id.into());
    map
}

/// `FileMetadata` (no `.tag`).
pub fn file(display: &str, id: &str, info: &FileInfo) -> Value {
    Value::Object(file_fields(display, id, info))
}

/// `FolderMetadata` (no `.tag`).
pub fn folder(display: &str, id: &str) -> Value {
    Value::Object(folder_fields(display, id))
}

/// `Metadata` for an existing node: `.tag` `file` or `folder`.
pub fn tagged_node(display: &str, id: &str, file: Option<&FileInfo>) -> Value {
    match file {
        Some(info) => tagged("file", file_fields(display, id, info)),
        None => tagged("folder", folder_fields(display, id)),
    }
}

/// `Metadata` with `.tag` `deleted`.
pub fn deleted(display: &str) -> Value {
    tagged("deleted", common(display))
}
