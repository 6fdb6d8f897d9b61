//! A resource server that trusts tollgate's access tokens.
//!
//! ```sh
//! TOLLGATE_URL=http://127.0.0.1:8080 cargo run -p tollgate-verify --example resource_server --features actix
//! curl -s localhost:8081/                                     # public
//! curl -s localhost:8081/hello -H "authorization: Bearer $ACCESS"   # protected
//! ```
//!
//! `BIND_ADDR` (default `127.0.0.1:8081`) is where it listens; every `TOLLGATE_*`
//! variable of [`VerifierConfig::from_env`] applies.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;
use tollgate_verify::{Claims, Verifier, VerifierConfig};

async fn index() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "message": "public: no token needed; try GET /hello" }))
}

/// Protected: the `Claims` argument makes actix-web answer 401 unless the request carries
/// a valid tollgate access token.
async fn hello(user: Claims) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "message": format!("hello, {}", user.username),
        "user_id": user.sub,
        "token_expires_at": user.exp,
    }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match VerifierConfig::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("configuration error: {error}");
            std::process::exit(2);
        }
    };
    let bind_addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:8081".to_owned());
    log::info!("verifying tokens from {}; listening on {bind_addr}", config.tollgate_url);

    let verifier = Verifier::new(config);
    // Warm the key cache; if tollgate is not up yet, the first request tries again.
    if let Err(error) = verifier.refresh_keys().await {
        log::warn!("{error}");
    }
    // Polls the revocation feed when TOLLGATE_REVOCATION_TOKEN is set.
    verifier.spawn_revocation_poller();

    HttpServer::new(move || {
        App::new()
            .app_data(verifier.clone())
            .route("/", web::get().to(index))
            .route("/hello", web::get().to(hello))
    })
    .bind(bind_addr)?
    .run()
    .await
}
