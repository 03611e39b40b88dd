//! The `users/*` routes: a fixed, plausible basic account whose ids come from `account.json`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::server::App;
use crate::wire::{self, ApiError};

/// Quota reported by `users/get_space_usage` (2 TiB, a Plus plan).
const ALLOCATED_BYTES: u64 = 2 << 40;

/// Runs one `users/*` route. Both take a Void argument (`null`).
pub async fn call(app: &App, route: &str, arg: Value) -> Result<Response, ApiError> {
    if !arg.is_null() {
        return Err(ApiError::BadArg("expected null, got a value".into()));
    }
    let result = match route {
        "users/get_current_account" => current_account(app),
        "users/get_space_usage" => json!({
            "used": 0,
            "allocation": {".tag": "individual", "allocated": ALLOCATED_BYTES},
        }),
        _ => return Err(ApiError::UnknownRoute(route.to_string())),
    };
    Ok(wire::json(StatusCode::OK, &result))
}

/// A `FullAccount` with every field the SDK requires.
fn current_account(app: &App) -> Value {
    let account = &app.account;
    json!({
        "account_id": account.account_id,
        "name": {
            "given_name": "Ferry",
            "surname": "Emulator",
            "familiar_name": "Ferry",
            "display_name": "Ferry Emulator",
            "abbreviated_name": "FE",
        },
        "email": "emulator@ferry.invalid",
        "email_verified": true,
        "disabled": false,
        "locale": "en",
        "referral_link": "https://www.dropbox.com/referrals/emulator",
        "is_paired": false,
        "account_type": {".tag": "basic"},
        "root_info": {
            ".tag": "user",
            "root_namespace_id": account.namespace_id,
            "home_namespace_id": account.namespace_id,
        },
        "country": "US",
    })
}
