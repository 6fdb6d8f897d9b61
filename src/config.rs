//! Typed configuration, read once from the environment (and `.env`) at start-up.
//!
//! Every problem is reported as one [`ConfigError`] naming the variable, so that a bad
//! deployment stops at once with a line an operator can act on.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};

pub use tollgate_verify::env::ConfigError;
use tollgate_verify::env::Env;

use crate::auth::rules::parse_roles;

/// HS256 secrets shorter than this are refused (RFC 7518 §3.2: key ≥ hash output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// Every setting, by section; each section reads its own variables (`from_env`) and
/// names the variable in its error.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub jwt: JwtSettings,
    pub refresh: RefreshSettings,
    pub argon2: Argon2Settings,
    pub limits: LimitSettings,
    pub accounts: AccountSettings,
    pub services: ServiceSettings,
    pub mail: MailSettings,
    /// `None`: passkeys are off (the RP id would be an IP address, see [`PasskeySettings`]).
    pub passkeys: Option<PasskeySettings>,
    pub log: LogSettings,
}

/// The WebAuthn relying party: the domain passkeys are bound to and the origins that may
/// use them. Off when neither names a domain: with `PUBLIC_URL`'s default, an IP address,
/// which no browser takes as an RP id.
#[derive(Debug, Clone)]
pub struct PasskeySettings {
    /// `WEBAUTHN_RP_ID`; default `PUBLIC_URL`'s host.
    pub rp_id: String,
    /// `WEBAUTHN_ORIGINS`; default `PUBLIC_URL`'s origin. Each is the RP id or a subdomain
    /// of it, or an Android app's `android:apk-key-hash:…`.
    pub origins: Vec<String>,
}

/// Mail (`SMTP_URL`; off without it) and the account-lifecycle mails' links and lifetimes.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The SMTP server, in the forms of lettre's `from_url`; `None`: mail is off.
    pub smtp_url: Option<SecretString>,
    /// The sender, `name <address>` or an address (`MAIL_FROM`; required with `SMTP_URL`).
    pub from: Option<lettre::message::Mailbox>,
    /// In subjects and texts (`APP_NAME`).
    pub app_name: String,
    /// At most one mail per account (and, for password reset, per address) in this long.
    pub cooldown_secs: i64,
    pub reset_ttl_secs: i64,
    /// Where a reset mail's link points (`PASSWORD_RESET_URL`), before `?token=`: an
    /// absolute URL, or an app's deep link (`myapp://reset`).
    pub reset_url: String,
    pub verify_ttl_secs: i64,
    /// Where a verification mail's link points (`EMAIL_VERIFY_URL`), as `reset_url`.
    pub verify_url: String,
    /// `EMAIL_VERIFICATION`: whether a login needs a verified address.
    pub verification: EmailVerification,
}

/// Whether an account must have verified its address to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailVerification {
    /// Verification is offered; logins do not wait for it.
    Optional,
    /// A login to an account without a verified address is refused (and mails a link);
    /// signup needs an address.
    Required,
}

/// The listeners, and how requests are taken.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub bind_addr: SocketAddr,
    /// The URL other services reach tollgate at; discovery documents are built from it.
    pub public_url: String,
    /// Where `/metrics` is served instead of on `bind_addr`, if anywhere.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// A client must send its request head within this time, or be disconnected.
    pub client_timeout: Duration,
    /// How long, after SIGTERM, in-flight requests have to finish.
    pub shutdown_timeout: Duration,
    /// Where the client IP may come from a forwarding header; `None` (the default, unless
    /// `TRUST_PROXY_HEADERS=true`): the socket's address alone.
    pub proxies: Option<Proxies>,
    pub cors_allowed_origins: Vec<String>,
    /// Browsers get the refresh token as an HttpOnly cookie (see `http::cookie`).
    pub refresh_token_cookie: bool,
    /// Serve the demo page at /demo (see `routes::demo`).
    pub demo_ui: Option<DemoUi>,
}

/// The abuse limits (`auth::rate_limit`).
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Signup + login attempts per client IP per minute; 0 disables the limit.
    pub auth_rate_limit_per_min: u32,
    /// On PostgreSQL, keep the per-IP limit and the login lockout in the database, so that
    /// instances sharing it share one limit (ignored on SQLite: one process, memory).
    pub shared_abuse_limits: bool,
}

