//! Wiring: from [`Settings`] (and a [`Clock`]) to a running server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};

use crate::auth::keys::{KeyStore, KeyStoreError};
use crate::auth::password::Passwords;
use crate::auth::rate_limit::{AbuseLimits, RateLimiter};
use crate::auth::refresh::RefreshSessions;
use crate::auth::tokens::AccessTokens;
use crate::auth::user_cache::UserCache;
use crate::clock::Clock;
use crate::config::{ConfigError, DatabaseUrl, Settings};
use crate::db::{self, Pool, accounts};
use crate::http::cookie::CookieMode;
use crate::http::metrics::Metrics;
use crate::http::middleware::{cors, csrf_guard, json_error_body, observe, security_headers};
use crate::http::routes::discovery::IssuerMetadata;
use crate::http::routes::metrics::{MetricsListener, metrics};
use crate::http::{AppState, routes};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("key store ({variable}): {0}", variable = .0.variable())]
    Keys(#[from] KeyStoreError),
    #[error("database: {0}")]
    Database(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(String, std::io::Error),
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
}

/// Connects to the database, applies pending migrations, and only then starts the
/// pool's background work (SQLite's checkpoints); returns how many migrations ran.
pub fn migrate(settings: &Settings) -> Result<(Pool, usize), StartupError> {
    let pool = db::build_pool(&settings.database).map_err(|e| StartupError::Database(e.to_string()))?;
    let mut conn = pool.get().map_err(|e| StartupError::Database(e.to_string()))?;
    let applied = db::run_migrations(&mut conn).map_err(StartupError::Database)?;
    drop(conn);
    log::debug!("database schema is current ({applied} migration(s) applied)");
    pool.start_background_work().map_err(|e| StartupError::Database(e.to_string()))?;
    Ok((pool, applied))
}

/// Loads keys, starts the hashing threads and gathers what the handlers share.
fn app_state(settings: &Settings, pool: Pool, clock: Clock) -> Result<AppState, StartupError> {
    let keys = Arc::new(KeyStore::open(&settings.jwt, clock.clone())?);
    keys.watch();
    let imported_hashes = pool
        .get()
        .map_err(|e| e.to_string())
        .and_then(|mut conn| accounts::imported_hashes_exist(&mut conn).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            // The first imported hash a login meets arms the floor all the same.
            log::warn!("could not tell whether imported password hashes exist: {e}");
            false
        });
    let passwords = Passwords::start(&settings.argon2, imported_hashes)
        .map_err(|e| ConfigError { variable: "ARGON2_MEMORY_KIB", problem: e.to_string() })?;
    Ok(AppState {
        limits: abuse_limits(settings, &pool, &clock),
        pool,
        tokens: AccessTokens::new(keys.clone(), &settings.jwt, clock.clone()),
        sessions: RefreshSessions::new(keys.refresh_secret.clone(), &settings.refresh),
        passwords,
        users: UserCache::new(clock.clone()),
        refresh_failures: RateLimiter::new(settings.auth_rate_limit_per_min, clock.clone()),
        trust_proxy_headers: settings.trust_proxy_headers,
        jwks_max_age_secs: settings.jwt.jwks_max_age_secs,
        revocation_feed_token: settings.revocation_feed_token.clone(),
        cookie_mode: CookieMode {
            enabled: settings.refresh_token_cookie,
            allowed_origins: settings.cors_allowed_origins.clone(),
        },
        issuer_metadata: IssuerMetadata::new(settings),
        demo_ui: settings.demo_ui.clone(),
        default_roles: settings.default_roles.clone(),
        metrics: Metrics::new(),
        metrics_bind_addr: settings.metrics_bind_addr,
        keys,
        clock,
    })
}

/// In the database on PostgreSQL, where several instances may share it (unless
/// `SHARED_ABUSE_LIMITS=false`); in memory on SQLite, whose one process is all there is.
fn abuse_limits(settings: &Settings, pool: &Pool, clock: &Clock) -> AbuseLimits {
    let per_minute = settings.auth_rate_limit_per_min;
    match settings.database.url {
        DatabaseUrl::Postgres(_) if settings.shared_abuse_limits => {
            AbuseLimits::shared(pool.clone(), per_minute, clock.clone())
        }
        _ => AbuseLimits::local(per_minute, clock.clone()),
    }
}

pub struct Application {
    port: u16,
    server: Server,
    /// The listener of `METRICS_BIND_ADDR`, if set: its port and server.
    metrics: Option<(u16, Server)>,
}

impl Application {
    /// Migrates, loads keys and binds; the server runs once awaited.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, Clock::system())
    }

    /// [`Application::build`] on the given clock (tests pass a manual one).
    pub fn build_with(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let (pool, applied) = migrate(&settings)?;
        if applied > 0 {
            log::info!("applied {applied} migration(s)");
        }
        let state = web::Data::new(app_state(&settings, pool, clock)?);
        let (listener, port) = bind(settings.bind_addr)?;
        let origins = settings.cors_allowed_origins.clone();
        let cookie_mode = settings.refresh_token_cookie;
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(routes::configure)
                .wrap(from_fn(csrf_guard))
                .wrap(cors(&origins, cookie_mode))
                .wrap(security_headers())
                .wrap(ErrorHandlers::new().default_handler(json_error_body))
                .wrap(from_fn(observe))
        })
        .client_request_timeout(settings.client_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .listen(listener)
        .map_err(|e| StartupError::Bind(settings.bind_addr.to_string(), e))?
        .run();
        let metrics =
            settings.metrics_bind_addr.map(|addr| metrics_server(addr, state, &settings)).transpose()?;
        // Last, so that whoever waits for this line finds every listener bound.
        log::info!("listening on {}:{port}", settings.bind_addr.ip());
        Ok(Self { port, server, metrics })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener, when `METRICS_BIND_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Stops the server from elsewhere (tests, signal handling); the metrics listener
    /// follows it.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until the main server stops (SIGTERM, SIGINT, or its handle), then stops the
    /// metrics listener, which serves until then, so that a drain can be watched.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            task.await.map_err(std::io::Error::other)??;
        }
        result
    }
}

fn bind(addr: SocketAddr) -> Result<(TcpListener, u16), StartupError> {
    let listener = TcpListener::bind(addr).map_err(|e| StartupError::Bind(addr.to_string(), e))?;
    let port = listener.local_addr().map_err(|e| StartupError::Bind(addr.to_string(), e))?.port();
    Ok((listener, port))
}

/// `/metrics` alone, on its own address (one an operator keeps off the public network).
/// It takes no signals itself: [`Application::run_until_stopped`] stops it after the
/// main server.
fn metrics_server(
    addr: SocketAddr,
    state: web::Data<AppState>,
    settings: &Settings,
) -> Result<(u16, Server), StartupError> {
    let (listener, port) = bind(addr)?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(MetricsListener)
            .service(web::resource("/metrics").route(web::get().to(metrics)))
            .default_service(web::to(routes::not_found))
            .wrap(security_headers())
            .wrap(ErrorHandlers::new().default_handler(json_error_body))
            .wrap(from_fn(observe))
    })
    .workers(1)
    .disable_signals()
    .client_request_timeout(settings.client_timeout)
    .shutdown_timeout(settings.shutdown_timeout.as_secs())
    .listen(listener)
    .map_err(|e| StartupError::Bind(addr.to_string(), e))?
    .run();
    log::info!("serving metrics on {}:{port}", addr.ip());
    Ok((port, server))
}
