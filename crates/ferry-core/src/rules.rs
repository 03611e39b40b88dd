//! Folder rules: which records sync, which of their files, and where they go.
//!
//! Conditions and filters are MiniJinja (Jinja2) expressions and paths are MiniJinja
//! templates, so admins write one standard language for both. See `docs/rules.md`.

use crate::model::{Attachment, Record};
use crate::names::{NameError, sanitize_component};
use crate::sync_plan::Direction;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// The template used for a file's path inside its folder when a rule gives none.
pub const DEFAULT_FILE_PATH: &str = "{{ attachment.name }}";

/// A rule as an admin writes it (JSON over the API, or TOML).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique rule name.
    pub name: String,
    /// Where the rule stands among the rules (lower first; ties by name): rules are listed
    /// and evaluated in this order, and when two rules would put one record in the same
    /// folder, the first claims it. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub order: i32,
    /// The record kind the rule applies to.
    pub record_kind: String,
    /// The Dropbox connection the files go to.
    pub connection: String,
    /// Expression over `record`, `parent`, `children` and `siblings`; the rule applies while
    /// it is true.
    /// Absent: always.
    #[serde(default)]
    pub condition: Option<String>,
    /// Template for the record's folder, relative to the connection root; `/` separates
    /// folders. May render empty (files then go to the root).
    pub folder: String,
    /// Template for a file's path inside the folder; default `{{ attachment.name }}`.
    #[serde(default)]
    pub file_path: Option<String>,
    /// Expression over `attachment` (and the record context); a file syncs while it is true.
    /// Absent: every attachment.
    #[serde(default)]
    pub file_filter: Option<String>,
    /// Which way files flow; default push (app → Dropbox).
    #[serde(default)]
    pub direction: Direction,
    /// When pulling, also import files from subfolders of the record's folder.
    #[serde(default)]
    pub pull_subfolders: bool,
    /// Folders made inside each record's folder when Ferry first creates it (`Scans`,
    /// `Scans/Official`): for people to fill. One deleted on purpose is not made again…
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subfolders: Vec<String>,
    /// …unless this is set: then every pass makes missing ones again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recreate_subfolders: bool,
    /// Shared links for the rule's synced files: `off` (default), `public` or `team` (team
    /// members only; Dropbox Business).
    #[serde(default, skip_serializing_if = "LinkMode::is_off")]
    pub links: LinkMode,
    /// Links stop working this many days after they are made (then Ferry makes new ones).
    /// Needs a paid Dropbox account. Absent: links do not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3650)]
    pub link_expiry_days: Option<u32>,
    /// Also a link per record folder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub folder_links: bool,
    /// Once Dropbox confirms a file (same content hash), Ferry drops its own copy of the
    /// content and reads it back from Dropbox when asked; it brings the content back before
    /// anything could make Dropbox's copy the last one to go (see docs/rules.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub offload: bool,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

impl RuleSpec {
    /// The key rules are ordered by: `order`, then name.
    pub fn sort_key(&self) -> (i32, &str) {
        (self.order, self.name.as_str())
    }
}

/// Whether and for whom a rule makes shared links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    /// No links: the API shows where the file is (`https://www.dropbox.com/home/…`), which
    /// only people with access to the account can open.
    #[default]
    Off,
    /// Anyone with the link can view.
    Public,
    /// Only members of the account's Dropbox team can view.
    Team,
}

impl LinkMode {
    /// Whether links are off.
    pub fn is_off(&self) -> bool {
        *self == LinkMode::Off
    }
}

