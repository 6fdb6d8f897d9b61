//! What can go wrong talking to the database, in the terms callers decide on.

use diesel::result::{DatabaseErrorKind, Error};

#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The database went away, or stayed locked past the busy timeout: worth a retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique index refused the write.
    #[error("unique constraint violated")]
    UniqueViolation,
    /// The change would leave no enabled admin (a rule kept like a constraint, inside the
    /// change's transaction, which it rolls back).
    #[error("the change would leave no enabled admin")]
    LastAdmin,
    #[error("database: {0}")]
    Other(String),
}

impl From<Error> for DbError {
    fn from(err: Error) -> Self {
        match err {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => DbError::Unavailable(info.message().to_owned()),
            Error::DatabaseError(_, info) if info.message().contains("database is locked") => {
                DbError::Unavailable(info.message().to_owned())
            }
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => DbError::UniqueViolation,
            other => DbError::Other(other.to_string()),
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(err: r2d2::Error) -> Self {
        DbError::Unavailable(err.to_string())
    }
}
