//! Rendering: the templates (compiled into the binary), the filters they use, and the
//! headers every console page carries.

use super::session::Admin;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Environment, Value, context};
use std::sync::LazyLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("message.html", include_str!("templates/message.html")),
    ("login.html", include_str!("templates/login.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    (
        "connections.html",
        include_str!("templates/connections.html"),
    ),
    ("disconnect.html", include_str!("templates/disconnect.html")),
    (
        "pick_member.html",
        include_str!("templates/pick_member.html"),
    ),
    ("records.html", include_str!("templates/records.html")),
    ("record.html", include_str!("templates/record.html")),
    ("log.html", include_str!("templates/log.html")),
    ("rules.html", include_str!("templates/rules.html")),
    ("rule_edit.html", include_str!("templates/rule_edit.html")),
    ("files.html", include_str!("templates/files.html")),
    ("map_folder.html", include_str!("templates/map_folder.html")),
    ("switch.html", include_str!("templates/switch.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("root_pick.html", include_str!("templates/root_pick.html")),
    ("webhooks.html", include_str!("templates/webhooks.html")),
    ("webhook.html", include_str!("templates/webhook.html")),
    ("backups.html", include_str!("templates/backups.html")),
];

/// The console's sections, in menu order: (id, label, href).
const NAV: &[(&str, &str, &str)] = &[
    ("dashboard", "Dashboard", "/console"),
    ("connections", "Connections", "/console/connections"),
    ("rules", "Rules", "/console/rules"),
    ("records", "Records", "/console/records"),
    ("files", "Files", "/console/files"),
    ("log", "Sync log", "/console/log"),
    ("webhooks", "Webhooks", "/console/webhooks"),
    ("backups", "Backups", "/console/backups"),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.add_filter("bytes", bytes);
    env.add_filter("datetime", datetime);
    env.add_filter("urlencode", urlencode);
    env.add_filter("direction", direction);
    for (name, source) in TEMPLATES {
        // A template that does not parse is a build defect; the console test renders each.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "console template does not parse");
        }
    }
    env
});

/// `1536` → `1.5 KiB`.
pub fn bytes(n: Value) -> String {
    let n = u64::try_from(n).unwrap_or(0) as f64;
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Milliseconds since the epoch → `2026-12-01 16:05:09`, UTC.
fn datetime(ms: Value) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Percent-encodes everything but unreserved characters (for one path segment or query value).
pub fn urlencode(value: String) -> String {
    crate::admin::enc(&value)
}

/// A rule direction in plain words.
fn direction(value: String) -> &'static str {
    match value.as_str() {
        "push" => "From the app to Dropbox",
        "pull" => "From Dropbox to the app",
        "both" => "Both ways",
        _ => "Unknown",
    }
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        // No script at all; forms may redirect to Dropbox's authorize page, so no form-action.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Renders `template` for a signed-in admin, with the layout's context (menu, CSRF token,
/// the notice of the action before).
pub fn page(admin: &Admin, section: &str, template: &str, ctx: Value) -> Response {
    render(StatusCode::OK, Some(admin), section, template, ctx)
}

/// Like [`page`], with a status other than 200 (a form sent back with its errors).
pub fn render(
    status: StatusCode,
    admin: Option<&Admin>,
    section: &str,
    template: &str,
    ctx: Value,
) -> Response {
    let nav: Vec<Value> = NAV
        .iter()
        .map(|(id, label, href)| context! { id => id, label => label, href => href })
        .collect();
    let base = context! {
        admin => admin.map(|a| a.name.clone()),
        csrf => admin.map(|a| a.csrf.clone()),
        notice => admin.and_then(|a| a.notice.clone()).map(|n| context! { text => n.text, error => n.error }),
        nav => nav,
        section => section,
    };
    let merged = context! { ..ctx, ..base };
    let body = ENV
        .get_template(template)
        .and_then(|t| t.render(merged))
        .unwrap_or_else(|e| {
            tracing::error!(template, error = %e, "console page did not render");
            "<!doctype html><title>Ferry</title><p>Ferry could not show this page; the reason is in its log.</p>".to_owned()
        });
    let mut response = html(status, body);
    if admin.is_some_and(|a| a.notice.is_some()) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, super::session::clear_notice_cookie());
    }
    response
}

/// A page with one message (an error, or what an action did).
pub fn message(
    status: StatusCode,
    admin: Option<&Admin>,
    title: &str,
    message: &str,
    back: Option<&str>,
) -> Response {
    let class = if status.is_success() { "ok" } else { "bad" };
    render(
        status,
        admin,
        "",
        "message.html",
        context! { title => title, message => message, back => back, class => class },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every template parses (a typo would otherwise show up only as a broken page).
    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name} does not parse");
        }
        // …and every template file is registered.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console/templates");
        for file in std::fs::read_dir(dir).unwrap() {
            let name = file.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".html") {
                assert!(
                    TEMPLATES.iter().any(|(n, _)| *n == name),
                    "{name} is not in TEMPLATES"
                );
            }
        }
    }

    #[test]
    fn filters() {
        assert_eq!(bytes(Value::from(512)), "512 B");
        assert_eq!(bytes(Value::from(1536)), "1.5 KiB");
        assert_eq!(urlencode("a b/é".into()), "a%20b%2F%C3%A9");
        assert_eq!(datetime(Value::from(0)), "1970-01-01 00:00:00");
    }
}