/// Why a rule cannot be used, or failed for one record or file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A template or expression does not parse.
    #[error("{field}: {message}")]
    Syntax {
        /// Which part of the rule.
        field: &'static str,
        /// The parser's message.
        message: String,
    },
    /// Evaluating against a record failed (e.g. a missing field used in a path).
    #[error("{field}: {message}")]
    Eval {
        /// Which part of the rule.
        field: &'static str,
        /// The evaluator's message.
        message: String,
    },
    /// A rendered path component is unusable even after sanitising.
    #[error("{field} rendered an unusable name: {source}")]
    Name {
        /// Which part of the rule.
        field: &'static str,
        /// What is wrong with the name.
        source: NameError,
    },
    /// Evaluating took more than a rule may: too many steps, too deep, or too much output.
    #[error("{field}: {message}")]
    Limit {
        /// Which part of the rule.
        field: &'static str,
        /// Which limit.
        message: String,
    },
    /// A template or expression uses what the rule language leaves out (see
    /// `rule_safety.rs`).
    #[error("{field}: {message}")]
    NotAllowed {
        /// Which part of the rule.
        field: &'static str,
        /// What is not allowed, and what to do instead.
        message: String,
    },
    /// A required value is missing or empty.
    #[error("{0}")]
    Invalid(String),
}

/// Steps one evaluation of a template or expression may take (MiniJinja fuel): plenty for a
/// path, far too few for a loop that would eat the machine.
pub const MAX_STEPS: u64 = 50_000;
/// Longest template or expression a rule may hold, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 4096;
/// Longest output one evaluation may render, in bytes (a path is at most a few hundred).
pub const MAX_RENDERED_BYTES: usize = 16 * 1024;
/// Deepest nesting of blocks and calls.
const MAX_DEPTH: usize = 32;

/// Largest value `join` or `replace` may build in a rule.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

fn too_large(filter: &str) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!(
            "{filter} would build a value larger than {MAX_VALUE_BYTES} bytes (too large for a rule)"
        ),
    )
}

/// `replace` with its result bounded: the size is known before anything is built.
fn bounded_replace(
    value: String,
    from: String,
    to: String,
    count: Option<usize>,
) -> Result<String, minijinja::Error> {
    let hits = if from.is_empty() {
        value.chars().count() + 1
    } else {
        value.matches(from.as_str()).count()
    };
    let hits = count.map_or(hits, |c| c.min(hits));
    let size = value
        .len()
        .saturating_add(hits.saturating_mul(to.len()))
        .saturating_sub(hits.saturating_mul(from.len()));
    if size > MAX_VALUE_BYTES {
        return Err(too_large("replace"));
    }
    Ok(match count {
        Some(c) => value.replacen(from.as_str(), &to, c),
        None => value.replace(from.as_str(), &to),
    })
}

/// `join` with its result bounded.
fn bounded_join(values: Value, separator: Option<String>) -> Result<String, minijinja::Error> {
    let separator = separator.unwrap_or_default();
    let mut out = String::new();
    for (i, item) in values.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&separator);
        }
        let text = item.to_string();
        if out.len().saturating_add(text.len()) > MAX_VALUE_BYTES {
            return Err(too_large("join"));
        }
        out.push_str(&text);
        if out.len() > MAX_VALUE_BYTES {
            return Err(too_large("join"));
        }
    }
    Ok(out)
}

/// An environment with the rules' limits.
fn limited_environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(MAX_STEPS));
    env.set_recursion_limit(MAX_DEPTH);
    env.add_filter("replace", bounded_replace);
    env.add_filter("join", bounded_join);
    env
}

/// Parses a template or expression and checks it against the rule language.
fn check_language(field: &'static str, text: &str, expression: bool) -> Result<(), RuleError> {
    use minijinja::machinery;
    let checked = guarded(field, || {
        Ok(if expression {
            machinery::parse_expr(text).map(|e| crate::rule_safety::check_expression(&e))?
        } else {
            machinery::parse(text, field, Default::default(), Default::default())
                .map(|t| crate::rule_safety::check_template(&t))?
        })
    })
    .map_err(|e| syntax(field, e))?;
    checked.map_err(|message| RuleError::NotAllowed { field, message })
}

/// A writer that refuses output past [`MAX_RENDERED_BYTES`], so a loop's output stops
/// growing the moment it is too large rather than after the render.
struct CappedOutput {
    text: String,
    over: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(std::io::Error::other("output too large"));
        }
        self.text.push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a rule sees of a record: `record`, `parent`, `children` and `siblings` (the parent's
/// children, this record included), each with `kind`, `key` and `fields`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleContext {
    record: RecordView,
    parent: Option<RecordView>,
    children: Vec<RecordView>,
    siblings: Vec<RecordView>,
}

