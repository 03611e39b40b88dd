//! Team connections: a team token acting as one member (`select_user`, sent as
//! Dropbox-API-Select-User) with its root in the team space (`path_root`, sent as
//! Dropbox-API-Path-Root); files land in the team's namespace, team-only links that expire
//! work there, and every bad value is a 400 in Ferry's words.

use crate::support::{Emu, Stack};
use ferry_dropbox::{DropboxClient, Endpoints, PathRoot};
use reqwest::Method;
use serde_json::{Value, json};

async fn team_stack() -> Stack {
    let emu = Emu::start_with(|c| {
        c.accounts = vec![
            ferry_emulator::AccountSpec::new("bob"),
            ferry_emulator::AccountSpec::new("carol"),
        ];
        c.team = Some(ferry_emulator::TeamSpec {
            name: "acme".into(),
            token: Some("team-token".into()),
            members: vec!["default".into(), "bob".into()],
        });
    })
    .await;
    Stack::start_on(emu, |_| {}).await
}

fn member_id(stack: &Stack, name: &str) -> String {
    let team = stack.emu.emulator.team().expect("a team");
    team.members
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, id)| id.clone())
        .expect("a member")
}

async fn put(stack: &Stack, name: &str, body: Value) -> (u16, Value) {
    let (status, body) = stack
        .api
        .raw(
            Method::PUT,
            &format!("/v1/connections/{name}"),
            Some((body.to_string().into_bytes(), "application/json")),
        )
        .await
        .unwrap();
    (status.as_u16(), body)
}

#[tokio::test]
async fn a_team_member_in_the_team_space_syncs_and_shares_with_the_team() {
    let stack = team_stack().await;
    let base_url = stack.emu.emulator.base_url();
    let bob = member_id(&stack, "bob");
    let (status, body) = put(
        &stack,
        "team",
        json!({"token": "team-token", "select_user": bob, "path_root": "team",
               "root": "/Shared Jobs", "base_url": base_url}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ns = stack.emu.emulator.team().unwrap().root_namespace_id.clone();
    let list = stack.api.get("/v1/connections").await.unwrap();
    let team = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "team")
        .unwrap();
    assert_eq!(team["select_user"], bob.as_str());
    assert_eq!(team["path_root"], format!("root:{ns}"));

    stack
        .api
        .put_json(
            "/v1/rules/jobs",
            &json!({"record_kind": "job", "connection": "team", "folder": "{{ record.key }}",
                    "direction": "both", "links": "team", "link_expiry_days": 7}),
        )
        .await
        .unwrap();
    stack.record_with("job", "J1", &["plan.pdf"]).await;
    stack.settle().await;

    // The file is in the team space, not in Bob's own folder.
    let team_client = DropboxClient::new(
        Endpoints::single(&base_url).unwrap(),
        &ferry_core::secret::Secret::new("team-token"),
    )
    .unwrap();
    let in_space = team_client
        .clone()
        .acting_as(Some(&bob), Some(&PathRoot::Root(ns.clone())));
    in_space
        .metadata("/Shared Jobs/J1/plan.pdf")
        .await
        .expect("the file is in the team space");
    let at_home = team_client.acting_as(Some(&bob), None);
    assert!(matches!(
        at_home.metadata("/Shared Jobs/J1/plan.pdf").await,
        Err(ferry_dropbox::DropboxError::NotFound(_))
    ));

    // A team-only link that expires in a week.
    let sync = stack
        .eventually("/v1/records/job/J1/sync", |s| {
            s["files"][0]["link"]["kind"] == "shared"
        })
        .await;
    let link = &sync["files"][0]["link"];
    assert_eq!(link["audience"], "team", "{sync}");
    let week_ms = 7 * 24 * 3600 * 1000;
    let expires = link["expires_at"].as_i64().expect("an expiry");
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        (now + week_ms - 120_000..=now + week_ms + 120_000).contains(&expires),
        "{link}"
    );

    // A change people make in the team space comes back through the member's cursor.
    in_space
        .upload(
            "/Shared Jobs/J1/plan.pdf",
            bytes::Bytes::from_static(b"revised"),
            &ferry_dropbox::WriteMode::Overwrite,
        )
        .await
        .unwrap();
    stack
        .eventually("/v1/records/job/J1", |r| {
            r["attachments"][0]["source"] == "dropbox"
        })
        .await;
    stack.settle().await;
    let content = stack
        .api
        .get_streaming("/v1/records/job/J1/attachments/plan.pdf")
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&content[..], b"revised");
}

#[tokio::test]
async fn bad_team_values_are_refused_in_ferrys_words() {
    let stack = team_stack().await;
    let base_url = stack.emu.emulator.base_url();
    let bob = member_id(&stack, "bob");
    let carol = stack.emu.emulator.token_for("carol").unwrap().to_owned();
    let default = stack.emu.emulator.token().to_owned();
    let cases = [
        (
            json!({"token": "team-token"}),
            "say which team member Ferry acts as",
        ),
        (
            json!({"token": "team-token", "select_user": "dbmid:nobody"}),
            "not on this token's team",
        ),
        (
            json!({"token": "team-token", "select_user": "bob"}),
            "must be a team member id",
        ),
        (
            json!({"token": default, "select_user": bob}),
            "for team tokens",
        ),
        (
            json!({"token": carol, "path_root": "team"}),
            "no team space",
        ),
        (
            json!({"token": "team-token", "select_user": bob, "path_root": "999999"}),
            "Dropbox refused path_root",
        ),
        (
            json!({"token": "team-token", "select_user": bob, "path_root": "everywhere"}),
            "path_root must be",
        ),
    ];
    for (mut body, expected) in cases {
        body["root"] = json!("/T");
        body["base_url"] = json!(base_url);
        let (status, answer) = put(&stack, "t", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
        assert!(!message.contains("team-token"), "a token leaked: {message}");
    }
    let list = stack.api.get("/v1/connections").await.unwrap();
    assert_eq!(
        list["connections"].as_array().unwrap().len(),
        1,
        "nothing was stored: {list}"
    );
}
