//! actix-web integration: [`Claims`], [`AuthenticatedUser`], [`WithRole`] and [`WithMfa`]
//! as extractors.
//!
//! Register one [`Verifier`] as app data, then take `Claims` (or `AuthenticatedUser`) as
//! a handler argument to protect the route:
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use tollgate_verify::{Claims, Verifier, VerifierConfig};
//!
//! async fn hello(user: Claims) -> String {
//!     format!("hello, {}", user.username)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new(VerifierConfig::from_env()?);
//! HttpServer::new(move || {
//!     App::new()
//!         .app_data(verifier.clone())
//!         .route("/hello", web::get().to(hello))
//! })
//! .bind("127.0.0.1:8081")?
//! .run()
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! `app_data(verifier.clone())` and `app_data(web::Data::new(verifier))` both work.
//! `Option<Claims>` makes authentication optional (`None` for a missing or bad token).
//!
//! Failures answer exactly as tollgate does, with its [`ErrorBody`] and challenges:
//! - no `Authorization` header: 401 `missing_token`, `WWW-Authenticate: Bearer realm="tollgate"`
//!   ([`MISSING_TOKEN_CHALLENGE`]);
//! - a header that is not `Bearer <token>`, or a token that does not verify (bad
//!   signature, expired, wrong issuer or audience, unknown key, revoked): 401
//!   `invalid_token`, `WWW-Authenticate: Bearer realm="tollgate", error="invalid_token"`
//!   ([`INVALID_TOKEN_CHALLENGE`]);
//! - a valid token without the role a [`WithRole`] extractor needs: 403 `forbidden`;
//! - a valid token of a session signed in without a second factor (no `mfa` in its
//!   `amr`), to a [`WithMfa`] extractor: 403 `mfa_required`, as tollgate's admin API
//!   answers under `ADMIN_REQUIRE_MFA`;
//! - more than one `Authorization` header: 400 `bad_request`;
//! - no key could ever be fetched from tollgate: 503 `overloaded` with `Retry-After`;
//! - no `Verifier` registered with the app: 500 `internal_error` (and an error log line).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use uuid::Uuid;

use crate::{
    BearerError, Claims, Error, ErrorBody, INVALID_TOKEN_CHALLENGE, MISSING_TOKEN_CHALLENGE, Verifier,
};

/// Why a request was not authenticated; the response it turns into is documented on the
/// [module](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    MissingToken,
    /// Not a bearer token, or the token does not verify.
    InvalidToken,
    /// The token verified but lacks the role the route needs.
    Forbidden,
    /// The token verified but its session was signed in without a second factor (no
    /// `mfa` in `amr`), and the route needs one.
    MfaRequired,
    /// An ambiguous request, e.g. two `Authorization` headers.
    BadRequest(&'static str),
    /// tollgate's keys could never be fetched.
    KeysUnavailable,
    /// The app has no [`Verifier`] in its app data.
    NotConfigured,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthError::MissingToken => "missing bearer token",
            AuthError::InvalidToken => "invalid or expired token",
            AuthError::Forbidden => "this token does not grant access to this resource",
            AuthError::MfaRequired => "this needs a session signed in with a second factor",
            AuthError::BadRequest(message) => message,
            AuthError::KeysUnavailable => "token verification is temporarily unavailable",
            AuthError::NotConfigured => "internal error",
        })
    }
}

impl AuthError {
    /// The `code` member of the JSON body: tollgate's code for the same situation.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidToken => "invalid_token",
            AuthError::Forbidden => "forbidden",
            AuthError::MfaRequired => "mfa_required",
            AuthError::BadRequest(_) => "bad_request",
            // tollgate's code for "cannot serve this right now, retry".
            AuthError::KeysUnavailable => "overloaded",
            AuthError::NotConfigured => "internal_error",
        }
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::MissingToken | AuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden | AuthError::MfaRequired => StatusCode::FORBIDDEN,
            AuthError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            AuthError::MissingToken => {
                response.insert_header((header::WWW_AUTHENTICATE, MISSING_TOKEN_CHALLENGE));
            }
            AuthError::InvalidToken => {
                response.insert_header((header::WWW_AUTHENTICATE, INVALID_TOKEN_CHALLENGE));
            }
            AuthError::KeysUnavailable => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            AuthError::Forbidden
            | AuthError::MfaRequired
            | AuthError::BadRequest(_)
            | AuthError::NotConfigured => {}
        }
        response.json(ErrorBody::new(self.to_string(), self.code()))
    }
}

impl From<Error> for AuthError {
    fn from(error: Error) -> Self {
        match error {
            Error::KeysUnavailable(_) => AuthError::KeysUnavailable,
            _ => AuthError::InvalidToken,
        }
    }
}

/// A caller whose bearer token verified: its user id, username and all claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub id: Uuid,
    pub username: String,
    pub claims: Claims,
}

