//! WebAuthn by webauthn-rs's passkey API, as tollgate uses it: the relying party of
//! `WEBAUTHN_RP_ID` and `WEBAUTHN_ORIGINS`, the ceremonies' options and states in their
//! stored forms, and the checks of an answer (origin, RP id, challenge, signature, user
//! verification, sign counter), which webauthn-rs does. A leaf: no database, no sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, Credential, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use crate::config::PasskeySettings;

/// How long a ceremony may take, from its options to its answer.
pub const FLOW_TTL_SECS: i64 = 300;
/// Passkeys one user may have.
pub const PASSKEYS_PER_USER: i64 = 10;
/// The longest name a passkey may be given, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// Why an answer was refused: for the log only; the client learns `invalid_passkey`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

impl From<webauthn_rs::prelude::WebauthnError> for Refused {
    fn from(err: webauthn_rs::prelude::WebauthnError) -> Self {
        Refused(err.to_string())
    }
}

/// The relying party, built once at start-up.
pub struct PasskeyCore {
    webauthn: Webauthn,
}

/// A ceremony begun: the options for the client, and the state to keep.
pub struct Started {
    /// `PublicKeyCredentialCreationOptionsJSON` or `…RequestOptionsJSON`.
    pub public_key: Value,
    /// webauthn-rs's state, serialised.
    pub state: String,
}

/// A passkey registered, in its stored form.
pub struct Registered {
    pub credential_id: String,
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

/// A sign-in answered: whose passkey says it is, by credential id.
pub struct Claimed {
    pub user_id: Uuid,
    pub credential_id: String,
}

/// A sign-in that holds: the stored passkey as it is now.
pub struct Verified {
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub user_verified: bool,
}

impl PasskeyCore {
    pub fn new(settings: &PasskeySettings, app_name: &str) -> Result<Self, String> {
        let parse =
            |origin: &str| Url::parse(origin).map_err(|e| format!("WEBAUTHN_ORIGINS: {origin:?}: {e}"));
        let mut origins = settings.origins.iter();
        let first = origins.next().ok_or("WEBAUTHN_ORIGINS: empty")?;
        let first_url = parse(first)?;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, &first_url)
            .map_err(|e| format!("WEBAUTHN_ORIGINS: {first:?} does not match WEBAUTHN_RP_ID: {e}"))?
            .rp_name(app_name);
        for origin in origins {
            builder = builder.append_allowed_origin(&parse(origin)?);
        }
        let webauthn = builder.build().map_err(|e| format!("WEBAUTHN_RP_ID: {e}"))?;
        Ok(Self { webauthn })
    }

    /// Starts a registration for the user, excluding the credentials they have already.
    pub fn start_registration(
        &self,
        user_id: Uuid,
        username: &str,
        registered: &[String],
    ) -> Result<Started, Refused> {
        let exclude = registered
            .iter()
            .filter_map(|id| URL_SAFE_NO_PAD.decode(id).ok())
            .map(Into::into)
            .collect::<Vec<_>>();
        let (options, state) =
            self.webauthn.start_passkey_registration(user_id, username, username, Some(exclude))?;
        let mut public_key = to_value(&options.public_key)?;
        // A passkey signs in without a username: the credential must live on the
        // authenticator (discoverable). webauthn-rs asks for that only as a preference.
        if let Some(selection) = public_key.get_mut("authenticatorSelection").and_then(Value::as_object_mut) {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        Ok(Started { public_key, state: to_string(&state)? })
    }

    pub fn finish_registration(
        &self,
        state: &str,
        answer: &RegisterPublicKeyCredential,
    ) -> Result<Registered, Refused> {
        let state: PasskeyRegistration = from_str(state)?;
        let passkey = self.webauthn.finish_passkey_registration(answer, &state)?;
        let stored = to_string(&passkey)?;
        let credential = Credential::from(passkey);
        Ok(Registered {
            credential_id: URL_SAFE_NO_PAD.encode(credential.cred_id.as_ref() as &[u8]),
            credential: stored,
            sign_count: i64::from(credential.counter),
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
        })
    }

    /// Starts a sign-in with any of this site's passkeys (discoverable credentials).
    pub fn start_login(&self) -> Result<Started, Refused> {
        let (options, state) = self.webauthn.start_discoverable_authentication()?;
        Ok(Started { public_key: to_value(&options.public_key)?, state: to_string(&state)? })
    }

    /// Whose passkey the answer says it is (its user handle) and which one; nothing is
    /// checked yet.
    pub fn claimed(&self, answer: &PublicKeyCredential) -> Result<Claimed, Refused> {
        let (user_id, credential_id) = self.webauthn.identify_discoverable_authentication(answer)?;
        Ok(Claimed { user_id, credential_id: URL_SAFE_NO_PAD.encode(credential_id) })
    }

    /// Checks the answer against the sign-in's state and the stored passkey, and moves
    /// the passkey's counter and backup flags on.
    pub fn finish_login(
        &self,
        state: &str,
        answer: &PublicKeyCredential,
        stored: &str,
    ) -> Result<Verified, Refused> {
        let state: DiscoverableAuthentication = from_str(state)?;
        let mut passkey: Passkey = from_str(stored)?;
        let result: AuthenticationResult = self.webauthn.finish_discoverable_authentication(
            answer,
            state,
            &[DiscoverableKey::from(&passkey)],
        )?;
        passkey.update_credential(&result);
        Ok(Verified {
            credential: to_string(&passkey)?,
            sign_count: i64::from(result.counter()),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            user_verified: result.user_verified(),
        })
    }
}

/// A passkey's name as given, trimmed; `None` when it breaks the rule (1 to 64
/// characters, no control characters).
pub fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    let count = name.chars().count();
    ((1..=NAME_MAX_CHARS).contains(&count) && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

fn to_value(value: &impl serde::Serialize) -> Result<Value, Refused> {
    serde_json::to_value(value).map_err(|e| Refused(format!("options not serialisable: {e}")))
}

fn to_string(value: &impl serde::Serialize) -> Result<String, Refused> {
    serde_json::to_string(value).map_err(|e| Refused(format!("state not serialisable: {e}")))
}

fn from_str<T: serde::de::DeserializeOwned>(stored: &str) -> Result<T, Refused> {
    serde_json::from_str(stored).map_err(|e| Refused(format!("stored state unreadable: {e}")))
}