#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// The roles every signup gets (sorted, checked against the role rule).
    pub default_roles: Vec<String>,
    /// The admin API takes only tokens of sessions signed in with a second factor.
    pub admin_require_mfa: bool,
}

/// What other services present.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The bearer token services present to read `/auth/revocations` and to introspect;
    /// both are off (404) without one.
    pub revocation_feed_token: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `[time LEVEL target request_id=…] message`, for people.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// The proxies in front of tollgate, whose forwarding header names the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxies {
    pub trusted: TrustedProxies,
    pub header: ProxyHeader,
}

/// Which hops of the forwarding header are proxies (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedProxies {
    /// This many proxies, the socket's peer the last of them.
    Hops(usize),
    /// Any address in these networks is a proxy.
    Networks(Vec<IpNet>),
}

/// The header the proxies write (`PROXY_HEADER`); the other one is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=…`.
    Forwarded,
}

/// Where the demo page's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoUi {
    /// The copies built into the binary.
    Embedded,
    /// Read from this directory (`clients/js`) on each request, for development.
    Dir(PathBuf),
}

/// Shorter revocation feed tokens are refused.
pub const MIN_FEED_TOKEN_BYTES: usize = 24;

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

/// Shows the URL without its password.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "Sqlite({path:?})"),
            DatabaseUrl::Postgres(url) => {
                let redacted = match url.split_once("://").zip(url.rfind('@')) {
                    Some(((scheme, rest), at)) if rest.contains(':') && at > scheme.len() + 3 => {
                        let credentials = &url[scheme.len() + 3..at];
                        let user = credentials.split(':').next().unwrap_or_default();
                        format!("{scheme}://{user}:<redacted>{}", &url[at..])
                    }
                    _ => url.clone(),
                };
                write!(f, "Postgres({redacted:?})")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub algorithm: Algorithm,
    /// Only for HS256; `SecretString` keeps it out of every `Debug` and log line.
    pub secret: Option<SecretString>,
    pub keys_dir: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: u64,
    pub access_token_ttl_secs: u64,
    /// `Cache-Control: max-age` of the JWKS response.
    pub jwks_max_age_secs: u64,
    /// How long a rotated-in key is published before it signs.
    pub key_publish_ahead_secs: u64,
}

#[derive(Debug, Clone)]
pub struct RefreshSettings {
    pub ttl_secs: u64,
    pub reuse_grace_secs: u64,
    /// Live sessions a user may have (`SESSIONS_PER_USER`); 1 keeps the one on the users row.
    pub sessions_per_user: usize,
}

/// More sessions than anyone has devices: a bound on what one login may have to end.
const MAX_SESSIONS_PER_USER: u64 = 1000;

#[derive(Debug, Clone)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; each holds `memory_kib` of memory.
    pub max_concurrent: usize,
    /// How long a request waits for a hashing slot before 503 `overloaded`.
    pub queue_timeout: Duration,
}

impl Settings {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable source, so tests need not touch the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let http = HttpSettings::from_env(&env)?;
        Ok(Settings {
            mail: MailSettings::from_env(&env, &http.public_url)?,
            passkeys: PasskeySettings::from_env(&env, &http.public_url)?,
            http,
            database: DatabaseSettings::from_env(&env)?,
            jwt: JwtSettings::from_env(&env)?,
            refresh: RefreshSettings::from_env(&env)?,
            argon2: Argon2Settings::from_env(&env)?,
            limits: LimitSettings::from_env(&env)?,
            accounts: AccountSettings::from_env(&env)?,
            services: ServiceSettings::from_env(&env)?,
            log: LogSettings { format: parse_log_format(&env.string("LOG_FORMAT", "text"))? },
        })
    }
}

/// `PUBLIC_URL`'s default: the bind address, over plain HTTP.
fn default_public_url(env: &Env) -> String {
    format!("http://{}", env.string("BIND_ADDR", "127.0.0.1:8080"))
}

