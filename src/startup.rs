//! Wiring: from [`Settings`] (and a [`Clock`]) to a running server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use tokio::sync::Notify;

use crate::auth::Core;
use crate::auth::accounts::Accounts;
use crate::auth::keys::{KeyStore, KeyStoreError};
use crate::auth::password::Passwords;
use crate::auth::rate_limit::{AbuseLimits, RateLimiter};
use crate::auth::refresh::RefreshSessions;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::{AccessTokens, max_token_age_secs};
use crate::auth::totp::MfaCore;
use crate::auth::user_cache::UserCache;
use crate::auth::webauthn::PasskeyCore;
use crate::clock::Clock;
use crate::config::{ConfigError, DatabaseUrl, HttpSettings, Settings};
use crate::db::accounts::imported_hashes_exist;
use crate::db::mfa::TotpFactor;
use crate::db::sessions::SessionStore;
use crate::db::{self, Pool};
use crate::http::middleware::{cors, csrf_guard, json_error_body, observe, security_headers};
use crate::http::routes::metrics::{MetricsListener, metrics};
use crate::http::{AppState, routes};
use crate::mail::sender::Sender;
use crate::mail::{MailCore, Mailer};
use crate::metrics::Metrics;

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
    #[error("mail: {0}")]
    Mail(String),
    #[error("second factor: {0}")]
    Mfa(String),
    #[error("passkeys: {0}")]
    Passkeys(String),
}

/// Connects to the database, applies pending migrations, and only then starts the
/// pool's background work (SQLite's checkpoints); returns how many migrations ran.
pub fn migrate(settings: &Settings) -> Result<(Pool, usize), StartupError> {
    let pool = db::build_pool(&settings.database).map_err(|e| StartupError::Database(e.to_string()))?;
    let applied = pool.migrate().map_err(StartupError::Database)?;
    Ok((pool, applied))
}

/// The hashing threads, for the core's services; with the failure floor armed at once
/// when the database holds imported hashes (`auth::password`).
fn passwords(settings: &Settings, pool: &Pool) -> Result<Arc<Passwords>, StartupError> {
    let imported_hashes = pool.read_now(imported_hashes_exist).unwrap_or_else(|e| {
        // The first imported hash a login meets arms the floor all the same.
        log::warn!("could not tell whether imported password hashes exist: {e}");
        false
    });
    let passwords = Passwords::start(&settings.argon2, imported_hashes)
        .map_err(|e| ConfigError { variable: "ARGON2_MEMORY_KIB", problem: e.to_string() })?;
    Ok(Arc::new(passwords))
}

/// Account management alone, for the CLI: no keys, no server. Its user cache serves no
/// one, but keeps the service's writes the same as the server's.
pub fn accounts(settings: &Settings, pool: Pool) -> Result<Accounts, StartupError> {
    let clock = Clock::system();
    let users = Arc::new(UserCache::new(clock.clone()));
    let passwords = passwords(settings, &pool)?;
    Ok(accounts_on(settings, pool, clock, passwords, users))
}

fn accounts_on(
    settings: &Settings,
    pool: Pool,
    clock: Clock,
    passwords: Arc<Passwords>,
    users: Arc<UserCache>,
) -> Accounts {
    Accounts {
        pool,
        clock,
        passwords,
        users,
        default_roles: settings.accounts.default_roles.clone(),
        max_token_age_secs: max_token_age_secs(&settings.jwt),
        sessions: session_store(settings),
    }
}

/// Where the sessions live, as configured.
fn session_store(settings: &Settings) -> SessionStore {
    SessionStore::new(settings.refresh.sessions_per_user, max_token_age_secs(&settings.jwt))
}

