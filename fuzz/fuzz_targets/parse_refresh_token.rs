//! `RefreshToken::parse` on arbitrary strings: never panics, and accepts only the exact
//! shape `RefreshToken::mint` produces.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tollgate::auth::refresh::{REFRESH_TOKEN_PREFIX, RefreshToken};

fuzz_target!(|input: &str| {
    let Some(token) = RefreshToken::parse(input) else {
        return;
    };
    assert_eq!(token.as_str(), input, "parse must not alter the value");
    assert!(input.starts_with("tgr_"), "accepted without the prefix: {input:?}");
    assert_eq!(REFRESH_TOKEN_PREFIX, "tgr_");
    assert_eq!(input.len(), 47, "accepted a {}-byte value: {input:?}", input.len());
    // The body is canonical unpadded base64url of exactly 32 bytes, so re-encoding the
    // decoded bytes gives the body back: no two accepted strings name the same secret.
    let body = &input[4..];
    let bytes = URL_SAFE_NO_PAD.decode(body).expect("accepted body is base64url");
    assert_eq!(bytes.len(), 32);
    assert_eq!(URL_SAFE_NO_PAD.encode(&bytes), body, "non-canonical body accepted");
    // A parsed token round-trips.
    assert_eq!(RefreshToken::parse(token.as_str()).as_ref(), Some(&token));
    let hash = token.hash();
    assert_eq!(hash.len(), 64, "hash {hash:?}");
    assert!(
        hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "hash is not lower-case hex: {hash:?}"
    );
});