impl MailSettings {
    fn from_env(env: &Env, public_url: &str) -> Result<Self, ConfigError> {
        let smtp_url = env.trimmed("SMTP_URL").filter(|url| !url.is_empty());
        if let Some(url) = &smtp_url {
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
                .map_err(|e| env.error("SMTP_URL", format!("not an SMTP URL lettre takes: {e}")))?;
        }
        let from = match env.trimmed("MAIL_FROM").filter(|from| !from.is_empty()) {
            Some(raw) => {
                Some(raw.parse().map_err(|e| env.error("MAIL_FROM", format!("not a mailbox: {e}")))?)
            }
            None if smtp_url.is_some() => return Err(env.error("MAIL_FROM", "required when SMTP_URL is set")),
            None => None,
        };
        let verification = match env.string("EMAIL_VERIFICATION", "optional").to_ascii_lowercase().as_str() {
            "optional" => EmailVerification::Optional,
            "required" if smtp_url.is_none() => {
                return Err(env.error("EMAIL_VERIFICATION", "required needs mail: set SMTP_URL"));
            }
            "required" => EmailVerification::Required,
            other => {
                return Err(
                    env.error("EMAIL_VERIFICATION", format!("must be optional or required, not {other:?}"))
                );
            }
        };
        let link = |name: &'static str, path: &str| -> Result<String, ConfigError> {
            let url = env.string(name, &format!("{public_url}{path}"));
            if !url.contains("://") {
                return Err(env.error(name, "must be an absolute URL"));
            }
            Ok(url.trim().to_owned())
        };
        Ok(Self {
            smtp_url: smtp_url.map(SecretString::from),
            from,
            app_name: env.string("APP_NAME", "tollgate"),
            cooldown_secs: env.number("MAIL_COOLDOWN_SECS", 60)?,
            reset_ttl_secs: env.positive("PASSWORD_RESET_TTL_SECS", 3600)?,
            reset_url: link("PASSWORD_RESET_URL", "/auth/password/reset")?,
            verify_ttl_secs: env.positive("EMAIL_VERIFY_TTL_SECS", 86400)?,
            verify_url: link("EMAIL_VERIFY_URL", "/auth/email/verify")?,
            verification,
        })
    }
}

impl PasskeySettings {
    fn from_env(env: &Env, public_url: &str) -> Result<Option<Self>, ConfigError> {
        // `PUBLIC_URL` is checked already: `scheme://host[:port][/path]`.
        let origin = match public_url.match_indices('/').nth(2) {
            Some((end, _)) => &public_url[..end],
            None => public_url,
        };
        let rp_id = match env.trimmed("WEBAUTHN_RP_ID").filter(|id| !id.is_empty()) {
            Some(id) => {
                let id = id.to_ascii_lowercase();
                if !is_domain(&id) {
                    return Err(env.error(
                        "WEBAUTHN_RP_ID",
                        format!("expected a domain name like example.com, got {id:?}"),
                    ));
                }
                id
            }
            None => {
                let host = host_of(origin).to_ascii_lowercase();
                if !is_domain(&host) {
                    if env.trimmed("WEBAUTHN_ORIGINS").is_some_and(|o| !o.is_empty()) {
                        return Err(
                            env.error("WEBAUTHN_RP_ID", "required: PUBLIC_URL's host is not a domain name")
                        );
                    }
                    return Ok(None);
                }
                host
            }
        };
        let origins: Vec<String> = env
            .trimmed("WEBAUTHN_ORIGINS")
            .filter(|origins| !origins.is_empty())
            .unwrap_or_else(|| origin.to_owned())
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        if origins.is_empty() {
            return Err(env.error("WEBAUTHN_ORIGINS", "empty: name at least one origin"));
        }
        for origin in &origins {
            if origin.starts_with("android:apk-key-hash:") {
                continue;
            }
            let web = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin[origin.find("://").unwrap_or(0) + 3..].contains(['/', '?', '#', '@']);
            if !web {
                return Err(env.error(
                    "WEBAUTHN_ORIGINS",
                    format!("expected origins like https://app.example.com (or android:apk-key-hash:…), got {origin:?}"),
                ));
            }
            let host = host_of(origin).to_ascii_lowercase();
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err(env.error(
                    "WEBAUTHN_ORIGINS",
                    format!("{origin:?} is not on the RP id {rp_id:?} (WEBAUTHN_RP_ID) or a subdomain of it"),
                ));
            }
        }
        Ok(Some(Self { rp_id, origins }))
    }
}

