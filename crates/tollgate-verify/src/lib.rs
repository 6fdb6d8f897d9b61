//! Verify tollgate access tokens without calling tollgate on every request.
//!
//! [`verify_with`] is the one verification routine: tollgate itself uses it, and so does
//! the JWKS-caching [`Verifier`] (feature `fetch`) that other services use. The algorithm
//! comes from the key, never from the token's header; the key is found only by `kid`
//! among keys the caller trusts; `typ`, `exp`, `nbf`, `iss` and `aud` are always checked.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "actix")]
pub mod actix;
mod error_body;
pub use error_body::{ErrorBody, INVALID_TOKEN_CHALLENGE, MISSING_TOKEN_CHALLENGE};
#[cfg(feature = "fetch")]
mod clock;
#[cfg(feature = "fetch")]
mod config;
pub mod env;
#[cfg(feature = "fetch")]
mod fetch;
#[cfg(feature = "fetch")]
mod key_cache;
#[cfg(feature = "fetch")]
mod revocations;
#[cfg(feature = "fetch")]
mod verifier;
#[cfg(feature = "fetch")]
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
#[cfg(feature = "fetch")]
pub use config::{ConfigError, VerifierConfig};
#[cfg(feature = "fetch")]
pub use verifier::Verifier;

pub use jsonwebtoken::Algorithm as JwtAlgorithm;

/// The `typ` header of every access token (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Longer bearer values are rejected before any parsing; real tokens are well under 1 KiB.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims of a verified access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: Uuid,
    pub username: String,
    /// The user's roles when the token was issued, sorted (possibly empty). A role taken
    /// away revokes the tokens that carry it (see the revocation feed).
    pub roles: Vec<String>,
    pub iss: String,
    pub aud: String,
    /// Whole seconds, never later than the issue (see [`Claims::issued_at_ms`]).
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A UUIDv7 whose timestamp is the exact issue time.
    pub jti: Uuid,
    /// The session the token was issued to; tokens of tollgates before sessions had ids
    /// have none, and only revocations of their whole user refuse them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// How the session was authenticated (RFC 8176), sorted: `["pwd"]` after a password,
    /// `["mfa", "otp", "pwd"]` after a password and a second factor, `["hwk", "mfa",
    /// "user"]` after a passkey that verified the user. Empty in tokens of tollgates from
    /// before it, which had no second factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl Claims {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the session was authenticated with more than one factor (`mfa` in `amr`).
    pub fn has_mfa(&self) -> bool {
        self.amr.iter().any(|method| method == "mfa")
    }

    /// When the token was issued, in unix milliseconds, the time revocations are compared
    /// with: the timestamp of its `jti`, a UUIDv7 (RFC 9562) that tollgate stamps with the
    /// issue time (at most a millisecond or so ahead of `iat`'s second, to fall after a
    /// revocation made in the same millisecond); `iat` for a token without one (issued by
    /// a tollgate that cut revocations at whole seconds).
    pub fn issued_at_ms(&self) -> i64 {
        uuid_v7_millis(&self.jti).unwrap_or_else(|| self.iat.saturating_mul(1000))
    }
}

/// The unix-millisecond timestamp of a UUIDv7 (RFC 9562, section 5.7: its first 48
/// bits); `None` for a uuid of any other version.
pub fn uuid_v7_millis(id: &Uuid) -> Option<i64> {
    if id.get_version_num() != 7 || id.get_variant() != uuid::Variant::RFC4122 {
        return None;
    }
    let b = id.as_bytes();
    Some(i64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed token")]
    Malformed,
    #[error("unexpected token header")]
    Header,
    #[error("unknown key id")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("token revoked")]
    Revoked,
    #[error("no verification keys available: {0}")]
    KeysUnavailable(String),
}

/// The only header members a tollgate token has. Anything else (`jku`, `jwk`, `x5u`,
/// `crit`, `cty`…) is refused rather than ignored, and so are duplicate members.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictHeader {
    alg: String,
    typ: String,
    kid: String,
}

/// A public key (or HS256 secret) that may verify tokens, with its algorithm.
#[derive(Clone)]
pub struct VerificationKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// What a valid token must say: issuer, audience, and the clock-skew allowance.
#[derive(Clone)]
pub struct Rules {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    validations: HashMap<Algorithm, Validation>,
}

