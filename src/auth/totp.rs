//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s, one step of skew either way), recovery codes and
//! the token of a login's second step: the parts of the second factor that need no
//! database (`auth::mfa` has the rest).
//!
//! The TOTP secret is encrypted (AES-256-GCM) under a key kept beside the signing keys
//! ([`KeyStore::mfa_key`](super::keys::KeyStore::mfa_key)), never in the database;
//! recovery codes and the second step's token are stored as SHA-256.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretSlice};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use super::error::{Error, Result};
use super::refresh::sha256_hex;

/// How long the second step of a login may wait.
pub const MFA_TOKEN_TTL_SECS: i64 = 300;
/// Wrong codes a second step survives.
pub const MFA_TOKEN_MAX_FAILURES: i32 = 5;
const MFA_TOKEN_PREFIX: &str = "tgf_";
const STEP_SECS: i64 = 30;
pub const DIGITS: usize = 6;
/// 160 bits, RFC 4226's recommendation.
const SECRET_BYTES: usize = 20;
const RECOVERY_CODES: usize = 10;
/// Base32 without the look-alikes (0, 1, l, o): what a person copies.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Ten characters, 50 bits each: enough for a code that also needs the password.
const RECOVERY_CODE_CHARS: usize = 10;

/// The second factor's configuration: the key of the secrets at rest, and the issuer
/// name authenticator apps show.
pub struct MfaCore {
    cipher: Aes256Gcm,
    issuer: String,
}

impl MfaCore {
    pub fn new(key: &SecretSlice<u8>, issuer: &str) -> Result<Self, String> {
        let cipher =
            Aes256Gcm::new_from_slice(key.expose_secret()).map_err(|_| "the MFA key is not 32 bytes")?;
        Ok(Self { cipher, issuer: issuer.to_owned() })
    }

    /// `secret` encrypted: base64 of a random 96-bit nonce and the ciphertext.
    pub fn seal(&self, secret: &[u8]) -> Result<String> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), secret)
            .map_err(|_| Error::Internal("encrypting a TOTP secret failed".into()))?;
        Ok(STANDARD.encode([nonce.as_slice(), &sealed].concat()))
    }

    /// The secret `seal` made; an error if it was not made under this key.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>> {
        let bytes = STANDARD.decode(sealed).ok().filter(|b| b.len() > 12);
        let opened = bytes.and_then(|b| {
            let nonce: [u8; 12] = b[..12].try_into().ok()?;
            self.cipher.decrypt(&Nonce::from(nonce), &b[12..]).ok()
        });
        opened.ok_or_else(|| Error::Internal("a TOTP secret does not open with the MFA key".into()))
    }

    pub fn otpauth_uri(&self, secret: &str, username: &str) -> String {
        let issuer = percent_encode(&self.issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            percent_encode(username)
        )
    }
}

/// The time step of `code` for `secret` at `now` (unix seconds), one step of skew either
/// way, later than `after`; `None` if it matches none. Compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, now: i64, after: Option<i64>) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, STEP_SECS as u64, secret.to_vec());
    let current = now.div_euclid(STEP_SECS);
    (current - 1..=current + 1)
        .filter(|step| after.is_none_or(|after| *step > after) && *step >= 0)
        .find(|step| bool::from(totp.generate((step * STEP_SECS) as u64).as_bytes().ct_eq(code.as_bytes())))
}

/// A code as typed: white space and dashes dropped, lower-case.
pub fn normalized(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect()
}

/// A new TOTP secret, and its base32 form (no padding) as authenticator apps take it.
pub fn new_secret() -> ([u8; SECRET_BYTES], String) {
    let mut secret = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut secret);
    let encoded = base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &secret);
    (secret, encoded)
}

/// Whether a normalized code has the form of a recovery code.
pub fn recovery_code_form(code: &str) -> bool {
    code.len() == RECOVERY_CODE_CHARS && code.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))
}

/// Ten new recovery codes (`xxxxx-xxxxx`), and their hashes as stored.
pub fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; RECOVERY_CODE_CHARS];
            OsRng.fill_bytes(&mut bytes);
            let chars: String =
                bytes.iter().map(|b| char::from(RECOVERY_ALPHABET[usize::from(b % 32)])).collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect();
    let hashes = codes.iter().map(|code| sha256_hex(normalized(code).as_bytes())).collect();
    (codes, hashes)
}

/// The token of a login's second step: `tgf_` + 43 base64url characters (256 bits).
pub struct MfaToken(String);

impl MfaToken {
    pub fn mint() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(format!("{MFA_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(MFA_TOKEN_PREFIX).filter(|body| body.len() == 43)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        (bytes.len() == 32).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

/// A login that needs its second step.
pub struct MfaChallenge {
    pub mfa_token: MfaToken,
    pub expires_in: i64,
}

/// A TOTP factor set up: what an authenticator app takes.
pub struct TotpSetup {
    /// Base32, without padding.
    pub secret: String,
    pub otpauth_uri: String,
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 rows (8 digits, the ASCII secret below).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890".to_vec();
        let totp = TOTP::new(Algorithm::SHA1, 8, 0, 30, secret).unwrap();
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(time), code, "T = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_but_not_after_the_last_accepted() {
        let secret = [7u8; SECRET_BYTES];
        let totp = TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, secret.to_vec());
        let now = 1_700_000_015;
        let step = now / 30;
        let code = totp.generate((step * 30) as u64);
        assert_eq!(matching_step(&secret, &code, now, None), Some(step));
        assert_eq!(matching_step(&secret, &code, now + 30, None), Some(step), "a step late");
        assert_eq!(matching_step(&secret, &code, now - 30, None), Some(step), "a step early");
        assert_eq!(matching_step(&secret, &code, now + 60, None), None, "two steps late");
        assert_eq!(matching_step(&secret, &code, now, Some(step)), None, "replayed");
        assert_eq!(matching_step(&secret, &code, now, Some(step - 1)), Some(step));
        for bad in ["", "12345", "1234567", "abcdef", &code[..5]] {
            assert_eq!(matching_step(&secret, bad, now, None), None, "{bad}");
        }
    }

    #[test]
    fn secrets_are_sealed_under_the_key_and_open_only_with_it() {
        let core = MfaCore::new(&SecretSlice::from(vec![1u8; 32]), "Acme").unwrap();
        let sealed = core.seal(b"a secret").unwrap();
        assert_ne!(sealed, core.seal(b"a secret").unwrap(), "a nonce each time");
        assert_eq!(core.open(&sealed).unwrap(), b"a secret");
        let other = MfaCore::new(&SecretSlice::from(vec![2u8; 32]), "Acme").unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(core.open("not base64").is_err());
    }

    #[test]
    fn recovery_codes_are_distinct_and_hashed_as_typed_loosely() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let mut distinct = codes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        assert_eq!(codes[0].len(), 11);
        assert_eq!(sha256_hex(normalized(&codes[0].to_uppercase().replace('-', " ")).as_bytes()), hashes[0]);
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_and_the_account() {
        let core = MfaCore::new(&SecretSlice::from(vec![1u8; 32]), "Acme Corp").unwrap();
        assert_eq!(
            core.otpauth_uri("ABC", "alice@x"),
            "otpauth://totp/Acme%20Corp:alice%40x?secret=ABC&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
    }
}
