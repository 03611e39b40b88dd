//! Rules: the list in order, a form to create or edit one with its errors next to the
//! fields, a preview of what it would do for existing records, delete.

use super::render::{self, urlencode};
use super::session::{self, Admin, CheckedForm, HasCsrf};
use crate::api::ApiState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use ferry_core::rules::{LinkMode, RuleSpec};
use ferry_core::sync_plan::Direction;
use ferry_engine::EngineError;
use minijinja::{Value, context};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The rule form, as the browser sends it (checkboxes only when ticked).
#[derive(Debug, Deserialize)]
pub struct RuleForm {
    csrf: String,
    #[serde(default)]
    original: String,
    #[serde(default)]
    action: String,
    name: String,
    record_kind: String,
    connection: String,
    folder: String,
    #[serde(default)]
    file_path: String,
    #[serde(default)]
    condition: String,
    #[serde(default)]
    file_filter: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    pull_subfolders: Option<String>,
    #[serde(default)]
    subfolders: String,
    #[serde(default)]
    recreate_subfolders: Option<String>,
    #[serde(default)]
    links: String,
    #[serde(default)]
    link_expiry_days: String,
    #[serde(default)]
    folder_links: Option<String>,
    #[serde(default)]
    offload: Option<String>,
    #[serde(default)]
    order: String,
}

impl HasCsrf for RuleForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

fn opt(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl RuleForm {
    /// The rule it describes, or the field that is wrong and why.
    fn spec(&self) -> Result<RuleSpec, (&'static str, String)> {
        let direction = match self.direction.as_str() {
            "" | "push" => Direction::Push,
            "pull" => Direction::Pull,
            "both" => Direction::Both,
            other => return Err(("direction", format!("{other:?} is not a direction"))),
        };
        let links = match self.links.as_str() {
            "" | "off" => LinkMode::Off,
            "public" => LinkMode::Public,
            "team" => LinkMode::Team,
            other => return Err(("links", format!("{other:?} is not a link setting"))),
        };
        let link_expiry_days = match opt(&self.link_expiry_days) {
            None => None,
            Some(t) => Some(t.parse::<u32>().map_err(|_| {
                (
                    "link_expiry_days",
                    "a whole number of days, 1 to 3650".to_owned(),
                )
            })?),
        };
        let order = match opt(&self.order) {
            None => 0,
            Some(t) => t
                .parse::<i32>()
                .map_err(|_| ("order", "a whole number, such as 0 or 10".to_owned()))?,
        };
        Ok(RuleSpec {
            name: self.name.trim().to_owned(),
            order,
            record_kind: self.record_kind.trim().to_owned(),
            connection: self.connection.trim().to_owned(),
            condition: opt(&self.condition),
            folder: self.folder.trim().to_owned(),
            file_path: opt(&self.file_path),
            file_filter: opt(&self.file_filter),
            direction,
            pull_subfolders: self.pull_subfolders.is_some(),
            subfolders: self
                .subfolders
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            recreate_subfolders: self.recreate_subfolders.is_some(),
            links,
            link_expiry_days,
            folder_links: self.folder_links.is_some(),
            offload: self.offload.is_some(),
        })
    }

    /// What the form shows again after an error (the fields as typed).
    fn echo(&self) -> Value {
        context! {
            name => self.name, record_kind => self.record_kind, connection => self.connection,
            folder => self.folder, file_path => self.file_path, condition => self.condition,
            file_filter => self.file_filter, direction => self.direction,
            pull_subfolders => self.pull_subfolders.is_some(),
            subfolders => self.subfolders.lines().map(str::to_owned).collect::<Vec<_>>(),
            recreate_subfolders => self.recreate_subfolders.is_some(), links => self.links,
            link_expiry_days => self.link_expiry_days, folder_links => self.folder_links.is_some(),
            offload => self.offload.is_some(), order => self.order,
        }
    }
}

/// The preview as the page shows it: file paths and actions relative to each record's folder.
fn preview_context(
    mut preview: ferry_engine::views::RulePreview,
) -> ferry_engine::views::RulePreview {
    for r in &mut preview.records {
        if let Some(folder) = r.folder.clone() {
            let under = format!("{folder}/");
            let at = format!("{folder}: ");
            for f in &mut r.files {
                if let Some(rest) = f.strip_prefix(&under) {
                    *f = rest.to_owned();
                }
            }
            for a in &mut r.actions {
                if let Some(rest) = a.strip_prefix(&at) {
                    *a = rest.to_owned();
                }
            }
        }
    }
    preview
}

/// Which form field an engine message is about (they start with the field's name, after
/// `invalid rule: `), so the error shows next to it.
fn field_of(message: &str) -> Option<&'static str> {
    const FIELDS: &[&str] = &[
        "record_kind",
        "connection",
        "folder",
        "file_path",
        "condition",
        "file_filter",
        "link_expiry_days",
        "folder_links",
        "links",
        "subfolder",
        "order",
        "name",
    ];
    let text = message.trim_start_matches("invalid rule: ");
    FIELDS
        .iter()
        .find(|f| text.starts_with(*f) || text.contains(&format!("the {f} ")))
        .map(|f| match *f {
            "subfolder" => "subfolders",
            "folder_links" => "links",
            other => other,
        })
}