/// The algorithms tollgate signs with.
pub const SUPPORTED_ALGORITHMS: [Algorithm; 4] =
    [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256, Algorithm::HS256];

impl Rules {
    pub fn new(issuer: &str, audience: &str, leeway_secs: u64) -> Self {
        let validations = SUPPORTED_ALGORITHMS
            .into_iter()
            .map(|algorithm| {
                // jsonwebtoken's defaults are not ours: pin everything explicitly.
                let mut validation = Validation::new(algorithm);
                validation.algorithms = vec![algorithm];
                validation.leeway = leeway_secs;
                // jsonwebtoken would check them on the system clock: `check_times` checks
                // them at the caller's `now` (its injected clock) instead. They stay
                // required, as unsigned integers, below.
                validation.validate_exp = false;
                validation.validate_nbf = false;
                validation.validate_aud = true;
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
                (algorithm, validation)
            })
            .collect();
        Self { issuer: issuer.to_owned(), audience: audience.to_owned(), leeway_secs, validations }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The time-dependent checks alone (`exp`, `nbf`, `iat` with the leeway), for claims
    /// whose signature was verified earlier and that are being accepted again.
    pub fn check_times(&self, claims: &Claims, now: i64) -> Result<(), Error> {
        let leeway = self.leeway_secs as i64;
        if claims.exp < now - leeway {
            return Err(Error::Rejected("expired".into()));
        }
        if claims.nbf > now + leeway {
            return Err(Error::Rejected("not yet valid".into()));
        }
        // One second more: a tollgate that cut revocations at whole seconds gave a token
        // issued in the same second as a revocation the next second as `iat`.
        if claims.iat > now + leeway + 1 {
            return Err(Error::Rejected("issued in the future".into()));
        }
        Ok(())
    }
}

/// The name of an algorithm as it appears in a JOSE header.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::EdDSA => "EdDSA",
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        Algorithm::HS256 => "HS256",
        _ => "unsupported",
    }
}

/// Verifies an access token with the key `key_for(kid)` returns. The header's `alg` must
/// name that key's algorithm exactly; every claim must be present with its JSON type.
/// `now` (unix seconds) is the time the `exp`, `nbf` and `iat` checks are made at.
pub fn verify_with<'k>(
    token: &str,
    rules: &Rules,
    now: i64,
    key_for: impl FnOnce(&str) -> Option<&'k VerificationKey>,
) -> Result<Claims, Error> {
    let header = parse_header(token)?;
    let key = key_for(&header.kid).ok_or(Error::UnknownKey)?;
    if header.alg != algorithm_name(key.algorithm) {
        return Err(Error::Header);
    }
    let validation = rules.validations.get(&key.algorithm).ok_or(Error::Header)?;
    let claims = jsonwebtoken::decode::<Claims>(token, &key.key, validation)
        .map_err(|e| Error::Rejected(e.to_string()))?
        .claims;
    rules.check_times(&claims, now)?;
    Ok(claims)
}

/// Remembers tokens whose signature verified. A client presents the same access token for
/// its whole life, so most checks are repeats: a hit skips the signature check, the
/// costly part, but redoes the time checks and requires the token's key still to be one
/// `key_for` knows (a retired key's tokens are refused at once). Only byte-identical
/// tokens hit (the key is the whole token), so a hit is exactly as safe as verifying
/// again. A hit says nothing about revocation: the caller checks that after, on every
/// request, as it does for a token verified afresh.
///
/// Bounded by memory: once `capacity_bytes` of entries are held, `quick_cache` evicts the
/// tokens least likely to be presented again; an expired token is dropped when presented.
pub struct VerifiedCache {
    entries: quick_cache::sync::Cache<Box<str>, std::sync::Arc<Verified>, VerifiedWeight>,
}

/// What a verified token was found to say, and by which key.
pub struct Verified {
    kid: String,
    claims: Claims,
}

/// An entry's bytes: the token, its `kid` and the claims' strings and roles.
#[derive(Clone)]
struct VerifiedWeight;

