//! Django's password hash formats, so that users imported from a Django database keep
//! the password they had until their first login re-hashes it as argon2id.
//!
//! The stored string is parsed once into a [`DjangoHash`]: malformed strings, the hashers
//! tollgate refuses (unsalted, or one round of MD5/SHA1) and cost parameters beyond the
//! caps below are errors. The caps are what Django's own defaults produce, with a margin
//! (Django's defaults: pbkdf2_sha256 1,000,000 iterations in 5.2, 1,200,000 in 6.0,
//! 1,500,000 in 6.1 and 1,800,000 in 6.2; bcrypt cost 12; scrypt N=2^14 r=8 p=5; argon2
//! m=100 MiB t=2 p=8), because a hash's cost is also the time a wrong password takes to
//! refuse: the costlier the hashes tollgate accepts, the longer every failed login must
//! wait to look like every other (see [`DjangoHash::costliest`]). A hash above them is
//! refused at import, and never verified at login.
//!
//! The password is checked as Django checks it: the raw text, UTF-8 encoded, without any
//! normalisation; plain `bcrypt` sees only its first 72 bytes, as Django's does.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD, STANDARD, STANDARD_NO_PAD};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Django 6.2's default of 1,800,000 and a tenth more.
pub const MAX_PBKDF2_ITERATIONS: u64 = 2_000_000;
/// Django's 12 (unchanged since Django 1.4), and one doubling more.
pub const MAX_BCRYPT_COST: u64 = 13;
/// scrypt's memory is 128·N·r bytes: twice Django's 16 MiB.
pub const MAX_SCRYPT_MEMORY_BYTES: u64 = 32 * 1024 * 1024;
/// scrypt's time grows with N·r·p: twice Django's 2^14·8·5.
pub const MAX_SCRYPT_WORK: u64 = 2 * (1 << 14) * 8 * 5;
/// Django's 100 MiB, and a quarter more.
pub const MAX_ARGON2_MEMORY_KIB: u64 = 128 * 1024;
/// argon2's time grows with memory × passes: 128 MiB three times, about twice Django's
/// 100 MiB twice.
pub const MAX_ARGON2_WORK_KIB: u64 = 3 * MAX_ARGON2_MEMORY_KIB;
/// Twice Django's 8. The lanes run one after another here, so this costs memory
/// bookkeeping, not time.
pub const MAX_ARGON2_PARALLELISM: u64 = 16;
/// Longer salts or hashes than any Django writes are refused rather than processed.
const MAX_SALT_LEN: usize = 256;
const MAX_HASH_LEN: usize = 128;

/// bcrypt's own base64: "./A-Za-z0-9", no padding; a 22-character salt carries 4 spare bits.
const BCRYPT_B64: GeneralPurpose =
    GeneralPurpose::new(&alphabet::BCRYPT, NO_PAD.with_decode_allow_trailing_bits(true));

/// The Django hashers tollgate verifies, by the name Django writes before the first `$`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Pbkdf2Sha256,
    Pbkdf2Sha1,
    Argon2,
    BcryptSha256,
    Bcrypt,
    Scrypt,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Pbkdf2Sha256 => "pbkdf2_sha256",
            Algorithm::Pbkdf2Sha1 => "pbkdf2_sha1",
            Algorithm::Argon2 => "argon2",
            Algorithm::BcryptSha256 => "bcrypt_sha256",
            Algorithm::Bcrypt => "bcrypt",
            Algorithm::Scrypt => "scrypt",
        }
    }
}