async fn connection_names(state: &ApiState) -> Vec<String> {
    state
        .engine
        .connections()
        .await
        .map(|l| l.connections.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// The rule form page: the rule (as stored, or as typed), and what to say about it.
struct FormPage<'a> {
    state: &'a ApiState,
    admin: &'a Admin,
    /// A rule not saved yet (`original` is then empty).
    new: bool,
    /// The name of the rule being edited.
    original: &'a str,
    rule: Value,
}

impl FormPage<'_> {
    /// The form as it is.
    async fn show(
        &self,
        warnings: Vec<String>,
        preview: Option<ferry_engine::views::RulePreview>,
    ) -> Response {
        self.render(StatusCode::OK, BTreeMap::new(), None, warnings, preview)
            .await
    }

    /// The form sent back: `message` at the top, and next to `field` when it names one.
    async fn refuse(&self, field: Option<&'static str>, message: String) -> Response {
        let mut errors = BTreeMap::new();
        if let Some(f) = field {
            errors.insert(f, message.clone());
        }
        self.render(StatusCode::BAD_REQUEST, errors, Some(message), vec![], None)
            .await
    }

    async fn render(
        &self,
        status: StatusCode,
        errors: BTreeMap<&'static str, String>,
        error: Option<String>,
        warnings: Vec<String>,
        preview: Option<ferry_engine::views::RulePreview>,
    ) -> Response {
        let preview = preview.map(preview_context);
        let (new, original) = (self.new, self.original);
        render::render(
            status,
            Some(self.admin),
            "rules",
            "rule_edit.html",
            context! {
                title => if new { "New rule".to_owned() } else { format!("Rule {original}") },
                new => new, original => original, rule => self.rule.clone(), errors => errors,
                error => error, warnings => warnings, preview => preview,
                connections => connection_names(self.state).await,
            },
        )
    }
}

fn unavailable(admin: &Admin, e: &EngineError) -> Response {
    tracing::error!(error = %e, "console rules page failed");
    render::message(
        StatusCode::SERVICE_UNAVAILABLE,
        Some(admin),
        "Ferry could not read its rules",
        "The database did not answer; try again in a moment.",
        Some("/console/rules"),
    )
}

/// `GET /console/rules`.
pub async fn list(State(state): State<ApiState>, admin: Admin) -> Response {
    match state.engine.rules().await {
        Ok(list) => render::page(
            &admin,
            "rules",
            "rules.html",
            context! { title => "Rules", rules => list.rules, warnings => Vec::<String>::new() },
        ),
        Err(e) => unavailable(&admin, &e),
    }
}

/// `GET /console/rules/new`.
pub async fn new(State(state): State<ApiState>, admin: Admin) -> Response {
    let connection = connection_names(&state).await.into_iter().next();
    let rule = RuleSpec {
        connection: connection.unwrap_or_default(),
        ..RuleSpec::default()
    };
    FormPage {
        state: &state,
        admin: &admin,
        new: true,
        original: "",
        rule: Value::from_serialize(&rule),
    }
    .show(Vec::new(), None)
    .await
}