#[derive(Debug, Clone, Serialize)]
struct RecordView {
    kind: String,
    key: String,
    fields: serde_json::Value,
}

impl From<&Record> for RecordView {
    fn from(r: &Record) -> Self {
        RecordView {
            kind: r.kind.clone(),
            key: r.key.clone(),
            fields: r.fields.clone(),
        }
    }
}

impl RuleContext {
    /// Builds the context for `record`.
    pub fn new(
        record: &Record,
        parent: Option<&Record>,
        children: &[Record],
        siblings: &[Record],
    ) -> Self {
        RuleContext {
            record: record.into(),
            parent: parent.map(Into::into),
            children: children.iter().map(Into::into).collect(),
            siblings: siblings.iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize)]
struct FileContext<'a> {
    #[serde(flatten)]
    record: &'a RuleContext,
    attachment: AttachmentView<'a>,
}

#[derive(Serialize)]
struct AttachmentView<'a> {
    name: &'a str,
    stem: &'a str,
    ext: &'a str,
    tags: &'a [String],
    size: u64,
    content_hash: &'a str,
}

impl<'a> From<&'a Attachment> for AttachmentView<'a> {
    fn from(a: &'a Attachment) -> Self {
        let (stem, ext) = match a.name.rfind('.') {
            Some(i) if i > 0 => (&a.name[..i], &a.name[i + 1..]),
            _ => (a.name.as_str(), ""),
        };
        AttachmentView {
            name: &a.name,
            stem,
            ext,
            tags: &a.tags,
            size: a.size,
            content_hash: &a.content_hash,
        }
    }
}

/// A validated rule, ready to evaluate.
pub struct CompiledRule {
    spec: RuleSpec,
    templates: Environment<'static>,
    expressions: Environment<'static>,
}

impl std::fmt::Debug for CompiledRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRule")
            .field("spec", &self.spec)
            .finish()
    }
}

impl CompiledRule {
    /// Validates a rule: names present, every template and expression parses.
    pub fn compile(spec: RuleSpec) -> Result<Self, RuleError> {
        for (what, value) in [
            ("name", &spec.name),
            ("record_kind", &spec.record_kind),
            ("connection", &spec.connection),
        ] {
            if value.trim().is_empty() {
                return Err(RuleError::Invalid(format!("{what} must not be empty")));
            }
        }
        for (field, text) in [
            ("folder", Some(&spec.folder)),
            ("file_path", spec.file_path.as_ref()),
            ("condition", spec.condition.as_ref()),
            ("file_filter", spec.file_filter.as_ref()),
        ] {
            if text.is_some_and(|t| t.len() > MAX_TEMPLATE_BYTES) {
                return Err(RuleError::Limit {
                    field,
                    message: format!("longer than {MAX_TEMPLATE_BYTES} bytes"),
                });
            }
        }
        let file_path_text = spec.file_path.as_deref().unwrap_or(DEFAULT_FILE_PATH);
        check_language("folder", &spec.folder, false)?;
        check_language("file_path", file_path_text, false)?;
        for (field, expr) in [
            ("condition", &spec.condition),
            ("file_filter", &spec.file_filter),
        ] {
            if let Some(expr) = expr {
                check_language(field, expr, true)?;
            }
        }
        if spec
            .link_expiry_days
            .is_some_and(|d| !(1..=3650).contains(&d))
        {
            return Err(RuleError::Invalid(
                "link_expiry_days must be between 1 and 3650".into(),
            ));
        }
        if spec.links.is_off() && (spec.link_expiry_days.is_some() || spec.folder_links) {
            return Err(RuleError::Invalid(
                "link_expiry_days and folder_links need links: public or team".into(),
            ));
        }
        if spec.subfolders.len() > 32 {
            return Err(RuleError::Invalid(
                "a rule may name at most 32 subfolders".into(),
            ));
        }
        for sub in &spec.subfolders {
            let parts: Vec<&str> = sub.split('/').filter(|p| !p.trim().is_empty()).collect();
            if parts.is_empty() || parts.len() > 8 {
                return Err(RuleError::Invalid(format!(
                    "subfolder {sub:?} must be a relative path of 1 to 8 folders"
                )));
            }
            for part in parts {
                match sanitize_component(part) {
                    Ok(clean) if clean == part => {}
                    Ok(_) | Err(_) => {
                        return Err(RuleError::Invalid(format!(
                            "subfolder {sub:?}: {part:?} is not a name Dropbox keeps as written"
                        )));
                    }
                }
            }
        }
        // Paths must not silently lose a missing field: strict undefined in templates.
        let mut templates = limited_environment(UndefinedBehavior::Strict);
        guarded("folder", || {
            templates.add_template_owned("folder", spec.folder.clone())
        })
        .map_err(|e| syntax("folder", e))?;
        let file_path = spec
            .file_path
            .clone()
            .unwrap_or_else(|| DEFAULT_FILE_PATH.to_owned());
        guarded("file_path", || {
            templates.add_template_owned("file_path", file_path)
        })
        .map_err(|e| syntax("file_path", e))?;
        // Conditions read optional fields: a missing one is simply false.
        let expressions = limited_environment(UndefinedBehavior::Chainable);
        for (field, expr) in [
            ("condition", &spec.condition),
            ("file_filter", &spec.file_filter),
        ] {
            if let Some(expr) = expr {
                guarded(field, || expressions.compile_expression(expr).map(|_| ()))
                    .map_err(|e| syntax(field, e))?;
            }
        }
        Ok(CompiledRule {
            spec,
            templates,
            expressions,
        })
    }