/// The host of `scheme://host[:port]`.
fn host_of(origin: &str) -> &str {
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// A DNS name (labels of letters, digits and hyphens), not an IP address: what WebAuthn
/// takes as an RP id.
fn is_domain(host: &str) -> bool {
    host.parse::<IpAddr>().is_err()
        && !host.starts_with('[')
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && !host.split('.').next_back().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
}

impl HttpSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let bind_addr = env.string("BIND_ADDR", "127.0.0.1:8080");
        Ok(Self {
            bind_addr: parse_bind_addr("BIND_ADDR", &bind_addr)?,
            public_url: parse_public_url(&env.string("PUBLIC_URL", &default_public_url(env)))?,
            metrics_bind_addr: env
                .trimmed("METRICS_BIND_ADDR")
                .map(|raw| parse_bind_addr("METRICS_BIND_ADDR", &raw))
                .transpose()?,
            client_timeout: Duration::from_secs(env.positive("HTTP_CLIENT_TIMEOUT_SECS", 10)?),
            shutdown_timeout: Duration::from_secs(env.number("SHUTDOWN_TIMEOUT_SECS", 30)?),
            proxies: parse_proxies(env)?,
            cors_allowed_origins: parse_origins(&env.string("CORS_ALLOWED_ORIGINS", ""))?,
            refresh_token_cookie: env.boolean("REFRESH_TOKEN_COOKIE", false)?,
            demo_ui: env.boolean("DEMO_UI", false)?.then(|| match env.get("DEMO_UI_DIR") {
                Some(dir) => DemoUi::Dir(PathBuf::from(dir.trim())),
                None => DemoUi::Embedded,
            }),
        })
    }
}

impl DatabaseSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: parse_database_url(&env.string("DATABASE_URL", "sqlite://data/tollgate.db"))?,
            max_connections: env.positive("DATABASE_MAX_CONNECTIONS", 10)?,
            connect_timeout: Duration::from_secs(env.positive("DATABASE_CONNECT_TIMEOUT_SECS", 5u64)?),
        })
    }
}

impl JwtSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let algorithm = parse_algorithm(&env.string("JWT_ALGORITHM", "EdDSA"))?;
        let secret = env.get("JWT_SECRET").map(SecretString::from);
        if algorithm == Algorithm::HS256 {
            match &secret {
                None => return Err(env.error("JWT_SECRET", "required when JWT_ALGORITHM=HS256")),
                Some(s) if s.expose_secret().len() < MIN_HS256_SECRET_BYTES => {
                    return Err(env.error(
                        "JWT_SECRET",
                        format!("must be at least {MIN_HS256_SECRET_BYTES} bytes for HS256"),
                    ));
                }
                Some(_) => {}
            }
        }
        let jwks_max_age_secs = env.number("JWKS_MAX_AGE_SECS", 300)?;
        Ok(Self {
            algorithm,
            secret,
            keys_dir: PathBuf::from(env.string("JWT_KEYS_DIR", "data/keys")),
            issuer: env.string("JWT_ISSUER", "tollgate"),
            audience: env.string("JWT_AUDIENCE", "tollgate"),
            leeway_secs: env.number("JWT_LEEWAY_SECS", 30)?,
            access_token_ttl_secs: env.positive("ACCESS_TOKEN_TTL_SECS", 900)?,
            jwks_max_age_secs,
            // Consumers' caches all hold a new key before it signs anything.
            key_publish_ahead_secs: env.number("JWT_KEY_PUBLISH_AHEAD_SECS", jwks_max_age_secs)?,
        })
    }
}

impl RefreshSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            ttl_secs: env.positive("REFRESH_TOKEN_TTL_SECS", 2_592_000)?,
            reuse_grace_secs: env.number("REFRESH_REUSE_GRACE_SECS", 10)?,
            sessions_per_user: match env.positive("SESSIONS_PER_USER", 1)? {
                n if n <= MAX_SESSIONS_PER_USER => n as usize,
                _ => {
                    let problem = format!("must be at most {MAX_SESSIONS_PER_USER}");
                    return Err(env.error("SESSIONS_PER_USER", problem));
                }
            },
        })
    }
}

