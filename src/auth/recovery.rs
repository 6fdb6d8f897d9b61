//! Password reset by mail (Django's `PasswordResetView`, as a service): the part of
//! [`Sessions`] that needs mail.
//!
//! A request for a reset answers the same, in about the same time, whether the address is
//! known or not: both take the address's cooldown in one write, and only a known, enabled
//! account also gets a token and a letter queued in that write. The token is used by one
//! conditional write, so of parallel uses exactly one wins; using it sets the password,
//! ends every session, verifies the address and clears the login lockout, all or nothing.

use secrecy::SecretString;

use super::error::{Error, Result};
use super::password::normalize;
use super::refresh::sha256_hex;
use super::rules::validate_email;
use super::sessions::{Client, PasswordUpdate, Sessions, SignIn};
use super::tokens::Amr;
use crate::db::accounts::{Account, AccountChange};
use crate::db::mail::{MailTokens, Purpose, address_allowed, enabled_accounts_with_email};
use crate::db::models::User;
use crate::mail::{MailCore, MailToken, Template, TokenLetter};

impl Sessions {
    /// Whether mail is on (`SMTP_URL`); its endpoints are not found without it.
    pub fn mail_enabled(&self) -> bool {
        self.mail.is_some()
    }

    pub(super) fn mail(&self) -> Result<&MailCore> {
        self.mail.as_ref().ok_or(Error::NotFound)
    }

    /// Mails a reset link to every enabled account with this address, unless the address
    /// or the account had one within the cooldown. Answers alike for unknown addresses.
    pub async fn forgot_password(&self, email: &str, client: Client) -> Result<()> {
        let mail = self.mail()?;
        self.limits.attempt(client.ip).await?;
        let email = validate_email(Some(email))?.unwrap_or_default();
        let now_ms = self.clock.now().timestamp_millis();
        let cooldown_ms = mail.mailer.cooldown_ms();
        let address_hash = sha256_hex(email.as_bytes());
        let mailer = mail.mailer.clone();
        // Looked up beside the writer, which then only takes the cooldown (and, for each
        // account, issues its token); an account made meanwhile waits for the next request.
        let lookup = email.clone();
        let accounts = self.pool.read(move |conn| enabled_accounts_with_email(conn, &lookup)).await?;
        let queued = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| {
                    if !address_allowed(conn, &address_hash, now_ms, cooldown_ms)? {
                        return Ok(0);
                    }
                    let mut queued = 0;
                    for (user_id, username) in accounts {
                        // Taken in turns with the account's other changes (a reset in
                        // progress, a disable), so that the cooldown holds under races.
                        if User::lock(conn, user_id)?.is_none_or(|user| user.disabled) {
                            continue;
                        }
                        let letter = TokenLetter {
                            template: Template::PasswordReset,
                            user_id,
                            username,
                            to: email.clone(),
                        };
                        if mailer.queue_with_token(conn, letter, now_ms)? {
                            log::info!("password reset requested user_id={user_id}");
                            queued += 1;
                        }
                    }
                    Ok(queued)
                })
            })
            .await?;
        if queued > 0 {
            mail.wake.notify_one();
        }
        Ok(())
    }

    /// Sets a new password with a reset token, and starts a new session: every session and
    /// access token of the account from before is revoked, the address counts as verified,
    /// and the username's login lockout is cleared. A password the rules refuse is refused
    /// before the token is touched, which stays usable.
    /// An account with a second factor gets no session from a reset, only the login's
    /// second step: the mail proves the address, not the factor.
    pub async fn reset_password(&self, token: &str, new: SecretString, client: Client) -> Result<SignIn> {
        self.mail()?;
        let token = MailToken::parse(token).ok_or(Error::InvalidResetToken)?;
        let new = normalize(&new)?;
        let new_hash = self.passwords.hash(new).await?;
        let now_ms = self.clock.now().timestamp_millis();
        let token_hash = token.hash();
        let lookup = token_hash.clone();
        let live = self
            .pool
            .read(move |conn| MailTokens::live(conn, Purpose::PasswordReset, &lookup, now_ms))
            .await?;
        let user_id = live.ok_or(Error::InvalidResetToken)?;
        let user =
            self.pool.read(move |conn| User::find(conn, user_id)).await?.ok_or(Error::InvalidResetToken)?;
        if user.disabled {
            log::info!("password reset refused, account disabled user_id={user_id}");
            return Err(Error::AccountDisabled);
        }
        let username = user.username.clone();
        let signed_in = if user.mfa_enabled {
            let now = self.clock.now().naive_utc();
            let change = AccountChange { password_hash: Some(new_hash), ..AccountChange::default() };
            let reset = self
                .pool
                .write(move |conn| {
                    conn.transaction(|conn| {
                        let Some(user) = User::lock(conn, user_id)? else { return Ok(false) };
                        Ok(MailTokens::use_reset(conn, &user, &token_hash, now_ms, now)?
                            && Account::update(conn, user_id, change, now)?.is_some())
                    })
                })
                .await?;
            self.users.evict(user_id);
            if !reset {
                return Err(Error::InvalidResetToken);
            }
            self.mfa_challenge(user_id).await?
        } else {
            // The token is used in the session's transaction: a token used by a parallel
            // request meanwhile starts nothing.
            let reset = PasswordUpdate::Reset { new_hash, token_hash, now_ms };
            let issued = self
                .start_session(user, reset, &client, Amr::Password)
                .await?
                .ok_or(Error::InvalidResetToken)?;
            SignIn::Session(Box::new(issued))
        };
        self.limits.clear_lockout(&username).await?;
        log::info!("password reset user_id={user_id}");
        Ok(signed_in)
    }
}
