//! Connections: status, account, root, storage; connect through Dropbox's page (or paste a
//! token), reconnect, disconnect.

use super::render;
use super::session::{self, Admin, Button, CheckedForm, HasCsrf};
use crate::api::ApiState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_core::secret::Secret;
use ferry_dropbox::Endpoints;
use ferry_engine::connect_flow::{ConnectError, ConnectRequest};
use ferry_engine::team_members::ConnectOutcome;
use ferry_engine::{AppAccess, ConnectionInput, Credentials, EngineError, PathRootChoice};
use minijinja::{Value, context};
use serde::Deserialize;
use std::time::Duration;

/// How long the page waits for Dropbox's storage figures.
const SPACE_TIMEOUT: Duration = Duration::from_secs(3);

/// `?tab=oauth|token`.
#[derive(Debug, Deserialize)]
pub struct TabQuery {
    tab: Option<String>,
}

/// The connect form (also the reconnect button).
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct ConnectForm {
    #[serde(skip_serializing)]
    csrf: String,
    name: String,
    #[serde(default)]
    root: String,
    #[serde(default)]
    path_root: Option<String>,
    #[serde(default)]
    select_user: Option<String>,
}

impl HasCsrf for ConnectForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The paste-a-token form.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct TokenForm {
    #[serde(skip_serializing)]
    csrf: String,
    name: String,
    #[serde(default)]
    root: String,
    #[serde(skip_serializing)]
    token: String,
    /// `full_dropbox`, `app_folder`, or empty: not known.
    #[serde(default)]
    app_access: String,
}

impl HasCsrf for TokenForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn page(
    state: &ApiState,
    admin: &Admin,
    status: StatusCode,
    tab: &str,
    form: Value,
    form_error: Option<String>,
) -> Response {
    let engine = &state.engine;
    let list = match engine.connections().await {
        Ok(list) => list.connections,
        Err(e) => {
            tracing::error!(error = %e, "cannot list connections");
            return render::message(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(admin),
                "Ferry could not read its connections",
                "The database did not answer; try again in a moment.",
                Some("/console"),
            );
        }
    };
    // Storage is asked of Dropbox for every connection at once, each with a short timeout.
    let details = futures::future::join_all(list.iter().map(|c| async move {
        let space = if c.needs_reconnect.is_some() {
            Err("unknown until reconnected".to_owned())
        } else {
            match tokio::time::timeout(SPACE_TIMEOUT, engine.connection_space(&c.name)).await {
                Ok(Ok(space)) => Ok(space),
                Ok(Err(e)) => {
                    tracing::warn!(connection = %c.name, error = %e, "storage figures unavailable");
                    Err("Dropbox did not say (see Ferry's log)".to_owned())
                }
                Err(_) => Err("Dropbox did not answer in time".to_owned()),
            }
        };
        let to_bring_back = if c.disconnecting {
            engine.records_to_bring_back(&c.name).await.unwrap_or(0)
        } else {
            0
        };
        (space, to_bring_back)
    }))
    .await;
    let connections: Vec<Value> = list
        .iter()
        .zip(details)
        .map(|(c, (space, to_bring_back))| {
            let (space, space_error) = match space {
                Ok(s) => (
                    Some(context! {
                        used => s.used,
                        allocated => s.allocated,
                        team => s.team,
                        share => s.allocated.filter(|a| *a > 0).map_or(0, |a| (s.used.saturating_mul(100) / a).min(100)),
                    }),
                    None,
                ),
                Err(why) => (None, Some(why)),
            };
            context! { ..Value::from_serialize(c), ..context! {
                space => space, space_error => space_error, to_bring_back => to_bring_back,
            }}
        })
        .collect();
    render::render(
        status,
        Some(admin),
        "connections",
        "connections.html",
        context! {
            title => "Connections",
            connections => connections,
            connect_configured => engine.connect_configured(),
            connect_access => engine.connect_access(),
            tab => tab,
            form => form,
            form_error => form_error,
        },
    )
}

