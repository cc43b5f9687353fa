//! The routes of the foundation, through the real server over HTTP.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use std::time::Duration;

use common::{TestApp, json};
use reqwest::StatusCode;
use serde_json::json;
use test_support::{TestIdentity, unix_now_secs};

#[tokio::test]
async fn healthz_answers_while_the_process_is_up() {
    let app = TestApp::spawn().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_follows_the_database() {
    let app = TestApp::spawn().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({"status": "ready"}));

    app.db.drop_now();
    // A pool that answered within the last second counts as working, and answers are
    // kept for a quarter of a second: the promise is 503 within 2 s.
    let dropped = std::time::Instant::now();
    let response = loop {
        let response = app.get("/readyz").await;
        if response.status() != StatusCode::OK || dropped.elapsed() > Duration::from_secs(2) {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json(response).await["error"],
        "database unavailable: the request pool has no working connection"
    );
    // The process itself is still healthy.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_once_shutdown_begins() {
    let app = TestApp::spawn().await;
    app.shutdown.begin_shutdown();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json(response).await["error"], "shutting down");
}

#[tokio::test]
async fn graceful_stop_closes_the_listener() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    app.stopper.stop().await;
    assert!(app.shutdown.is_shutting_down());
    let refused = reqwest::Client::new().get(app.url("/healthz")).send().await;
    assert!(refused.is_err(), "the listener should be closed");
}

#[tokio::test]
async fn regions_lists_distinct_enabled_regions_to_signed_in_users() {
    let app = TestApp::spawn().await;
    app.add_region("us-west-1", "abc", "ami-1", true, true);
    app.add_region("us-east-1", "abc", "ami-2", true, true);
    app.add_region("us-east-1", "def", "ami-3", false, true);
    app.add_region("eu-central-1", "abc", "ami-4", true, false);

    let response = app
        .get_with_token("/regions", &app.identity.token("alice"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!(["us-east-1", "us-west-1"]));
}

#[tokio::test]
async fn regions_needs_a_token() {
    let app = TestApp::spawn().await;
    let response = app.get("/regions").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(json(response).await["error"], "missing access token");
}

#[tokio::test]
async fn token_is_read_from_any_case_of_bearer() {
    let app = TestApp::spawn().await;
    let token = app.identity.token("alice");
    let lower = app
        .client
        .get(app.url("/regions"))
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK);

    let basic = app
        .client
        .get(app.url("/regions"))
        .header("Authorization", "Basic YWxpY2U6cHc=")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json(basic).await["error"]
            .as_str()
            .unwrap()
            .contains("Bearer")
    );
}

#[tokio::test]
async fn a_token_in_the_url_is_taken_only_by_the_hasura_hook() {
    let app = TestApp::spawn().await;
    let token = app.identity.token("alice");
    let admin = app.identity.admin_token("root");
    for (path, token) in [("/regions", &token), ("/fleet", &admin)] {
        let response = app.get(&format!("{path}?access_token={token}")).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains("Authorization: Bearer"), "{path}: {error}");
    }
    // The same admin token in the header opens the admin route.
    assert_eq!(
        app.get_with_token("/fleet", &admin).await.status(),
        StatusCode::OK
    );
    // Hasura forwards the client's query: its hook still reads it.
    let hook = app.get(&format!("/hasura/auth?access_token={token}")).await;
    assert_eq!(hook.status(), StatusCode::OK);
    assert_eq!(json(hook).await["X-Hasura-User-Id"], "alice");
}

