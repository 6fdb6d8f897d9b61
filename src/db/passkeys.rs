//! What passkeys keep in the database: each user's credentials (webauthn-rs's record as
//! JSON, with its sign counter and backup flags as columns too), and the registrations and
//! sign-ins in progress, single-use. Times are unix milliseconds.

use diesel::prelude::*;
use uuid::Uuid;

use super::DbError;
use super::manager::{DbConnection, WriteConn};
use super::models::DbUuid;
use super::schema::{passkey_flows, passkeys};

/// A registered passkey, as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys)]
pub struct PasskeyRecord {
    pub id: DbUuid,
    pub user_id: DbUuid,
    pub credential_id: String,
    pub name: String,
    /// webauthn-rs's `Passkey`, serialised.
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// What a use of a passkey moves on.
pub struct PasskeyUse {
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub at_ms: i64,
}

/// Whether [`PasskeyRecord::add`] kept the passkey.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    Added,
    /// The user has as many as they may.
    LimitReached,
    /// The credential is registered already (to this user or another).
    Taken,
}

impl PasskeyRecord {
    /// The user's passkeys, oldest first.
    pub fn list(conn: &mut DbConnection, user_id: Uuid) -> Result<Vec<PasskeyRecord>, DbError> {
        Ok(passkeys::table
            .filter(passkeys::user_id.eq(DbUuid(user_id)))
            .order((passkeys::created_at_ms.asc(), passkeys::id.asc()))
            .select(PasskeyRecord::as_select())
            .load(conn)?)
    }

    /// The passkey of this credential id (base64url), if it is the user's.
    pub fn find_credential(
        conn: &mut DbConnection,
        user_id: Uuid,
        credential_id: &str,
    ) -> Result<Option<PasskeyRecord>, DbError> {
        Ok(passkeys::table
            .filter(passkeys::credential_id.eq(credential_id))
            .filter(passkeys::user_id.eq(DbUuid(user_id)))
            .select(PasskeyRecord::as_select())
            .first(conn)
            .optional()?)
    }

    /// Keeps a new passkey, unless its owner has `limit` already or the credential is
    /// registered. On the owner's row as locked, so that parallel registrations count
    /// one after the other.
    pub fn add(conn: &mut WriteConn, record: &PasskeyRecord, limit: i64) -> Result<Added, DbError> {
        let owned: i64 =
            passkeys::table.filter(passkeys::user_id.eq(record.user_id)).count().get_result(conn.conn())?;
        if owned >= limit {
            return Ok(Added::LimitReached);
        }
        let taken = passkeys::table.filter(passkeys::credential_id.eq(&record.credential_id));
        if diesel::select(diesel::dsl::exists(taken)).get_result(conn.conn())? {
            return Ok(Added::Taken);
        }
        let inserted = diesel::insert_into(passkeys::table)
            .values((
                passkeys::id.eq(record.id),
                passkeys::user_id.eq(record.user_id),
                passkeys::credential_id.eq(&record.credential_id),
                passkeys::name.eq(&record.name),
                passkeys::credential.eq(&record.credential),
                passkeys::sign_count.eq(record.sign_count),
                passkeys::backup_eligible.eq(record.backup_eligible),
                passkeys::backup_state.eq(record.backup_state),
                passkeys::created_at_ms.eq(record.created_at_ms),
                passkeys::last_used_at_ms.eq(record.last_used_at_ms),
            ))
            .execute(conn.conn());
        match inserted {
            Ok(_) => Ok(Added::Added),
            // Registered by another user's request since the check above.
            Err(e) => match DbError::from(e) {
                DbError::UniqueViolation => Ok(Added::Taken),
                other => Err(other),
            },
        }
    }

    /// Records a use: the counter moves on only forwards (an authenticator without a
    /// counter keeps 0), so of two uses with one counter value only the first holds.
    /// Whether it did.
    pub fn record_use(conn: &mut WriteConn, id: Uuid, used: &PasskeyUse) -> Result<bool, DbError> {
        let row = passkeys::table.find(DbUuid(id));
        let moved_on = (
            passkeys::credential.eq(&used.credential),
            passkeys::sign_count.eq(used.sign_count),
            passkeys::backup_eligible.eq(used.backup_eligible),
            passkeys::backup_state.eq(used.backup_state),
            passkeys::last_used_at_ms.eq(Some(used.at_ms)),
        );
        let updated = if used.sign_count == 0 {
            diesel::update(row.filter(passkeys::sign_count.eq(0))).set(moved_on).execute(conn.conn())?
        } else {
            diesel::update(row.filter(passkeys::sign_count.lt(used.sign_count)))
                .set(moved_on)
                .execute(conn.conn())?
        };
        Ok(updated == 1)
    }

    /// Removes one of the user's passkeys; whether there was one.
    pub fn remove(conn: &mut WriteConn, user_id: Uuid, id: Uuid) -> Result<bool, DbError> {
        let row = passkeys::table.find(DbUuid(id)).filter(passkeys::user_id.eq(DbUuid(user_id)));
        Ok(diesel::delete(row).execute(conn.conn())? == 1)
    }
}

/// What a ceremony in progress is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    /// A registration, by a signed-in user.
    Register,
    /// A sign-in, of whoever's passkey answers.
    Login,
}

impl FlowKind {
    fn as_str(self) -> &'static str {
        match self {
            FlowKind::Register => "register",
            FlowKind::Login => "login",
        }
    }
}

/// A ceremony in progress, as used.
pub struct Flow {
    /// The registering user; `None` for a sign-in.
    pub user_id: Option<Uuid>,
    /// webauthn-rs's state, serialised.
    pub state: String,
}

pub struct Flows;

impl Flows {
    /// Keeps a new ceremony's state; expired ones go in passing.
    pub fn create(
        conn: &mut WriteConn,
        id: Uuid,
        kind: FlowKind,
        flow: &Flow,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), DbError> {
        diesel::delete(passkey_flows::table.filter(passkey_flows::expires_at_ms.le(now_ms)))
            .execute(conn.conn())?;
        diesel::insert_into(passkey_flows::table)
            .values((
                passkey_flows::id.eq(DbUuid(id)),
                passkey_flows::kind.eq(kind.as_str()),
                passkey_flows::user_id.eq(flow.user_id.map(DbUuid)),
                passkey_flows::state.eq(&flow.state),
                passkey_flows::expires_at_ms.eq(expires_at_ms),
            ))
            .execute(conn.conn())?;
        Ok(())
    }

    /// Uses the ceremony, if it is live and of `kind`: once, however many use it at once.
    pub fn consume(
        conn: &mut WriteConn,
        id: Uuid,
        kind: FlowKind,
        now_ms: i64,
    ) -> Result<Option<Flow>, DbError> {
        let live = passkey_flows::table
            .find(DbUuid(id))
            .filter(passkey_flows::kind.eq(kind.as_str()))
            .filter(passkey_flows::expires_at_ms.gt(now_ms));
        let row: Option<(Option<DbUuid>, String)> = diesel::delete(live)
            .returning((passkey_flows::user_id, passkey_flows::state))
            .get_result(conn.conn())
            .optional()?;
        Ok(row.map(|(user_id, state)| Flow { user_id: user_id.map(|id| id.0), state }))
    }
}