/// Why a stored string is not a hash tollgate will verify. The messages never contain
/// the salt or the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DjangoHashError {
    /// Django's `set_unusable_password()` marker (`!…`), or an empty field: no password
    /// logs in, in Django or here.
    #[error("unusable password: the account has no password that can log in")]
    Unusable,
    #[error("refused hasher {0}: unsalted and MD5/SHA1-only hashes are too weak to keep")]
    Refused(&'static str),
    #[error("unknown password hash format")]
    UnknownFormat,
    #[error("malformed {} hash: {reason}", .algorithm.name())]
    Malformed { algorithm: Algorithm, reason: &'static str },
    #[error("{} hash too expensive to verify: {parameter} {value} is above the cap of {max}", .algorithm.name())]
    TooExpensive { algorithm: Algorithm, parameter: &'static str, value: u64, max: u64 },
}

/// A parsed Django hash, ready to verify passwords against.
///
/// `Debug` shows the algorithm and its cost, never the salt or the hash.
#[derive(Clone)]
pub struct DjangoHash(Kind);

#[derive(Clone)]
enum Kind {
    Pbkdf2 {
        sha1: bool,
        iterations: u32,
        salt: String,
        hash: Vec<u8>,
    },
    Argon2 {
        params: argon2::Params,
        variant: argon2::Algorithm,
        version: argon2::Version,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Bcrypt {
        sha256: bool,
        cost: u32,
        salt: [u8; 16],
        hash: [u8; 23],
    },
    Scrypt {
        params: scrypt::Params,
        salt: String,
        hash: Vec<u8>,
    },
}

impl DjangoHash {
    /// Parses a Django `password` field.
    pub fn parse(encoded: &str) -> Result<Self, DjangoHashError> {
        if encoded.is_empty() || encoded.starts_with('!') {
            return Err(DjangoHashError::Unusable);
        }
        if let Some(refused) = refused_hasher(encoded) {
            return Err(DjangoHashError::Refused(refused));
        }
        let (name, rest) = encoded.split_once('$').ok_or(DjangoHashError::UnknownFormat)?;
        let kind = match name {
            "pbkdf2_sha256" => parse_pbkdf2(Algorithm::Pbkdf2Sha256, rest)?,
            "pbkdf2_sha1" => parse_pbkdf2(Algorithm::Pbkdf2Sha1, rest)?,
            "argon2" => parse_argon2(rest)?,
            "bcrypt_sha256" => parse_bcrypt(Algorithm::BcryptSha256, rest)?,
            "bcrypt" => parse_bcrypt(Algorithm::Bcrypt, rest)?,
            "scrypt" => parse_scrypt(rest)?,
            _ => return Err(DjangoHashError::UnknownFormat),
        };
        Ok(DjangoHash(kind))
    }

    /// One hash of each costly algorithm at the caps: verifying each costs the most that
    /// algorithm can cost among the hashes [`DjangoHash::parse`] accepts, so the longest
    /// of them is the longest any accepted hash takes. `pbkdf2_sha1` and plain `bcrypt`
    /// are left out: at the same caps they do less work (SHA-1 against SHA-256, and no
    /// SHA-256 before bcrypt). What they verify is nothing anyone would type; they are for
    /// measuring that cost.
    pub fn costliest() -> Vec<DjangoHash> {
        let salt = "costliestcostliestcost".to_owned();
        let pbkdf2 = Kind::Pbkdf2 {
            sha1: false,
            iterations: MAX_PBKDF2_ITERATIONS as u32,
            salt: salt.clone(),
            hash: vec![0; 32],
        };
        let bcrypt =
            Kind::Bcrypt { sha256: true, cost: MAX_BCRYPT_COST as u32, salt: [0; 16], hash: [0; 23] };
        // Memory and work at their caps at once; the most lanes.
        let argon2 = argon2::Params::new(
            MAX_ARGON2_MEMORY_KIB as u32,
            (MAX_ARGON2_WORK_KIB / MAX_ARGON2_MEMORY_KIB) as u32,
            MAX_ARGON2_PARALLELISM as u32,
            Some(32),
        )
        .expect("the argon2 caps are valid parameters");
        // The largest N·r the memory cap allows at Django's r, and the p that the work cap
        // leaves.
        let (r, n_r) = (8, MAX_SCRYPT_MEMORY_BYTES / 128);
        let scrypt = scrypt::Params::new(
            (n_r / r).trailing_zeros() as u8,
            r as u32,
            (MAX_SCRYPT_WORK / n_r) as u32,
            64,
        )
        .expect("the scrypt caps are valid parameters");
        [
            pbkdf2,
            Kind::Argon2 {
                params: argon2,
                variant: argon2::Algorithm::Argon2id,
                version: argon2::Version::V0x13,
                salt: salt.clone().into_bytes(),
                hash: vec![0; 32],
            },
            bcrypt,
            Kind::Scrypt { params: scrypt, salt: salt.clone(), hash: vec![0; 64] },
        ]
        .into_iter()
        .map(DjangoHash)
        .collect()
    }

    pub fn algorithm(&self) -> Algorithm {
        match &self.0 {
            Kind::Pbkdf2 { sha1: false, .. } => Algorithm::Pbkdf2Sha256,
            Kind::Pbkdf2 { sha1: true, .. } => Algorithm::Pbkdf2Sha1,
            Kind::Argon2 { .. } => Algorithm::Argon2,
            Kind::Bcrypt { sha256: true, .. } => Algorithm::BcryptSha256,
            Kind::Bcrypt { sha256: false, .. } => Algorithm::Bcrypt,
            Kind::Scrypt { .. } => Algorithm::Scrypt,
        }
    }

    /// Whether `password` is the one Django hashed. Costs what the hash's parameters say;
    /// the final comparison takes the same time wherever the bytes differ.
    pub fn verify(&self, password: &str) -> bool {
        let password = password.as_bytes();
        match &self.0 {
            Kind::Pbkdf2 { sha1, iterations, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                if *sha1 {
                    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt.as_bytes(), *iterations, &mut out);
                } else {
                    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt.as_bytes(), *iterations, &mut out);
                }
                same(&out, hash)
            }
            Kind::Argon2 { params, variant, version, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                argon2::Argon2::new(*variant, *version, params.clone())
                    .hash_password_into(password, salt, &mut out)
                    .is_ok()
                    && same(&out, hash)
            }
            Kind::Bcrypt { sha256, cost, salt, hash } => {
                let hex;
                let input = if *sha256 {
                    hex = hex_lower(&Sha256::digest(password));
                    hex.as_bytes()
                } else {
                    password
                };
                // OpenBSD bcrypt hashes the NUL-terminated password and reads at most 72
                // bytes of it: a longer password is cut there, terminator and all.
                let mut key = Vec::with_capacity(input.len() + 1);
                key.extend_from_slice(input);
                key.push(0);
                key.truncate(72);
                let out = bcrypt::bcrypt(*cost, *salt, &key);
                same(&out[..23], hash)
            }
            Kind::Scrypt { params, salt, hash } => {
                let mut out = vec![0u8; hash.len()];
                scrypt::scrypt(password, salt.as_bytes(), params, &mut out).is_ok() && same(&out, hash)
            }
        }
    }
}

impl fmt::Debug for DjangoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("DjangoHash");
        d.field("algorithm", &self.algorithm());
        match &self.0 {
            Kind::Pbkdf2 { iterations, .. } => d.field("iterations", iterations),
            Kind::Argon2 { params, variant, .. } => d
                .field("variant", variant)
                .field("m_cost", &params.m_cost())
                .field("t_cost", &params.t_cost())
                .field("p_cost", &params.p_cost()),
            Kind::Bcrypt { cost, .. } => d.field("cost", cost),
            Kind::Scrypt { params, .. } => {
                d.field("log_n", &params.log_n()).field("r", &params.r()).field("p", &params.p())
            }
        };
        d.finish_non_exhaustive()
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Django's own test (`identify_hasher`) for the hashers it no longer ships or that
/// tollgate refuses; `crypt` (DES) is as weak and Django 5 dropped it too.
fn refused_hasher(encoded: &str) -> Option<&'static str> {
    if (encoded.len() == 32 && !encoded.contains('$'))
        || (encoded.len() == 37 && encoded.starts_with("md5$$"))
    {
        return Some("unsalted_md5");
    }
    if encoded.len() == 46 && encoded.starts_with("sha1$$") {
        return Some("unsalted_sha1");
    }
    match encoded.split_once('$')?.0 {
        "md5" => Some("md5"),
        "sha1" => Some("sha1"),
        "crypt" => Some("crypt"),
        _ => None,
    }
}

