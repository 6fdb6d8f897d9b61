//! `AccessTokens::verify` on hostile input. It must never panic, and it may accept a
//! token only if that token really carries a signature by our key over a strict header
//! and a complete, in-date claim set.
//!
//! Inputs come in four shapes (chosen by the fuzzer):
//! * `Raw`: arbitrary bytes, verified as a `&str` when they are UTF-8;
//! * `Forged`: fuzzer-built header JSON / payload JSON / signature, base64url-encoded and
//!   joined by '.'; the signature never comes from the real key over this message, so an
//!   `Ok` here is a critical bug;
//! * `Signed`: fuzzer-built header and payload, really signed by the key: this reaches
//!   the header and claim checks behind the signature, and an `Ok` must still satisfy
//!   every rule (strict header, issuer, audience, time window, all claims present);
//! * `Tampered`: byte edits and segment swaps applied to a genuinely issued token.
#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tollgate::auth::keys::KeyStore;
use tollgate::auth::tokens::{AccessClaims, AccessTokens, Amr, MAX_TOKEN_LEN, TokenSession};
use tollgate::clock::Clock;
use tollgate::config::JwtSettings;
use uuid::Uuid;

const ISSUER: &str = "tollgate-fuzz-iss";
const AUDIENCE: &str = "tollgate-fuzz-aud";
const LEEWAY: i64 = 30;
const TTL: i64 = 900;

struct Fixture {
    tokens: AccessTokens,
    kid: String,
    /// Independent of jsonwebtoken: the oracle for "was this signed by our key".
    public: VerifyingKey,
    /// Lets `Signed` inputs carry genuine signatures.
    private: SigningKey,
    /// Issued by `AccessTokens::issue` at start-up (valid for the whole run).
    issued: String,
}

fn keys_dir() -> PathBuf {
    std::env::var_os("TOLLGATE_FUZZ_KEYS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tollgate-fuzz-keys"))
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let settings = JwtSettings {
            algorithm: Algorithm::EdDSA,
            secret: None,
            keys_dir: keys_dir(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            leeway_secs: LEEWAY as u64,
            access_token_ttl_secs: TTL as u64,
            jwks_max_age_secs: 300,
            key_publish_ahead_secs: 3600,
        };
        let keys = Arc::new(KeyStore::open(&settings, Clock::system()).expect("fuzz keys dir is usable"));
        let tokens = AccessTokens::new(keys.clone(), &settings, Clock::system());
        let ring = keys.ring();
        let kid = ring.signing.kid.clone();
        assert_eq!(ring.verifying.len(), 1, "the fuzz keys dir must hold exactly one key");
        let jwks: Value = serde_json::from_slice(&ring.jwks).expect("JWKS is JSON");
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kid"].as_str(), Some(kid.as_str()));
        let x = jwk["x"].as_str().expect("an Ed25519 JWK has x");
        let x: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
        let public = VerifyingKey::from_bytes(&x).unwrap();
        let pem = std::fs::read_to_string(settings.keys_dir.join("eddsa.pem")).unwrap();
        let private = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(private.verifying_key(), public, "eddsa.pem and the JWKS disagree");
        let now = chrono::Utc::now().naive_utc();
        let session = TokenSession { id: None, amr: Amr::Password };
        let issued = tokens.issue(Uuid::new_v4(), "fuzz", &[], now, None, session);
        assert!(tokens.verify(&issued).is_ok(), "a freshly issued token must verify");
        Fixture { tokens, kid, public, private, issued }
    })
}

// ---------------------------------------------------------------------------------------
// Input grammar.

/// Raw JSON texts worth trying as values.
const WORDS: &[&str] = &[
    r#""EdDSA""#,
    r#""eddsa""#,
    r#""Ed25519""#,
    r#""none""#,
    r#""None""#,
    r#""HS256""#,
    r#""RS256""#,
    r#""ES256""#,
    r#""PS256""#,
    r#""EdDSA\u0000""#,
    r#""Ed\u0044SA""#,
    r#"" EdDSA""#,
    r#""at+jwt""#,
    r#""AT+JWT""#,
    r#""JWT""#,
    r#""application/at+jwt""#,
    r#""at+jwt ""#,
    r#""at\u002bjwt""#,
    r#""tollgate-fuzz-iss""#,
    r#""tollgate-fuzz-aud""#,
    r#"["tollgate-fuzz-aud"]"#,
    r#"["tollgate-fuzz-aud","other"]"#,
    r#""tollgate""#,
    r#""""#,
    r#""00000000-0000-0000-0000-000000000000""#,
    r#""not-a-uuid""#,
    "0",
    "-0",
    "1",
    "-1",
    "1.5",
    "1e10",
    "1e400",
    "-1e400",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    r#"{"alg":"EdDSA"}"#,
    r#"[1,2,3]"#,
];

