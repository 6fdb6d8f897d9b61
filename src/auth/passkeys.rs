//! Passkeys as accounts use them: registered by a signed-in user, listed, removed, and a
//! sign-in without a password (the part of [`Sessions`] that needs `auth::webauthn`).
//!
//! Each ceremony's state lives in the database (`db::passkeys`), used once by a
//! conditional delete, so that any instance can finish a ceremony another began and no
//! answer is accepted twice; a use of a passkey moves its counter on only forwards.

use chrono::NaiveDateTime;
use uuid::Uuid;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::error::{Error, Result};
use super::sessions::{Caller, Client, Issued, PasswordUpdate, Sessions};
use super::tokens::Amr;
use super::webauthn::{FLOW_TTL_SECS, PASSKEYS_PER_USER, PasskeyCore, valid_name};
use crate::db::models::{DbUuid, User};
use crate::db::passkeys::{Added, Flow, FlowKind, Flows, PasskeyRecord, PasskeyUse};

/// A ceremony begun: its id, for the answer, and the options for the client.
pub struct FlowStart {
    pub flow_id: Uuid,
    pub public_key: serde_json::Value,
}

/// A passkey as its user sees it listed.
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

impl From<&PasskeyRecord> for PasskeyInfo {
    fn from(record: &PasskeyRecord) -> Self {
        let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().naive_utc();
        Self {
            id: record.id.0,
            name: record.name.clone(),
            created_at: time(record.created_at_ms),
            last_used_at: record.last_used_at_ms.map(time),
        }
    }
}

/// Any refusal of a ceremony, logged with its reason; the client learns no more.
fn refused(user_id: Option<Uuid>, reason: impl std::fmt::Display) -> Error {
    match user_id {
        Some(user_id) => log::info!("passkey refused user_id={user_id}: {reason}"),
        None => log::info!("passkey refused: {reason}"),
    }
    Error::InvalidPasskey
}

impl Sessions {
    fn passkey_core(&self) -> Result<&PasskeyCore> {
        self.passkeys.as_ref().ok_or(Error::NotFound)
    }

    /// Begins a registration for the caller.
    pub async fn passkey_registration_options(&self, caller: &Caller) -> Result<FlowStart> {
        let core = self.passkey_core()?;
        let user_id = caller.account.id;
        let registered = self.pool.read(move |conn| PasskeyRecord::list(conn, user_id)).await?;
        if registered.len() as i64 >= PASSKEYS_PER_USER {
            return Err(Error::PasskeyLimit);
        }
        let credential_ids: Vec<String> = registered.into_iter().map(|p| p.credential_id).collect();
        let started = core
            .start_registration(user_id, &caller.account.username, &credential_ids)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let flow = Flow { user_id: Some(user_id), state: started.state };
        let flow_id = self.begin_flow(FlowKind::Register, flow).await?;
        Ok(FlowStart { flow_id, public_key: started.public_key })
    }