#[tokio::test]
async fn admin_comes_from_scope_by_default_or_from_permissions_when_configured() {
    let by_scope = TestApp::spawn().await;
    let identity = &by_scope.identity;
    let mut in_permissions = identity.claims("mallory");
    in_permissions.insert("permissions".to_owned(), json!(["admin"]));
    let in_permissions = identity.sign(&in_permissions);
    let in_scope = identity.admin_token("mallory");

    async fn status(app: &TestApp, token: String) -> StatusCode {
        app.get_with_token("/fleet", &token).await.status()
    }
    assert_eq!(status(&by_scope, in_scope.clone()).await, StatusCode::OK);
    assert_eq!(
        status(&by_scope, in_permissions.clone()).await,
        StatusCode::FORBIDDEN
    );

    // With ADMIN_CLAIM=permissions, asking for the admin scope at login gets nothing.
    let by_permissions = by_scope
        .spawn_sharing(&[("ADMIN_CLAIM", "permissions")])
        .await;
    assert_eq!(
        status(&by_permissions, in_scope).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&by_permissions, in_permissions).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_kind_of_bad_token_is_401_with_a_json_error() {
    let app = TestApp::spawn().await;
    let identity = &app.identity;
    let stranger = auth::SigningKey::generate().unwrap();

    let alg_none = TestIdentity::forge(
        &json!({"alg": "none", "typ": "JWT"}),
        &identity.claims("mallory"),
        b"",
    );
    let with = |name: &str, value: serde_json::Value| {
        let mut claims = identity.claims("alice");
        claims.insert(name.to_owned(), value);
        identity.sign(&claims)
    };
    let cases = [
        ("alg none", alg_none),
        (
            "HS256 with the public key",
            identity.hs256_keyed_with_public_key("mallory"),
        ),
        (
            "unknown key",
            stranger.sign(&identity.claims("mallory")).unwrap(),
        ),
        ("expired", with("exp", json!(unix_now_secs() - 600))),
        ("not yet valid", with("nbf", json!(unix_now_secs() + 600))),
        (
            "wrong audience",
            with("aud", json!("https://elsewhere.example")),
        ),
        ("wrong issuer", with("iss", json!("https://evil.example/"))),
        ("garbage", "not-a-token".to_owned()),
    ];
    for (case, token) in cases {
        let response = app.get_with_token("/regions", &token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        let body = json(response).await;
        assert!(body["error"].is_string(), "{case}: {body}");
    }
}

#[tokio::test]
async fn identity_provider_outage_is_503_not_401() {
    let provider = TestIdentity::new();
    provider.jwks.set_status(500);
    let app = TestApp::spawn_with(&[("JWKS_URL", provider.jwks.url())]).await;
    let response = app
        .get_with_token("/regions", &provider.token("alice"))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json(response).await["error"],
        "authentication is temporarily unavailable"
    );
}

#[tokio::test]
async fn hasura_auth_maps_tokens_to_roles() {
    let app = TestApp::spawn().await;
    let anonymous = app.get("/hasura/auth").await;
    assert_eq!(anonymous.status(), StatusCode::OK);
    assert_eq!(
        json(anonymous).await,
        json!({"X-Hasura-Role": "anonymous", "X-Hasura-User-Id": ""})
    );

    let user = app
        .get_with_token("/hasura/auth", &app.identity.token("auth0|alice"))
        .await;
    assert_eq!(user.status(), StatusCode::OK);
    assert_eq!(
        json(user).await,
        json!({"X-Hasura-Role": "user", "X-Hasura-User-Id": "auth0|alice"})
    );

    let invalid = app.get_with_token("/hasura/auth", "not-a-token").await;
    assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = TestApp::spawn().await;
    let missing = app.get("/no/such/route").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(json(missing).await["error"], "no such route");

    let wrong_method = app.client.delete(app.url("/regions")).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(json(wrong_method).await["error"].is_string());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = TestApp::spawn_with(&[("MAX_BODY_BYTES", "1024")]).await;
    let response = app
        .client
        .post(app.url("/hasura/auth"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        json(response).await["error"]
            .as_str()
            .unwrap()
            .contains("1024")
    );
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/regions"))
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let restricted = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example")]).await;
    let allowed = restricted
        .client
        .get(restricted.url("/healthz"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = restricted
        .client
        .get(restricted.url("/healthz"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