fn malformed(algorithm: Algorithm, reason: &'static str) -> DjangoHashError {
    DjangoHashError::Malformed { algorithm, reason }
}

/// Unsigned decimal, digits only (Python's `int()` would also take signs, spaces and `_`,
/// which Django never writes).
fn number(algorithm: Algorithm, text: &str, what: &'static str) -> Result<u64, DjangoHashError> {
    // Twelve digits are far above every cap, and keep the products of capped values small.
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(algorithm, what));
    }
    text.parse().map_err(|_| malformed(algorithm, what))
}

fn capped(
    algorithm: Algorithm,
    parameter: &'static str,
    value: u64,
    max: u64,
) -> Result<u64, DjangoHashError> {
    if value > max {
        return Err(DjangoHashError::TooExpensive { algorithm, parameter, value, max });
    }
    Ok(value)
}

/// Django's text salts (pbkdf2, scrypt): non-empty, without `$`, used as their UTF-8 bytes.
fn text_salt(algorithm: Algorithm, salt: &str) -> Result<String, DjangoHashError> {
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(malformed(algorithm, "salt is empty or too long"));
    }
    Ok(salt.to_owned())
}

fn split_exact<'a, const N: usize>(
    algorithm: Algorithm,
    rest: &'a str,
    reason: &'static str,
) -> Result<[&'a str; N], DjangoHashError> {
    let parts: Vec<&str> = rest.split('$').collect();
    parts.try_into().map_err(|_| malformed(algorithm, reason))
}