    /// Finishes the caller's registration: the passkey is theirs.
    pub async fn register_passkey(
        &self,
        caller: &Caller,
        flow_id: Uuid,
        answer: &RegisterPublicKeyCredential,
        name: Option<&str>,
    ) -> Result<PasskeyInfo> {
        let core = self.passkey_core()?;
        let user_id = caller.account.id;
        let name = match name {
            Some(name) => valid_name(name).ok_or_else(|| {
                Error::Validation("name must be 1 to 64 characters, without control characters".into())
            })?,
            None => "Passkey".to_owned(),
        };
        let flow = self.use_flow(FlowKind::Register, flow_id).await?;
        if flow.user_id != Some(user_id) {
            return Err(refused(Some(user_id), "a registration begun by another user"));
        }
        let registered =
            core.finish_registration(&flow.state, answer).map_err(|e| refused(Some(user_id), e))?;
        let record = PasskeyRecord {
            id: DbUuid(Uuid::new_v4()),
            user_id: DbUuid(user_id),
            credential_id: registered.credential_id,
            name,
            credential: registered.credential,
            sign_count: registered.sign_count,
            backup_eligible: registered.backup_eligible,
            backup_state: registered.backup_state,
            created_at_ms: self.clock.now().timestamp_millis(),
            last_used_at_ms: None,
        };
        let kept = record.clone();
        let added = self
            .pool
            .write(move |conn| {
                conn.transaction(|conn| match User::lock(conn, user_id)? {
                    Some(_) => PasskeyRecord::add(conn, &kept, PASSKEYS_PER_USER).map(Some),
                    None => Ok(None),
                })
            })
            .await?;
        match added {
            Some(Added::Added) => {}
            Some(Added::LimitReached) => return Err(Error::PasskeyLimit),
            Some(Added::Taken) => return Err(Error::PasskeyExists),
            // Deleted meanwhile: the caller's token is worth nothing now.
            None => return Err(Error::InvalidToken),
        }
        log::info!("passkey added user_id={user_id} passkey_id={}", record.id.0);
        Ok(PasskeyInfo::from(&record))
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>> {
        self.passkey_core()?;
        let user_id = caller.account.id;
        let records = self.pool.read(move |conn| PasskeyRecord::list(conn, user_id)).await?;
        Ok(records.iter().map(PasskeyInfo::from).collect())
    }

    /// Removes one of the caller's passkeys.
    pub async fn remove_passkey(&self, caller: &Caller, id: Uuid) -> Result<()> {
        self.passkey_core()?;
        let user_id = caller.account.id;
        if !self.pool.write(move |conn| PasskeyRecord::remove(conn, user_id, id)).await? {
            return Err(Error::NotFound);
        }
        log::info!("passkey removed user_id={user_id} passkey_id={id}");
        Ok(())
    }

    /// Begins a sign-in with a passkey; no username is needed. Counted as a login attempt
    /// of the client's address, since each keeps a row until it expires.
    pub async fn passkey_login_options(&self, client: &Client) -> Result<FlowStart> {
        let core = self.passkey_core()?;
        self.limits.attempt(client.ip).await?;
        let started = core.start_login().map_err(|e| Error::Internal(e.to_string()))?;
        let flow_id = self.begin_flow(FlowKind::Login, Flow { user_id: None, state: started.state }).await?;
        Ok(FlowStart { flow_id, public_key: started.public_key })
    }

    /// Finishes a sign-in: a new session of the passkey's user.
    pub async fn log_in_with_passkey(
        &self,
        flow_id: Uuid,
        answer: &PublicKeyCredential,
        client: Client,
    ) -> Result<Issued> {
        let core = self.passkey_core()?;
        let flow = self.use_flow(FlowKind::Login, flow_id).await?;
        let claimed = core.claimed(answer).map_err(|e| refused(None, e))?;
        let user_id = claimed.user_id;
        let (record, user) = self
            .pool
            .read(move |conn| {
                let Some(record) = PasskeyRecord::find_credential(conn, user_id, &claimed.credential_id)?
                else {
                    return Ok(None);
                };
                Ok(User::find(conn, user_id)?.map(|user| (record, user)))
            })
            .await?
            .ok_or_else(|| refused(Some(user_id), "an unknown credential"))?;
        let verified = core
            .finish_login(&flow.state, answer, &record.credential)
            .map_err(|e| refused(Some(user_id), e))?;
        if !verified.user_verified {
            return Err(refused(Some(user_id), "the authenticator did not verify the user"));
        }
        self.admit(&user).await?;
        let passkey_id = record.id.0;
        let used = PasskeyUse {
            credential: verified.credential,
            sign_count: verified.sign_count,
            backup_eligible: verified.backup_eligible,
            backup_state: verified.backup_state,
            at_ms: self.clock.now().timestamp_millis(),
        };
        if !self.pool.write(move |conn| PasskeyRecord::record_use(conn, passkey_id, &used)).await? {
            return Err(refused(Some(user_id), "the sign counter did not move forwards"));
        }
        let issued = self
            .start_session(user, PasswordUpdate::Keep, &client, Amr::Passkey)
            .await?
            .ok_or_else(|| refused(Some(user_id), "the account changed during the sign-in"))?;
        log::info!("login with a passkey user_id={user_id} passkey_id={passkey_id}");
        Ok(issued)
    }

    async fn begin_flow(&self, kind: FlowKind, flow: Flow) -> Result<Uuid> {
        let id = Uuid::new_v4();
        let now_ms = self.clock.now().timestamp_millis();
        let expires_at_ms = now_ms + FLOW_TTL_SECS * 1000;
        self.pool.write(move |conn| Flows::create(conn, id, kind, &flow, now_ms, expires_at_ms)).await?;
        Ok(id)
    }

    /// The ceremony, used up: unknown, expired, of the other kind or used already, it is
    /// refused.
    async fn use_flow(&self, kind: FlowKind, id: Uuid) -> Result<Flow> {
        let now_ms = self.clock.now().timestamp_millis();
        self.pool
            .write(move |conn| Flows::consume(conn, id, kind, now_ms))
            .await?
            .ok_or_else(|| refused(None, "an unknown, used or expired flow"))
    }
}
