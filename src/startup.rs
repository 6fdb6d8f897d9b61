//! Wiring: from [`Settings`] to a running server.

use std::net::TcpListener;
use std::sync::Arc;

use secrecy::SecretString;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle, ServiceResponse};
use actix_web::http::header::HeaderName;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, ErrorHandlerResponse, ErrorHandlers, Logger, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::auth::cookie::{CSRF_HEADER, CookieMode, csrf_guard};
use crate::auth::keys::KeyStore;
use crate::auth::password::Passwords;
use crate::auth::rate_limit::{LoginThrottle, RateLimiter};
use crate::auth::refresh::RefreshSessions;
use crate::auth::tokens::AccessTokens;
use crate::auth::user_cache::UserCache;
use crate::config::{ConfigError, Settings};
use crate::db::{self, Pool};
use crate::routes;

/// What every handler shares, built once at start-up.
pub struct AppState {
    pub pool: Pool,
    pub tokens: AccessTokens,
    pub sessions: RefreshSessions,
    pub passwords: Passwords,
    pub login_throttle: LoginThrottle,
    pub users: UserCache,
    pub rate_limiter: RateLimiter,
    pub keys: Arc<KeyStore>,
    pub jwks_max_age_secs: u64,
    pub revocation_feed_token: Option<SecretString>,
    pub cookie_mode: CookieMode,
    /// Where the demo page's files are, when it is served.
    pub demo_ui: Option<std::path::PathBuf>,
    /// The roles of every signup (`DEFAULT_ROLES`).
    pub default_roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// Connects to the database and applies pending migrations; returns how many ran.
pub fn migrate(settings: &Settings) -> Result<(Pool, usize), StartupError> {
    let pool = db::build_pool(&settings.database).map_err(|e| StartupError::Database(e.to_string()))?;
    let mut conn = pool.get().map_err(|e| StartupError::Database(e.to_string()))?;
    let applied = db::run_migrations(&mut conn).map_err(StartupError::Database)?;
    Ok((pool, applied))
}

impl AppState {
    pub fn build(settings: &Settings, pool: Pool) -> Result<Self, StartupError> {
        let keys = Arc::new(KeyStore::open(&settings.jwt)?);
        keys.watch();
        let passwords = Passwords::start(&settings.argon2)
            .map_err(|e| ConfigError { variable: "ARGON2_MEMORY_KIB", problem: e.to_string() })?;
        Ok(Self {
            pool,
            tokens: AccessTokens::new(keys.clone(), &settings.jwt),
            sessions: RefreshSessions::new(keys.refresh_secret.clone(), &settings.refresh),
            passwords,
            login_throttle: LoginThrottle::default(),
            users: UserCache::default(),
            rate_limiter: RateLimiter::new(settings.auth_rate_limit_per_min, settings.trust_proxy_headers),
            jwks_max_age_secs: settings.jwt.jwks_max_age_secs,
            revocation_feed_token: settings.revocation_feed_token.clone(),
            cookie_mode: CookieMode {
                enabled: settings.refresh_token_cookie,
                allowed_origins: settings.cors_allowed_origins.clone(),
            },
            demo_ui: settings.demo_ui.clone(),
            default_roles: settings.default_roles.clone(),
            keys,
        })
    }
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Migrates, loads keys and binds; the server runs once awaited.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let (pool, applied) = migrate(&settings)?;
        if applied > 0 {
            log::info!("applied {applied} migration(s)");
        }
        let state = web::Data::new(AppState::build(&settings, pool)?);
        let listener = TcpListener::bind(settings.bind_addr)
            .map_err(|e| StartupError::Bind(settings.bind_addr.to_string(), e))?;
        let port =
            listener.local_addr().map_err(|e| StartupError::Bind(settings.bind_addr.to_string(), e))?.port();
        let origins = settings.cors_allowed_origins.clone();
        let cookie_mode = settings.refresh_token_cookie;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(routes::configure)
                .wrap(from_fn(csrf_guard))
                .wrap(cors(&origins, cookie_mode))
                .wrap(
                    DefaultHeaders::new()
                        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                        .add((header::CACHE_CONTROL, "no-store")),
                )
                .wrap(ErrorHandlers::new().default_handler(json_error_body))
                .wrap(request_logger())
        })
        .client_request_timeout(settings.client_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .listen(listener)
        .map_err(|e| StartupError::Bind(settings.bind_addr.to_string(), e))?
        .run();
        log::info!("listening on {}:{port}", settings.bind_addr.ip());
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests, signal handling).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// One line per request: method, path (never the query string, which may carry secrets),
/// status and duration.
fn request_logger() -> Logger {
    Logger::new("%{method}xi %{path}xi %s %Dms")
        .custom_request_replace("method", |req| req.method().to_string())
        .custom_request_replace("path", |req| req.path().to_owned())
}

fn cors(origins: &[String], cookie_mode: bool) -> Cors {
    let cors = origins.iter().fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    let cors = cors
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static(CSRF_HEADER)])
        .max_age(3600)
        // Other origins simply get no CORS headers; non-browser clients are unaffected.
        .block_on_origin_mismatch(false);
    // Only the refresh cookie needs credentials, and only for the exact origins above.
    if cookie_mode { cors.supports_credentials() } else { cors }
}

/// The last line of defence for the error contract: any error response that is not JSON
/// yet (from actix itself or a middleware) gets the `{"error","code"}` body.
fn json_error_body<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        503 => "service_unavailable",
        s if s >= 500 => "internal_error",
        _ => "bad_request",
    };
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    new.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
    let body = serde_json::json!({ "error": message, "code": code });
    let res = ServiceResponse::new(req, new.body(body.to_string())).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
