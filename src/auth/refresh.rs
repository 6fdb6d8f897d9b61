//! Refresh tokens and their rotation.
//!
//! A refresh token is `tgr_` + 43 base64url characters (256 random bits). Only its SHA-256
//! is stored. Each rotation's successor is HMAC(secret, old token), so a client that lost
//! the response can retry the old token within the grace window and get the very same
//! successor back, without any raw token at rest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDateTime, TimeDelta};
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::RefreshSettings;
use crate::db::accounts::roles_of;
use crate::db::models::{LiveRotation, Rotated};
use crate::db::sessions::{Chain, SessionStore};
use crate::db::{DbError, Pool, WriteConn};

pub const REFRESH_TOKEN_PREFIX: &str = "tgr_";
const TOKEN_BYTES: usize = 32;
const ENCODED_LEN: usize = REFRESH_TOKEN_PREFIX.len() + 43;
/// How many generations back a replayed token is still recognised as one we issued.
const ANCESTRY_DEPTH: usize = 8;

/// A syntactically valid refresh token. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

impl RefreshToken {
    pub fn mint() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        Self(format!("{REFRESH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Accepts exactly the form `mint` produces; anything else (an access token, a
    /// truncated or padded value) is not a refresh token.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(REFRESH_TOKEN_PREFIX).filter(|_| raw.len() == ENCODED_LEN)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        (bytes.len() == TOKEN_BYTES).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database stores: SHA-256, 64 lower-case hex characters.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }

    fn successor(&self, secret: &SecretSlice<u8>) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret()).expect("any key length");
        mac.update(self.0.as_bytes());
        Self::from_bytes(&mac.finalize().into_bytes())
    }
}