/// `GET /console/rules/{name}`.
pub async fn edit(
    State(state): State<ApiState>,
    admin: Admin,
    Path(name): Path<String>,
) -> Response {
    let rules = match state.engine.rules().await {
        Ok(list) => list.rules,
        Err(e) => return unavailable(&admin, &e),
    };
    let Some(rule) = rules.into_iter().find(|r| r.name == name) else {
        return render::message(
            StatusCode::NOT_FOUND,
            Some(&admin),
            "No such rule",
            &format!("There is no rule named {name:?}."),
            Some("/console/rules"),
        );
    };
    FormPage {
        state: &state,
        admin: &admin,
        new: false,
        original: &name,
        rule: Value::from_serialize(&rule),
    }
    .show(Vec::new(), None)
    .await
}

/// `POST /console/rules/save`: `action=preview` shows what the rule would do; `save`
/// stores it.
pub async fn save(
    State(state): State<ApiState>,
    CheckedForm(admin, form): CheckedForm<RuleForm>,
) -> Response {
    // A new rule keeps an empty `original` through previews and errors, until it is saved.
    let page = FormPage {
        state: &state,
        admin: &admin,
        new: form.original.is_empty(),
        original: &form.original,
        rule: form.echo(),
    };
    let spec = match form.spec() {
        Ok(spec) if !page.new && spec.name != form.original => {
            return page
                .refuse(
                    Some("name"),
                    "a rule keeps its name; make a new rule instead".into(),
                )
                .await;
        }
        Ok(spec) => spec,
        Err((field, message)) => return page.refuse(Some(field), message).await,
    };
    if form.action == "preview" {
        return match state.engine.preview_rule(spec).await {
            Ok(preview) => page.show(preview.warnings.clone(), Some(preview)).await,
            Err(EngineError::Invalid(m)) => page.refuse(field_of(&m), m).await,
            Err(e) => unavailable(&admin, &e),
        };
    }
    if page.new
        && let Ok(list) = state.engine.rules().await
        && list.rules.iter().any(|r| r.name == spec.name)
    {
        return page
            .refuse(
                Some("name"),
                format!(
                    "a rule named {:?} exists already; edit it or choose another name",
                    spec.name
                ),
            )
            .await;
    }
    let name = spec.name.clone();
    match state.engine.put_rule(spec, false).await {
        Ok(saved) => {
            let mut text = format!(
                "Saved rule {name}; {} records are queued to sync under it.",
                saved.queued_records
            );
            for w in &saved.warnings {
                text.push_str(" Warning: ");
                text.push_str(w);
            }
            session::done(
                &format!("/console/rules/{}", urlencode(name)),
                &text,
                !saved.warnings.is_empty(),
            )
        }
        Err(EngineError::Invalid(m) | EngineError::Conflict(m)) => {
            page.refuse(field_of(&m), m).await
        }
        Err(e) => unavailable(&admin, &e),
    }
}

/// The delete form: its checkbox says the admin means it.
#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

impl HasCsrf for DeleteForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/rules/{name}/delete`.
pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    CheckedForm(admin, form): CheckedForm<DeleteForm>,
) -> Response {
    if form.confirm != "yes" {
        return render::message(
            StatusCode::BAD_REQUEST,
            Some(&admin),
            "Not deleted",
            "Tick the box that confirms the rule's files leave Dropbox, then delete again.",
            Some(&format!("/console/rules/{}", urlencode(name))),
        );
    }
    match state.engine.delete_rule(&name).await {
        Ok(removed) => session::done(
            "/console/rules",
            &format!(
                "Deleted rule {name}; {} records are queued, and the files it put in Dropbox leave on their next pass.",
                removed.queued_records
            ),
            false,
        ),
        Err(EngineError::NotFound(m)) => render::message(
            StatusCode::NOT_FOUND,
            Some(&admin),
            "No such rule",
            &m,
            Some("/console/rules"),
        ),
        Err(e) => unavailable(&admin, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn engine_messages_point_at_their_field() {
        assert_eq!(
            field_of("invalid rule: folder: unknown variable at line 1"),
            Some("folder")
        );
        assert_eq!(
            field_of("invalid rule: link_expiry_days must be between 1 and 3650"),
            Some("link_expiry_days")
        );
        assert_eq!(
            field_of("invalid rule: subfolder \"..\" must be a relative path"),
            Some("subfolders")
        );
        assert_eq!(field_of("something else"), None);
    }
}
