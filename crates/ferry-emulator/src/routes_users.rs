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
            "used": app.user.tree().used(),
            "allocation": {".tag": "individual", "allocated": app.user.quota},
        }),
        _ => return Err(ApiError::UnknownRoute(route.to_string())),
    };
    Ok(wire::json(StatusCode::OK, &result))
}

/// An account's surname and e-mail: the primary account keeps the first cut's identity;
/// others are named after themselves.
pub(crate) fn identity(user: &crate::space::Space) -> (String, String) {
    if user.name == "default" {
        ("Emulator".to_string(), "emulator@ferry.invalid".to_string())
    } else {
        (user.name.clone(), format!("{}@ferry.invalid", user.name))
    }
}

/// An account's `Name` (also in the team's member list).
pub(crate) fn name(surname: &str) -> Value {
    json!({
        "given_name": "Ferry",
        "surname": surname,
        "familiar_name": "Ferry",
        "display_name": format!("Ferry {surname}"),
        "abbreviated_name": "FE",
    })
}

/// A `FullAccount` with every field the SDK requires.
fn current_account(app: &Ctx<'_>) -> Value {
    let user = app.user;
    let account = &user.account;
    let (surname, email) = identity(user);
    let team = app
        .app
        .team
        .as_ref()
        .filter(|t| t.member_of(user).is_some());
    let mut result = json!({
        "account_id": account.account_id,
        "name": name(&surname),
        "email": email,
        "email_verified": true,
        "disabled": false,
        "locale": "en",
        "referral_link": "https://www.dropbox.com/referrals/emulator",
        "is_paired": false,
        "account_type": {".tag": "basic"},
        "root_info": crate::team::user_root_info(user),
        "country": "US",
    });
    if let Some(team) = team {
        result["account_type"] = json!({".tag": "business"});
        result["root_info"] = team.root_info(user);
        result["team"] = team.account_team();
        if let Some(member) = team.member_of(user) {
            result["team_member_id"] = member.member_id.clone().into();
        }
    }
    result
}