    /// The rule as written.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    /// Whether the rule applies to the record now.
    pub fn applies(&self, ctx: &RuleContext) -> Result<bool, RuleError> {
        self.eval_bool("condition", self.spec.condition.as_deref(), ctx)
    }

    /// Whether the rule selects this attachment.
    pub fn selects(&self, ctx: &RuleContext, attachment: &Attachment) -> Result<bool, RuleError> {
        let file_ctx = FileContext {
            record: ctx,
            attachment: attachment.into(),
        };
        self.eval_bool("file_filter", self.spec.file_filter.as_deref(), &file_ctx)
    }

    /// The record's folder as sanitised components (possibly none).
    pub fn folder(&self, ctx: &RuleContext) -> Result<Vec<String>, RuleError> {
        self.render_components("folder", ctx)
    }

    /// The file's path inside the folder as sanitised components (at least one).
    pub fn file_path(
        &self,
        ctx: &RuleContext,
        attachment: &Attachment,
    ) -> Result<Vec<String>, RuleError> {
        let file_ctx = FileContext {
            record: ctx,
            attachment: attachment.into(),
        };
        let parts = self.render_components("file_path", &file_ctx)?;
        if parts.is_empty() {
            return Err(RuleError::Name {
                field: "file_path",
                source: NameError::Empty,
            });
        }
        Ok(parts)
    }

    fn eval_bool(
        &self,
        field: &'static str,
        expr: Option<&str>,
        ctx: &impl Serialize,
    ) -> Result<bool, RuleError> {
        let Some(expr) = expr else { return Ok(true) };
        let value = guarded(field, || {
            self.expressions
                .compile_expression(expr)?
                .eval(Value::from_serialize(ctx))
        })
        .map_err(|e| eval(field, e))?;
        Ok(value.is_true())
    }

