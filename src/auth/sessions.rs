//! [`Sessions`]: signup, login, refresh, logout, password change, and what a presented
//! access token is worth. Each is one method that returns a domain result; the HTTP
//! layer parses the request, calls one of them and maps the answer.
//!
//! Every method that revokes (logout, password change, reuse detection) evicts the user's
//! cached account itself, right after its write, so that no caller can forget it.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::NaiveDateTime;
use secrecy::SecretString;
use uuid::Uuid;

use super::error::{Error, Result};
use super::password::{Passwords, Verified, normalize};
use super::rate_limit::{AbuseLimits, RateLimiter};
use super::refresh::{IssuedRefresh, RefreshSessions, RefreshToken, Rotation};
use super::rules::{ADMIN_ROLE, validate_email, validate_username};
use super::tokens::{AccessClaims, AccessTokens, Amr, TokenSession};
use super::totp::{MfaChallenge, MfaCore};
use super::user_cache::UserCache;
use super::webauthn::PasskeyCore;
use crate::clock::Clock;
use crate::db::DbError;
use crate::db::Pool;
use crate::db::accounts::{Account, NewAccount};
use crate::db::mail::MailTokens;
use crate::db::models::{NewSession, UnixMillis, User};
use crate::db::sessions::{Chain, PasswordWrite, SessionInfo, SessionStore};
use crate::mail::MailCore;
use crate::metrics::{LoginResult, Metrics, RefreshResult};

/// What a sign-in with the right password comes to.
pub enum SignIn {
    Session(Box<Issued>),
    /// The account has a second factor: the login's second step
    /// ([`Sessions::log_in_second_step`]) starts the session.
    SecondFactor(MfaChallenge),
}

/// Who is asking, as far as the limits and the session list care.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The client's address (see `http::extract::client_ip`); `None` when unknown.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` as given, capped at [`USER_AGENT_MAX_CHARS`]; never interpreted.
    pub user_agent: Option<String>,
}

/// How much of a user agent a session keeps.
pub const USER_AGENT_MAX_CHARS: usize = 256;

/// A session handed out: the tokens, and the account they were issued for.
pub struct Issued {
    /// A JWS (`typ: at+jwt`) signed with `JWT_ALGORITHM`.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: RefreshToken,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    pub account: Account,
    /// The session's id, the access token's `sid`.
    pub session_id: Option<Uuid>,
}

/// The caller of a live, unrevoked access token, with its account as cached.
pub struct Caller {
    pub claims: AccessClaims,
    pub account: Arc<Account>,
}

impl Caller {
    /// The admin API's rule: the token carries the `admin` role, and so does the account
    /// now (the user cache's, which a change of roles evicts), so that no token minted
    /// around a change of roles, nor a role removed behind the server's back, lets it in;
    /// with `require_mfa` (`ADMIN_REQUIRE_MFA`), its session also had a second factor.
    pub fn require_admin(&self, require_mfa: bool) -> Result<()> {
        let current = self.account.roles.iter().any(|role| role == ADMIN_ROLE);
        if !(self.claims.has_role(ADMIN_ROLE) && current) {
            log::info!("admin API refused user_id={}", self.claims.sub);
            return Err(Error::Forbidden);
        }
        if require_mfa && !self.claims.has_mfa() {
            log::info!("admin API refused without a second factor user_id={}", self.claims.sub);
            return Err(Error::MfaRequired);
        }
        Ok(())
    }
}

/// A new account, as signup receives it.
pub struct SignUp {
    pub username: String,
    pub password: SecretString,
    pub email: Option<String>,
}