impl Argon2Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let argon2 = Self {
            memory_kib: env.number("ARGON2_MEMORY_KIB", 19_456)?,
            iterations: env.number("ARGON2_ITERATIONS", 2)?,
            parallelism: env.number("ARGON2_PARALLELISM", 1)?,
            max_concurrent: env.positive("ARGON2_MAX_CONCURRENT", default_parallelism())?,
            queue_timeout: Duration::from_millis(env.number("ARGON2_QUEUE_TIMEOUT_MS", 1000)?),
        };
        argon2::Params::new(argon2.memory_kib, argon2.iterations, argon2.parallelism, None)
            .map_err(|e| env.error("ARGON2_MEMORY_KIB", format!("invalid argon2 cost: {e}")))?;
        Ok(argon2)
    }
}

impl LimitSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            auth_rate_limit_per_min: env.number("AUTH_RATE_LIMIT_PER_MIN", 30)?,
            shared_abuse_limits: env.boolean("SHARED_ABUSE_LIMITS", true)?,
        })
    }
}

impl AccountSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let roles = env.string("DEFAULT_ROLES", "");
        let default_roles = parse_roles(roles.split(',').map(str::trim).filter(|r| !r.is_empty()))
            .map_err(|e| env.error("DEFAULT_ROLES", e.to_string()))?;
        Ok(Self { default_roles, admin_require_mfa: env.boolean("ADMIN_REQUIRE_MFA", false)? })
    }
}

impl ServiceSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let revocation_feed_token = match env.get("REVOCATION_FEED_TOKEN") {
            Some(token) if token.len() < MIN_FEED_TOKEN_BYTES => {
                return Err(env.error(
                    "REVOCATION_FEED_TOKEN",
                    format!("must be at least {MIN_FEED_TOKEN_BYTES} bytes"),
                ));
            }
            token => token.map(SecretString::from),
        };
        Ok(Self { revocation_feed_token })
    }
}

/// `TRUSTED_PROXIES` and `PROXY_HEADER` are checked even while `TRUST_PROXY_HEADERS` is
/// false, so that a typo shows before the day they are turned on.
fn parse_proxies(env: &Env) -> Result<Option<Proxies>, ConfigError> {
    let trusted = match env.trimmed("TRUSTED_PROXIES") {
        None => TrustedProxies::Hops(1),
        Some(raw) => parse_trusted_proxies(&raw)?,
    };
    let header = match env.string("PROXY_HEADER", "x-forwarded-for").to_ascii_lowercase().as_str() {
        "x-forwarded-for" => ProxyHeader::XForwardedFor,
        "forwarded" => ProxyHeader::Forwarded,
        other => {
            return Err(
                env.error("PROXY_HEADER", format!("expected x-forwarded-for or forwarded, got {other:?}"))
            );
        }
    };
    Ok(env.boolean("TRUST_PROXY_HEADERS", false)?.then_some(Proxies { trusted, header }))
}

/// A number of proxies, or a comma-separated list of addresses and CIDR networks.
fn parse_trusted_proxies(raw: &str) -> Result<TrustedProxies, ConfigError> {
    let error = |problem: String| ConfigError { variable: "TRUSTED_PROXIES", problem };
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return match raw.parse() {
            Ok(0) => {
                Err(error("expected at least 1 proxy (without one, leave TRUST_PROXY_HEADERS false)".into()))
            }
            Ok(hops) => Ok(TrustedProxies::Hops(hops)),
            Err(_) => Err(error(format!("{raw:?} is too many proxies"))),
        };
    }
    let networks = raw
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    error(format!(
                        "{item:?} is neither a number of proxies nor an address or network like 10.0.0.0/8"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if networks.is_empty() {
        return Err(error(format!("expected a number of proxies or a list of networks, got {raw:?}")));
    }
    Ok(TrustedProxies::Networks(networks))
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn parse_algorithm(raw: &str) -> Result<Algorithm, ConfigError> {
    match raw {
        "EdDSA" => Ok(Algorithm::EdDSA),
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        "HS256" => Ok(Algorithm::HS256),
        other => Err(ConfigError {
            variable: "JWT_ALGORITHM",
            problem: format!("unknown algorithm {other:?} (expected EdDSA, ES256, RS256 or HS256)"),
        }),
    }
}

pub fn parse_database_url(raw: &str) -> Result<DatabaseUrl, ConfigError> {
    let error = |problem: String| ConfigError { variable: "DATABASE_URL", problem };
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(raw.to_owned()));
    }
    let path = match raw.split_once("://") {
        Some(("sqlite", path)) => path,
        Some((scheme, _)) => {
            return Err(error(format!("unsupported scheme {scheme:?} (expected sqlite:// or postgres://)")));
        }
        None => raw,
    };
    if path.is_empty() {
        return Err(error("the SQLite path is empty".into()));
    }
    Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
}

