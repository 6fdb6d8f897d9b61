//! The user object of the contract, as the API and `tollgate user list --json` show it:
//! never a hash of any kind.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::accounts::Account;

/// The public view of a user.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: Uuid,
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "alice@example.com")]
    email: Option<String>,
    /// Whether a link mailed to `email` was used (or a reset link, or an administrator
    /// said so).
    email_verified: bool,
    /// A second factor (TOTP) is on: a login takes two steps.
    mfa_enabled: bool,
    /// Sorted.
    roles: Vec<String>,
    /// RFC 3339, UTC, whole seconds.
    #[schema(format = DateTime, example = "2026-11-24T22:13:15Z")]
    created_at: String,
}

impl From<&Account> for UserView {
    fn from(account: &Account) -> Self {
        Self {
            id: account.id,
            username: account.username.clone(),
            email: account.email.clone(),
            email_verified: account.email_verified,
            mfa_enabled: account.mfa_enabled,
            roles: account.roles.clone(),
            created_at: rfc3339(account.created_at),
        }
    }
}

/// A user as administrators see it: the public view plus whether it is disabled.
#[derive(Serialize, ToSchema)]
pub struct AdminUserView {
    #[serde(flatten)]
    user: UserView,
    disabled: bool,
}

impl From<&Account> for AdminUserView {
    fn from(account: &Account) -> Self {
        Self { user: UserView::from(account), disabled: account.disabled }
    }
}

/// A time as the API shows every time: RFC 3339, UTC, whole seconds.
pub fn rfc3339(at: chrono::NaiveDateTime) -> String {
    at.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