/// What identifies the session a logout ends.
pub enum LogoutBy<'a> {
    /// The caller of an access token.
    Caller(&'a Caller),
    /// A refresh token from the request body: one that names no session is refused, and
    /// the refusal counts against the client's IP like a refresh's.
    RefreshToken(&'a str),
    /// A browser's refresh cookie: one that names no session any more means the browser
    /// is logged out already.
    Cookie(&'a str),
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogoutScope {
    /// The session of the token presented.
    #[default]
    Local,
    /// Every other session of the user.
    Others,
    /// All of them.
    Global,
}

/// A revocation the feed publishes: tokens of `sub` (of its session `sid` only, if given)
/// issued before `not_before` are dead.
pub struct Revocation {
    pub sub: Uuid,
    pub sid: Option<Uuid>,
    pub not_before: UnixMillis,
}

/// How long after a revocation the feed still lists it: the `now` of an answer lags the
/// clock by this much, so that a revocation still being committed when the feed was read
/// is listed again by the next poll instead of missed.
const FEED_WATERMARK_LAG_SECS: i64 = 5;

/// What a new session does to the stored password hash.
pub(super) enum PasswordUpdate {
    Keep,
    /// The login verified an imported Django hash: store tollgate's argon2id instead, if
    /// the stored hash is still the one verified (a compare-and-set, so that a password
    /// changed meanwhile is not overwritten).
    Rehash {
        verified: String,
        rehashed: String,
    },
    /// A password change: the new hash, and every access token issued so far is revoked.
    Change(String),
    /// A password reset: a change, with the reset token used in the same transaction (the
    /// session starts only if it was still live), and the address it went to verified.
    Reset {
        new_hash: String,
        token_hash: String,
        now_ms: i64,
    },
}

/// Built once at start-up (`startup`); the fields are the crate's, for that.
pub struct Sessions {
    pub(crate) pool: Pool,
    pub(crate) clock: Clock,
    pub(crate) tokens: AccessTokens,
    pub(crate) refresh: Arc<RefreshSessions>,
    pub(crate) passwords: Arc<Passwords>,
    pub(crate) users: Arc<UserCache>,
    /// Signup, login and password-change attempts per client IP, failed logins per username.
    pub(crate) limits: AbuseLimits,
    /// Refresh tokens refused per client IP (refresh, logout), limited like logins. Kept
    /// per process even where the limits above are shared: it holds off junk floods,
    /// which no instance should pay a database write for, while guessing a refresh token
    /// is hopeless at any rate.
    pub(crate) refresh_failures: RateLimiter,
    /// The roles of every signup (`DEFAULT_ROLES`).
    pub(crate) default_roles: Vec<String>,
    pub(crate) metrics: Arc<Metrics>,
    /// Mail, when `SMTP_URL` is set (`auth::recovery`).
    pub(crate) mail: Option<MailCore>,
    /// The second factor's key and issuer name (`auth::mfa`).
    pub(crate) mfa: MfaCore,
    /// The WebAuthn relying party, unless passkeys are off (`auth::passkeys`).
    pub(crate) passkeys: Option<PasskeyCore>,
    /// The admin API takes only tokens of sessions with a second factor
    /// (`ADMIN_REQUIRE_MFA`).
    pub(crate) admin_require_mfa: bool,
}

impl Sessions {
    /// Creates an account with the configured default roles and starts its session.
    pub async fn sign_up(&self, new: SignUp, client: Client) -> Result<Issued> {
        self.limits.attempt(client.ip).await?;
        let username = validate_username(&new.username)?;
        let email = validate_email(new.email.as_deref())?;
        if email.is_none() && self.verification_required() {
            return Err(Error::Validation("email is required: addresses must be verified".into()));
        }
        let password = normalize(&new.password)?;
        let password_hash = self.passwords.hash(password).await?;

        let now = self.clock.now().naive_utc();
        let (token, session) = self.new_session(now, &client, Amr::Password);
        // Only the configured defaults: a signup never chooses its own roles.
        let new = NewAccount::new(username, email, password_hash, self.default_roles.clone(), now);
        let id = new.user.id.0;
        let store = self.refresh.store;
        let mailer = self.mail.as_ref().map(|mail| mail.mailer.clone());
        let now_ms = self.clock.now().timestamp_millis();
        // The session starts with the account, in its transaction, and so does the mail
        // that verifies its address.
        let (account, session, mailed) = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| {
                    Account::insert(conn, new)?;
                    let user = User::find(conn, id)?
                        .ok_or_else(|| DbError::Other("a created user vanished".into()))?;
                    store.start(conn, &user, &session, PasswordWrite::Keep)?;
                    let mailed = match &mailer {
                        Some(mailer) => mailer.queue_verification(conn, &user, now_ms)?,
                        None => false,
                    };
                    let account = Account::find(conn, id)?
                        .ok_or_else(|| DbError::Other("a created user vanished".into()))?;
                    Ok((account, session, mailed))
                })
            })
            .await?;
        if let Some(mail) = self.mail.as_ref().filter(|_| mailed) {
            mail.wake.notify_one();
        }
        self.metrics.signup();
        log::info!("signup user_id={}", account.id);
        Ok(self.issue(account, Some(session.id), Amr::Password, token, session.expires_at, now))
    }

    /// Starts a new session for the right password, replacing the previous one; or, for
    /// an account with a second factor, the login's second step.
    pub async fn log_in(&self, username: &str, password: SecretString, client: Client) -> Result<SignIn> {
        let result = self.try_log_in(username, password, client).await;
        self.metrics.login(LoginResult::of(&result));
        result
    }

    async fn try_log_in(&self, username: &str, password: SecretString, client: Client) -> Result<SignIn> {
        let attempt = self.limits.login_attempt(client.ip, username).await?;
        // An impossible username is looked up no further, but still costs one hash below.
        let user = match validate_username(username) {
            Ok(username) => self.pool.read(move |conn| User::find_for_login(conn, &username)).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.passwords.verify(password, stored).await?;
        if !verified.matches() {
            self.limits.login_failed(&attempt).await?;
            match &user {
                Some(user) => log::info!("login failed user_id={}", user.id.0),
                None => log::info!("login failed for an unknown username"),
            }
            return Err(Error::InvalidCredentials);
        }
        let user = user.ok_or(Error::InvalidCredentials)?;
        // With a second factor, only its step clears the failures: wrong codes count too.
        if !user.mfa_enabled {
            self.limits.login_succeeded(&attempt).await?;
        }
        self.admit(&user).await?;
        if user.mfa_enabled {
            return self.mfa_challenge(user.id.0).await;
        }
        let password = match verified {
            Verified::YesRehashed(rehashed) => {
                PasswordUpdate::Rehash { verified: user.password_hash.clone(), rehashed }
            }
            _ => PasswordUpdate::Keep,
        };
        let rehashed = matches!(password, PasswordUpdate::Rehash { .. });
        // The password verified is no longer the account's: it changed during the check.
        let issued = self
            .start_session(user, password, &client, Amr::Password)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        if rehashed {
            log::info!("imported password hash replaced by argon2id user_id={}", issued.account.id);
        }
        log::info!("login user_id={}", issued.account.id);
        Ok(SignIn::Session(Box::new(issued)))
    }

    /// What a sign-in whose secret held (a password, a passkey) still needs: an enabled
    /// account and, under `EMAIL_VERIFICATION=required`, a verified address (a new link is
    /// mailed, cooldown permitting). Told only to someone who proved the secret, so it
    /// reveals nothing to a guesser.
    pub(super) async fn admit(&self, user: &User) -> Result<()> {
        if user.disabled {
            log::info!("login refused, account disabled user_id={}", user.id.0);
            return Err(Error::AccountDisabled);
        }
        if !user.email_verified && self.verification_required() {
            log::info!("login refused, email not verified user_id={}", user.id.0);
            self.mail_verification(user.id.0).await?;
            return Err(Error::EmailNotVerified);
        }
        Ok(())
    }

    /// Trades a refresh token for its successor; the old one stops working. `None` when
    /// the request carried none at all.
    pub async fn refresh(&self, presented: Option<&str>, client: Client) -> Result<Issued> {
        let result = self.try_refresh(presented, client).await;
        self.metrics.refresh(RefreshResult::of(&result));
        result
    }

    async fn try_refresh(&self, presented: Option<&str>, client: Client) -> Result<Issued> {
        // A value that is not even a refresh token costs no database query.
        let Some(presented) = presented.and_then(RefreshToken::parse) else {
            return Err(self.refused(client));
        };
        let now = self.clock.now().naive_utc();
        let rotation = match self.refresh.rotate_live_in_batch(&self.pool, &presented, now).await? {
            Some(issued) => Rotation::Rotated(Box::new(issued)),
            None => {
                let policy = self.refresh.clone();
                self.pool.write(move |conn| policy.rotate(conn, &presented, now)).await?
            }
        };
        match rotation {
            Rotation::Rotated(issued) => {
                let IssuedRefresh { rotated, token, expires_at } = *issued;
                let account = Account::of(&rotated.user, rotated.roles);
                let amr = Amr::of_stored(rotated.amr.as_deref());
                Ok(self.issue(account, rotated.session_id, amr, token, expires_at, now))
            }
            Rotation::Revoked(user_id) => {
                self.metrics.refresh_reuse_detected();
                self.users.evict(user_id);
                Err(self.refused(client))
            }
            Rotation::Refused => Err(self.refused(client)),
        }
    }

    /// Ends the sessions `scope` names, from the session of the caller or refresh token
    /// presented; the access tokens issued to them so far are refused with them.
    pub async fn log_out(&self, by: LogoutBy<'_>, scope: LogoutScope, client: Client) -> Result<()> {
        let now = self.clock.now().naive_utc();
        let (user_id, session_id) = match by {
            LogoutBy::Caller(caller) => (caller.account.id, caller.claims.sid),
            LogoutBy::RefreshToken(raw) | LogoutBy::Cookie(raw) => {
                let refresh = self.refresh.clone();
                let found = match RefreshToken::parse(raw) {
                    Some(token) => {
                        self.pool
                            .write(move |conn| match scope {
                                LogoutScope::Local => refresh.revoke(conn, &token, now),
                                LogoutScope::Others | LogoutScope::Global => refresh.chain_of(conn, &token),
                            })
                            .await?
                    }
                    None => None,
                };
                match (found, by) {
                    (Some(Chain { user_id, session_id, .. }), _) if scope != LogoutScope::Local => {
                        (user_id, session_id)
                    }
                    (Some(chain), _) => {
                        self.ended(chain.user_id, "logout");
                        return Ok(());
                    }
                    (None, LogoutBy::Cookie(_)) => return Ok(()),
                    (None, _) => return Err(self.refused(client)),
                }
            }
        };
        let store = self.refresh.store;
        self.pool
            .write(move |conn| match (scope, session_id, store) {
                // A session on the users row (one per user) ends with all the user's tokens.
                (LogoutScope::Local, Some(id), SessionStore::Table { .. }) => {
                    store.end(conn, user_id, id, now).map(|_| ())
                }
                (LogoutScope::Others, Some(id), _) => {
                    conn.transaction(|conn| match User::lock(conn, user_id)? {
                        Some(user) => store.end_others(conn, &user, id, now),
                        None => Ok(()),
                    })
                }
                (LogoutScope::Others, None, _) => Ok(()),
                _ => Account::log_out(conn, user_id, now).map(|_| ()),
            })
            .await?;
        self.ended(user_id, "logout");
        Ok(())
    }

    /// The user's live sessions, most recently used first.
    pub async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<SessionInfo>> {
        let now = self.clock.now().naive_utc();
        let store = self.refresh.store;
        Ok(self.pool.read(move |conn| store.list(conn, user_id, now)).await?.unwrap_or_default())
    }

    /// Ends one session of the user; [`Error::NotFound`] unless it is a live session of
    /// that user.
    pub async fn end_session(&self, user_id: Uuid, session_id: Uuid) -> Result<()> {
        let now = self.clock.now().naive_utc();
        let store = self.refresh.store;
        if !self.pool.write(move |conn| store.end(conn, user_id, session_id, now)).await? {
            return Err(Error::NotFound);
        }
        self.ended(user_id, "session ended");
        Ok(())
    }

    /// What follows a session's end: the cached account goes (it lists the ended
    /// sessions), and the log says so.
    fn ended(&self, user_id: Uuid, what: &str) {
        self.users.evict(user_id);
        log::info!("{what} user_id={user_id}");
    }

    /// Changes the caller's password and starts a new session; the old refresh token and
    /// every access token issued so far stop working.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: SecretString,
        new: SecretString,
        client: Client,
    ) -> Result<Issued> {
        self.limits.attempt(client.ip).await?;
        let new = normalize(&new).map_err(|e| Error::Validation(format!("new {e}")))?;
        // The current row, not the cached one: its password hash is what must match.
        let user_id = caller.account.id;
        let user = self.pool.read(move |conn| User::find(conn, user_id)).await?.ok_or(Error::InvalidToken)?;
        if !self.passwords.verify(current, Some(user.password_hash.clone())).await?.matches() {
            log::info!("password change refused user_id={user_id}");
            return Err(Error::WrongCurrentPassword);
        }
        let new_hash = self.passwords.hash(new).await?;
        // The new session was authenticated as the caller's was.
        let amr = Amr::of_claims(&caller.claims.amr);
        let issued = self
            .start_session(user, PasswordUpdate::Change(new_hash), &client, amr)
            .await?
            // The account was deleted meanwhile.
            .ok_or(Error::InvalidToken)?;
        log::info!("password changed user_id={user_id}");
        Ok(issued)
    }

    /// The caller of an access token allowed to use the admin API ([`Caller::require_admin`]).
    pub async fn authenticate_admin(&self, token: &str) -> Result<Caller> {
        let caller = self.authenticate(token).await?;
        caller.require_admin(self.admin_require_mfa)?;
        Ok(caller)
    }

    /// The caller of an access token: it verified, the account exists and is enabled, and
    /// the token was not issued before a revocation (logout, password change, a role
    /// taken away). Anything else is [`Error::InvalidToken`].
    pub async fn authenticate(&self, token: &str) -> Result<Caller> {
        let claims = self.tokens.verify(token)?;
        let user_id = claims.sub;
        let mut account = self.account_of(user_id).await?;
        // The batch may have held this very user's entry: then the re-read row decides.
        if self.reread_aged_accounts().await {
            account = self.account_of(user_id).await?;
        }
        // Disabling revokes the tokens too; the flag also covers a row disabled by hand. The
        // issue time is exact to the millisecond (the jti's), as the revocation time is.
        let revoked =
            account.tokens_valid_after.is_some_and(|valid_after| claims.issued_at_ms() < valid_after.0)
                || claims.sid.is_some_and(|sid| account.ended(sid));
        if account.disabled || revoked {
            log::debug!("revoked access token presented user_id={user_id}");
            return Err(Error::InvalidToken);
        }
        Ok(Caller { claims, account })
    }

    /// The revocations after `since` (unix seconds) that may still matter, and the `now`
    /// to pass as the next `since`.
    pub async fn revocations(&self, since: i64) -> Result<(Vec<Revocation>, i64)> {
        let now = self.clock.unix();
        // Older revocations cover only tokens that have expired anyway.
        let since = since.max(now - self.tokens.max_token_age_secs());
        // A `not_before` (rounded up) after `since` is an exact time after it.
        let since = UnixMillis(since.saturating_mul(1000));
        let rows = self.pool.read(move |conn| User::revoked_since(conn, since)).await?;
        let revocations =
            rows.into_iter().map(|(sub, sid, not_before)| Revocation { sub, sid, not_before }).collect();
        Ok((revocations, now - FEED_WATERMARK_LAG_SECS))
    }

    /// Whether the database answers and has the schema.
    pub async fn ready(&self) -> Result<()> {
        Ok(self.pool.read(User::ping).await?)
    }

    /// Hashes waiting for a hashing thread, for the metrics.
    pub fn hash_queue_depth(&self) -> usize {
        self.passwords.queue_depth()
    }

    /// Database connections handed out now, for the metrics.
    pub fn connections_in_use(&self) -> u32 {
        self.pool.connections_in_use()
    }

    /// A new session's first refresh token, and the session as stored.
    fn new_session(&self, now: NaiveDateTime, client: &Client, amr: Amr) -> (RefreshToken, NewSession) {
        let token = RefreshToken::mint();
        let session = NewSession {
            id: Uuid::new_v4(),
            hash: token.hash(),
            expires_at: self.refresh.expiry(now),
            now,
            user_agent: client.user_agent.clone(),
            ip: client.ip.map(|ip| ip.to_string()),
            amr: amr.stored(),
        };
        (token, session)
    }

    /// Starts a new session for the user (with one session per user, replacing it; with
    /// more, ending the least recently used beyond the limit); `None` when the user is
    /// gone, or a rehash found the password changed since it was verified.
    pub(super) async fn start_session(
        &self,
        user: User,
        password: PasswordUpdate,
        client: &Client,
        amr: Amr,
    ) -> Result<Option<Issued>> {
        let now = self.clock.now().naive_utc();
        let (token, session) = self.new_session(now, client, amr);
        let user_id = user.id.0;
        let store = self.refresh.store;
        // On the row as locked, and the roles and revocation time that go with it: what the
        // token is issued from (see `User::lock`); a login on the users row is that in one
        // statement.
        let started = self
            .pool
            .write(move |conn| {
                let login = match &password {
                    PasswordUpdate::Keep => Some((user.password_hash.as_str(), user.password_hash.as_str())),
                    PasswordUpdate::Rehash { verified, rehashed } => {
                        Some((verified.as_str(), rehashed.as_str()))
                    }
                    PasswordUpdate::Change(_) | PasswordUpdate::Reset { .. } => None,
                };
                if let (Some((verified, rehashed)), SessionStore::UsersRow) = (login, store) {
                    let account = Account::start_session_on_row(conn, user_id, &session, verified, rehashed)?;
                    return Ok(account.map(|account| (account, session)));
                }
                conn.transaction(|conn| {
                    let Some(current) = User::lock(conn, user_id)? else { return Ok(None) };
                    let write = match &password {
                        PasswordUpdate::Keep => PasswordWrite::Keep,
                        PasswordUpdate::Rehash { verified, rehashed } => {
                            PasswordWrite::Rehash { verified, rehashed }
                        }
                        PasswordUpdate::Change(new_hash) => PasswordWrite::Change(new_hash),
                        PasswordUpdate::Reset { new_hash, token_hash, now_ms } => {
                            if !MailTokens::use_reset(conn, &current, token_hash, *now_ms, now)? {
                                return Ok(None);
                            }
                            PasswordWrite::Change(new_hash)
                        }
                    };
                    if !store.start(conn, &current, &session, write)? {
                        return Ok(None);
                    }
                    Ok(Account::find(conn, user_id)?.map(|account| (account, session)))
                })
            })
            .await?;
        // The row just read may be newer than the cached one (say, an account re-enabled
        // from the command line), a password change revoked, a session beyond the limit
        // ended: the new token must not meet the old entry.
        self.users.evict(user_id);
        Ok(started.map(|(account, session)| {
            self.issue(account, Some(session.id), amr, token, session.expires_at, now)
        }))
    }

    fn issue(
        &self,
        account: Account,
        session_id: Option<Uuid>,
        amr: Amr,
        token: RefreshToken,
        expires_at: NaiveDateTime,
        now: NaiveDateTime,
    ) -> Issued {
        let access_token = self.tokens.issue(
            account.id,
            &account.username,
            &account.roles,
            now,
            account.tokens_valid_after,
            TokenSession { id: session_id, amr },
        );
        Issued {
            access_token,
            expires_in: self.tokens.ttl_secs(),
            refresh_token: token,
            refresh_expires_in: (expires_at - now).num_seconds().max(0),
            account,
            session_id,
        }
    }

    /// The answer to a refresh token refused (refresh, logout): 401, or 429 once the
    /// client's IP has had more refused than its limit within the minute. Only refusals
    /// count, so a client that refreshes correctly is never limited, however much junk
    /// shares its IP.
    fn refused(&self, client: Client) -> Error {
        match client.ip.map(|ip| self.refresh_failures.check(ip)) {
            Some(Err(limited)) => limited.into(),
            Some(Ok(())) | None => Error::InvalidRefreshToken,
        }
    }

    /// The user's account from the cache, else from the database (and then cached).
    async fn account_of(&self, user_id: Uuid) -> Result<Arc<Account>> {
        if let Some(account) = self.users.get(user_id) {
            return Ok(account);
        }
        let generation = self.users.generation(user_id);
        let account = self
            .pool
            .read(move |conn| Account::find(conn, user_id))
            .await?
            .map(Arc::new)
            .ok_or(Error::InvalidToken)?;
        self.users.put(account.clone(), generation);
        Ok(account)
    }

    /// Re-validates a batch of aged user-cache entries, if some wait and no other request
    /// is at it (see `UserCache::take_aged`); whether it did. A failure leaves them to age
    /// out: it is not this request's, which goes on.
    async fn reread_aged_accounts(&self) -> bool {
        let Some(batch) = self.users.take_aged() else { return false };
        let ids = batch.ids();
        match self.pool.read(move |conn| Account::freshness_of(conn, &ids)).await {
            Ok(found) => self.users.revalidate(batch, found),
            Err(e) => log::warn!("re-reading cached accounts failed: {e}"),
        }
        true
    }
}