fn parse_bind_addr(variable: &'static str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ConfigError { variable, problem: format!("expected HOST:PORT, got {raw:?}") })
}

fn parse_log_format(raw: &str) -> Result<LogFormat, ConfigError> {
    match raw {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(ConfigError {
            variable: "LOG_FORMAT",
            problem: format!("expected text or json, got {other:?}"),
        }),
    }
}

/// An absolute http(s) URL without query or fragment; a trailing `/` is dropped so that
/// paths can be appended to it.
fn parse_public_url(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim_end_matches('/');
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split('/').next().unwrap_or_default());
    let valid = host.is_some_and(|host| !host.is_empty() && !host.starts_with(':'))
        && !url.contains(['?', '#'])
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ConfigError {
            variable: "PUBLIC_URL",
            problem: format!(
                "expected an http:// or https:// URL like https://auth.example.com, got {raw:?}"
            ),
        });
    }
    Ok(url.to_owned())
}

fn parse_origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                && !origin.ends_with('/')
                && !origin.contains('*');
            if valid {
                Ok(origin.to_owned())
            } else {
                Err(ConfigError {
                    variable: "CORS_ALLOWED_ORIGINS",
                    problem: format!("{origin:?} is not an origin like https://app.example.com"),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database.url, DatabaseUrl::Sqlite("data/tollgate.db".into()));
        assert_eq!(s.http.bind_addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.jwt.algorithm, Algorithm::EdDSA);
        assert_eq!(s.jwt.leeway_secs, 30);
        assert_eq!(s.jwt.access_token_ttl_secs, 900);
        assert_eq!(s.refresh.ttl_secs, 2_592_000);
        assert_eq!(s.refresh.reuse_grace_secs, 10);
        assert_eq!((s.argon2.memory_kib, s.argon2.iterations, s.argon2.parallelism), (19_456, 2, 1));
        assert_eq!(s.limits.auth_rate_limit_per_min, 30);
        assert_eq!(s.http.proxies, None);
        assert!(s.limits.shared_abuse_limits);
        assert_eq!(s.argon2.max_concurrent, default_parallelism());
        assert_eq!(s.http.client_timeout, Duration::from_secs(10));
        assert_eq!(s.http.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.http.demo_ui, None);
        assert!(s.accounts.default_roles.is_empty());
        assert_eq!(s.http.metrics_bind_addr, None);
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(s.http.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn email_verification_is_optional_by_default_and_required_only_with_mail() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.mail.verification, EmailVerification::Optional);
        assert_eq!(s.mail.verify_ttl_secs, 86_400);
        assert_eq!(s.mail.verify_url, "http://127.0.0.1:8080/auth/email/verify");
        let mail = [("SMTP_URL", "smtp://127.0.0.1:1025"), ("MAIL_FROM", "t <t@example.com>")];
        let required = [mail[0], mail[1], ("EMAIL_VERIFICATION", "required")];
        assert_eq!(settings(&required).unwrap().mail.verification, EmailVerification::Required);
        let without_mail = settings(&[("EMAIL_VERIFICATION", "required")]).unwrap_err();
        assert_eq!(without_mail.variable, "EMAIL_VERIFICATION");
        for bad in ["yes", "mandatory"] {
            let err = settings(&[mail[0], mail[1], ("EMAIL_VERIFICATION", bad)]).unwrap_err();
            assert_eq!(err.variable, "EMAIL_VERIFICATION", "{bad}");
        }
        for (name, bad) in [("EMAIL_VERIFY_TTL_SECS", "0"), ("EMAIL_VERIFY_URL", "/verify")] {
            assert_eq!(settings(&[(name, bad)]).unwrap_err().variable, name);
        }
        let deep_link = settings(&[("EMAIL_VERIFY_URL", "myapp://verify")]).unwrap();
        assert_eq!(deep_link.mail.verify_url, "myapp://verify");
    }

    #[test]
    fn metrics_get_their_own_listener_and_logs_can_be_json() {
        let s = settings(&[("METRICS_BIND_ADDR", "127.0.0.1:9100"), ("LOG_FORMAT", "json")]).unwrap();
        assert_eq!(s.http.metrics_bind_addr, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(settings(&[("METRICS_BIND_ADDR", "")]).unwrap().http.metrics_bind_addr, None);
    }

    #[test]
    fn public_url_defaults_to_the_bind_address_and_loses_a_trailing_slash() {
        assert_eq!(
            settings(&[("BIND_ADDR", "0.0.0.0:9000")]).unwrap().http.public_url,
            "http://0.0.0.0:9000"
        );
        let set = settings(&[("PUBLIC_URL", "https://auth.example.com/tollgate/")]).unwrap();
        assert_eq!(set.http.public_url, "https://auth.example.com/tollgate");
        for bad in ["auth.example.com", "ftp://x", "https://", "https://x/?a=1", "http://x y"] {
            assert_eq!(settings(&[("PUBLIC_URL", bad)]).unwrap_err().variable, "PUBLIC_URL", "{bad}");
        }
    }

    #[test]
    fn the_demo_is_embedded_unless_a_directory_is_named() {
        assert_eq!(settings(&[("DEMO_UI", "true")]).unwrap().http.demo_ui, Some(DemoUi::Embedded));
        let dir = settings(&[("DEMO_UI", "true"), ("DEMO_UI_DIR", "clients/js")]).unwrap().http.demo_ui;
        assert_eq!(dir, Some(DemoUi::Dir("clients/js".into())));
    }

    #[test]
    fn default_roles_are_a_sorted_comma_separated_set() {
        let s = settings(&[("DEFAULT_ROLES", " member, beta ,,member")]).unwrap();
        assert_eq!(s.accounts.default_roles, ["beta", "member"]);
    }

    #[test]
    fn database_urls_pick_the_backend_by_scheme() {
        assert_eq!(parse_database_url("sqlite://x/y.db").unwrap(), DatabaseUrl::Sqlite("x/y.db".into()));
        assert_eq!(parse_database_url("plain.db").unwrap(), DatabaseUrl::Sqlite("plain.db".into()));
        assert!(matches!(parse_database_url("postgresql://h/db").unwrap(), DatabaseUrl::Postgres(_)));
        assert_eq!(parse_database_url("mysql://h/db").unwrap_err().variable, "DATABASE_URL");
        assert_eq!(parse_database_url("sqlite://").unwrap_err().variable, "DATABASE_URL");
    }

    #[test]
    fn passkeys_take_their_rp_from_public_url_and_refuse_origins_off_it() {
        assert!(settings(&[]).unwrap().passkeys.is_none(), "an IP address is no RP id");
        let on = settings(&[("PUBLIC_URL", "https://auth.example.com/base")]).unwrap().passkeys.unwrap();
        assert_eq!(
            (on.rp_id.as_str(), on.origins.as_slice()),
            ("auth.example.com", &["https://auth.example.com".to_owned()][..])
        );
        let named = settings(&[
            ("WEBAUTHN_RP_ID", "Example.com"),
            ("WEBAUTHN_ORIGINS", "https://app.example.com, http://localhost:3000"),
        ]);
        assert_eq!(named.unwrap_err().variable, "WEBAUTHN_ORIGINS", "localhost is not on example.com");
        let named = settings(&[
            ("WEBAUTHN_RP_ID", "Example.com"),
            ("WEBAUTHN_ORIGINS", "https://app.example.com,https://example.com:8443,android:apk-key-hash:abc"),
        ])
        .unwrap()
        .passkeys
        .unwrap();
        assert_eq!(named.rp_id, "example.com");
        assert_eq!(named.origins.len(), 3);
        for (name, bad) in [
            ("WEBAUTHN_RP_ID", "127.0.0.1"),
            ("WEBAUTHN_RP_ID", "exa mple.com"),
            ("WEBAUTHN_ORIGINS", "https://evilexample.com"),
            ("WEBAUTHN_ORIGINS", "https://app.example.com/path"),
            ("WEBAUTHN_ORIGINS", "ftp://example.com"),
        ] {
            let vars = match name {
                "WEBAUTHN_RP_ID" => vec![(name, bad)],
                _ => vec![("WEBAUTHN_RP_ID", "example.com"), (name, bad)],
            };
            assert_eq!(settings(&vars).unwrap_err().variable, name, "{bad}");
        }
        let origins_without_rp = settings(&[("WEBAUTHN_ORIGINS", "https://example.com")]);
        assert_eq!(origins_without_rp.unwrap_err().variable, "WEBAUTHN_RP_ID");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let cases = [
            ("JWT_ALGORITHM", "none"),
            ("JWT_LEEWAY_SECS", "soon"),
            ("ACCESS_TOKEN_TTL_SECS", "0"),
            ("BIND_ADDR", "nowhere"),
            ("TRUST_PROXY_HEADERS", "maybe"),
            ("TRUSTED_PROXIES", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "10.0.0.1, proxy.internal"),
            ("TRUSTED_PROXIES", "-1"),
            ("TRUSTED_PROXIES", " , "),
            ("PROXY_HEADER", "x-real-ip"),
            ("SHARED_ABUSE_LIMITS", "yes please"),
            ("ARGON2_MEMORY_KIB", "1"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("REVOCATION_FEED_TOKEN", "short"),
            ("PUBLIC_URL", "nowhere"),
            ("DEFAULT_ROLES", "member,Admin"),
            ("METRICS_BIND_ADDR", "nowhere"),
            ("LOG_FORMAT", "bogus"),
            ("SHUTDOWN_TIMEOUT_SECS", "-1"),
        ];
        for (variable, value) in cases {
            let err = settings(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }

    #[test]
    fn proxies_are_a_count_or_networks_and_trusted_only_when_asked() {
        let proxies = |vars: &[(&str, &str)]| settings(vars).unwrap().http.proxies;
        let one_hop = Proxies { trusted: TrustedProxies::Hops(1), header: ProxyHeader::XForwardedFor };
        assert_eq!(proxies(&[("TRUST_PROXY_HEADERS", "true")]), Some(one_hop));
        assert_eq!(proxies(&[("TRUSTED_PROXIES", "2"), ("PROXY_HEADER", "forwarded")]), None);
        let set = proxies(&[
            ("TRUST_PROXY_HEADERS", "true"),
            ("TRUSTED_PROXIES", "2"),
            ("PROXY_HEADER", "Forwarded"),
        ]);
        assert_eq!(set, Some(Proxies { trusted: TrustedProxies::Hops(2), header: ProxyHeader::Forwarded }));
        let listed = proxies(&[
            ("TRUST_PROXY_HEADERS", "true"),
            ("TRUSTED_PROXIES", "10.1.2.3/8, 192.0.2.7,2001:db8::/32,"),
        ]);
        let networks = ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"].map(|n| n.parse().unwrap());
        assert_eq!(listed.unwrap().trusted, TrustedProxies::Networks(networks.to_vec()));
    }

    #[test]
    fn hs256_needs_a_long_secret_which_debug_never_prints() {
        let short = settings(&[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", "short")]);
        assert_eq!(short.unwrap_err().variable, "JWT_SECRET");
        let missing = settings(&[("JWT_ALGORITHM", "HS256")]);
        assert_eq!(missing.unwrap_err().variable, "JWT_SECRET");
        let secret = "a-very-long-secret-of-at-least-32-bytes";
        let ok = settings(&[("JWT_ALGORITHM", "HS256"), ("JWT_SECRET", secret)]).unwrap();
        assert!(!format!("{ok:?}").contains(secret));
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let url = "postgres://app:s3cr3t-pw@db.internal:5432/tollgate";
        let shown = format!("{:?}", settings(&[("DATABASE_URL", url)]).unwrap());
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("postgres://app:<redacted>@db.internal:5432/tollgate"), "{shown}");
    }
}
