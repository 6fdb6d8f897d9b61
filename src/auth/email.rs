//! Email verification and change: the part of [`Sessions`] that confirms addresses by mail.
//!
//! An address counts as verified once a link mailed to it is used (or a reset link, or an
//! administrator says so). A change of address is a verification of the new one: the
//! account keeps its old address until the link is used, and the old address is told at
//! once. Every link is a token of the one `email_verify` purpose, so a newer request
//! replaces the link of an older one, and a link sets the address it was mailed to.

use secrecy::SecretString;
use uuid::Uuid;

use super::error::{Error, Result};
use super::rules::validate_email;
use super::sessions::{Caller, Client, Sessions};
use crate::config::EmailVerification;
use crate::db::accounts::Account;
use crate::db::mail::{MailTokens, Purpose};
use crate::db::models::User;
use crate::mail::{Letter, MailToken, Template, TokenLetter};

/// What a verification link's use came to.
enum Used {
    Verified(Account),
    Disabled,
    Invalid,
}

impl Sessions {
    /// Whether a login needs a verified address (`EMAIL_VERIFICATION=required`).
    pub(super) fn verification_required(&self) -> bool {
        self.mail.as_ref().is_some_and(|mail| mail.settings.verification == EmailVerification::Required)
    }

    /// Mails the caller's address a new verification link, unless it is verified already
    /// or had one within the cooldown. An account without an address has nothing to verify.
    pub async fn resend_verification(&self, caller: &Caller, client: Client) -> Result<()> {
        self.mail()?;
        self.limits.attempt(client.ip).await?;
        if caller.account.email.is_none() {
            return Err(Error::Validation("the account has no email address to verify".into()));
        }
        self.mail_verification(caller.account.id).await
    }

    /// Mails the user's address a verification link if it is unverified, cooldown
    /// permitting: what a refused login does under `EMAIL_VERIFICATION=required`.
    pub(super) async fn mail_verification(&self, user_id: Uuid) -> Result<()> {
        let mail = self.mail()?;
        let mailer = mail.mailer.clone();
        let now_ms = self.clock.now().timestamp_millis();
        let queued = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| match User::lock(conn, user_id)? {
                    Some(user) => mailer.queue_verification(conn, &user, now_ms),
                    None => Ok(false),
                })
            })
            .await?;
        if queued {
            mail.wake.notify_one();
            log::info!("verification mail queued user_id={user_id}");
        }
        Ok(())
    }

    /// Asks to change the caller's address: a verification link goes to the new one and a
    /// notice to the old one; the address changes only when the link is used.
    pub async fn request_email_change(
        &self,
        caller: &Caller,
        email: &str,
        current_password: SecretString,
        client: Client,
    ) -> Result<()> {
        let mail = self.mail()?;
        self.limits.attempt(client.ip).await?;
        let email = validate_email(Some(email))?.unwrap_or_default();
        // The current row, not the cached one: its password hash is what must match.
        let user_id = caller.account.id;
        let user = self.pool.read(move |conn| User::find(conn, user_id)).await?.ok_or(Error::InvalidToken)?;
        if !self.passwords.verify(current_password, Some(user.password_hash.clone())).await?.matches() {
            log::info!("email change refused user_id={user_id}");
            return Err(Error::InvalidCredentials);
        }
        let mailer = mail.mailer.clone();
        let now_ms = self.clock.now().timestamp_millis();
        let queued = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| {
                    let Some(user) = User::lock(conn, user_id)? else { return Ok(false) };
                    let letter = TokenLetter {
                        template: Template::EmailVerify,
                        user_id,
                        username: user.username.clone(),
                        to: email.clone(),
                    };
                    if !mailer.queue_with_token(conn, letter, now_ms)? {
                        return Ok(false);
                    }
                    if let Some(old) = user.email.filter(|old| *old != email) {
                        let notice = Letter {
                            template: Template::EmailChangeNotice,
                            to: old,
                            username: user.username,
                            nonce: None,
                            new_email: Some(email),
                        };
                        mailer.queue(conn, &notice, now_ms)?;
                    }
                    Ok(true)
                })
            })
            .await?;
        if queued {
            mail.wake.notify_one();
            log::info!("email change requested user_id={user_id}");
        }
        Ok(())
    }

    /// Uses a verification link's token: the address it was mailed to becomes the
    /// account's, verified. Single-use, however many requests present it at once.
    pub async fn verify_email(&self, token: &str) -> Result<Account> {
        self.mail()?;
        let token = MailToken::parse(token).ok_or(Error::InvalidVerificationToken)?;
        let hash = token.hash();
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let now = now.naive_utc();
        let used = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| {
                    let Some(used) = MailTokens::consume(conn, Purpose::EmailVerify, &hash, now_ms)? else {
                        return Ok(Used::Invalid);
                    };
                    let Some(user) = User::lock(conn, used.user_id)? else { return Ok(Used::Invalid) };
                    if user.disabled {
                        return Ok(Used::Disabled);
                    }
                    User::verify_email(conn, &user, &used.email, now)?;
                    Ok(Account::find(conn, used.user_id)?.map_or(Used::Invalid, Used::Verified))
                })
            })
            .await?;
        match used {
            Used::Verified(account) => {
                self.users.evict(account.id);
                log::info!("email verified user_id={}", account.id);
                Ok(account)
            }
            Used::Disabled => Err(Error::AccountDisabled),
            Used::Invalid => Err(Error::InvalidVerificationToken),
        }
    }
}