impl From<Claims> for AuthenticatedUser {
    fn from(claims: Claims) -> Self {
        Self { id: claims.sub, username: claims.username.clone(), claims }
    }
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T> + 'static>>;

impl FromRequest for Claims {
    type Error = AuthError;
    type Future = LocalBoxFuture<Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let prepared = bearer_token(req).and_then(|token| Ok((verifier(req)?, token.to_owned())));
        Box::pin(async move {
            let (verifier, token) = prepared?;
            verifier.verify(&token).await.map_err(|error| {
                match &error {
                    Error::KeysUnavailable(problem) => {
                        log::error!("cannot verify tokens: {problem}")
                    }
                    other => log::debug!("access token rejected: {other}"),
                }
                AuthError::from(error)
            })
        })
    }
}

impl FromRequest for AuthenticatedUser {
    type Error = AuthError;
    type Future = LocalBoxFuture<Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let claims = Claims::from_request(req, payload);
        Box::pin(async move { claims.await.map(AuthenticatedUser::from) })
    }
}

/// A role name as a type, for [`WithRole`]:
///
/// ```
/// struct Editor;
/// impl tollgate_verify::actix::Role for Editor {
///     const NAME: &'static str = "editor";
/// }
/// ```
pub trait Role {
    const NAME: &'static str;
}

/// A caller whose token verified and carries the role `R::NAME`. Taking
/// `WithRole<Editor>` as a handler argument lets only editors in; a valid token without
/// the role gets 403 `forbidden`, a missing or bad one the usual 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithRole<R: Role> {
    pub claims: Claims,
    role: PhantomData<R>,
}

impl<R: Role> FromRequest for WithRole<R> {
    type Error = AuthError;
    type Future = LocalBoxFuture<Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let claims = Claims::from_request(req, payload);
        Box::pin(async move {
            let claims = claims.await?;
            if !claims.has_role(R::NAME) {
                log::debug!("token without role {} refused sub={}", R::NAME, claims.sub);
                return Err(AuthError::Forbidden);
            }
            Ok(WithRole { claims, role: PhantomData })
        })
    }
}

/// A caller whose token verified and whose session was signed in with a second factor:
/// `mfa` in the token's `amr` (RFC 8176), which tollgate puts there after a password and a
/// TOTP or recovery code (`["mfa", "otp", "pwd"]`) or after a passkey that verified the
/// user (`["hwk", "mfa", "user"]`). Taking `WithMfa` as a handler argument lets only such
/// sessions in; a valid token without `mfa` (a password alone, `["pwd"]`, or a token of a
/// tollgate from before `amr`) gets 403 `mfa_required`, a missing or bad one the usual
/// 401. The client's remedy is to sign in again with the second factor (and to enrol one
/// first, when the account has none).
///
/// A refresh keeps the session's `amr`, so a session signed in with a second factor
/// passes for its whole life. For a role as well, check [`Claims::has_role`] on
/// [`claims`](Self::claims) (taking both `WithMfa` and [`WithRole`] works too, but
/// verifies the token twice).
///
/// ```no_run
/// use tollgate_verify::actix::WithMfa;
///
/// async fn payout(user: WithMfa) -> String {
///     format!("{} signed in with {:?}", user.claims.username, user.claims.amr)
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithMfa {
    pub claims: Claims,
}

impl FromRequest for WithMfa {
    type Error = AuthError;
    type Future = LocalBoxFuture<Result<Self, AuthError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let claims = Claims::from_request(req, payload);
        Box::pin(async move {
            let claims = claims.await?;
            if !claims.has_mfa() {
                log::debug!("token without a second factor refused sub={} amr={:?}", claims.sub, claims.amr);
                return Err(AuthError::MfaRequired);
            }
            Ok(WithMfa { claims })
        })
    }
}

/// The verifier registered as `Verifier` or `web::Data<Verifier>`.
fn verifier(req: &HttpRequest) -> Result<Verifier, AuthError> {
    req.app_data::<Verifier>()
        .cloned()
        .or_else(|| req.app_data::<web::Data<Verifier>>().map(|data| data.get_ref().clone()))
        .ok_or_else(|| {
            log::error!("no tollgate_verify::Verifier in the app data: register one with App::app_data");
            AuthError::NotConfigured
        })
}

/// The token of the request's single `Authorization: Bearer <token>` header (the scheme
/// is case-insensitive).
pub fn bearer_token(req: &HttpRequest) -> Result<&str, AuthError> {
    let values = req.headers().get_all(header::AUTHORIZATION).map(|v| v.as_bytes());
    match crate::bearer_token(values) {
        Ok(Some(token)) => Ok(token),
        Ok(None) => Err(AuthError::MissingToken),
        Err(BearerError::Ambiguous) => Err(AuthError::BadRequest("more than one Authorization header")),
        Err(BearerError::Malformed) => Err(AuthError::InvalidToken),
    }
}
