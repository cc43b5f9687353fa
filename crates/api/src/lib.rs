//! The HTTP API: one route table, one handler per action, extractors for the caller,
//! and one error type. Handlers extract, authorize, call the library crates and shape
//! the answer; they hold no business logic and build no SQL.

pub mod answers;
pub mod body;
mod console;
mod error;
pub mod extract;
mod fleet;
mod hasura;
mod health;
mod host_service;
mod mail;
mod mandelbox;
mod metrics;
mod middleware;
pub mod openapi;
mod peer;
pub mod redact;
mod regions;
mod state;
mod stripe;

use std::net::TcpListener;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};

pub use error::ApiError;
pub use fleet::FleetReads;
pub use metrics::HttpMetrics;
pub use state::{ApiMetrics, ApiState, ShutdownFlag};

use crate::middleware::BodyLimit;

/// Which origins browsers may call the API from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    Any,
    List(Vec<String>),
}

/// How the HTTP server runs.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    pub cors_origins: CorsOrigins,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// How long in-flight requests may take to finish once shutdown begins.
    pub shutdown_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            cors_origins: CorsOrigins::Any,
            workers: 0,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Declares the route table once: `routes` registers it, and [`ROUTES`] lists it (the
/// OpenAPI document is checked against that list).
macro_rules! route_table {
    ($($method:ident $path:literal => $handler:path,)*) => {
        /// Every route of the API.
        pub fn routes(cfg: &mut web::ServiceConfig) {
            $(cfg.service(web::resource($path).route(web::$method().to($handler)));)*
        }

        /// Every registered route, as (method, path).
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path),)*];
    };
}

route_table! {
    get "/healthz" => health::get_healthz,
    get "/readyz" => health::get_readyz,
    get "/regions" => regions::list_regions,
    get "/hasura/auth" => hasura::get_hasura_auth,
    post "/mandelbox/assign" => mandelbox::assign_mandelbox,
    post "/host_service/register" => host_service::register_host,
    post "/host_service/heartbeat" => host_service::heartbeat_host,
    put "/host_service/mandelbox/{id}/status" => host_service::update_host_mandelbox_status,
    delete "/host_service/mandelbox/{id}" => host_service::delete_host_mandelbox,
    post "/mail" => mail::send_mail,
    post "/stripe/customer_portal" => stripe::create_customer_portal,
    get "/metrics" => metrics::get_metrics,
    get "/fleet" => fleet::get_fleet,
    get "/dashboard" => console::get_dashboard,
    post "/fleet/instances/{name}/drain" => fleet::drain_instance,
    get "/openapi.json" => openapi::get_openapi,
    get "/docs" => openapi::get_docs,
}

async fn no_such_route() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such route".to_owned()))
}

fn cors(origins: &CorsOrigins) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allow_any_header()
        .max_age(3600);
    match origins {
        CorsOrigins::Any => cors.allow_any_origin().send_wildcard(),
        CorsOrigins::List(list) => list
            .iter()
            .fold(cors, |cors, origin| cors.allowed_origin(origin)),
    }
}

/// The application: `configure`'s routes behind every middleware.
fn app(
    state: web::Data<ApiState>,
    limit: usize,
    cors_origins: CorsOrigins,
    configure: fn(&mut web::ServiceConfig),
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .app_data(web::Data::new(BodyLimit(limit)))
        .app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(error::json_body_error),
        )
        .app_data(web::PayloadConfig::new(limit))
        .configure(configure)
        .default_service(web::to(no_such_route))
        .wrap(from_fn(middleware::limit_body))
        .wrap(ErrorHandlers::new().default_handler(middleware::json_error_body))
        .wrap(cors(&cors_origins))
        .wrap(from_fn(middleware::log_request))
}

/// The HTTP server on `listener`. It does not handle signals: the caller stops it
/// through its handle (see `webserver`'s startup), so readiness can turn false first.
pub fn server(
    listener: TcpListener,
    state: ApiState,
    options: HttpOptions,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        app(
            state.clone(),
            options.max_body_bytes,
            options.cors_origins.clone(),
            routes,
        )
    })
    .on_connect(peer::on_connect)
    .disable_signals()
    .shutdown_timeout(options.shutdown_timeout.as_secs())
    .listen(listener)?;
    if options.workers > 0 {
        server = server.workers(options.workers);
    }
    Ok(server.run())
}

#[cfg(test)]
mod tests;