    fn render_components(
        &self,
        field: &'static str,
        ctx: &impl Serialize,
    ) -> Result<Vec<String>, RuleError> {
        let mut out = CappedOutput {
            text: String::new(),
            over: false,
        };
        let rendered = guarded(field, || {
            self.templates
                .get_template(field)?
                .render_captured_to(ctx, &mut out)
                .map(|_| ())
        });
        if out.over {
            return Err(RuleError::Limit {
                field,
                message: format!("rendered more than {MAX_RENDERED_BYTES} bytes"),
            });
        }
        rendered.map_err(|e| eval(field, e))?;
        let rendered = out.text;
        rendered
            .split('/')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                sanitize_component(part).map_err(|source| RuleError::Name { field, source })
            })
            .collect()
    }
}

/// Runs a MiniJinja call so that a panic inside the library (some malformed expressions
/// crash its lexer, e.g. `x }} y`) becomes an error about the field, never a crash.
fn guarded<T>(
    field: &'static str,
    call: impl FnOnce() -> Result<T, minijinja::Error>,
) -> Result<T, minijinja::Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| {
        Err(minijinja::Error::new(
            minijinja::ErrorKind::SyntaxError,
            format!("the {field} could not be parsed (check that every {{{{ and }}}} pairs up)"),
        ))
    })
}

fn syntax(field: &'static str, e: minijinja::Error) -> RuleError {
    RuleError::Syntax {
        field,
        message: describe(&e),
    }
}

fn eval(field: &'static str, e: minijinja::Error) -> RuleError {
    match e.kind() {
        minijinja::ErrorKind::OutOfFuel => RuleError::Limit {
            field,
            message: format!("took more than {MAX_STEPS} steps (a loop too long for a rule?)"),
        },
        minijinja::ErrorKind::InvalidOperation
            if e.detail()
                .is_some_and(|d| d.contains("too large") || d.contains("too many")) =>
        {
            RuleError::Limit {
                field,
                message: describe(&e),
            }
        }
        _ if e.to_string().contains("recursion limit") => RuleError::Limit {
            field,
            message: format!("nests deeper than {MAX_DEPTH} levels"),
        },
        _ => RuleError::Eval {
            field,
            message: describe(&e),
        },
    }
}