/// SHA-256 as 64 lower-case hex characters: how the database keeps every token (refresh
/// tokens, the tokens mails carry) and every other value it must not hold as it is.
pub fn sha256_hex(data: &[u8]) -> String {
    // By hand rather than a `format!` per byte: every refresh hashes two tokens.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(data) {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// The refresh-token policy: lifetime, retry grace, the successor secret, and where the
/// sessions live.
pub struct RefreshSessions {
    secret: SecretSlice<u8>,
    ttl: TimeDelta,
    grace: TimeDelta,
    pub(crate) store: SessionStore,
}

/// What presenting a refresh token led to.
pub enum Rotation {
    /// A live token (or a retry within the grace window): its successor.
    Rotated(Box<IssuedRefresh>),
    /// Not a live token; nothing was changed.
    Refused,
    /// A replay after the grace window, refused: this user's session and access tokens
    /// were revoked.
    Revoked(Uuid),
}

/// A live refresh token handed to a client, with its session's user, its roles (read
/// with the row, for the access token issued beside it) and the session's id.
pub struct IssuedRefresh {
    pub rotated: Rotated,
    pub token: RefreshToken,
    pub expires_at: NaiveDateTime,
}

impl RefreshSessions {
    pub fn new(secret: SecretSlice<u8>, settings: &RefreshSettings, store: SessionStore) -> Self {
        Self {
            secret,
            ttl: TimeDelta::seconds(settings.ttl_secs as i64),
            grace: TimeDelta::seconds(settings.reuse_grace_secs as i64),
            store,
        }
    }

    pub fn expiry(&self, now: NaiveDateTime) -> NaiveDateTime {
        now + self.ttl
    }

    /// The common case alone, in a batch with other requests' on PostgreSQL
    /// ([`Pool::rotate_live_in_batch`]): `presented` rotated if it was live; `None` leaves
    /// the decision to [`RefreshSessions::rotate`] (the token is not live, the batch
    /// failed, or the database is SQLite).
    pub async fn rotate_live_in_batch(
        &self,
        pool: &Pool,
        presented: &RefreshToken,
        now: NaiveDateTime,
    ) -> Result<Option<IssuedRefresh>, DbError> {
        let (live, successor) = self.live_rotation(presented, now);
        let expires_at = live.expires_at;
        let rotated_user = pool.rotate_live_in_batch(live, self.store).await?;
        Ok(rotated_user.map(|user| rotated(user, successor, expires_at)))
    }

    /// Exchanges a refresh token for its successor. See the module docs and the README's
    /// rotation rules; every branch here is one of those rules.
    pub fn rotate(
        &self,
        conn: &mut WriteConn,
        presented: &RefreshToken,
        now: NaiveDateTime,
    ) -> Result<Rotation, DbError> {
        // The common case, a live token, is one statement; the lookups below run only
        // when it wrote nothing.
        let (live, successor) = self.live_rotation(presented, now);
        if let Some(user) = self.store.rotate_live(conn, &live)? {
            return Ok(Rotation::Rotated(Box::new(rotated(user, successor, live.expires_at))));
        }
        let LiveRotation { current_hash: hash, successor_hash, .. } = &live;
        let Some(found) = self.store.find(conn, hash)? else {
            return self.detect_ancestor_replay(conn, presented, now);
        };
        // Decided on the chain as locked: a retry issues a token, and must see a revocation
        // committed meanwhile, or be seen by one that comes after (see `User::lock`).
        conn.transaction(|conn| {
            let Some((user, chain)) = self.store.lock(conn, &found)? else { return Ok(Rotation::Refused) };
            // Disabling ends the sessions anyway; this also covers a row disabled by hand.
            // Still the current token, yet not rotated above: it has expired. Neither
            // current nor previous any more: the session moved on since it was found.
            if user.disabled
                || chain.current_hash.as_ref() == Some(hash)
                || chain.previous_hash.as_ref() != Some(hash)
            {
                return Ok(Rotation::Refused);
            }
            // The previous token: a retry, possibly of a rotation that a concurrent request
            // won a moment ago.
            let within_grace = chain.rotated_at.is_some_and(|at| now - at <= self.grace);
            if within_grace && chain.current_hash.as_ref() == Some(successor_hash) {
                log::info!("refresh retried within grace window user_id={}", chain.user_id);
                // Issuing a token writes the chain, for a revocation to come after it
                // (`tokens_valid_after`).
                self.store.stamp_issue(conn, &user, &chain, now)?;
                let expires_at = chain.expires_at.unwrap_or(now);
                let roles = roles_of(conn, chain.user_id)?;
                let rotated = Rotated { user, session_id: chain.session_id, roles, amr: chain.amr.clone() };
                return Ok(Rotation::Rotated(Box::new(IssuedRefresh {
                    rotated,
                    token: successor,
                    expires_at,
                })));
            }
            self.revoke_replayed(conn, &chain, hash, now)
        })
    }

    /// The statement's inputs for rotating `presented` at `now`, and the successor.
    fn live_rotation(&self, presented: &RefreshToken, now: NaiveDateTime) -> (LiveRotation, RefreshToken) {
        let successor = presented.successor(&self.secret);
        let live = LiveRotation {
            current_hash: presented.hash(),
            successor_hash: successor.hash(),
            expires_at: self.expiry(now),
            now,
        };
        (live, successor)
    }

    /// A token rotated more than once before is still ours: its descendants lead to the
    /// stored previous hash. Replayed after the grace window, that is theft. Tokens we
    /// never issued lead nowhere and revoke nothing.
    fn detect_ancestor_replay(
        &self,
        conn: &mut WriteConn,
        presented: &RefreshToken,
        now: NaiveDateTime,
    ) -> Result<Rotation, DbError> {
        let mut descendant = presented.successor(&self.secret);
        let mut hashes = Vec::with_capacity(ANCESTRY_DEPTH);
        for _ in 0..ANCESTRY_DEPTH {
            hashes.push(descendant.hash());
            descendant = descendant.successor(&self.secret);
        }
        let Some(chain) = self.store.find_by_previous_hashes(conn, &hashes)? else {
            return Ok(Rotation::Refused);
        };
        // A slow request racing its own chain's rotations is not an attack.
        if chain.rotated_at.is_some_and(|at| now - at <= self.grace) {
            return Ok(Rotation::Refused);
        }
        let previous = chain.previous_hash.clone().unwrap_or_default();
        self.revoke_replayed(conn, &chain, &previous, now)
    }

    /// Ends the session whose previous token was replayed, only if its previous token is
    /// still `previous_hash` once locked, so that a replay detected late cannot end a
    /// session started afterwards by a fresh login.
    fn revoke_replayed(
        &self,
        conn: &mut WriteConn,
        chain: &Chain,
        previous_hash: &str,
        now: NaiveDateTime,
    ) -> Result<Rotation, DbError> {
        let still_previous = |chain: &Chain| chain.previous_hash.as_deref() == Some(previous_hash);
        if self.store.end_if(conn, chain, now, still_previous)?.is_none() {
            return Ok(Rotation::Refused);
        }
        log::warn!("refresh token reuse detected, session revoked user_id={}", chain.user_id);
        Ok(Rotation::Revoked(chain.user_id))
    }

    /// Ends the session a refresh token belongs to (logout by refresh token); the user's
    /// id and the session's, or `None` when no session has that token.
    pub fn revoke(
        &self,
        conn: &mut WriteConn,
        presented: &RefreshToken,
        now: NaiveDateTime,
    ) -> Result<Option<Chain>, DbError> {
        let hash = presented.hash();
        let Some(found) = self.store.find(conn, &hash)? else {
            return Ok(None);
        };
        // Unless the session moved on between the lookup and the lock.
        let ours = |chain: &Chain| {
            let hash = Some(hash.as_str());
            chain.current_hash.as_deref() == hash || chain.previous_hash.as_deref() == hash
        };
        Ok(self.store.end_if(conn, &found, now, ours)?.map(|_| found))
    }

    /// The chain of a refresh token (a logout that ends the others or all sessions).
    pub fn chain_of(&self, conn: &mut WriteConn, presented: &RefreshToken) -> Result<Option<Chain>, DbError> {
        self.store.find(conn, &presented.hash())
    }
}

fn rotated(rotated: Rotated, token: RefreshToken, expires_at: NaiveDateTime) -> IssuedRefresh {
    log::info!("refresh token rotated user_id={}", rotated.user.id.0);
    IssuedRefresh { rotated, token, expires_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_and_hash_to_lowercase_hex() {
        let token = RefreshToken::mint();
        assert_eq!(token.as_str().len(), ENCODED_LEN);
        assert_eq!(RefreshToken::parse(token.as_str()), Some(token.clone()));
        let hash = token.hash();
        assert_eq!(hash.len(), 64);
        assert!(hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert_ne!(RefreshToken::mint(), token);
    }

    #[test]
    fn anything_but_the_minted_form_is_refused() {
        let token = RefreshToken::mint();
        let raw = token.as_str();
        for bad in [
            "",
            REFRESH_TOKEN_PREFIX,
            &raw[..raw.len() - 1],
            &format!("{raw}A"),
            &format!("{raw}="),
            &raw.replace(REFRESH_TOKEN_PREFIX, "tgx_"),
            &raw[REFRESH_TOKEN_PREFIX.len()..],
            "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln",
            &format!("{REFRESH_TOKEN_PREFIX}{}", "!".repeat(43)),
        ] {
            assert_eq!(RefreshToken::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn successors_are_deterministic_per_secret() {
        let token = RefreshToken::mint();
        let a = SecretSlice::from(vec![1u8; 32]);
        let b = SecretSlice::from(vec![2u8; 32]);
        assert_eq!(token.successor(&a), token.successor(&a));
        assert_ne!(token.successor(&a), token.successor(&b));
        assert!(RefreshToken::parse(token.successor(&a).as_str()).is_some());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = RefreshToken::mint();
        assert!(!format!("{token:?}").contains(&token.as_str()[4..]));
    }
}