impl quick_cache::Weighter<Box<str>, std::sync::Arc<Verified>> for VerifiedWeight {
    fn weight(&self, token: &Box<str>, verified: &std::sync::Arc<Verified>) -> u64 {
        let claims = &verified.claims;
        let roles: usize = claims.roles.iter().map(|role| size_of::<String>() + role.len()).sum();
        let strings = claims.username.len() + claims.iss.len() + claims.aud.len();
        let heap = token.len() + verified.kid.len() + strings + roles;
        (size_of::<Box<str>>() + size_of::<Verified>() + heap) as u64
    }
}

/// The weight of a typical entry, for sizing: an RS256 token is ~750 bytes, EdDSA ~500.
const TYPICAL_VERIFIED_BYTES: u64 = 768;

impl VerifiedCache {
    /// A cache holding at most `capacity_bytes` of entries (about 768 bytes each).
    pub fn new(capacity_bytes: u64) -> Self {
        let items = (capacity_bytes / TYPICAL_VERIFIED_BYTES).max(1) as usize;
        Self { entries: quick_cache::sync::Cache::with_weighter(items, capacity_bytes, VerifiedWeight) }
    }

    pub fn verify<'k>(
        &self,
        token: &str,
        rules: &Rules,
        now: i64,
        key_for: impl Fn(&str) -> Option<&'k VerificationKey>,
    ) -> Result<Claims, Error> {
        if let Some(hit) = self.entries.get(token) {
            key_for(&hit.kid).ok_or(Error::UnknownKey)?;
            if let Err(e) = rules.check_times(&hit.claims, now) {
                self.entries.remove(token);
                return Err(e);
            }
            return Ok(hit.claims.clone());
        }
        let claims = verify_with(token, rules, now, &key_for)?;
        let kid = token_kid(token)?;
        let entry = Verified { kid, claims: claims.clone() };
        self.entries.insert(token.into(), std::sync::Arc::new(entry));
        Ok(claims)
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a request's `Authorization` headers give no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// More than one `Authorization` header: which one was meant is not guessed.
    Ambiguous,
    /// Another scheme, an empty or oversized token, or bytes that are not text.
    Malformed,
}

/// The token of the single `Authorization: Bearer <token>` header among `values` (the
/// values of every `Authorization` header of a request; the scheme is case-insensitive),
/// or `None` when there is no such header. Shared by tollgate and the actix extractor.
pub fn bearer_token<'a>(mut values: impl Iterator<Item = &'a [u8]>) -> Result<Option<&'a str>, BearerError> {
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::Ambiguous);
    }
    let value = std::str::from_utf8(value).map_err(|_| BearerError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(BearerError::Malformed);
    }
    Ok(Some(token))
}

/// The `kid` of a token whose header is well-formed, for deciding whether to refetch keys.
pub fn token_kid(token: &str) -> Result<String, Error> {
    parse_header(token).map(|h| h.kid)
}

fn parse_header(token: &str) -> Result<StrictHeader, Error> {
    if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return Err(Error::Malformed);
    }
    let segment = token.split('.').next().unwrap_or_default();
    let json = URL_SAFE_NO_PAD.decode(segment).map_err(|_| Error::Malformed)?;
    let header: StrictHeader = serde_json::from_slice(&json).map_err(|_| Error::Header)?;
    if header.typ != ACCESS_TOKEN_TYPE {
        return Err(Error::Header);
    }
    Ok(header)
}

/// Reads a JWKS document into keys by `kid`. Keys tollgate would never publish (no `kid`,
/// an unsupported algorithm, `use` other than `sig`, private members) are skipped.
pub fn keys_from_jwks(jwks: &serde_json::Value) -> HashMap<String, VerificationKey> {
    let Some(keys) = jwks["keys"].as_array() else {
        return HashMap::new();
    };
    keys.iter().filter_map(|jwk| Some((jwk["kid"].as_str()?.to_owned(), key_from_jwk(jwk)?))).collect()
}

