//! Mapping an existing Dropbox folder to a record: a folder picker over Dropbox as it is now,
//! the mapping, and removing it.

use super::records::{engine_failed, record_url};
use super::render;
use super::session::{self, Admin, Button, CheckedForm, HasCsrf};
use crate::api::ApiState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use ferry_core::sync_plan::Direction;
use ferry_engine::folder_map::MapRequest;
use minijinja::context;
use serde::Deserialize;

/// `?connection=…&path=…`.
#[derive(Debug, Default, Deserialize)]
pub struct PickerQuery {
    connection: Option<String>,
    path: Option<String>,
}

/// The map form.
#[derive(Debug, Deserialize)]
pub struct MapForm {
    csrf: String,
    connection: String,
    path: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    pull_subfolders: Option<String>,
}

impl HasCsrf for MapForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `/A/B` → `/A`; `/A` → `""`.
pub(super) fn parent_of(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(parent, _)| parent.to_owned())
        .unwrap_or_default()
}

/// A folder picker's entries: name and path.
pub(super) fn picker_entries(folders: &[ferry_dropbox::FolderInfo]) -> Vec<minijinja::Value> {
    folders
        .iter()
        .map(|f| context! { name => f.name, path_display => f.path_display })
        .collect()
}

/// `GET /console/records/{kind}/{key}/map`: the folders of a connection, browsed live.
pub async fn picker(
    State(state): State<ApiState>,
    admin: Admin,
    Path((kind, key)): Path<(String, String)>,
    query: Result<Query<PickerQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let base = record_url(&kind, &key);
    let connections = match state.engine.connections().await {
        Ok(list) => list.connections,
        Err(e) => return engine_failed(&admin, &e, &base),
    };
    let Some(connection) = q
        .connection
        .filter(|c| !c.is_empty())
        .or_else(|| connections.first().map(|c| c.name.clone()))
    else {
        return render::message(
            axum::http::StatusCode::BAD_REQUEST,
            Some(&admin),
            "No connection",
            "Connect a Dropbox account first.",
            Some("/console/connections"),
        );
    };
    let root = connections
        .iter()
        .find(|c| c.name == connection)
        .map(|c| c.root.clone())
        .unwrap_or_default();
    let (path, folders) = match state
        .engine
        .dropbox_folders(&connection, q.path.as_deref().unwrap_or(""))
        .await
    {
        Ok(found) => found,
        Err(e) => return engine_failed(&admin, &e, &base),
    };
    let up = (path != root).then(|| parent_of(&path));
    let folders = picker_entries(&folders);
    render::page(
        &admin,
        "records",
        "map_folder.html",
        context! {
            title => "Map a folder", kind => kind, key => key, base => base,
            connections => connections.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            connection => connection, can_map => path != root, path => path, up => up,
            folders => folders,
        },
    )
}

/// `POST /console/records/{kind}/{key}/map`.
pub async fn map(
    State(state): State<ApiState>,
    Path((kind, key)): Path<(String, String)>,
    CheckedForm(admin, form): CheckedForm<MapForm>,
) -> Response {
    let base = record_url(&kind, &key);
    let direction = match form.direction.as_str() {
        "push" => Direction::Push,
        "pull" => Direction::Pull,
        _ => Direction::Both,
    };
    match state
        .engine
        .map_folder(
            &kind,
            &key,
            MapRequest {
                connection: form.connection,
                path: form.path,
                direction,
                pull_subfolders: form.pull_subfolders.is_some(),
            },
        )
        .await
    {
        Ok(map) => session::done(
            &base,
            &format!("Mapped {} to this record; it syncs now.", map.path),
            false,
        ),
        Err(e) => engine_failed(&admin, &e, &base),
    }
}

/// `POST /console/records/{kind}/{key}/folders/{id}/remove`.
pub async fn remove(
    State(state): State<ApiState>,
    Path((kind, key, id)): Path<(String, String, i64)>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    let base = record_url(&kind, &key);
    match state.engine.unmap_folder(&kind, &key, id).await {
        Ok(map) => session::done(
            &base,
            &format!(
                "Ferry no longer syncs {}; its files stay in Dropbox.",
                map.path
            ),
            false,
        ),
        Err(e) => engine_failed(&admin, &e, &base),
    }
}
