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

use crate::auth::Error;

#[derive(thiserror::Error)]
pub enum ApiError {
    /// The core refused or failed.
    #[error(transparent)]
    Core(#[from] Error),
    /// The body is not JSON at all (syntax error, truncated).
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A request the server will not interpret (e.g. two `Authorization` headers).
    #[error("{0}")]
    BadRequest(&'static str),
    /// Well-formed JSON (or a query string) of the wrong shape: a missing field, a wrong
    /// type. The core's rules answer [`Error::Validation`], with the same code.
    #[error("{0}")]
    Validation(String),
    #[error("missing bearer token")]
    MissingToken,
    /// Cookie mode: the refresh cookie came without an allowed `Origin` and the CSRF header.
    #[error("cross-site request refused")]
    CsrfRejected,
    /// A path no route takes.
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
}

impl ApiError {
    pub const INVALID_TOKEN: ApiError = ApiError::Core(Error::InvalidToken);

    pub fn internal(cause: impl Into<String>) -> Self {
        ApiError::Core(Error::Internal(cause.into()))
    }
}

/// Names the variant and its code only: the messages of client errors can quote request
/// input (a password sent as a number, say), and actix logs `Debug` of every error.
impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Core(Error::Internal(cause) | Error::Unavailable(cause)) => {
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
            ApiError::Validation(_) | ApiError::Core(Error::Validation(_)) => "validation_failed",
            ApiError::MissingToken => "missing_token",
            ApiError::CsrfRejected => "csrf_rejected",
            ApiError::NotFound | ApiError::Core(Error::NotFound) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Core(Error::UsernameTaken) => "username_taken",
            ApiError::Core(Error::LastAdmin) => "last_admin",
            ApiError::Core(Error::InvalidCredentials | Error::WrongCurrentPassword) => "invalid_credentials",
            ApiError::Core(Error::InvalidToken) => "invalid_token",
            ApiError::Core(Error::InvalidRefreshToken) => "invalid_refresh_token",
            ApiError::Core(Error::InvalidResetToken) => "invalid_reset_token",
            ApiError::Core(Error::InvalidVerificationToken) => "invalid_verification_token",
            ApiError::Core(Error::EmailNotVerified) => "email_not_verified",
            ApiError::Core(Error::InvalidMfaToken) => "invalid_mfa_token",
            ApiError::Core(Error::InvalidMfaCode) => "invalid_mfa_code",
            ApiError::Core(Error::MfaRequired) => "mfa_required",
            ApiError::Core(Error::InvalidPasskey) => "invalid_passkey",
            ApiError::Core(Error::PasskeyLimit) => "passkey_limit",
            ApiError::Core(Error::PasskeyExists) => "passkey_exists",
            ApiError::Core(Error::AccountDisabled) => "account_disabled",
            ApiError::Core(Error::Forbidden) => "forbidden",
            ApiError::Core(Error::RateLimited { .. }) => "rate_limited",
            ApiError::Core(Error::Overloaded) => "overloaded",
            ApiError::Core(Error::Unavailable(_)) => "database_unavailable",
            ApiError::Core(Error::Internal(_)) => "internal_error",
        }
    }

    /// What the client is told: never the internal cause.
    fn public_message(&self) -> String {
        match self {
            ApiError::Core(Error::Unavailable(_)) => "database unavailable".into(),
            ApiError::Core(Error::Internal(_)) => "internal server error".into(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MissingToken => StatusCode::UNAUTHORIZED,
            ApiError::CsrfRejected => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Core(e) => match e {
                Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
                Error::UsernameTaken | Error::LastAdmin | Error::PasskeyLimit | Error::PasskeyExists => {
                    StatusCode::CONFLICT
                }
                Error::InvalidCredentials
                | Error::WrongCurrentPassword
                | Error::InvalidToken
                | Error::InvalidRefreshToken
                | Error::InvalidResetToken
                | Error::InvalidVerificationToken
                | Error::InvalidMfaToken
                | Error::InvalidMfaCode
                | Error::InvalidPasskey => StatusCode::UNAUTHORIZED,
                Error::AccountDisabled | Error::EmailNotVerified | Error::MfaRequired | Error::Forbidden => {
                    StatusCode::FORBIDDEN
                }
                Error::NotFound => StatusCode::NOT_FOUND,
                Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                Error::Overloaded | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Core(Error::Internal(cause)) => log::error!("internal error: {cause}"),
            ApiError::Core(Error::Unavailable(cause)) => log::error!("database unavailable: {cause}"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            // RFC 6750 §3: a challenge on every 401 of a bearer-protected resource, with
            // `error="invalid_token"` only when a token was actually presented.
            ApiError::MissingToken => {
                response.insert_header((header::WWW_AUTHENTICATE, MISSING_TOKEN_CHALLENGE));
            }
            ApiError::Core(Error::InvalidToken) => {
                response.insert_header((header::WWW_AUTHENTICATE, INVALID_TOKEN_CHALLENGE));
            }
            ApiError::Core(Error::RateLimited { retry_after_secs }) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            }
            ApiError::Core(Error::Overloaded | Error::Unavailable(_)) => {
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
            StatusCode::UNAUTHORIZED => ApiError::INVALID_TOKEN,
            StatusCode::FORBIDDEN => ApiError::CsrfRejected,
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => Error::RateLimited { retry_after_secs: 1 }.into(),
            StatusCode::SERVICE_UNAVAILABLE => Error::Overloaded.into(),
            s if s.is_server_error() => ApiError::internal(format!("{s} without a body")),
            _ => ApiError::BadRequest("bad request"),
        }
    }
}