/// `GET /console/connections`.
pub async fn list(
    State(state): State<ApiState>,
    admin: Admin,
    query: Result<Query<TabQuery>, QueryRejection>,
) -> Response {
    let tab = match query.as_ref().ok().and_then(|q| q.tab.as_deref()) {
        Some("token") => "token",
        _ => "oauth",
    };
    page(&state, &admin, StatusCode::OK, tab, Value::UNDEFINED, None).await
}

/// The hosts a connection uses: its own when it exists, else the operator's default.
async fn endpoints_for(state: &ApiState, name: &str) -> Endpoints {
    if let Ok(list) = state.engine.connections().await
        && let Some(c) = list.connections.iter().find(|c| c.name == name)
    {
        let dropbox = Endpoints::dropbox();
        if c.api_url != dropbox.api
            && let Ok(single) = Endpoints::single(&c.api_url)
        {
            return single;
        }
        return dropbox;
    }
    state.console_endpoints.clone()
}

/// `POST /console/connections/connect`: off to Dropbox's authorize page.
pub async fn connect(
    State(state): State<ApiState>,
    CheckedForm(admin, form): CheckedForm<ConnectForm>,
) -> Response {
    let path_root = match PathRootChoice::parse(form.path_root.as_deref().unwrap_or("home")) {
        Ok(p) => p,
        Err(e) => {
            return page(
                &state,
                &admin,
                StatusCode::BAD_REQUEST,
                "oauth",
                Value::from_serialize(&form),
                Some(e.to_string()),
            )
            .await;
        }
    };
    let request = ConnectRequest {
        name: form.name.trim().to_owned(),
        root: form.root.trim().to_owned(),
        endpoints: endpoints_for(&state, form.name.trim()).await,
        select_user: crate::api::nonempty(&form.select_user),
        path_root,
        session_hash: Some(admin.session_hash.clone()),
    };
    match state.engine.connect_start(request).await {
        Ok(started) => Redirect::to(&started.authorize_url).into_response(),
        Err(e) => {
            let message = match e {
                ConnectError::Engine(EngineError::Invalid(m)) => m,
                other => other.to_string(),
            };
            page(
                &state,
                &admin,
                StatusCode::BAD_REQUEST,
                "oauth",
                Value::from_serialize(&form),
                Some(message),
            )
            .await
        }
    }
}

/// `POST /console/connections/token`: a pasted access token, checked against Dropbox.
pub async fn paste_token(
    State(state): State<ApiState>,
    CheckedForm(admin, form): CheckedForm<TokenForm>,
) -> Response {
    let name = form.name.trim().to_owned();
    let app_access = match form.app_access.as_str() {
        "" => Ok(None),
        text => AppAccess::parse(text).map(Some),
    };
    let outcome = match app_access {
        Ok(app_access) => {
            let input = ConnectionInput {
                name: name.clone(),
                credentials: Credentials::Token(Secret::new(form.token.trim().to_owned())),
                root: form.root.trim().to_owned(),
                endpoints: endpoints_for(&state, &name).await,
                select_user: None,
                path_root: PathRootChoice::Home,
                app_access,
            };
            state
                .engine
                .connect_or_pick(input, Some(&admin.session_hash))
                .await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(outcome) => after_connect(&name, outcome, false),
        Err(e) => {
            let message = match &e {
                EngineError::Invalid(m) => m.clone(),
                EngineError::Dropbox(ferry_dropbox::DropboxError::Auth(_)) => {
                    "Dropbox refused this token (expired, revoked or mistyped).".to_owned()
                }
                EngineError::AccountSwitch { .. } => e.to_string(),
                _ => {
                    tracing::error!(error = %e, "saving a pasted token failed");
                    "Ferry could not check the token with Dropbox just now; try again.".to_owned()
                }
            };
            page(
                &state,
                &admin,
                StatusCode::BAD_REQUEST,
                "token",
                Value::from_serialize(&form),
                Some(message),
            )
            .await
        }
    }
}

/// `GET /console/connections/{name}/disconnect`: what disconnecting does, and a button.
pub async fn confirm_disconnect(admin: Admin, Path(name): Path<String>) -> Response {
    render::page(
        &admin,
        "connections",
        "disconnect.html",
        context! { title => "Disconnect", name => name },
    )
}

/// `POST /console/connections/{name}/disconnect`.
pub async fn disconnect(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    match state.engine.disconnect(&name).await {
        Ok(0) => session::done(
            "/console/connections",
            &format!("Disconnected {name}: nothing was bound to it."),
            false,
        ),
        Ok(n) => session::done(
            "/console/connections",
            &format!(
                "Disconnecting {name}: bringing back the files of {n} records from Dropbox first."
            ),
            false,
        ),
        Err(EngineError::UnknownConnection(_)) => render::message(
            StatusCode::NOT_FOUND,
            Some(&admin),
            "No such connection",
            &format!("There is no connection named {name:?}."),
            Some("/console/connections"),
        ),
        Err(e) => {
            tracing::error!(error = %e, "disconnect failed");
            render::message(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&admin),
                "Not disconnected",
                "Ferry could not start the disconnect; nothing changed. Try again.",
                Some("/console/connections"),
            )
        }
    }
}