/// Raw JSON texts (quoted) worth trying as member names.
const KEYS: &[&str] = &[
    r#""alg""#,
    r#""typ""#,
    r#""kid""#,
    r#""\u0061lg""#,
    r#""ki\u0064""#,
    r#""Alg""#,
    r#""alg ""#,
    r#""jku""#,
    r#""jwk""#,
    r#""x5u""#,
    r#""x5c""#,
    r#""crit""#,
    r#""cty""#,
    r#""b64""#,
    r#""sub""#,
    r#""username""#,
    r#""roles""#,
    r#""iss""#,
    r#""aud""#,
    r#""iat""#,
    r#""nbf""#,
    r#""exp""#,
    r#""jti""#,
    r#""exp\u0000""#,
    r#""""#,
];

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Name<'a> {
    Alg,
    Typ,
    Kid,
    Sub,
    Username,
    Roles,
    Iss,
    Aud,
    Iat,
    Nbf,
    Exp,
    Jti,
    /// A raw member name from `KEYS`.
    Known(u8),
    /// Any name, escaped as a JSON string.
    Other(&'a str),
}

impl Name<'_> {
    fn text(self) -> String {
        match self {
            Name::Alg => r#""alg""#.into(),
            Name::Typ => r#""typ""#.into(),
            Name::Kid => r#""kid""#.into(),
            Name::Sub => r#""sub""#.into(),
            Name::Username => r#""username""#.into(),
            Name::Roles => r#""roles""#.into(),
            Name::Iss => r#""iss""#.into(),
            Name::Aud => r#""aud""#.into(),
            Name::Iat => r#""iat""#.into(),
            Name::Nbf => r#""nbf""#.into(),
            Name::Exp => r#""exp""#.into(),
            Name::Jti => r#""jti""#.into(),
            Name::Known(i) => KEYS[i as usize % KEYS.len()].into(),
            Name::Other(s) => serde_json::to_string(s).unwrap(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Val<'a> {
    /// The value a genuine token has for this member.
    Good,
    /// Seconds relative to now (for `iat` / `nbf` / `exp`), probing the leeway edges.
    Offset(i16),
    /// An absolute integer.
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Str(&'a str),
    /// A raw JSON text from `WORDS`.
    Word(u8),
    /// Unescaped text: usually invalid JSON.
    RawText(&'a str),
    Array(Vec<Val<'a>>),
    Object(Vec<(Name<'a>, Val<'a>)>),
}

struct Ctx<'f> {
    f: &'f Fixture,
    now: i64,
    sub: Uuid,
    jti: Uuid,
}

impl Ctx<'_> {
    fn good(&self, name: Name<'_>) -> String {
        let s = |v: &str| serde_json::to_string(v).unwrap();
        match name {
            Name::Alg => s("EdDSA"),
            Name::Typ => s("at+jwt"),
            Name::Kid => s(&self.f.kid),
            Name::Sub => s(&self.sub.to_string()),
            Name::Username => s("fuzz"),
            Name::Roles => r#"["admin","staff"]"#.into(),
            Name::Iss => s(ISSUER),
            Name::Aud => s(AUDIENCE),
            Name::Iat | Name::Nbf => self.now.to_string(),
            Name::Exp => (self.now + TTL).to_string(),
            Name::Jti => s(&self.jti.to_string()),
            Name::Known(_) | Name::Other(_) => "null".into(),
        }
    }

    fn value(&self, name: Name<'_>, val: &Val<'_>, depth: u32) -> String {
        if depth > 8 {
            return "0".into();
        }
        match val {
            Val::Good => self.good(name),
            Val::Offset(d) => (self.now + i64::from(*d)).to_string(),
            Val::Int(i) => i.to_string(),
            Val::Float(x) => serde_json::to_string(x).unwrap(), // non-finite become null
            Val::Bool(b) => b.to_string(),
            Val::Null => "null".into(),
            Val::Str(s) => serde_json::to_string(s).unwrap(),
            Val::Word(i) => WORDS[*i as usize % WORDS.len()].into(),
            Val::RawText(s) => (*s).into(),
            Val::Array(items) => {
                let items: Vec<String> = items.iter().map(|v| self.value(name, v, depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            Val::Object(members) => self.object(members.iter().cloned(), depth + 1),
        }
    }

    fn object<'a>(&self, members: impl Iterator<Item = (Name<'a>, Val<'a>)>, depth: u32) -> String {
        let members: Vec<String> =
            members.map(|(n, v)| format!("{}:{}", n.text(), self.value(n, &v, depth))).collect();
        format!("{{{}}}", members.join(","))
    }

    fn json(&self, part: &Part<'_>, standard: &[Name<'static>]) -> Vec<u8> {
        match part {
            Part::Raw(bytes) => bytes.to_vec(),
            Part::Object(members) => self.object(members.iter().cloned(), 0).into_bytes(),
            Part::Standard { overrides } => {
                // The genuine members, each possibly replaced or removed, then extras.
                let mut members: Vec<(Name<'_>, Val<'_>)> =
                    standard.iter().map(|n| (*n, Val::Good)).collect();
                for o in overrides {
                    match o {
                        Override::Set(n, v) => match members.iter_mut().find(|(m, _)| m == n) {
                            Some(slot) => slot.1 = v.clone(),
                            None => members.push((*n, v.clone())),
                        },
                        Override::Remove(n) => members.retain(|(m, _)| m != n),
                        Override::Duplicate(n, v) => members.push((*n, v.clone())),
                    }
                }
                self.object(members.into_iter(), 0).into_bytes()
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Override<'a> {
    Set(Name<'a>, Val<'a>),
    Remove(Name<'a>),
    Duplicate(Name<'a>, Val<'a>),
}

/// One JSON part (header or payload).
#[derive(Arbitrary, Debug)]
enum Part<'a> {
    /// The genuine members (see `HEADER` / `CLAIMS`), with fuzzer changes.
    Standard { overrides: Vec<Override<'a>> },
    /// Members entirely of the fuzzer's choosing (duplicates allowed).
    Object(Vec<(Name<'a>, Val<'a>)>),
    /// Not necessarily JSON at all.
    Raw(&'a [u8]),
}

const HEADER: &[Name<'static>] = &[Name::Alg, Name::Typ, Name::Kid];
const CLAIMS: &[Name<'static>] = &[
    Name::Sub,
    Name::Username,
    Name::Roles,
    Name::Iss,
    Name::Aud,
    Name::Iat,
    Name::Nbf,
    Name::Exp,
    Name::Jti,
];

/// How a segment's bytes become text.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    UrlNoPad,
    UrlPad,
    StdNoPad,
    StdPad,
    /// The bytes themselves (lossily as UTF-8).
    Verbatim,
}

fn encode(enc: Enc, bytes: &[u8]) -> String {
    match enc {
        Enc::UrlNoPad => URL_SAFE_NO_PAD.encode(bytes),
        Enc::UrlPad => URL_SAFE.encode(bytes),
        Enc::StdNoPad => STANDARD_NO_PAD.encode(bytes),
        Enc::StdPad => STANDARD.encode(bytes),
        Enc::Verbatim => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[derive(Arbitrary, Debug)]
enum ForgedSig<'a> {
    Bytes(&'a [u8]),
    /// 64 bytes, the length of an Ed25519 signature.
    Sized(Box<[u8; 64]>),
    /// The genuine issued token's signature (over a different message).
    FromIssued,
    /// A genuine signature by our key over some other header/payload.
    OverOther {
        header: Part<'a>,
        payload: Part<'a>,
    },
    /// A genuine signature over this message with a bit flipped.
    Flipped {
        byte: u8,
        bit: u8,
    },
    /// A genuine signature over this message with `S` replaced by `S + L` (non-canonical).
    NonCanonicalS,
}

#[derive(Arbitrary, Debug)]
enum Edit<'a> {
    Insert(u16, u8),
    Delete(u16),
    Replace(u16, u8),
    Truncate(u16),
    Append(&'a str),
    ReplaceSegment(u8, Enc, &'a [u8]),
    SwapSegments(u8, u8),
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw(&'a [u8]),
    Forged { header: Part<'a>, payload: Part<'a>, sig: ForgedSig<'a>, encodings: [Enc; 3] },
    Signed { header: Part<'a>, payload: Part<'a>, encodings: [Enc; 3] },
    Tampered(Vec<Edit<'a>>),
}

// ---------------------------------------------------------------------------------------
// Oracles.

/// What must hold whenever `verify` returns `Ok`.
fn check_accepted(f: &Fixture, token: &str, claims: &AccessClaims, before: i64, after: i64) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token without three segments: {token:?}");
    assert!(token.len() <= MAX_TOKEN_LEN, "accepted an over-long token");

    let header = URL_SAFE_NO_PAD
        .decode(parts[0])
        .unwrap_or_else(|e| panic!("accepted a header that is not base64url ({e}): {token:?}"));
    let header: Value = serde_json::from_slice(&header)
        .unwrap_or_else(|e| panic!("accepted a header that is not JSON ({e}): {token:?}"));
    let header = header.as_object().expect("accepted a non-object header");
    assert_eq!(header.get("alg"), Some(&Value::from("EdDSA")), "alg: {token:?}");
    assert_eq!(header.get("typ"), Some(&Value::from("at+jwt")), "typ: {token:?}");
    assert_eq!(header.get("kid"), Some(&Value::from(f.kid.as_str())), "kid: {token:?}");
    assert_eq!(header.len(), 3, "accepted extra header members: {header:?}");

    // The signature is genuinely ours, by an implementation other than jsonwebtoken's.
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap_or_else(|e| panic!("CRITICAL: accepted a non-base64url signature ({e}): {token:?}"));
    let sig = Signature::from_slice(&sig)
        .unwrap_or_else(|e| panic!("CRITICAL: accepted a malformed signature ({e}): {token:?}"));
    let message = &token[..parts[0].len() + 1 + parts[1].len()];
    f.public
        .verify_strict(message.as_bytes(), &sig)
        .unwrap_or_else(|e| panic!("CRITICAL: accepted a signature our key did not make ({e}): {token:?}"));

    // The claims returned are the claims signed, and they satisfy every rule.
    let payload = URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap_or_else(|e| panic!("accepted a payload that is not base64url ({e}): {token:?}"));
    let signed: AccessClaims = serde_json::from_slice(&payload)
        .unwrap_or_else(|e| panic!("accepted a payload that is not AccessClaims ({e}): {token:?}"));
    assert_eq!(&signed, claims, "returned claims differ from the signed ones");
    // (`AccessClaims` has no defaults, so all members were present. Extra members are
    // allowed and skipped unparsed, so the payload need not parse as a `Value`, e.g. an
    // extra `1e400`; when it does, the members must be there with the values returned.)
    if let Ok(value) = serde_json::from_slice::<Value>(&payload) {
        for member in ["sub", "username", "roles", "iss", "aud", "iat", "nbf", "exp", "jti"] {
            assert!(value.get(member).is_some(), "accepted without {member}: {value}");
        }
        assert_eq!(value["exp"].as_i64(), Some(claims.exp), "exp differs: {value}");
        assert_eq!(value["nbf"].as_i64(), Some(claims.nbf), "nbf differs: {value}");
        assert_eq!(value["iat"].as_i64(), Some(claims.iat), "iat differs: {value}");
    }
    assert_eq!(claims.iss, ISSUER, "wrong issuer accepted");
    assert_eq!(claims.aud, AUDIENCE, "wrong audience accepted");
    assert!(claims.exp >= before - LEEWAY, "expired token accepted: {claims:?} (now {before})");
    assert!(claims.nbf <= after + LEEWAY, "not-yet-valid token accepted: {claims:?} (now {after})");
    assert!(claims.iat <= after + LEEWAY, "future-issued token accepted: {claims:?} (now {after})");
}

fn verify(f: &Fixture, token: &str) -> bool {
    let before = chrono::Utc::now().timestamp();
    let result = f.tokens.verify(token);
    let after = chrono::Utc::now().timestamp();
    if token.len() > MAX_TOKEN_LEN {
        assert!(result.is_err(), "accepted a token over MAX_TOKEN_LEN");
    }
    if std::env::var_os("TOLLGATE_FUZZ_TRACE").is_some() {
        // One line per verification, to see which outcomes a corpus reaches
        // (`-runs=0` over the corpus, then count the lines).
        let outcome = match &result {
            Ok(_) => "Ok".to_owned(),
            Err(e) => format!("{e:?}"),
        };
        let outcome: String = outcome.chars().take(80).collect();
        eprintln!("TRACE {outcome}");
    }
    match result {
        Ok(claims) => {
            check_accepted(f, token, &claims, before, after);
            true
        }
        Err(_) => false,
    }
}

fn sign(f: &Fixture, message: &str) -> [u8; 64] {
    f.private.sign(message.as_bytes()).to_bytes()
}

/// Ed25519 group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_l(s: &mut [u8]) {
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
}

fn run(input: Input<'_>) {
    let f = fixture();
    let ctx = Ctx { f, now: chrono::Utc::now().timestamp(), sub: Uuid::new_v4(), jti: Uuid::new_v4() };
    match input {
        Input::Raw(bytes) => {
            if let Ok(token) = std::str::from_utf8(bytes) {
                verify(f, token);
            }
        }
        Input::Forged { header, payload, sig, encodings } => {
            let h = encode(encodings[0], &ctx.json(&header, HEADER));
            let p = encode(encodings[1], &ctx.json(&payload, CLAIMS));
            let message = format!("{h}.{p}");
            let sig: Vec<u8> = match sig {
                ForgedSig::Bytes(b) => b.to_vec(),
                ForgedSig::Sized(b) => b.to_vec(),
                ForgedSig::FromIssued => {
                    URL_SAFE_NO_PAD.decode(f.issued.rsplit('.').next().unwrap()).unwrap()
                }
                ForgedSig::OverOther { header, payload } => {
                    let other = format!(
                        "{}.{}",
                        URL_SAFE_NO_PAD.encode(ctx.json(&header, HEADER)),
                        URL_SAFE_NO_PAD.encode(ctx.json(&payload, CLAIMS))
                    );
                    if other == message {
                        return; // that would be a genuine signature
                    }
                    sign(f, &other).to_vec()
                }
                ForgedSig::Flipped { byte, bit } => {
                    let mut s = sign(f, &message);
                    s[byte as usize % 64] ^= 1 << (bit % 8);
                    s.to_vec()
                }
                ForgedSig::NonCanonicalS => {
                    let mut s = sign(f, &message);
                    add_l(&mut s[32..]);
                    s.to_vec()
                }
            };
            let token = format!("{message}.{}", encode(encodings[2], &sig));
            if verify(f, &token) {
                panic!("CRITICAL: accepted a forged token: {token:?}");
            }
        }
        Input::Signed { header, payload, encodings } => {
            let h = encode(encodings[0], &ctx.json(&header, HEADER));
            let p = encode(encodings[1], &ctx.json(&payload, CLAIMS));
            let message = format!("{h}.{p}");
            let token = format!("{message}.{}", encode(encodings[2], &sign(f, &message)));
            let accepted = verify(f, &token);
            // Liveness: a genuine, unaltered token must be accepted (no false rejects).
            let pristine = |p: &Part<'_>| matches!(p, Part::Standard { overrides } if overrides.is_empty());
            if pristine(&header) && pristine(&payload) && encodings == [Enc::UrlNoPad; 3] {
                assert!(accepted, "a genuine token was rejected: {token:?}");
            }
        }
        Input::Tampered(edits) => {
            let mut t: Vec<u8> = f.issued.as_bytes().to_vec();
            for edit in edits {
                let at = |i: u16, len: usize| if len == 0 { 0 } else { i as usize % len };
                match edit {
                    Edit::Insert(i, b) => {
                        let i = at(i, t.len() + 1);
                        t.insert(i, b);
                    }
                    Edit::Delete(i) if !t.is_empty() => {
                        let i = at(i, t.len());
                        t.remove(i);
                    }
                    Edit::Replace(i, b) if !t.is_empty() => {
                        let i = at(i, t.len());
                        t[i] = b;
                    }
                    Edit::Truncate(i) => t.truncate(at(i, t.len() + 1)),
                    Edit::Append(s) => t.extend_from_slice(s.as_bytes()),
                    Edit::ReplaceSegment(n, enc, bytes) => {
                        let s = String::from_utf8_lossy(&t).into_owned();
                        let mut segs: Vec<String> = s.split('.').map(str::to_owned).collect();
                        let n = n as usize % segs.len();
                        segs[n] = encode(enc, bytes);
                        t = segs.join(".").into_bytes();
                    }
                    Edit::SwapSegments(a, b) => {
                        let s = String::from_utf8_lossy(&t).into_owned();
                        let mut segs: Vec<&str> = s.split('.').collect();
                        let (a, b) = (a as usize % segs.len(), b as usize % segs.len());
                        segs.swap(a, b);
                        t = segs.join(".").into_bytes();
                    }
                    _ => {}
                }
            }
            if let Ok(token) = std::str::from_utf8(&t) {
                if verify(f, token) {
                    assert_eq!(token, f.issued, "CRITICAL: accepted an altered token");
                }
            }
        }
    }
}

fuzz_target!(|input: Input<'_>| run(input));
