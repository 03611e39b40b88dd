//! The `users/*` routes: a plausible basic account whose ids come from `account.json`, and
//! the space usage against the account's configured quota.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::server::Ctx;
use crate::wire::{self, ApiError};

/// Runs one `users/*` route. Both take a Void argument (`null`).
pub async fn call(app: &Ctx<'_>, route: &str, arg: Value) -> Result<Response, ApiError> {
    if !arg.is_null() {
        return Err(ApiError::BadArg("expected null, got a value".into()));
    }
    let result = match route {
        "users/get_current_account" => current_account(app),
        "users/get_space_usage" => json!({
            "used": app.tree().used(),
            "allocation": {".tag": "individual", "allocated": app.quota},
        }),
        _ => return Err(ApiError::UnknownRoute(route.to_string())),
    };
    Ok(wire::json(StatusCode::OK, &result))
}

/// A `FullAccount` with every field the SDK requires.
fn current_account(app: &Ctx<'_>) -> Value {
    let account = &app.account;
    // The primary account keeps the first cut's identity; others are named after themselves.
    let (surname, email) = if app.name == "default" {
        ("Emulator".to_string(), "emulator@ferry.invalid".to_string())
    } else {
        (app.name.clone(), format!("{}@ferry.invalid", app.name))
    };
    json!({
        "account_id": account.account_id,
        "name": {
            "given_name": "Ferry",
            "surname": surname,
            "familiar_name": "Ferry",
            "display_name": format!("Ferry {surname}"),
            "abbreviated_name": "FE",
        },
        "email": email,
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