/// The member picker's form.
#[derive(Debug, Deserialize)]
pub struct PickForm {
    csrf: String,
    #[serde(default)]
    member: String,
    #[serde(default)]
    path_root: String,
}

impl HasCsrf for PickForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A failed team pick or account switch, in words.
fn pick_failed(admin: &Admin, e: &EngineError) -> Response {
    let (status, message) = match e {
        EngineError::NotFound(m) | EngineError::Invalid(m) => (StatusCode::BAD_REQUEST, m.clone()),
        EngineError::AccountSwitch { .. } => (StatusCode::CONFLICT, e.to_string()),
        other => {
            tracing::error!(error = %other, "team pick or account switch failed");
            (
                StatusCode::BAD_GATEWAY,
                "Ferry could not reach Dropbox just now; nothing changed. Try again.".into(),
            )
        }
    };
    render::message(
        status,
        Some(admin),
        "Not connected",
        &message,
        Some("/console/connections"),
    )
}

/// `GET /console/connections/pick/{id}`: the team's members, to pick the one Ferry acts as.
pub async fn pick(State(state): State<ApiState>, admin: Admin, Path(id): Path<String>) -> Response {
    match state.engine.pending_team(&id, &admin.session_hash).await {
        Ok(team) => {
            let members: Vec<Value> = team
                .members
                .iter()
                .map(|m| {
                    context! {
                        member_id => m.member_id, display_name => m.display_name,
                        email => m.email, status => m.status,
                    }
                })
                .collect();
            render::page(
                &admin,
                "connections",
                "pick_member.html",
                context! {
                    title => "Pick the team member", id => id,
                    connection => team.connection, root => team.root, members => members,
                },
            )
        }
        Err(e) => pick_failed(&admin, &e),
    }
}

/// `POST /console/connections/pick/{id}`.
pub async fn picked(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    CheckedForm(admin, form): CheckedForm<PickForm>,
) -> Response {
    if form.member.is_empty() {
        return render::message(
            StatusCode::BAD_REQUEST,
            Some(&admin),
            "Pick a member",
            "Choose the team member Ferry acts as.",
            Some(&format!("/console/connections/pick/{id}")),
        );
    }
    let path_root = match PathRootChoice::parse(&form.path_root) {
        Ok(p) => p,
        Err(e) => return pick_failed(&admin, &e),
    };
    match state
        .engine
        .finish_pending(&id, &admin.session_hash, &form.member, path_root)
        .await
    {
        Ok((name, outcome)) => after_connect(&name, outcome, true),
        Err(e) => pick_failed(&admin, &e),
    }
}