fn key_from_jwk(jwk: &serde_json::Value) -> Option<VerificationKey> {
    let text = |name: &str| jwk[name].as_str();
    if jwk.get("d").is_some() || text("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let (algorithm, key) = match (text("alg")?, text("kty")?) {
        ("EdDSA", "OKP") if text("crv") == Some("Ed25519") => {
            (Algorithm::EdDSA, DecodingKey::from_ed_components(text("x")?).ok()?)
        }
        ("ES256", "EC") if text("crv") == Some("P-256") => {
            (Algorithm::ES256, DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?)
        }
        ("RS256", "RSA") => {
            (Algorithm::RS256, DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?)
        }
        _ => return None,
    };
    Some(VerificationKey { algorithm, key })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    const SECRET: &[u8] = b"a test secret of at least thirty-two bytes";

    fn token(sub: Uuid, now: i64) -> String {
        let claims = Claims {
            sub,
            username: "someone".into(),
            iss: "tollgate".into(),
            aud: "tollgate".into(),
            iat: now,
            nbf: now,
            exp: now + 900,
            jti: Uuid::nil(),
            sid: None,
            amr: vec!["pwd".into()],
            roles: vec!["user".into()],
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some("k".into());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    #[test]
    fn token_times_are_checked_at_the_callers_now_alone() {
        let key = VerificationKey { algorithm: Algorithm::HS256, key: DecodingKey::from_secret(SECRET) };
        let rules = Rules::new("tollgate", "tollgate", 0);
        let verify = |token: &str, now| verify_with(token, &rules, now, |_| Some(&key));
        // A token of 1970, and one of the year 2200: the system clock plays no part.
        for issued in [1_000, 7_258_118_400] {
            let token = token(Uuid::nil(), issued);
            assert!(verify(&token, issued).is_ok());
            assert!(verify(&token, issued + 900).is_ok());
            assert_eq!(verify(&token, issued + 901), Err(Error::Rejected("expired".into())));
            assert_eq!(verify(&token, issued - 1), Err(Error::Rejected("not yet valid".into())));
        }
    }

    #[test]
    fn only_a_uuid_v7_says_when_it_was_made() {
        let v7 = uuid::Builder::from_unix_timestamp_millis(1_765_000_000_123, &[0xa5; 10]).into_uuid();
        assert_eq!(uuid_v7_millis(&v7), Some(1_765_000_000_123));
        // The same bits under another version or variant are not a time.
        let v4 = uuid::Builder::from_random_bytes(*v7.as_bytes()).into_uuid();
        let mut bytes = *v7.as_bytes();
        bytes[8] &= 0x3f;
        for other in [v4, Uuid::from_bytes(bytes), Uuid::nil(), Uuid::max()] {
            assert_eq!(uuid_v7_millis(&other), None, "{other}");
        }
        let mut claims: Claims = serde_json::from_str(&claims_json(v7)).unwrap();
        assert_eq!(claims.issued_at_ms(), 1_765_000_000_123);
        claims.jti = v4;
        assert_eq!(claims.issued_at_ms(), 1_765_000_000_000, "iat, in whole seconds");
    }

    fn claims_json(jti: Uuid) -> String {
        serde_json::json!({
            "sub": Uuid::nil(), "username": "u", "roles": [], "iss": "i", "aud": "a",
            "iat": 1_765_000_000, "nbf": 1_765_000_000, "exp": 1_765_000_900, "jti": jti,
        })
        .to_string()
    }

    #[test]
    fn a_full_verified_cache_evicts_and_never_serves_another_tokens_claims() {
        let key = VerificationKey { algorithm: Algorithm::HS256, key: DecodingKey::from_secret(SECRET) };
        let rules = Rules::new("tollgate", "tollgate", 30);
        let cache = VerifiedCache::new(32 * TYPICAL_VERIFIED_BYTES);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let subs: Vec<Uuid> = (0..500u128).map(Uuid::from_u128).collect();
        let tokens: Vec<String> = subs.iter().map(|sub| token(*sub, now)).collect();
        for _ in 0..2 {
            for (sub, token) in subs.iter().zip(&tokens) {
                assert_eq!(cache.verify(token, &rules, now, |_| Some(&key)).unwrap().sub, *sub);
            }
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        // A hit redoes the time checks, and drops the expired token.
        let last = tokens.last().unwrap();
        cache.verify(last, &rules, now, |_| Some(&key)).unwrap();
        assert!(cache.entries.get(last.as_str()).is_some());
        assert!(cache.verify(last, &rules, now + 931, |_| Some(&key)).is_err());
        assert!(cache.entries.get(last.as_str()).is_none());
    }
}