/// `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`
fn parse_pbkdf2(algorithm: Algorithm, rest: &str) -> Result<Kind, DjangoHashError> {
    let [iterations, salt, hash] = split_exact(algorithm, rest, "expected iterations$salt$hash")?;
    let iterations = number(algorithm, iterations, "iterations is not a number")?;
    if iterations == 0 {
        return Err(malformed(algorithm, "iterations is zero"));
    }
    let iterations = capped(algorithm, "iterations", iterations, MAX_PBKDF2_ITERATIONS)? as u32;
    let hash = STANDARD.decode(hash).map_err(|_| malformed(algorithm, "hash is not base64"))?;
    let sha1 = algorithm == Algorithm::Pbkdf2Sha1;
    // Django keeps the whole digest (dklen=None), so nothing else can ever match.
    if hash.len() != if sha1 { 20 } else { 32 } {
        return Err(malformed(algorithm, "hash has the wrong length"));
    }
    Ok(Kind::Pbkdf2 { sha1, iterations, salt: text_salt(algorithm, salt)?, hash })
}

/// `argon2$argon2id$v=19$m=102400,t=2,p=8$<salt>$<hash>` (PHC string after `argon2`);
/// hashes from before argon2 1.3 have no `v=` and are version 0x10.
fn parse_argon2(rest: &str) -> Result<Kind, DjangoHashError> {
    let a = Algorithm::Argon2;
    let parts: Vec<&str> = rest.split('$').collect();
    let (variant, version, params, salt, hash) = match parts.as_slice() {
        [variant, version, params, salt, hash] => (*variant, Some(*version), *params, *salt, *hash),
        [variant, params, salt, hash] => (*variant, None, *params, *salt, *hash),
        _ => return Err(malformed(a, "expected variant$v=..$m=..,t=..,p=..$salt$hash")),
    };
    let variant = match variant {
        "argon2id" => argon2::Algorithm::Argon2id,
        "argon2i" => argon2::Algorithm::Argon2i,
        "argon2d" => argon2::Algorithm::Argon2d,
        _ => return Err(malformed(a, "unknown argon2 variant")),
    };
    let version = match version {
        None => argon2::Version::V0x10,
        Some("v=19") => argon2::Version::V0x13,
        Some("v=16") => argon2::Version::V0x10,
        Some(_) => return Err(malformed(a, "unknown argon2 version")),
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for pair in params.split(',') {
        let (key, value) = pair.split_once('=').ok_or(malformed(a, "parameters are not key=value"))?;
        let slot = match key {
            "m" => &mut m,
            "t" => &mut t,
            "p" => &mut p,
            _ => return Err(malformed(a, "unknown argon2 parameter")),
        };
        if slot.replace(number(a, value, "parameter is not a number")?).is_some() {
            return Err(malformed(a, "repeated argon2 parameter"));
        }
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else {
        return Err(malformed(a, "m, t and p are all required"));
    };
    let m = capped(a, "memory_kib", m, MAX_ARGON2_MEMORY_KIB)?;
    capped(a, "memory_kib×iterations", m.saturating_mul(t), MAX_ARGON2_WORK_KIB)?;
    let p = capped(a, "parallelism", p, MAX_ARGON2_PARALLELISM)?;
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| malformed(a, "salt is not base64"))?;
    let hash = STANDARD_NO_PAD.decode(hash).map_err(|_| malformed(a, "hash is not base64"))?;
    if !(argon2::MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
        return Err(malformed(a, "salt length out of range"));
    }
    if !(argon2::Params::MIN_OUTPUT_LEN..=MAX_HASH_LEN).contains(&hash.len()) {
        return Err(malformed(a, "hash length out of range"));
    }
    // m and t were capped above, so they fit in u32.
    let params = argon2::Params::new(m as u32, t as u32, p as u32, Some(hash.len()))
        .map_err(|_| malformed(a, "parameters out of argon2's range"))?;
    Ok(Kind::Argon2 { params, variant, version, salt, hash })
}

/// `bcrypt$$2b$12$<22 salt><31 hash>`; `bcrypt_sha256` the same after its own name.
fn parse_bcrypt(algorithm: Algorithm, rest: &str) -> Result<Kind, DjangoHashError> {
    let [empty, prefix, cost, data] = split_exact(algorithm, rest, "expected $2b$cost$salthash")?;
    // 2a, 2b and 2y hash every password the same way; 2x is a broken variant.
    if !empty.is_empty() || !matches!(prefix, "2a" | "2b" | "2y") {
        return Err(malformed(algorithm, "not a $2a$, $2b$ or $2y$ bcrypt hash"));
    }
    if cost.len() != 2 {
        return Err(malformed(algorithm, "cost is not two digits"));
    }
    let cost = number(algorithm, cost, "cost is not a number")?;
    if cost < 4 {
        return Err(malformed(algorithm, "cost below bcrypt's minimum of 4"));
    }
    let cost = capped(algorithm, "cost", cost, MAX_BCRYPT_COST)? as u32;
    if data.len() != 53 || !data.is_ascii() {
        return Err(malformed(algorithm, "salt and hash are not 53 characters"));
    }
    let (salt, hash) = data.split_at(22);
    let bad_b64 = |_| malformed(algorithm, "salt or hash is not bcrypt base64");
    let salt = BCRYPT_B64.decode(salt).map_err(bad_b64)?;
    let hash = BCRYPT_B64.decode(hash).map_err(bad_b64)?;
    Ok(Kind::Bcrypt {
        sha256: algorithm == Algorithm::BcryptSha256,
        cost,
        salt: salt.try_into().map_err(|_| malformed(algorithm, "salt is not 16 bytes"))?,
        hash: hash.try_into().map_err(|_| malformed(algorithm, "hash is not 23 bytes"))?,
    })
}

/// `scrypt$<N>$<salt>$<r>$<p>$<base64 hash>`
fn parse_scrypt(rest: &str) -> Result<Kind, DjangoHashError> {
    let a = Algorithm::Scrypt;
    let [n, salt, r, p, hash] = split_exact(a, rest, "expected N$salt$r$p$hash")?;
    let n = number(a, n, "N is not a number")?;
    let r = number(a, r, "r is not a number")?;
    let p = number(a, p, "p is not a number")?;
    if n < 2 || !n.is_power_of_two() || r == 0 || p == 0 {
        return Err(malformed(a, "N must be a power of two above 1, r and p positive"));
    }
    let n = capped(a, "N", n, MAX_SCRYPT_MEMORY_BYTES / 128)?;
    let r = capped(a, "r", r, MAX_SCRYPT_MEMORY_BYTES / 128)?;
    let p = capped(a, "p", p, MAX_SCRYPT_WORK)?;
    capped(a, "memory_bytes", n.saturating_mul(r).saturating_mul(128), MAX_SCRYPT_MEMORY_BYTES)?;
    capped(a, "N×r×p", n.saturating_mul(r).saturating_mul(p), MAX_SCRYPT_WORK)?;
    let hash = STANDARD.decode(hash).map_err(|_| malformed(a, "hash is not base64"))?;
    // Django always derives 64 bytes.
    if hash.len() != 64 {
        return Err(malformed(a, "hash is not 64 bytes"));
    }
    let params = scrypt::Params::new(n.trailing_zeros() as u8, r as u32, p as u32, hash.len())
        .map_err(|_| malformed(a, "parameters out of scrypt's range"))?;
    Ok(Kind::Scrypt { params, salt: text_salt(a, salt)?, hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../../tests/fixtures/django/hashes.json");

    fn fixture() -> serde_json::Value {
        serde_json::from_str(VECTORS).expect("hashes.json is JSON")
    }

    fn entries(key: &str) -> Vec<serde_json::Value> {
        fixture()[key].as_array().expect("array").clone()
    }

    fn text<'a>(entry: &'a serde_json::Value, key: &str) -> &'a str {
        entry[key].as_str().expect("string field")
    }

    #[test]
    fn every_django_vector_verifies_its_password_and_only_it() {
        let vectors = entries("vectors");
        assert!(vectors.len() >= 30, "fixture has {} vectors", vectors.len());
        for v in &vectors {
            let (name, password, encoded) = (text(v, "hasher"), text(v, "password"), text(v, "encoded"));
            let hash = DjangoHash::parse(encoded).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(hash.algorithm().name(), name);
            assert!(hash.verify(password), "{name} rejects its password {password:?}");
            // Django's 1,000,000 pbkdf2 iterations take seconds in a debug build; the same
            // code refuses wrong passwords at 1000 in the other vectors.
            if encoded.contains("$1000000$") {
                continue;
            }
            // Changed at the front: plain bcrypt rightly ignores what follows byte 72.
            for wrong in [format!("x{password}"), format!("X{}", password.to_uppercase()), String::new()] {
                if wrong != password {
                    assert!(!hash.verify(&wrong), "{name} accepts {wrong:?} for {password:?}");
                }
            }
        }
    }

    #[test]
    fn every_hasher_is_covered_at_django_default_cost_and_with_unicode_and_long_passwords() {
        let vectors = entries("vectors");
        for name in ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "bcrypt", "scrypt"] {
            let of = |pred: &dyn Fn(&str) -> bool| {
                vectors.iter().any(|v| text(v, "hasher") == name && pred(text(v, "password")))
            };
            assert!(of(&|p| !p.is_ascii()), "{name}: no non-ASCII password");
            assert!(of(&|p| p.len() > 72), "{name}: no password over 72 bytes");
            assert!(of(&|p| p.is_empty()), "{name}: no empty password");
        }
        assert!(
            vectors.iter().any(|v| text(v, "encoded").starts_with("pbkdf2_sha256$1000000$")),
            "Django's default pbkdf2_sha256 iteration count is missing"
        );
        assert!(vectors.iter().any(|v| text(v, "encoded").starts_with("argon2$argon2i$")));
    }

    #[test]
    fn plain_bcrypt_ignores_bytes_after_72_as_django_does_and_bcrypt_sha256_does_not() {
        let long: Vec<_> =
            entries("vectors").into_iter().filter(|v| v.get("also_accepts").is_some()).collect();
        assert!(long.len() >= 6);
        for v in &long {
            let hash = DjangoHash::parse(text(v, "encoded")).unwrap();
            // As the generator makes it: Python slices characters, not bytes.
            let twin: String = text(v, "password").chars().take(72).chain("XYZ".chars()).collect();
            let accepted =
                v["also_accepts"].as_array().unwrap().iter().any(|a| a.as_str() == Some(twin.as_str()));
            assert_eq!(hash.verify(&twin), accepted, "{}", text(v, "hasher"));
            assert_eq!(accepted, hash.algorithm() == Algorithm::Bcrypt);
        }
    }

    #[test]
    fn a_changed_hash_or_salt_does_not_verify() {
        for v in entries("vectors").iter().filter(|v| !text(v, "encoded").contains("$1000000$")) {
            let encoded = text(v, "encoded");
            for position in [encoded.len() - 3, encoded.rfind('$').unwrap() - 2] {
                let mut bytes = encoded.as_bytes().to_vec();
                bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
                let changed = String::from_utf8(bytes).unwrap();
                if let Ok(hash) = DjangoHash::parse(&changed) {
                    assert!(!hash.verify(text(v, "password")), "{changed}");
                }
            }
        }
    }

    #[test]
    fn refused_hashers_from_django_are_refused_by_name() {
        let refused = entries("refused");
        let names: Vec<_> = refused.iter().map(|v| text(v, "hasher")).collect();
        assert_eq!(names, ["md5", "unsalted_md5", "sha1", "unsalted_sha1"]);
        for v in &refused {
            match DjangoHash::parse(text(v, "encoded")) {
                Err(DjangoHashError::Refused(name)) => assert_eq!(name, text(v, "hasher")),
                other => panic!("{}: {other:?}", text(v, "hasher")),
            }
        }
        assert_eq!(
            DjangoHash::parse("md5$$0123456789abcdef0123456789abcdef").unwrap_err(),
            DjangoHashError::Refused("unsalted_md5")
        );
        assert_eq!(DjangoHash::parse("crypt$$ab1234567890").unwrap_err(), DjangoHashError::Refused("crypt"));
    }

    #[test]
    fn unusable_and_empty_passwords_are_unusable() {
        let unusable = entries("unusable");
        assert!(!unusable.is_empty());
        for u in &unusable {
            assert_eq!(DjangoHash::parse(u.as_str().unwrap()).unwrap_err(), DjangoHashError::Unusable);
        }
        assert_eq!(DjangoHash::parse("").unwrap_err(), DjangoHashError::Unusable);
    }

    fn reason(encoded: &str) -> DjangoHashError {
        DjangoHash::parse(encoded).expect_err(encoded)
    }

    const SALT22: &str = "OHgz7He6zNR96yj7IvI43U";
    const B64_32: &str = "//HCAbswegJqxsRc0u5U+jABpRzXKcFHkb/4BvpbZU8=";
    const BCRYPT53: &str = "xKBQzvXSAFN4jLNUheWdjeCzZqQQ.JoxiAtEb6DkW.QMXjkQ311hu";
    const ARGON_TAIL: &str = "cXE5YkxOeldZeWxDSHNTRlVHNk4ybw$0GnOgqdAhaS3co+aIYXco7vCEmHvEgNoaMNklBVsOvQ";

    fn scrypt_hash(n: &str, r: &str, p: &str) -> String {
        format!("scrypt${n}${SALT22}${r}${p}${}", STANDARD.encode([7u8; 64]))
    }

    #[test]
    fn malformed_hashes_are_refused_with_their_reason() {
        let cases = [
            "no dollar sign here".to_owned(),
            "argon3$whatever".to_owned(),
            format!("pbkdf2_sha256$10x0${SALT22}${B64_32}"),
            format!("pbkdf2_sha256$-1000${SALT22}${B64_32}"),
            format!("pbkdf2_sha256$0${SALT22}${B64_32}"),
            format!("pbkdf2_sha256$1000$${B64_32}"),
            format!("pbkdf2_sha256$1000${SALT22}$not base64!"),
            format!("pbkdf2_sha1$1000${SALT22}${B64_32}"),
            format!("pbkdf2_sha256$1000${SALT22}"),
            format!("pbkdf2_sha256$1000${SALT22}${B64_32}$extra"),
            format!("bcrypt$$2x$12${BCRYPT53}"),
            format!("bcrypt$2b$12${BCRYPT53}"),
            format!("bcrypt$$2b$3${BCRYPT53}"),
            format!("bcrypt$$2b$03${BCRYPT53}"),
            format!("bcrypt_sha256$$2b$12${}", &BCRYPT53[1..]),
            format!("bcrypt_sha256$$2b$12${}é", &BCRYPT53[2..]),
            format!("bcrypt$$2b$12${}!", &BCRYPT53[1..]),
            format!("argon2$argon2x$v=19$m=1024,t=1,p=2${ARGON_TAIL}"),
            format!("argon2$argon2id$v=20$m=1024,t=1,p=2${ARGON_TAIL}"),
            format!("argon2$argon2id$v=19$m=1024,t=1${ARGON_TAIL}"),
            format!("argon2$argon2id$v=19$m=1024,t=1,p=2,p=2${ARGON_TAIL}"),
            format!("argon2$argon2id$v=19$m=1024,t=1,x=2${ARGON_TAIL}"),
            format!("argon2$argon2id$v=19$m=1024,t=0,p=2${ARGON_TAIL}"),
            format!("argon2$argon2id$v=19$m=1024,t=1,p=2$c2FsdA${}", &ARGON_TAIL[31..]),
            format!("argon2argon2id$v=19$m=1024,t=1,p=2${ARGON_TAIL}"),
            scrypt_hash("1000", "8", "1"),
            scrypt_hash("1", "8", "1"),
            scrypt_hash("1024", "0", "1"),
            scrypt_hash("1024", "8", "x"),
            format!("scrypt$1024${SALT22}$8$1${B64_32}"),
        ];
        for case in &cases {
            let err = reason(case);
            assert!(
                matches!(err, DjangoHashError::Malformed { .. } | DjangoHashError::UnknownFormat),
                "{case}: {err:?}"
            );
            // The message names the problem, not the secret material.
            let message = err.to_string();
            assert!(!message.contains(SALT22) && !message.contains(&BCRYPT53[..20]), "{message}");
        }
    }

    #[test]
    fn costs_above_djangos_defaults_and_the_margin_are_refused_before_any_hashing() {
        let too_expensive = |encoded: String, parameter: &str| match reason(&encoded) {
            DjangoHashError::TooExpensive { parameter: p, value, max, .. } => {
                assert_eq!(p, parameter, "{encoded}");
                assert!(value > max);
            }
            other => panic!("{encoded}: {other:?}"),
        };
        // The issue's examples: each would hold a hashing thread for seconds.
        too_expensive(format!("pbkdf2_sha256$10000000${SALT22}${B64_32}"), "iterations");
        too_expensive(format!("bcrypt$$2b$16${BCRYPT53}"), "cost");
        too_expensive(format!("pbkdf2_sha256$2000001${SALT22}${B64_32}"), "iterations");
        too_expensive(format!("pbkdf2_sha1$999999999999${SALT22}${B64_32}"), "iterations");
        too_expensive(format!("bcrypt$$2b$14${BCRYPT53}"), "cost");
        too_expensive(format!("bcrypt_sha256$$2b$31${BCRYPT53}"), "cost");
        too_expensive(format!("argon2$argon2id$v=19$m=131073,t=1,p=2${ARGON_TAIL}"), "memory_kib");
        too_expensive(format!("argon2$argon2id$v=19$m=102400,t=4,p=8${ARGON_TAIL}"), "memory_kib×iterations");
        too_expensive(format!("argon2$argon2id$v=19$m=1024,t=1,p=17${ARGON_TAIL}"), "parallelism");
        too_expensive(scrypt_hash("68719476736", "8", "1"), "N");
        too_expensive(scrypt_hash("65536", "8", "1"), "memory_bytes");
        too_expensive(scrypt_hash("16384", "8", "11"), "N×r×p");
        too_expensive(scrypt_hash("2", "4000000000", "1"), "r");
        let message = reason(&format!("bcrypt$$2b$16${BCRYPT53}")).to_string();
        assert_eq!(message, "bcrypt hash too expensive to verify: cost 16 is above the cap of 13");
    }

    #[test]
    fn djangos_defaults_and_costs_at_the_caps_are_accepted() {
        for iterations in ["1000000", "1200000", "1500000", "1800000", "2000000"] {
            assert!(DjangoHash::parse(&format!("pbkdf2_sha256${iterations}${SALT22}${B64_32}")).is_ok());
        }
        assert!(DjangoHash::parse(&format!("bcrypt$$2b$12${BCRYPT53}")).is_ok());
        assert!(DjangoHash::parse(&format!("bcrypt$$2y$13${BCRYPT53}")).is_ok());
        assert!(DjangoHash::parse(&scrypt_hash("16384", "8", "5")).is_ok());
        assert!(DjangoHash::parse(&scrypt_hash("32768", "8", "5")).is_ok());
        assert!(DjangoHash::parse(&format!("argon2$argon2id$v=19$m=102400,t=2,p=8${ARGON_TAIL}")).is_ok());
        assert!(DjangoHash::parse(&format!("argon2$argon2d$v=16$m=131072,t=3,p=16${ARGON_TAIL}")).is_ok());
    }

    #[test]
    fn the_costliest_hashes_are_one_per_costly_algorithm_at_the_caps() {
        let costliest = DjangoHash::costliest();
        let names: Vec<&str> = costliest.iter().map(|h| h.algorithm().name()).collect();
        assert_eq!(names, ["pbkdf2_sha256", "argon2", "bcrypt_sha256", "scrypt"]);
        let shown: Vec<String> = costliest.iter().map(|h| format!("{h:?}")).collect();
        let expected = [
            "iterations: 2000000",
            "m_cost: 131072, t_cost: 3, p_cost: 16",
            "cost: 13",
            "log_n: 15, r: 8, p: 5",
        ];
        for (shown, expected) in shown.iter().zip(expected) {
            assert!(shown.contains(expected), "{shown} lacks {expected}");
        }
        // At the caps exactly: the memory and work of argon2 and scrypt are both used up.
        assert_eq!(128 * (1u64 << 15) * 8, MAX_SCRYPT_MEMORY_BYTES);
        assert_eq!((1u64 << 15) * 8 * 5, MAX_SCRYPT_WORK);
        assert!(!costliest[0].verify("anything"));
    }

    #[test]
    fn debug_shows_the_cost_but_not_the_salt_or_hash() {
        let hash = DjangoHash::parse(&format!("pbkdf2_sha256$1000${SALT22}${B64_32}")).unwrap();
        let shown = format!("{hash:?}");
        assert!(shown.contains("Pbkdf2Sha256") && shown.contains("1000"), "{shown}");
        assert!(!shown.contains(SALT22) && !shown.contains(&B64_32[..10]), "{shown}");
    }
}
