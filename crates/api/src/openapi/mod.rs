//! The OpenAPI 3 document of every route, generated from the handlers' `#[utoipa::path]`
//! annotations and the answers' own types (`crate::answers`; `GET /openapi.json`), and a browsable view of it
//! served from the binary (`GET /docs`, no CDN).

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "webserver",
        description = "Control plane of the GPU streaming service: mandelbox assignment, the host service protocol, mail, billing and operations.",
    ),
    paths(
        crate::health::get_healthz,
        crate::health::get_readyz,
        crate::regions::list_regions,
        crate::hasura::get_hasura_auth,
        crate::mandelbox::assign_mandelbox,
        crate::host_service::register_host,
        crate::host_service::heartbeat_host,
        crate::host_service::update_host_mandelbox_status,
        crate::host_service::delete_host_mandelbox,
        crate::mail::send_mail,
        crate::stripe::create_customer_portal,
        crate::metrics::get_metrics,
        crate::fleet::get_fleet,
        crate::fleet::drain_instance,
        crate::console::get_dashboard,
        get_openapi,
        get_docs,
    ),
    modifiers(&Security, &BodyRefusals),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The identity provider's RS256 access token, in the Authorization header (GET /hasura/auth also reads the access_token query parameter); `admin` in the claim ADMIN_CLAIM names (scope by default, or permissions) marks operators.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "host_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The auth_token a host received at registration."))
                    .build(),
            ),
        );
    }
}

/// Every route that reads a JSON body also answers 413 (too large) and 415 (not JSON),
/// from the middleware and extractor shared by all of them.
struct BodyRefusals;

impl Modify for BodyRefusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::Ref;
        use utoipa::openapi::{ContentBuilder, ResponseBuilder};
        let refusal = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.post, &mut item.put].into_iter().flatten() {
                if operation.request_body.is_none() {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "413".to_owned(),
                    refusal("The body is larger than MAX_BODY_BYTES").into(),
                );
                responses.insert(
                    "415".to_owned(),
                    refusal("The body is not application/json").into(),
                );
            }
        }
    }
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_json().unwrap_or_default());

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "documentation",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}

/// `GET /docs`: a page that lists every route of `/openapi.json` with its parameters,
/// bodies, answers and security.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "documentation",
    responses((status = 200, description = "The browsable documentation", content_type = "text/html"))
)]
pub async fn get_docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'",
        ))
        .body(include_str!("docs.html"))
}
