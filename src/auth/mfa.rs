//! The second factor as accounts use it: TOTP set up, confirmed and removed, recovery
//! codes, and the two-step login of an account that has a factor (the part of
//! [`Sessions`] that needs `auth::totp`).
//!
//! Every use of a code, a recovery code or a second step is one conditional write
//! (`db::mfa`), so each is accepted once however many requests present it, and a TOTP code
//! of a time step no later than the last one accepted is refused (replay).

use secrecy::SecretString;
use uuid::Uuid;

use super::error::{Error, Result};
use super::refresh::sha256_hex;
use super::sessions::{Caller, Client, Issued, PasswordUpdate, Sessions, SignIn};
use super::tokens::Amr;
use super::totp::{
    DIGITS, MFA_TOKEN_MAX_FAILURES, MFA_TOKEN_TTL_SECS, MfaChallenge, MfaToken, TotpSetup, matching_step,
    new_recovery_codes, new_secret, normalized, recovery_code_form,
};
use crate::db::mfa::{Challenges, RecoveryCodes, TotpFactor};
use crate::db::models::User;
use crate::db::{DbError, WriteConn};

/// What a code presented proves.
enum Proof {
    /// A TOTP code of this time step.
    Step(i64),
    /// A recovery code, by its hash.
    Recovery(String),
}

impl Sessions {
    /// Starts the second step of a login of `user`, whose password was right.
    pub(super) async fn mfa_challenge(&self, user_id: Uuid) -> Result<SignIn> {
        let token = MfaToken::mint();
        let hash = token.hash();
        let now_ms = self.clock.now().timestamp_millis();
        let expires_at_ms = now_ms + MFA_TOKEN_TTL_SECS * 1000;
        self.pool.write(move |conn| Challenges::create(conn, &hash, user_id, now_ms, expires_at_ms)).await?;
        log::info!("login needs a second factor user_id={user_id}");
        Ok(SignIn::SecondFactor(MfaChallenge { mfa_token: token, expires_in: MFA_TOKEN_TTL_SECS }))
    }

