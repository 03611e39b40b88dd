//! Webhooks: the subscriptions, a new one (its signing secret shown once), removing one, and
//! one subscription's deliveries with redelivery.

use super::records::engine_failed;
use super::render;
use super::session::{self, Admin, Button, CheckedForm, HasCsrf};
use crate::api::{ApiState, nonempty};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use ferry_engine::webhooks::WebhookInput;
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The new-subscription form: each event type is a checkbox named `event:<type>` (an HTML
/// form repeats a name for a list, which a flat form reader cannot take).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct WebhookForm {
    #[serde(skip_serializing)]
    csrf: String,
    #[serde(default)]
    url: String,
    #[serde(default, skip_serializing)]
    secret: Option<String>,
    #[serde(flatten)]
    checked: BTreeMap<String, String>,
}

impl HasCsrf for WebhookForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl WebhookForm {
    /// The ticked event types (`*` when "all" is ticked).
    fn events(&self) -> Vec<String> {
        let ticked = session::ticked(&self.checked, "event:");
        if ticked.iter().any(|e| e == "*") {
            vec!["*".to_owned()]
        } else {
            ticked
        }
    }
}

/// The page for a path that names no subscription or delivery (not a bare 400).
fn no_such(admin: &Admin) -> Response {
    render::message(
        StatusCode::NOT_FOUND,
        Some(admin),
        "No such webhook",
        "That address names no webhook.",
        Some("/console/webhooks"),
    )
}

/// The list page, with the form (and what went wrong with it, or the new secret).
async fn list_page(
    state: &ApiState,
    admin: &Admin,
    status: StatusCode,
    form: &WebhookForm,
    form_error: Option<&str>,
    created: Option<ferry_engine::webhooks::WebhookView>,
) -> Response {
    let hooks = match state.engine.webhooks().await {
        Ok(list) => list.webhooks,
        Err(e) => return engine_failed(admin, &e, "/console"),
    };
    render::render(
        status,
        Some(admin),
        "webhooks",
        "webhooks.html",
        context! {
            title => "Webhooks",
            webhooks => hooks,
            event_types => ferry_store::EVENT_TYPES,
            chosen => form.events(),
            form => form,
            form_error => form_error,
            created => created,
        },
    )
}

/// `GET /console/webhooks`.
pub async fn list(State(state): State<ApiState>, admin: Admin) -> Response {
    list_page(
        &state,
        &admin,
        StatusCode::OK,
        &WebhookForm::default(),
        None,
        None,
    )
    .await
}

/// `POST /console/webhooks`: a new subscription. The page that answers shows its secret,
/// once; it is not kept anywhere Ferry could show it again.
pub async fn add(
    State(state): State<ApiState>,
    CheckedForm(admin, form): CheckedForm<WebhookForm>,
) -> Response {
    let input = WebhookInput {
        url: form.url.trim().to_owned(),
        events: form.events(),
        secret: nonempty(&form.secret),
    };
    match state.engine.add_webhook(input).await {
        Ok(created) => {
            list_page(
                &state,
                &admin,
                StatusCode::OK,
                &WebhookForm::default(),
                None,
                Some(created),
            )
            .await
        }
        Err(ferry_engine::EngineError::Invalid(m)) => {
            list_page(
                &state,
                &admin,
                StatusCode::BAD_REQUEST,
                &form,
                Some(&m),
                None,
            )
            .await
        }
        Err(e) => engine_failed(&admin, &e, "/console/webhooks"),
    }
}

/// `GET /console/webhooks/{id}`: one subscription's deliveries, newest first.
pub async fn deliveries(
    State(state): State<ApiState>,
    admin: Admin,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return no_such(&admin);
    };
    let (hooks, deliveries) =
        match tokio::try_join!(state.engine.webhooks(), state.engine.webhook_deliveries(id)) {
            Ok(found) => found,
            Err(e) => return engine_failed(&admin, &e, "/console/webhooks"),
        };
    let hook = hooks.webhooks.into_iter().find(|w| w.id == id);
    render::page(
        &admin,
        "webhooks",
        "webhook.html",
        context! {
            title => "Webhook deliveries",
            hook => hook,
            deliveries => deliveries.deliveries,
        },
    )
}

/// `GET /console/webhooks/{id}/remove`: asks first.
pub async fn confirm_remove(
    State(state): State<ApiState>,
    admin: Admin,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let Ok(Path(id)) = id else {
        return no_such(&admin);
    };
    let hooks = match state.engine.webhooks().await {
        Ok(list) => list.webhooks,
        Err(e) => return engine_failed(&admin, &e, "/console/webhooks"),
    };
    let Some(hook) = hooks.into_iter().find(|w| w.id == id) else {
        return render::message(
            StatusCode::NOT_FOUND,
            Some(&admin),
            "No such webhook",
            &format!("There is no webhook {id}; it may have been removed already."),
            Some("/console/webhooks"),
        );
    };
    render::page(
        &admin,
        "webhooks",
        "confirm.html",
        context! {
            title => format!("Remove the webhook to {}?", hook.url),
            text => "Ferry stops sending events there, and the deliveries still waiting are dropped. The receiver keeps what it already got.",
            action => format!("/console/webhooks/{id}/remove"),
            button => "Remove webhook",
            cancel => "/console/webhooks",
        },
    )
}

/// `POST /console/webhooks/{id}/remove`.
pub async fn remove(
    State(state): State<ApiState>,
    id: Result<Path<i64>, PathRejection>,
    CheckedForm(admin, _): CheckedForm<Button>,
) -> Response {
    let Ok(Path(id)) = id else {
        return no_such(&admin);
    };
    match state.engine.delete_webhook(id).await {
        Ok(()) => session::done(
            "/console/webhooks",
            &format!("Removed webhook {id}; no more events go there."),
            false,
        ),
        Err(e) => engine_failed(&admin, &e, "/console/webhooks"),
    }
}

/// The redeliver button: which subscription's page to return to.
#[derive(Debug, Deserialize)]
pub struct RedeliverForm {
    csrf: String,
    webhook: i64,
}

impl HasCsrf for RedeliverForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `POST /console/webhooks/deliveries/{id}/redeliver`.
pub async fn redeliver(
    State(state): State<ApiState>,
    id: Result<Path<i64>, PathRejection>,
    CheckedForm(admin, form): CheckedForm<RedeliverForm>,
) -> Response {
    let Ok(Path(id)) = id else {
        return no_such(&admin);
    };
    let back = format!("/console/webhooks/{}", form.webhook);
    match state.engine.redeliver(id).await {
        Ok(()) => session::done(
            &back,
            &format!("Delivery {id} is sent again now, with a fresh set of retries."),
            false,
        ),
        Err(e) => engine_failed(&admin, &e, &back),
    }
}

#[cfg(test)]
mod tests {
    use super::WebhookForm;

    #[test]
    fn ticked_boxes_are_the_events() {
        let form: WebhookForm = serde_urlencoded::from_str(
            "csrf=x&url=https%3A%2F%2Fa.example&event%3Afile.synced=on&event%3Afile.failed=on&other=1",
        )
        .unwrap();
        assert_eq!(form.events(), ["file.failed", "file.synced"]);
        let all: WebhookForm =
            serde_urlencoded::from_str("csrf=x&url=u&event%3A*=on&event%3Afile.synced=on").unwrap();
        assert_eq!(all.events(), ["*"]);
    }
}
