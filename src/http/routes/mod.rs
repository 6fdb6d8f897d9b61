//! HTTP routes, one file per area, all registered by [`configure`].

pub mod admin;
pub mod auth;
pub mod demo;
pub mod health;
pub mod jwks;
pub mod revocations;

use actix_web::{HttpResponse, Route, web};

use super::error::ApiError;
use super::extract::json_config_error;

/// JSON request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Registers every route; shared by the server and the tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(json_config_error))
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _| ApiError::Validation(format!("invalid query string: {err}")).into()),
        )
        .service(resource("/auth/signup", web::post().to(auth::signup)))
        .service(resource("/auth/login", web::post().to(auth::login)))
        .service(resource("/auth/refresh", web::post().to(auth::refresh)))
        .service(resource("/auth/logout", web::post().to(auth::logout)))
        .service(resource("/auth/me", web::get().to(auth::me)))
        .service(resource("/auth/password", web::post().to(auth::change_password)))
        .service(resource("/auth/revocations", web::get().to(revocations::revocations)))
        .service(resource("/.well-known/jwks.json", web::get().to(jwks::jwks)))
        .service(resource("/demo", web::get().to(demo::page)))
        .service(resource("/demo/tollgate-client.js", web::get().to(demo::client)))
        .service(resource("/healthz", web::get().to(health::healthz)))
        .service(resource("/readyz", web::get().to(health::readyz)))
        .configure(admin::configure)
        .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::NotFound) }));
}

/// A path with one method; any other method is a JSON 405.
fn resource(path: &str, route: Route) -> actix_web::Resource {
    methods(path, [route])
}

/// A path with these methods; any other method is a JSON 405.
fn methods(path: &str, routes: impl IntoIterator<Item = Route>) -> actix_web::Resource {
    routes
        .into_iter()
        .fold(web::resource(path), |resource, route| resource.route(route))
        .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::MethodNotAllowed) }))
}
