//! The middleware stack and extractors, with routes that only tests have.

use std::sync::Arc;

use std::time::Duration;

use actix_web::{HttpResponse, test, web};
use app_metrics::Registry;
use assignment::NoScaling;
use assignment::{AssignMetrics, AssignPolicy, Assigner, Waiting};
use auth::{SigningKey, TokenVerifier, VerifierConfig};
use billing::NoPayments;
use host_protocol::HostService;
use models::db::Readiness;
use models::notify::{Channel, Notifications};
use models::region_to_ami::EnabledRegions;
use models::{Db, PoolOptions};
use scaling::FleetGauges;
use serde::Deserialize;
use serde_json::{Value, json};
use test_support::{TEST_AUDIENCE, TestIdentity};

use crate::extract::{Admin, User};
use crate::{ApiError, ApiMetrics, ApiState, CorsOrigins, HttpMetrics, ShutdownFlag, app};

fn test_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/admin",
        web::get().to(|Admin(caller): Admin| async move {
            HttpResponse::Ok().json(json!({ "admin": caller.user_id }))
        }),
    )
    .route(
        "/user",
        web::get().to(|User(caller): User| async move {
            HttpResponse::Ok().json(json!({ "user": caller.user_id }))
        }),
    )
    .route(
        "/plain-500",
        web::get().to(|| async {
            HttpResponse::InternalServerError().body("stack trace with a password")
        }),
    )
    .route(
        "/bug",
        web::get().to(|| async {
            Err::<HttpResponse, _>(ApiError::Internal(
                "connection string with a password".to_owned().into(),
            ))
        }),
    )
    .route(
        "/echo",
        web::post().to(|body: web::Json<Echo>| async move {
            HttpResponse::Ok().json(json!({ "name": body.name }))
        }),
    );
}

#[derive(Deserialize)]
struct Echo {
    name: String,
}

struct Fixture {
    key: SigningKey,
    identity: TestIdentity,
}

impl Fixture {
    fn new() -> Self {
        Self {
            key: SigningKey::generate().unwrap(),
            identity: TestIdentity::new(),
        }
    }

    fn token(&self, admin: bool) -> String {
        let mut claims = self.identity.claims("alice");
        claims.remove("iss");
        if admin {
            claims.insert("scope".into(), json!("admin"));
        }
        self.key.sign(&claims).unwrap()
    }

    fn state(&self) -> web::Data<ApiState> {
        let verifier = TokenVerifier::new(&VerifierConfig::new(TEST_AUDIENCE))
            .unwrap()
            .trust_key(&self.key);
        // Never connected to: these routes do not touch the database.
        let db = Db::new("postgres://nobody@127.0.0.1:1/none", PoolOptions::default());
        let registry = Registry::new();
        let assigner = Assigner::new(
            db.clone(),
            Arc::new(NoPayments),
            Arc::new(NoScaling),
            AssignPolicy::default(),
            AssignMetrics::new(&registry),
            Waiting::new(Notifications::silent().watch(Channel::Capacity), &registry),
        );
        web::Data::new(ApiState {
            hosts: HostService::new(db.clone(), db.clone()),
            fleet: None,
            portal: Arc::new(NoPayments),
            mailer: None,
            fleet_reads: Arc::default(),
            ops_db: db.clone(),
            readiness: Arc::new(Readiness::new(db.clone())),
            regions: Arc::new(EnabledRegions::new(
                db.clone(),
                &Notifications::silent(),
                Duration::from_secs(5),
            )),
            db,
            verifier: Arc::new(verifier),
            assigner: Arc::new(assigner),
            shutdown: ShutdownFlag::default(),
            trusted_proxy_hops: 0,
            metrics: Arc::new(ApiMetrics {
                http: HttpMetrics::new(&registry),
                gauges: FleetGauges::new(&registry, Duration::from_secs(5)),
                registry,
            }),
        })
    }
}

async fn call(fixture: &Fixture, req: test::TestRequest) -> (u16, String) {
    let service =
        test::init_service(app(fixture.state(), 1024, CorsOrigins::Any, test_routes)).await;
    let response = test::call_service(&service, req.to_request()).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    if status >= 400 {
        assert_eq!(content_type.as_deref(), Some("application/json"), "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        assert!(value["error"].is_string(), "{body}");
    }
    (status, body)
}

#[actix_web::test]
async fn admin_routes_need_the_admin_scope() {
    let fixture = Fixture::new();
    let bearer = |token: String| ("Authorization", format!("Bearer {token}"));

    let (status, body) = call(
        &fixture,
        test::TestRequest::get()
            .uri("/admin")
            .insert_header(bearer(fixture.token(true))),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"admin":"alice"}"#));

    let (status, body) = call(
        &fixture,
        test::TestRequest::get()
            .uri("/admin")
            .insert_header(bearer(fixture.token(false))),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    let (status, _) = call(&fixture, test::TestRequest::get().uri("/admin")).await;
    assert_eq!(status, 401);

    let (status, body) = call(
        &fixture,
        test::TestRequest::get()
            .uri("/user")
            .insert_header(bearer(fixture.token(false))),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"user":"alice"}"#));
}

#[actix_web::test]
async fn server_errors_get_a_json_body_that_hides_their_cause() {
    let fixture = Fixture::new();
    let (status, body) = call(&fixture, test::TestRequest::get().uri("/plain-500")).await;
    assert_eq!(status, 500);
    assert!(!body.contains("password"), "{body}");

    let (status, body) = call(&fixture, test::TestRequest::get().uri("/bug")).await;
    assert_eq!(
        (status, body.as_str()),
        (500, r#"{"error":"internal error"}"#)
    );
}

#[actix_web::test]
async fn malformed_json_bodies_are_400_and_oversized_ones_413() {
    let fixture = Fixture::new();
    let post = || test::TestRequest::post().uri("/echo");

    let (status, body) = call(
        &fixture,
        post()
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"name\":"),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = call(
        &fixture,
        post()
            .insert_header(("content-type", "application/json"))
            .set_payload("{}"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("name"),
        "the error names the missing field: {body}"
    );

    let (status, _) = call(
        &fixture,
        post()
            .insert_header(("content-type", "text/plain"))
            .set_payload("{\"name\":\"x\"}"),
    )
    .await;
    assert_eq!(status, 415);

    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(4096));
    let (status, _) = call(
        &fixture,
        post()
            .insert_header(("content-type", "application/json"))
            .set_payload(big),
    )
    .await;
    assert_eq!(status, 413);
}

#[actix_web::test]
async fn mail_without_a_transport_is_a_503() {
    // What production and staging get when neither SMTP_URL nor SENDGRID_API_KEY is set.
    let fixture = Fixture::new();
    let service =
        test::init_service(app(fixture.state(), 1024, CorsOrigins::Any, crate::routes)).await;
    let request = test::TestRequest::post()
        .uri("/mail")
        .insert_header(("Authorization", format!("Bearer {}", fixture.token(true))))
        .set_json(json!({"email_id": "WELCOME", "to_email": "ada@example.com"}))
        .to_request();
    let response = test::call_service(&service, request).await;
    assert_eq!(response.status().as_u16(), 503);
    let body: Value = test::read_body_json(response).await;
    assert_eq!(body["error"], "mail is not configured");
}
