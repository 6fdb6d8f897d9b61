//! The one error type of the HTTP API.
//!
//! Every failure a handler, extractor or middleware can meet is an [`ApiError`]; this file
//! alone decides which status, `code` and message a client sees, and converts the core's
//! errors into it. Internal causes are logged here and never sent: a client only ever
//! learns the category.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use tollgate_verify::{ErrorBody, INVALID_TOKEN_CHALLENGE, MISSING_TOKEN_CHALLENGE};

use crate::auth::password::HashError;
use crate::auth::rate_limit::{LimitError, Limited};
use crate::auth::rules::RuleError;
use crate::auth::tokens::TokenError;
use crate::db::DbError;

#[derive(thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (syntax error, truncated).
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A request the server will not interpret (e.g. two `Authorization` headers).
    #[error("{0}")]
    BadRequest(&'static str),
    /// Well-formed JSON whose fields break a rule (missing field, wrong type, too short…).
    #[error("{0}")]
    Validation(String),
    #[error("username is already taken")]
    UsernameTaken,
    /// The change would leave nobody who may use the admin API.
    #[error("this change would leave no enabled admin: make another user an admin first")]
    LastAdmin,
    /// Unknown user and wrong password are deliberately the same error.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// A password change whose `current_password` is wrong; the caller is known, so the
    /// message can say which password failed.
    #[error("current password is incorrect")]
    WrongCurrentPassword,
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid or expired access token")]
    InvalidToken,
    #[error("invalid or expired refresh token")]
    InvalidRefreshToken,
    /// Cookie mode: the refresh cookie came without an allowed `Origin` and the CSRF header.
    #[error("cross-site request refused")]
    CsrfRejected,
    /// The password was right, but the account is disabled.
    #[error("this account is disabled")]
    AccountDisabled,
    /// A valid token that lacks the role the resource needs.
    #[error("this token does not grant access to this resource")]
    Forbidden,
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The client did not send its request in time (`HTTP_CLIENT_TIMEOUT_SECS`).
    #[error("request timeout")]
    RequestTimeout,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("too many attempts, retry later")]
    RateLimited { retry_after_secs: u64 },
    /// Every password-hashing slot stayed busy for the whole queue timeout.
    #[error("server is busy, retry shortly")]
    Overloaded,
    #[error("database unavailable")]
    DatabaseUnavailable(String),
    #[error("internal server error")]
    Internal(String),
}

/// Names the variant and its code only: the messages of client errors can quote request
/// input (a password sent as a number, say), and actix logs `Debug` of every error.
impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Internal(cause) | ApiError::DatabaseUnavailable(cause) => {
                write!(f, "ApiError({}: {cause})", self.code())
            }
            other => write!(f, "ApiError({})", other.code()),
        }
    }
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Validation(_) => "validation_failed",
            ApiError::UsernameTaken => "username_taken",
            ApiError::LastAdmin => "last_admin",
            ApiError::InvalidCredentials | ApiError::WrongCurrentPassword => "invalid_credentials",
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken => "invalid_token",
            ApiError::InvalidRefreshToken => "invalid_refresh_token",
            ApiError::CsrfRejected => "csrf_rejected",
            ApiError::AccountDisabled => "account_disabled",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded => "overloaded",
            ApiError::DatabaseUnavailable(_) => "database_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// What the client is told: never the internal cause.
    fn public_message(&self) -> String {
        match self {
            ApiError::DatabaseUnavailable(_) => "database unavailable".into(),
            ApiError::Internal(_) => "internal server error".into(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UsernameTaken | ApiError::LastAdmin => StatusCode::CONFLICT,
            ApiError::InvalidCredentials
            | ApiError::WrongCurrentPassword
            | ApiError::MissingToken
            | ApiError::InvalidToken
            | ApiError::InvalidRefreshToken => StatusCode::UNAUTHORIZED,
            ApiError::CsrfRejected | ApiError::AccountDisabled | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded | ApiError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => log::error!("internal error: {cause}"),
            ApiError::DatabaseUnavailable(cause) => log::error!("database unavailable: {cause}"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            // RFC 6750 §3: a challenge on every 401 of a bearer-protected resource, with
            // `error="invalid_token"` only when a token was actually presented.
            ApiError::MissingToken => {
                response.insert_header((header::WWW_AUTHENTICATE, MISSING_TOKEN_CHALLENGE));
            }
            ApiError::InvalidToken => {
                response.insert_header((header::WWW_AUTHENTICATE, INVALID_TOKEN_CHALLENGE));
            }
            ApiError::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            }
            ApiError::Overloaded | ApiError::DatabaseUnavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        response.json(ErrorBody::new(self.public_message(), self.code()))
    }
}

impl ApiError {
    /// The error an error response of this status stands for, when something below the
    /// handlers (actix itself, a middleware) answered without the JSON body.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => ApiError::InvalidToken,
            StatusCode::FORBIDDEN => ApiError::CsrfRejected,
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => ApiError::RateLimited { retry_after_secs: 1 },
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Overloaded,
            s if s.is_server_error() => ApiError::Internal(format!("{s} without a body")),
            _ => ApiError::BadRequest("bad request"),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(cause) => ApiError::DatabaseUnavailable(cause),
            // `users.username` is the only unique column a request can collide on.
            DbError::UniqueViolation => ApiError::UsernameTaken,
            DbError::LastAdmin => ApiError::LastAdmin,
            DbError::Other(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<RuleError> for ApiError {
    fn from(err: RuleError) -> Self {
        ApiError::Validation(err.0)
    }
}

impl From<HashError> for ApiError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Overloaded => ApiError::Overloaded,
            HashError::Failed(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<Limited> for ApiError {
    fn from(limited: Limited) -> Self {
        ApiError::RateLimited { retry_after_secs: limited.retry_after_secs }
    }
}

impl From<LimitError> for ApiError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => limited.into(),
            LimitError::Database(err) => err.into(),
        }
    }
}

/// Why a token failed is for the log, never for the client.
impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        log::debug!("access token rejected: {err}");
        ApiError::InvalidToken
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(format!("blocking pool: {err}"))
    }
}
