//! `POST /stripe/customer_portal` against a local Stripe stand-in.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod common;

use common::{TestApp, json};
use reqwest::StatusCode;
use serde_json::{Value, json as body};

async fn portal(app: &TestApp, token: Option<&str>, payload: &Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/stripe/customer_portal"))
        .json(payload);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_customer_gets_a_portal_session_url() {
    let app = TestApp::spawn().await;
    let token = app.paying_token("alice");
    let response = portal(
        &app,
        Some(&token),
        &body!({"return_url": "https://fractal.co/account"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json(response).await,
        body!({"url": "https://billing.stripe.com/p/session/test_cus_alice"})
    );
    // A customer whose subscription lapsed still manages their billing there.
    let lapsed = app.token_with_subscription("bob", "canceled");
    let response = portal(
        &app,
        Some(&lapsed),
        &body!({"return_url": "https://fractal.co/account"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_are_400_and_name_the_problem() {
    let app = TestApp::spawn().await;
    let token = app.paying_token("alice");
    for (payload, expected) in [
        (body!({}), "return_url: required"),
        (body!({"return_url": 3}), "return_url: expected a string"),
        (body!({"return_url": "nowhere"}), "return_url: not a URL"),
        (
            body!({"return_url": "ftp://fractal.co"}),
            "return_url: expected an http or https URL",
        ),
        (
            body!(["https://fractal.co"]),
            "body: expected a JSON object",
        ),
    ] {
        let response = portal(&app, Some(&token), &payload).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{payload}");
        let error = json(response).await["error"].as_str().unwrap().to_owned();
        assert!(error.contains(expected), "{payload}: {error}");
    }

    // A token without the Stripe claim.
    let plain = app.identity.token("carol");
    let response = portal(
        &app,
        Some(&plain),
        &body!({"return_url": "https://fractal.co"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(response).await["error"],
        "the token names no Stripe customer"
    );

    // A customer Stripe does not know: Stripe's refusal, as a 400.
    let mut claims = app.identity.claims("dave");
    claims.insert(
        "https://api.fractal.co/stripe_customer_id".to_owned(),
        Value::from("cus_unknown"),
    );
    let stranger = app.identity.sign(&claims);
    let response = portal(
        &app,
        Some(&stranger),
        &body!({"return_url": "https://fractal.co"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json(response).await["error"],
        "No such customer: 'cus_unknown'"
    );

    // No token at all.
    let response = portal(&app, None, &body!({"return_url": "https://fractal.co"})).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn stripe_down_is_a_503() {
    let app = TestApp::spawn().await;
    let token = app.paying_token("alice");
    app.stripe.set_down(true);
    let response = portal(
        &app,
        Some(&token),
        &body!({"return_url": "https://fractal.co"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json(response).await["error"],
        "the payment provider is unavailable"
    );
}