/// Loads keys, starts the hashing threads and builds the core and what the handlers share,
/// and the mail sender to run beside the server (when `SMTP_URL` is set).
fn app_state(
    settings: &Settings,
    pool: Pool,
    clock: Clock,
) -> Result<(AppState, Option<Sender>), StartupError> {
    let keys = Arc::new(KeyStore::open(&settings.jwt, clock.clone())?);
    keys.watch();
    let passwords = passwords(settings, &pool)?;
    let users = Arc::new(UserCache::new(clock.clone()));
    let metrics = Arc::new(Metrics::new());
    let mailer = Mailer::new(&settings.mail, &keys.refresh_secret).map_err(StartupError::Mail)?.map(Arc::new);
    let wake = Arc::new(Notify::new());
    let sender = mailer.clone().map(|mailer| Sender {
        pool: pool.clone(),
        clock: clock.clone(),
        mailer,
        metrics: metrics.clone(),
        wake: wake.clone(),
    });
    let mail = mailer.map(|mailer| MailCore { mailer, settings: settings.mail.clone(), wake });
    // A key made anew would lock every enrolled account out: only made while none is.
    let enrolled =
        pool.read_now(TotpFactor::any_confirmed).map_err(|e| StartupError::Database(e.to_string()))?;
    let mfa = MfaCore::new(&keys.mfa_key(enrolled)?, &settings.mail.app_name).map_err(StartupError::Mfa)?;
    let passkeys = match &settings.passkeys {
        Some(passkeys) => {
            Some(PasskeyCore::new(passkeys, &settings.mail.app_name).map_err(StartupError::Passkeys)?)
        }
        None => {
            log::info!(
                "passkeys are off: PUBLIC_URL's host is not a domain name (set PUBLIC_URL or WEBAUTHN_RP_ID)"
            );
            None
        }
    };
    let per_minute = settings.limits.auth_rate_limit_per_min;
    let sessions = Sessions {
        limits: abuse_limits(settings, &pool, &clock),
        refresh_failures: RateLimiter::new(per_minute, clock.clone()),
        pool: pool.clone(),
        tokens: AccessTokens::new(keys.clone(), &settings.jwt, clock.clone()),
        refresh: Arc::new(RefreshSessions::new(
            keys.refresh_secret.clone(),
            &settings.refresh,
            session_store(settings),
        )),
        passwords: passwords.clone(),
        users: users.clone(),
        default_roles: settings.accounts.default_roles.clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        mail,
        mfa,
        passkeys,
        admin_require_mfa: settings.accounts.admin_require_mfa,
    };
    let accounts = accounts_on(settings, pool, clock, passwords, users);
    let state = AppState {
        core: Core { sessions, accounts },
        keys,
        metrics,
        http: settings.http.clone(),
        jwt: settings.jwt.clone(),
        services: settings.services.clone(),
    };
    Ok((state, sender))
}

/// In the database on PostgreSQL, where several instances may share it (unless
/// `SHARED_ABUSE_LIMITS=false`); in memory on SQLite, whose one process is all there is.
fn abuse_limits(settings: &Settings, pool: &Pool, clock: &Clock) -> AbuseLimits {
    let per_minute = settings.limits.auth_rate_limit_per_min;
    match settings.database.url {
        DatabaseUrl::Postgres(_) if settings.limits.shared_abuse_limits => {
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
    /// The mail sender, run beside the server (`SMTP_URL`).
    sender: Option<Sender>,
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
        let (state, sender) = app_state(&settings, pool, clock)?;
        let state = web::Data::new(state);
        let http = &settings.http;
        let (listener, port) = bind(http.bind_addr)?;
        let origins = http.cors_allowed_origins.clone();
        let cookie_mode = http.refresh_token_cookie;
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
        .client_request_timeout(http.client_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .shutdown_timeout(http.shutdown_timeout.as_secs())
        .listen(listener)
        .map_err(|e| StartupError::Bind(http.bind_addr.to_string(), e))?
        .run();
        let metrics = http.metrics_bind_addr.map(|addr| metrics_server(addr, state, http)).transpose()?;
        // Last, so that whoever waits for this line finds every listener bound.
        log::info!("listening on {}:{port}", http.bind_addr.ip());
        Ok(Self { port, server, metrics, sender })
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
        // A letter it is sending when the server stops is claimed again by the next start.
        let sender = self.sender.map(|sender| tokio::spawn(sender.run()));
        let result = self.server.await;
        if let Some(sender) = sender {
            sender.abort();
        }
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
    settings: &HttpSettings,
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