    /// The second step of a login: a TOTP code or a recovery code for the `mfa_token` the
    /// first step answered. A wrong code counts against the token (dead after five) and
    /// against the username's login lockout.
    pub async fn log_in_second_step(&self, mfa_token: &str, code: &str, client: Client) -> Result<Issued> {
        let token = MfaToken::parse(mfa_token).ok_or(Error::InvalidMfaToken)?;
        let hash = token.hash();
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let lookup = hash.clone();
        let challenge = self
            .pool
            .read(move |conn| Challenges::live(conn, &lookup, now_ms))
            .await?
            .ok_or(Error::InvalidMfaToken)?;
        let user_id = challenge.user_id;
        let user =
            self.pool.read(move |conn| User::find(conn, user_id)).await?.ok_or(Error::InvalidMfaToken)?;
        let attempt = self.limits.login_attempt(client.ip, &user.username).await?;
        if user.disabled {
            return Err(Error::AccountDisabled);
        }
        let proof = self.proof(user_id, code, now.timestamp()).await?;
        // The second step is used, and the code with it, in one transaction; a code that
        // does not hold (a recovery code not among those left, a step accepted by a
        // parallel request a moment ago) puts the second step back with one more failure.
        let accepted = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| {
                    let Some(proof) = proof else {
                        Challenges::failed(conn, &hash, MFA_TOKEN_MAX_FAILURES)?;
                        return Ok(Some(false));
                    };
                    let Some(used) = Challenges::consume(conn, &hash, now_ms)? else { return Ok(None) };
                    if prove(conn, user_id, &proof)? {
                        return Ok(Some(true));
                    }
                    if used.failures + 1 < MFA_TOKEN_MAX_FAILURES {
                        Challenges::restore(conn, &hash, &used, used.failures + 1)?;
                    }
                    Ok(Some(false))
                })
            })
            .await?;
        match accepted {
            None => return Err(Error::InvalidMfaToken),
            Some(false) => {
                self.limits.login_failed(&attempt).await?;
                log::info!("second factor refused user_id={user_id}");
                return Err(Error::InvalidMfaCode);
            }
            Some(true) => {}
        }
        let issued = self
            .start_session(user, PasswordUpdate::Keep, &client, Amr::PasswordAndOtp)
            .await?
            .ok_or(Error::InvalidMfaToken)?;
        self.limits.login_succeeded(&attempt).await?;
        log::info!("login with a second factor user_id={user_id}");
        Ok(issued)
    }

    /// Sets up a new TOTP secret for the caller, confirmed by [`Sessions::totp_confirm`];
    /// it replaces one set up before. With a factor active, a valid code of it is needed
    /// too (so a stolen password and session cannot swap the factor).
    pub async fn totp_setup(
        &self,
        caller: &Caller,
        current_password: SecretString,
        code: Option<&str>,
        client: Client,
    ) -> Result<TotpSetup> {
        self.limits.attempt(client.ip).await?;
        let user = self.current_user(caller).await?;
        if !self.passwords.verify(current_password, Some(user.password_hash.clone())).await?.matches() {
            log::info!("TOTP setup refused user_id={}", user.id.0);
            return Err(Error::InvalidCredentials);
        }
        let user_id = user.id.0;
        if user.mfa_enabled {
            let code = code.unwrap_or_default();
            let proof = self.proof(user_id, code, self.clock.unix()).await?.ok_or(Error::InvalidMfaCode)?;
            if !self.pool.write(move |conn| prove(conn, user_id, &proof)).await? {
                return Err(Error::InvalidMfaCode);
            }
        }
        let (secret, encoded) = new_secret();
        let sealed = self.mfa.seal(&secret)?;
        let now_ms = self.clock.now().timestamp_millis();
        self.pool.write(move |conn| TotpFactor::set_pending(conn, user_id, &sealed, now_ms)).await?;
        log::info!("TOTP set up user_id={user_id}");
        Ok(TotpSetup { otpauth_uri: self.mfa.otpauth_uri(&encoded, &user.username), secret: encoded })
    }

    /// Activates the secret set up with a valid code of it: the factor is on, and these
    /// are the recovery codes (shown once).
    pub async fn totp_confirm(&self, caller: &Caller, code: &str) -> Result<Vec<String>> {
        let user_id = caller.account.id;
        let factor = self.pool.read(move |conn| TotpFactor::find(conn, user_id)).await?;
        let pending = factor.and_then(|f| f.pending_secret).ok_or(Error::InvalidMfaCode)?;
        let secret = self.mfa.open(&pending)?;
        let step = matching_step(&secret, code, self.clock.unix(), None).ok_or(Error::InvalidMfaCode)?;
        let (codes, hashes) = new_recovery_codes();
        let now = self.clock.now().naive_utc();
        let confirmed = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| match User::lock(conn, user_id)? {
                    Some(user) => TotpFactor::confirm(conn, &user, &pending, step, &hashes, now),
                    None => Ok(false),
                })
            })
            .await?;
        self.users.evict(user_id);
        if !confirmed {
            return Err(Error::InvalidMfaCode);
        }
        log::info!("TOTP enabled user_id={user_id}");
        Ok(codes)
    }

    /// Removes the caller's factor, with a valid TOTP or recovery code of it.
    pub async fn totp_disable(&self, caller: &Caller, code: &str) -> Result<()> {
        let user_id = caller.account.id;
        let proof = self.proof(user_id, code, self.clock.unix()).await?.ok_or(Error::InvalidMfaCode)?;
        let now = self.clock.now().naive_utc();
        let removed = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| {
                    let Some(user) = User::lock(conn, user_id)? else { return Ok(false) };
                    Ok(prove(conn, user_id, &proof)? && TotpFactor::remove(conn, &user, now)?)
                })
            })
            .await?;
        self.users.evict(user_id);
        if !removed {
            return Err(Error::InvalidMfaCode);
        }
        log::info!("TOTP disabled user_id={user_id}");
        Ok(())
    }

    /// A new set of recovery codes, with a valid TOTP or recovery code; the old set stops
    /// working.
    pub async fn new_recovery_codes(&self, caller: &Caller, code: &str) -> Result<Vec<String>> {
        let user_id = caller.account.id;
        let proof = self.proof(user_id, code, self.clock.unix()).await?.ok_or(Error::InvalidMfaCode)?;
        let (codes, hashes) = new_recovery_codes();
        let replaced = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| {
                    let proved = prove(conn, user_id, &proof)?;
                    if proved {
                        RecoveryCodes::replace(conn, user_id, &hashes)?;
                    }
                    Ok(proved)
                })
            })
            .await?;
        if !replaced {
            return Err(Error::InvalidMfaCode);
        }
        log::info!("recovery codes replaced user_id={user_id}");
        Ok(codes)
    }

    /// The caller's row, not the cached account: its hashes are what must match.
    async fn current_user(&self, caller: &Caller) -> Result<User> {
        let user_id = caller.account.id;
        self.pool.read(move |conn| User::find(conn, user_id)).await?.ok_or(Error::InvalidToken)
    }

    /// What `code` would prove for the user's confirmed factor at `now`, if anything: a
    /// TOTP code of a step after the last one accepted, or the form of a recovery code.
    /// Nothing is used yet ([`prove`] does).
    async fn proof(&self, user_id: Uuid, code: &str, now: i64) -> Result<Option<Proof>> {
        let factor = self.pool.read(move |conn| TotpFactor::find(conn, user_id)).await?;
        let Some((sealed, last_step)) = factor.and_then(|f| Some((f.secret?, f.last_step))) else {
            return Ok(None);
        };
        let code = normalized(code);
        if code.len() == DIGITS {
            let secret = self.mfa.open(&sealed)?;
            return Ok(matching_step(&secret, &code, now, last_step).map(Proof::Step));
        }
        Ok(recovery_code_form(&code).then(|| Proof::Recovery(sha256_hex(code.as_bytes()))))
    }
}

/// Uses what a code proves: the step accepted (refused if one as late was accepted
/// meanwhile), or the recovery code gone; whether it held.
fn prove(conn: &mut WriteConn, user_id: Uuid, proof: &Proof) -> Result<bool, DbError> {
    match proof {
        Proof::Step(step) => TotpFactor::accept_step(conn, user_id, *step),
        Proof::Recovery(hash) => RecoveryCodes::use_code(conn, user_id, hash),
    }
}