/// Where a connect from the console leads: done, the member picker, or the switch
/// confirmation. `member`: the account is a team member the admin picked.
fn after_connect(name: &str, outcome: ConnectOutcome, member: bool) -> Response {
    match outcome {
        ConnectOutcome::PickMember(id) => {
            Redirect::to(&format!("/console/connections/pick/{id}")).into_response()
        }
        ConnectOutcome::ConfirmSwitch(id) => {
            Redirect::to(&format!("/console/connections/switch/{id}")).into_response()
        }
        ConnectOutcome::Connected(account) if member => session::done(
            "/console/connections",
            &format!(
                "Connected {name} as team member {} ({}): currently active.",
                account.display_name, account.email
            ),
            false,
        ),
        ConnectOutcome::Connected(account) => session::done(
            "/console/connections",
            &format!(
                "Connected {name} to {} ({}); files start syncing under its rules.",
                account.display_name, account.email
            ),
            false,
        ),
    }
}

/// `GET /console/connections/switch/{id}`: what an account switch does, and a button.
pub async fn confirm_switch(
    State(state): State<ApiState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Response {
    match state
        .engine
        .pending_switch_view(&id, &admin.session_hash)
        .await
    {
        Ok(view) => render::page(
            &admin,
            "connections",
            "switch.html",
            context! {
                title => "Switch accounts", id => id, connection => view.connection,
                before => view.before, after => view.after,
            },
        ),
        Err(e) => pick_failed(&admin, &e),
    }
}

/// `POST /console/connections/switch/{id}`: disconnect (reverse sync), then connect the new
/// account under the same name.
pub async fn switch(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    match state.engine.confirm_switch(&id, &admin.session_hash).await {
        Ok(n) => session::done(
            "/console/connections",
            &format!(
                "Switching accounts: bringing back the files of {n} records from the old account first; the new account is connected as soon as that is done."
            ),
            false,
        ),
        Err(e) => pick_failed(&admin, &e),
    }
}

/// `?path=…` of the root picker.
#[derive(Debug, Default, Deserialize)]
pub struct RootQuery {
    path: Option<String>,
}

/// The new-root form.
#[derive(Debug, Deserialize)]
pub struct RootForm {
    csrf: String,
    #[serde(default)]
    root: String,
}

impl HasCsrf for RootForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `GET /console/connections/{name}/root`: the folders the connection reaches, browsed live
/// from the top of its Dropbox (or its app folder), to pick a new root.
pub async fn root_picker(
    State(state): State<ApiState>,
    admin: Admin,
    Path(name): Path<String>,
    query: Result<Query<RootQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let connection = match state.engine.connections().await {
        Ok(list) => list.connections.into_iter().find(|c| c.name == name),
        Err(e) => return super::records::engine_failed(&admin, &e, "/console/connections"),
    };
    let Some(connection) = connection else {
        return super::records::engine_failed(
            &admin,
            &EngineError::UnknownConnection(name),
            "/console/connections",
        );
    };
    let browse = q.path.unwrap_or_else(|| connection.root.clone());
    let (path, folders) = match state.engine.account_folders(&name, &browse).await {
        Ok(found) => found,
        Err(e) => return super::records::engine_failed(&admin, &e, "/console/connections"),
    };
    let up = (!path.is_empty()).then(|| super::folder_map::parent_of(&path));
    render::page(
        &admin,
        "connections",
        "root_pick.html",
        context! {
            title => format!("Root folder of {name}"),
            c => connection,
            path => path,
            up => up,
            folders => super::folder_map::picker_entries(&folders),
        },
    )
}

/// `POST /console/connections/{name}/root`.
pub async fn change_root(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    CheckedForm(admin, form): CheckedForm<RootForm>,
) -> Response {
    let root = form.root.trim().trim_end_matches('/');
    let back = format!(
        "/console/connections/{}/root",
        render::urlencode(name.clone())
    );
    match state.engine.change_root(&name, root).await {
        Ok(()) => session::done(
            "/console/connections",
            &format!(
                "{name}'s root is now {}; each record's folder moves there on its next pass (one move in Dropbox, nothing uploaded again).",
                if root.is_empty() {
                    "the top folder"
                } else {
                    root
                }
            ),
            false,
        ),
        Err(e) => super::records::engine_failed(&admin, &e, &back),
    }
}
