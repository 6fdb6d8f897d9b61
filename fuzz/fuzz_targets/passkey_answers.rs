//! The two passkey finish endpoints' parsers and checks on arbitrary bytes: whatever
//! parses as a `RegistrationResponseJSON` or an `AuthenticationResponseJSON` goes through
//! the registration's and the sign-in's checks against live states and a stored passkey,
//! and none of it panics or is accepted (no input can answer a fresh random challenge).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tollgate::auth::webauthn::{PasskeyCore, Started};
use tollgate::config::PasskeySettings;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

/// A passkey as `passkeys.credential` stores it, registered by the software
/// authenticator of `tests/api/passkeys.rs`.
const STORED: &str = include_str!("../fixtures/passkey.json");

struct Live {
    core: PasskeyCore,
    registration: Started,
    login: Started,
}

static LIVE: LazyLock<Live> = LazyLock::new(|| {
    let settings =
        PasskeySettings { rp_id: "localhost".into(), origins: vec!["http://localhost:3000".into()] };
    let core = PasskeyCore::new(&settings, "fuzz").expect("the relying party builds");
    let registration = core.start_registration(uuid::Uuid::new_v4(), "fuzz", &[]).expect("options");
    let login = core.start_login().expect("options");
    Live { core, registration, login }
});

fuzz_target!(|input: &[u8]| {
    let live = &*LIVE;
    if let Ok(answer) = serde_json::from_slice::<RegisterPublicKeyCredential>(input) {
        assert!(live.core.finish_registration(&live.registration.state, &answer).is_err());
    }
    if let Ok(answer) = serde_json::from_slice::<PublicKeyCredential>(input) {
        let _ = live.core.claimed(&answer);
        assert!(live.core.finish_login(&live.login.state, &answer, STORED).is_err());
    }
});
