//! Teams: Dropbox-API-Select-User with the team token, Dropbox-API-Path-Root to the shared
//! root namespace, and the documented errors.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Harness, Reply};
use crate::{AccountSpec, TeamSpec};

async fn team_harness() -> Harness {
    Harness::start_with(|c| {
        c.accounts = vec![
            AccountSpec::new("bob"),
            AccountSpec {
                name: "carol".into(),
                token: Some("carol-token".into()),
                quota_bytes: None,
            },
        ];
        c.team = Some(TeamSpec {
            name: "acme".into(),
            token: Some("team-token".into()),
            members: vec!["default".into(), "bob".into()],
        });
    })
    .await
}

async fn call(
    h: &Harness,
    token: &str,
    headers: &[(&str, &str)],
    route: &str,
    arg: Value,
) -> Reply {
    let mut request = h
        .http
        .post(h.url(route))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(arg.to_string());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    h.send(request).await
}

#[tokio::test]
async fn select_user_and_path_root() {
    let h = team_harness().await;
    let team = h.emulator.team().unwrap().clone();
    assert_eq!(team.members.len(), 2);
    let bob_id = team
        .members
        .iter()
        .find(|m| m.0 == "bob")
        .unwrap()
        .1
        .clone();
    let root_ns = team.root_namespace_id.clone();
    let bob_token = h.emulator.token_for("bob").unwrap().to_string();

    // The team token needs Select-User, with a real member id.
    let bare = call(
        &h,
        "team-token",
        &[],
        "users/get_current_account",
        Value::Null,
    )
    .await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST);
    assert!(bare.text().contains("Dropbox-API-Select-User"));
    let wrong = call(
        &h,
        "team-token",
        &[("Dropbox-API-Select-User", "dbmid:nope")],
        "users/get_current_account",
        Value::Null,
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json()["error"],
        json!({".tag": "invalid_select_user"})
    );
    let as_bob = call(
        &h,
        "team-token",
        &[("Dropbox-API-Select-User", &bob_id)],
        "users/get_current_account",
        Value::Null,
    )
    .await
    .json();
    let bob = &h.emulator.accounts()[1];
    assert_eq!(as_bob["account_id"], bob.account_id);
    assert_eq!(as_bob["team_member_id"], bob_id);
    assert_eq!(as_bob["root_info"][".tag"], "team");
    assert_eq!(as_bob["root_info"]["root_namespace_id"], root_ns);
    assert_eq!(as_bob["root_info"]["home_namespace_id"], bob.namespace_id);

    // Path-Root root: the shared namespace, seen by every member; home stays separate.
    let root_header = json!({".tag": "root", "root": root_ns}).to_string();
    let made = call(
        &h,
        h.emulator.token(),
        &[("Dropbox-API-Path-Root", &root_header)],
        "files/create_folder_v2",
        json!({"path": "/Shared"}),
    )
    .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text());
    let home = h.rpc("files/list_folder", json!({"path": ""})).await.json();
    assert_eq!(home["entries"], json!([]));
    let seen_by_bob = call(
        &h,
        &bob_token,
        &[("Dropbox-API-Path-Root", &root_header)],
        "files/list_folder",
        json!({"path": ""}),
    )
    .await
    .json();
    assert_eq!(super::names(&seen_by_bob["entries"]), ["folder:/Shared"]);
    let by_ns = json!({".tag": "namespace_id", "namespace_id": root_ns}).to_string();
    let via_select = call(
        &h,
        "team-token",
        &[
            ("Dropbox-API-Select-User", &bob_id),
            ("Dropbox-API-Path-Root", &by_ns),
        ],
        "files/get_metadata",
        json!({"path": "/Shared"}),
    )
    .await;
    assert_eq!(via_select.status, StatusCode::OK, "{}", via_select.text());
    let home_header = json!({".tag": "home"}).to_string();
    let at_home = call(
        &h,
        &bob_token,
        &[("Dropbox-API-Path-Root", &home_header)],
        "files/get_metadata",
        json!({"path": "/Shared"}),
    )
    .await;
    assert_eq!(at_home.status, StatusCode::CONFLICT);

    // Errors: a root that is not the user's → 422 invalid_root with the real RootInfo; a
    // namespace without access → 422 no_permission; garbage → 400.
    let bad_root = json!({".tag": "root", "root": "1"}).to_string();
    let reply = call(
        &h,
        &bob_token,
        &[("Dropbox-API-Path-Root", &bad_root)],
        "files/list_folder",
        json!({"path": ""}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["error"][".tag"], "invalid_root");
    assert_eq!(
        reply.json()["error"]["invalid_root"]["root_namespace_id"],
        root_ns
    );
    let no_access = json!({".tag": "namespace_id", "namespace_id": "1"}).to_string();
    let reply = call(
        &h,
        &bob_token,
        &[("Dropbox-API-Path-Root", &no_access)],
        "files/list_folder",
        json!({"path": ""}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["error"], json!({".tag": "no_permission"}));
    for garbage in ["{nope", "{\".tag\": \"weird\"}"] {
        let reply = call(
            &h,
            &bob_token,
            &[("Dropbox-API-Path-Root", garbage)],
            "files/list_folder",
            json!({"path": ""}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{garbage}");
        assert!(reply.text().contains("Dropbox-API-Path-Root"));
    }
    // A non-member cannot reach the team root.
    let carol = call(
        &h,
        "carol-token",
        &[("Dropbox-API-Path-Root", &by_ns)],
        "files/list_folder",
        json!({"path": ""}),
    )
    .await;
    assert_eq!(carol.json()["error"], json!({".tag": "no_permission"}));
    let carol_me = h
        .rpc_as("carol-token", "users/get_current_account", Value::Null)
        .await
        .json();
    assert_eq!(carol_me["root_info"][".tag"], "user");
}

/// Team members may make team-only and expiring links; asking an existing link for other
/// settings answers `shared_link_already_exists` without its metadata, as Dropbox does.
#[tokio::test]
async fn team_members_make_team_links_that_expire() {
    let h = team_harness().await;
    h.upload("/share/doc.txt", b"doc").await;
    let past = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/share/doc.txt", "settings": {"expires": "2001-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(
        past.route_error(),
        json!({".tag": "settings_error", "settings_error": {".tag": "invalid_settings"}})
    );
    let created = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/Share/doc.txt", "settings": {"audience": {".tag": "team"}, "expires": "2999-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let link = created.json();
    assert_eq!(link["expires"], "2999-01-01T00:00:00Z");
    assert_eq!(
        link["link_permissions"]["effective_audience"],
        json!({".tag": "team"})
    );
    let other = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/share/doc.txt", "settings": {"audience": {".tag": "public"}}}),
        )
        .await;
    assert_eq!(
        other.route_error(),
        json!({".tag": "shared_link_already_exists"})
    );
    let same = h
        .rpc(
            "sharing/create_shared_link_with_settings",
            json!({"path": "/share/doc.txt", "settings": {"audience": {".tag": "team"}, "expires": "2999-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(
        same.route_error()["shared_link_already_exists"]["metadata"]["url"],
        link["url"]
    );
}
