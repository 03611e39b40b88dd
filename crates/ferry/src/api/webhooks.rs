//! Webhook subscriptions: add, list, remove; deliveries and redelivery.

use super::extract::{JsonBody, PathParams};
use super::{ApiError, ApiState, ErrorBody};
use axum::Json;
use axum::extract::State;
use ferry_engine::views::Removed;
use ferry_engine::webhooks::{DeliveryList, WebhookInput, WebhookList, WebhookView};

/// `POST /v1/webhooks`: a subscription; the answer carries its signing secret, shown once.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "add_webhook", tag = "webhooks",
    request_body = WebhookInput,
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody)))]
pub async fn add(
    State(state): State<ApiState>,
    JsonBody(input): JsonBody<WebhookInput>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(state.engine.add_webhook(input).await?))
}

/// `GET /v1/webhooks`: every subscription (never its secret).
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(state.engine.webhooks().await?))
}

/// `DELETE /v1/webhooks/{id}`: the subscription and its pending deliveries go.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks",
    params(("id" = i64, Path, description = "Subscription id")),
    responses((status = 200, body = Removed), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    PathParams(id): PathParams<i64>,
) -> Result<Json<Removed>, ApiError> {
    state.engine.delete_webhook(id).await?;
    Ok(Json(Removed {
        removed: id.to_string(),
    }))
}

/// `GET /v1/webhooks/{id}/deliveries`: the delivery log, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", operation_id = "webhook_deliveries", tag = "webhooks",
    params(("id" = i64, Path, description = "Subscription id")),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<ApiState>,
    PathParams(id): PathParams<i64>,
) -> Result<Json<DeliveryList>, ApiError> {
    Ok(Json(state.engine.webhook_deliveries(id).await?))
}

/// `POST /v1/webhooks/deliveries/{id}/redeliver`: send a delivery again now (also one given
/// up on), with a fresh attempt budget.
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/redeliver", operation_id = "redeliver", tag = "webhooks",
    params(("id" = i64, Path, description = "Delivery id")),
    responses((status = 200, body = ferry_engine::views::Queued), (status = 404, body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<ApiState>,
    PathParams(id): PathParams<i64>,
) -> Result<Json<ferry_engine::views::Queued>, ApiError> {
    state.engine.redeliver(id).await?;
    Ok(Json(ferry_engine::views::Queued { queued: true }))
}
