//! The bad-input matrix of the issue: each case answered with Dropbox's status and tag.

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::json;

use super::Harness;

#[tokio::test]
async fn bad_input_matrix() {
    let h = Harness::start().await;
    let post = |route: &str| h.http.post(h.url(route));

    // Malformed JSON and wrong Content-Type: 400 plain text.
    let malformed = h
        .send(
            post("files/get_metadata")
                .header("Authorization", h.bearer())
                .header("Content-Type", "application/json")
                .body("{\"path\": "),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed.text().contains("could not decode input as JSON"),
        "{}",
        malformed.text()
    );
    let wrong_type = h
        .send(
            post("files/get_metadata")
                .header("Authorization", h.bearer())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("path=/a"),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong_type
            .text()
            .contains("Bad HTTP \"Content-Type\" header")
    );
    let upload_as_json = h
        .send(
            post("files/upload")
                .header("Authorization", h.bearer())
                .header("Content-Type", "application/json")
                .header("Dropbox-API-Arg", "{\"path\":\"/a\"}")
                .body("x"),
        )
        .await;
    assert_eq!(upload_as_json.status, StatusCode::BAD_REQUEST);

    // Raw non-ASCII in Dropbox-API-Arg: 400; the escaped form works.
    let raw = h
        .upload_raw("files/upload", "{\"path\":\"/café.txt\"}".as_bytes(), b"x")
        .await;
    assert_eq!(raw.status, StatusCode::BAD_REQUEST);
    assert!(
        raw.text()
            .contains("HTTP header \"Dropbox-API-Arg\": could not decode input as JSON")
    );
    assert_eq!(
        h.upload_to("files/upload", json!({"path": "/café.txt"}), b"x")
            .await
            .status,
        StatusCode::OK
    );

    // Paths.
    let non_bmp = h.metadata("/a\u{1F600}").await;
    assert_eq!(non_bmp.status, StatusCode::BAD_REQUEST);
    assert!(non_bmp.text().contains("Basic Multilingual Plane"));
    let slash_root = h.rpc("files/list_folder", json!({"path": "/"})).await;
    assert_eq!(slash_root.status, StatusCode::BAD_REQUEST);
    assert!(
        slash_root
            .text()
            .contains("Specify the root folder as an empty string")
    );
    for bad in ["/a/", "/a ", &format!("/{}", "x".repeat(256))] {
        let reply = h
            .upload_to("files/upload", json!({"path": bad}), b"x")
            .await;
        assert_eq!(
            reply.route_error()["reason"],
            json!({".tag": "malformed_path"}),
            "{bad}"
        );
        let meta = h.metadata(bad).await;
        assert_eq!(
            meta.route_error(),
            json!({".tag": "path", "path": {".tag": "malformed_path"}})
        );
    }

    // Missing or bad auth.
    let missing = h.send(post("users/get_space_usage")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(
        missing
            .text()
            .contains("Must provide HTTP header \"Authorization\"")
    );
    let not_bearer = h
        .send(
            post("users/get_space_usage")
                .header("Authorization", HeaderValue::from_static("Basic abc")),
        )
        .await;
    assert_eq!(not_bearer.status, StatusCode::BAD_REQUEST);
    let wrong = h
        .send(post("users/get_space_usage").header("Authorization", "Bearer nope"))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json()["error"],
        json!({".tag": "invalid_access_token"})
    );
}
