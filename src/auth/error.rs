//! What the core answers when it refuses or fails, in its own terms; the HTTP layer
//! (`http::error`) maps each to a status and a code, in one place.

use crate::auth::password::{HashError, PasswordRuleError};
use crate::auth::rate_limit::{LimitError, Limited};
use crate::auth::rules::RuleError;
use crate::auth::tokens::TokenError;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that breaks a rule (a username, an email, a password, a role, a page size).
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
    /// A password change whose current password is wrong: the caller is known, so the
    /// message can say which password failed.
    #[error("current password is incorrect")]
    WrongCurrentPassword,
    /// An access token that is not live: malformed, forged, expired, revoked, or of a
    /// deleted or disabled account.
    #[error("invalid or expired access token")]
    InvalidToken,
    #[error("invalid or expired refresh token")]
    InvalidRefreshToken,
    /// A password-reset token that is unknown, used, replaced or expired.
    #[error("invalid, used or expired password reset token")]
    InvalidResetToken,
    /// An email-verification token that is unknown, used, replaced or expired.
    #[error("invalid, used or expired email verification token")]
    InvalidVerificationToken,
    /// The password was right, but the account's address is not verified
    /// (`EMAIL_VERIFICATION=required`); a new link was mailed, cooldown permitting.
    #[error("this account's email address is not verified: follow the link mailed to it")]
    EmailNotVerified,
    /// A second step's token that is unknown, used, expired or dead after five wrong codes.
    #[error("invalid or expired mfa_token: log in again")]
    InvalidMfaToken,
    /// A TOTP or recovery code that is wrong, malformed or already used.
    #[error("invalid, used or expired code")]
    InvalidMfaCode,
    /// A passkey ceremony's answer that does not hold: a wrong origin, RP id, challenge,
    /// type or signature, a sign counter that went backwards, an unknown credential, a
    /// flow that is unknown, used or expired.
    #[error("invalid passkey or expired passkey flow")]
    InvalidPasskey,
    /// The user has as many passkeys as they may.
    #[error("this account has the most passkeys it may have (10): remove one first")]
    PasskeyLimit,
    /// The credential is registered already.
    #[error("this passkey is registered already")]
    PasskeyExists,
    /// The admin API with a token of a session without a second factor
    /// (`ADMIN_REQUIRE_MFA`).
    #[error("this needs a session signed in with a second factor")]
    MfaRequired,
    /// The password was right, but the account is disabled.
    #[error("this account is disabled")]
    AccountDisabled,
    /// A live token whose account lacks the role the operation needs.
    #[error("this token does not grant access to this resource")]
    Forbidden,
    /// No such account (admin operations).
    #[error("no such resource")]
    NotFound,
    #[error("too many attempts, retry later")]
    RateLimited { retry_after_secs: u64 },
    /// Every password-hashing slot stayed busy for the whole queue timeout.
    #[error("server is busy, retry shortly")]
    Overloaded,
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<DbError> for Error {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(cause) => Error::Unavailable(cause),
            // `users.username` is the only unique column a caller can collide on.
            DbError::UniqueViolation => Error::UsernameTaken,
            DbError::LastAdmin => Error::LastAdmin,
            DbError::Other(cause) => Error::Internal(cause),
        }
    }
}

impl From<RuleError> for Error {
    fn from(err: RuleError) -> Self {
        Error::Validation(err.0)
    }
}

impl From<PasswordRuleError> for Error {
    fn from(err: PasswordRuleError) -> Self {
        Error::Validation(err.to_string())
    }
}

impl From<HashError> for Error {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Overloaded => Error::Overloaded,
            HashError::Failed(cause) => Error::Internal(cause),
        }
    }
}

impl From<Limited> for Error {
    fn from(limited: Limited) -> Self {
        Error::RateLimited { retry_after_secs: limited.retry_after_secs }
    }
}

impl From<LimitError> for Error {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => limited.into(),
            LimitError::Database(err) => err.into(),
        }
    }
}

/// Why a token failed is for the log, never for the client.
impl From<TokenError> for Error {
    fn from(err: TokenError) -> Self {
        log::debug!("access token rejected: {err}");
        Error::InvalidToken
    }
}