impl RuleError {
    /// Whether the rule exceeded a resource limit (then it is refused when saved).
    pub fn is_limit(&self) -> bool {
        matches!(self, RuleError::Limit { .. })
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(detail) => format!("{} ({detail})", e.kind()),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(kind: &str, key: &str, fields: serde_json::Value) -> Record {
        Record {
            id: 1,
            kind: kind.into(),
            key: key.into(),
            fields,
            parent_id: None,
            deletion: None,
        }
    }

    fn attachment(name: &str, tags: &[&str]) -> Attachment {
        Attachment {
            id: 1,
            record_id: 1,
            name: name.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            content_hash: String::new(),
            size: 3,
            origin_path: None,
            source: Default::default(),
            offloaded: None,
        }
    }

    fn item_rule() -> CompiledRule {
        CompiledRule::compile(RuleSpec {
            name: "items".into(),
            record_kind: "item".into(),
            connection: "main".into(),
            condition: Some("parent.fields.status == 'ready'".into()),
            folder: "{{ parent.key }}/{{ record.key }} {{ record.fields.name }}".into(),
            file_path: Some(
                "{% if 'source' in attachment.tags %}source_artwork{% if record.fields.process|default(1) > 1 %}_{{ record.fields.process }}{% endif %}/{% endif %}{{ attachment.name }}".into(),
            ),
            file_filter: Some("'alternate' not in attachment.tags".into()),
            direction: Direction::Push,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn conditions_paths_and_filters() {
        let rule = item_rule();
        let order = record("order", "1001", json!({"status": "ready"}));
        let item = record("item", "1", json!({"name": "T-shirt: red", "process": 2}));
        let ctx = RuleContext::new(&item, Some(&order), &[], &[]);
        assert!(rule.applies(&ctx).unwrap());
        assert_eq!(rule.folder(&ctx).unwrap(), vec!["1001", "1 T-shirt_ red"]);
        let art = attachment("logo.ai", &["source"]);
        assert_eq!(
            rule.file_path(&ctx, &art).unwrap(),
            vec!["source_artwork_2", "logo.ai"]
        );
        assert!(rule.selects(&ctx, &art).unwrap());
        assert!(
            !rule
                .selects(&ctx, &attachment("x.eps", &["alternate"]))
                .unwrap()
        );

        let draft = record("order", "1001", json!({}));
        let ctx = RuleContext::new(&item, Some(&draft), &[], &[]);
        assert!(
            !rule.applies(&ctx).unwrap(),
            "missing field is false, not an error"
        );
        let orphan = RuleContext::new(&item, None, &[], &[]);
        assert!(!rule.applies(&orphan).unwrap());
        assert!(matches!(rule.folder(&orphan), Err(RuleError::Eval { .. })));
    }

    #[test]
    fn bad_rules_are_refused() {
        let mut spec = item_rule().spec().clone();
        spec.folder = "{{ record.key ".into();
        assert!(matches!(
            CompiledRule::compile(spec.clone()),
            Err(RuleError::Syntax {
                field: "folder",
                ..
            })
        ));
        spec.folder = "x".into();
        spec.condition = Some("record.fields ==".into());
        assert!(matches!(
            CompiledRule::compile(spec.clone()),
            Err(RuleError::Syntax {
                field: "condition",
                ..
            })
        ));
        spec.condition = None;
        spec.connection = " ".into();
        assert!(matches!(
            CompiledRule::compile(spec),
            Err(RuleError::Invalid(_))
        ));
    }

    #[test]
    fn children_are_visible_to_conditions() {
        let rule = CompiledRule::compile(RuleSpec {
            name: "orders".into(),
            record_kind: "order".into(),
            connection: "main".into(),
            condition: Some(
                "children and children|rejectattr('fields.ready')|list|length == 0".into(),
            ),
            folder: "{{ record.key }}".into(),
            direction: Direction::Both,
            ..Default::default()
        })
        .unwrap();
        let order = record("order", "7", json!({}));
        let ready = record("item", "a", json!({"ready": true}));
        let not_ready = record("item", "b", json!({"ready": false}));
        assert!(
            rule.applies(&RuleContext::new(
                &order,
                None,
                std::slice::from_ref(&ready),
                &[]
            ))
            .unwrap()
        );
        assert!(
            !rule
                .applies(&RuleContext::new(&order, None, &[ready, not_ready], &[]))
                .unwrap()
        );
        assert!(
            !rule
                .applies(&RuleContext::new(&order, None, &[], &[]))
                .unwrap()
        );
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;

    fn spec(condition: Option<&str>, folder: &str) -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            record_kind: "job".into(),
            connection: "c".into(),
            condition: condition.map(str::to_owned),
            folder: folder.into(),
            ..Default::default()
        }
    }

    fn ctx() -> RuleContext {
        let record = Record {
            id: 1,
            kind: "job".into(),
            key: "k".into(),
            fields: serde_json::json!({"n": "x"}),
            parent_id: None,
            deletion: None,
        };
        RuleContext::new(&record, None, &[], &[])
    }

    /// Templates that would loop for minutes, recurse, or render megabytes fail with a limit
    /// error at once; an ordinary template is unaffected.
    #[test]
    fn rendering_is_bounded() {
        let started = std::time::Instant::now();
        for folder in [
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{% for a in range(1000) %}{% for b in range(1000) %}{{ a }}{% endfor %}{% endfor %}",
            "{{ range(100000)|join(',') }}",
            "{{ range(10000)|join(',')|replace(',', ',,,,,,,,,,,,') }}",
            "{{ (range(10000)|join(','))|replace('', 'xxxxxxxxxx') }}",
        ] {
            let rule = CompiledRule::compile(spec(None, folder)).unwrap();
            match rule.folder(&ctx()) {
                Err(e) if e.is_limit() => {}
                other => panic!("{folder:?}: expected a limit error, got {other:?}"),
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Ways to build a huge value in a few steps are outside the rule language: refused
        // when the rule is compiled, before any record is seen.
        let doubling = "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}".to_owned();
        let sets =
            "{% set s = 'x' %}".to_owned() + &"{% set s = s ~ s %}".repeat(40) + "{{ s|length }}";
        let nested = "{% for a in [record.key ~ record.key] %}".repeat(3)
            + "{{ a }}"
            + &"{% endfor %}".repeat(3);
        let deep = "{% for a in range(2) %}".repeat(5) + "x" + &"{% endfor %}".repeat(5);
        let concat = format!("{{{{ {} }}}}", vec!["record.key"; 18].join(" ~ "));
        for folder in [
            "{{ 'a' * 1000000 }}",
            "{{ 2 ** 64 }}",
            doubling.as_str(),
            sets.as_str(),
            nested.as_str(),
            deep.as_str(),
            concat.as_str(),
            "{{ record.key|urlencode|urlencode|urlencode }}",
            "{{ record.key|indent(100000000) }}",
            "{{ record.key|format(1) }}",
            "{{ lipsum(1000) }}",
            "{{ [record.key]|map('urlencode')|join }}",
            "{% with x = record.key %}{{ x }}{% endwith %}",
            "{% filter upper %}x{% endfilter %}",
            "{% for c in record.children recursive %}{{ loop(c.children) }}{% endfor %}",
            "{{ record.key.upper() }}",
        ] {
            match CompiledRule::compile(spec(None, folder)) {
                Err(RuleError::NotAllowed {
                    field: "folder", ..
                }) => {}
                other => panic!(
                    "{folder:?}: expected NotAllowed, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
        for condition in ["record.key * 100000000 == ''", "lipsum(5) == ''"] {
            assert!(
                matches!(
                    CompiledRule::compile(spec(Some(condition), "x")),
                    Err(RuleError::NotAllowed {
                        field: "condition",
                        ..
                    })
                ),
                "{condition}"
            );
        }
        // What real rules use stays available.
        for folder in [
            "{{ parent.key }} {{ parent.fields.customer }}/Item {{ record.fields.line }} - {{ record.fields.product }}",
            "{% for t in record.fields.tags if t is startingwith('a') %}{{ t[1:] }}/{% endfor %}x",
            "{{ record.fields.alias | replace('-', '/') }}",
            "{% for c in children|rejectattr('fields.done')|sort(attribute='key') %}{{ c.key }}{% endfor %}",
            "{{ record.key ~ '-' ~ (record.fields.n|default('none')|upper) }}",
            "{{ [record.kind, record.key]|join('/') }}",
        ] {
            CompiledRule::compile(spec(None, folder)).unwrap_or_else(|e| panic!("{folder}: {e}"));
        }
        // Macros (and so recursion) are not part of the rule language at all.
        assert!(matches!(
            CompiledRule::compile(spec(
                None,
                "{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}"
            )),
            Err(RuleError::Syntax { .. } | RuleError::NotAllowed { .. })
        ));
        let long = "x".repeat(MAX_TEMPLATE_BYTES + 1);
        assert!(matches!(
            CompiledRule::compile(spec(None, &long)),
            Err(RuleError::Limit {
                field: "folder",
                ..
            })
        ));
        let fine = CompiledRule::compile(spec(
            Some("record.fields.n == 'x'"),
            "Jobs/{{ record.fields.n }}",
        ))
        .unwrap();
        assert!(fine.applies(&ctx()).unwrap());
        assert_eq!(fine.folder(&ctx()).unwrap(), vec!["Jobs", "x"]);
    }

    /// A condition that crashes MiniJinja's lexer is refused with an error, not a panic.
    #[test]
    fn malformed_expressions_are_errors_not_panics() {
        for condition in ["x }} y", "record.key }}{{ 1", "a }}"] {
            let result = std::panic::catch_unwind(|| {
                CompiledRule::compile(spec(Some(condition), "x")).map(|_| ())
            });
            match result {
                Ok(Err(RuleError::Syntax { field, .. })) => assert_eq!(field, "condition"),
                Ok(other) => panic!("{condition:?}: expected a syntax error, got {other:?}"),
                Err(_) => panic!("{condition:?}: a panic escaped"),
            }
        }
    }
}
