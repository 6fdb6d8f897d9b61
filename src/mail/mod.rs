//! Mail: the letters tollgate writes, the SMTP transport that sends them, and the sender
//! that delivers the outbox (`db::mail::Outbox`) with retries.
//!
//! A request never talks to SMTP: it queues a [`Letter`] in the transaction of the change
//! it belongs to, and [`sender::Sender`] delivers it. A letter's payload never holds a
//! token: it holds the nonce the token is derived from ([`MailToken`]), with a secret that
//! is not in the database.

pub mod sender;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::auth::refresh::sha256_hex;

use crate::config::MailSettings;

const TOKEN_PREFIX: &str = "tgm_";
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// The outbox's kind for mails (webhooks will have theirs).
pub const OUTBOX_KIND: &str = "mail";

/// Which mail a letter is, and so its template and its `kind` label in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    PasswordReset,
    Test,
}

impl Template {
    pub fn as_str(self) -> &'static str {
        match self {
            Template::PasswordReset => "password_reset",
            Template::Test => "test",
        }
    }

    fn subject(self, app_name: &str) -> String {
        match self {
            Template::PasswordReset => format!("{app_name}: reset your password"),
            Template::Test => format!("{app_name}: test mail"),
        }
    }
}

/// A mail to send, as the outbox keeps it (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Letter {
    pub template: Template,
    pub to: String,
    pub username: String,
    /// What the link's token is derived from ([`MailToken::derive`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A token a mail carries: `tgm_` + 43 base64url characters (256 bits), derived from a
/// random nonce with the mail secret. Only its SHA-256 is stored. Its `Debug` never shows
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct MailToken(String);

impl std::fmt::Debug for MailToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailToken(<redacted>)")
    }
}

impl MailToken {
    /// A new nonce, 256 random bits in hex.
    pub fn nonce() -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn derive(secret: &SecretSlice<u8>, nonce: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret()).expect("any key length");
        mac.update(nonce.as_bytes());
        Self(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())))
    }

    /// Exactly the form `derive` produces, else nothing.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(TOKEN_PREFIX).filter(|_| raw.len() == TOKEN_LEN)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        (bytes.len() == 32).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database stores: SHA-256, lower-case hex.
    pub fn hash(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

/// The mail secret: the refresh secret's, for another purpose (so one key store holds both).
pub fn mail_secret(refresh_secret: &SecretSlice<u8>) -> SecretSlice<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(refresh_secret.expose_secret()).expect("any key length");
    mac.update(b"tollgate mail tokens");
    SecretSlice::from(mac.finalize().into_bytes().to_vec())
}

/// `url` with `token` as its query parameter (`&token=` when it has a query already).
fn link(url: &str, token: &MailToken) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}token={}", token.as_str())
}

/// Mail, when `SMTP_URL` is set: the mailer (for the tokens it derives), the settings, and
/// the sender to wake when a letter is queued.
pub struct MailCore {
    pub mailer: std::sync::Arc<Mailer>,
    pub settings: MailSettings,
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

/// The SMTP transport and what every mail shares.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    app_name: String,
    reset_url: String,
    reset_ttl_secs: i64,
    secret: SecretSlice<u8>,
    templates: minijinja::Environment<'static>,
}

/// What failed when a mail was sent; the text of SMTP's answer, never a token.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: the server is down, slow, or answered 4xx.
    #[error("{0}")]
    Transient(String),
    /// The server refused it for good (5xx), or it cannot be written.
    #[error("{0}")]
    Permanent(String),
}

impl Mailer {
    /// The mailer of `SMTP_URL`; `None` when mail is off.
    pub fn new(settings: &MailSettings, refresh_secret: &SecretSlice<u8>) -> Result<Option<Self>, String> {
        let (Some(url), Some(from)) = (&settings.smtp_url, &settings.from) else { return Ok(None) };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| format!("SMTP_URL: {e}"))?
            .timeout(Some(std::time::Duration::from_secs(10)))
            .build();
        let mut templates = minijinja::Environment::new();
        for (name, source) in [
            ("password_reset.txt", include_str!("templates/password_reset.txt")),
            ("password_reset.html", include_str!("templates/password_reset.html")),
            ("test.txt", include_str!("templates/test.txt")),
            ("test.html", include_str!("templates/test.html")),
        ] {
            templates.add_template(name, source).map_err(|e| format!("mail template {name}: {e}"))?;
        }
        Ok(Some(Self {
            transport,
            from: from.clone(),
            app_name: settings.app_name.clone(),
            reset_url: settings.reset_url.clone(),
            reset_ttl_secs: settings.reset_ttl_secs,
            secret: mail_secret(refresh_secret),
            templates,
        }))
    }

    /// The token of a mail with this nonce.
    pub fn token(&self, nonce: &str) -> MailToken {
        MailToken::derive(&self.secret, nonce)
    }

    /// Writes and sends one letter.
    pub async fn send(&self, letter: &Letter) -> Result<(), SendError> {
        let message = self.write(letter)?;
        self.transport.send(message).await.map(drop).map_err(|e| {
            if e.is_permanent() {
                SendError::Permanent(e.to_string())
            } else {
                SendError::Transient(e.to_string())
            }
        })
    }

    fn write(&self, letter: &Letter) -> Result<Message, SendError> {
        let link = letter.nonce.as_deref().map(|nonce| match letter.template {
            Template::PasswordReset => link(&self.reset_url, &self.token(nonce)),
            Template::Test => String::new(),
        });
        let context = minijinja::context! {
            app_name => &self.app_name,
            username => &letter.username,
            link => link,
            ttl_minutes => self.reset_ttl_secs / 60,
        };
        let render = |suffix: &str| {
            let name = format!("{}.{suffix}", letter.template.as_str());
            let template =
                self.templates.get_template(&name).map_err(|e| SendError::Permanent(e.to_string()))?;
            template.render(&context).map_err(|e| SendError::Permanent(e.to_string()))
        };
        let to: Mailbox = letter.to.parse().map_err(|e| SendError::Permanent(format!("recipient: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.template.subject(&self.app_name))
            .multipart(MultiPart::alternative_plain_html(render("txt")?, render("html")?))
            .map_err(|e| SendError::Permanent(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_derived_from_their_nonce_and_parse_only_in_their_form() {
        let secret = SecretSlice::from(vec![7u8; 32]);
        let nonce = MailToken::nonce();
        let token = MailToken::derive(&secret, &nonce);
        assert_eq!(MailToken::derive(&secret, &nonce), token);
        assert_ne!(MailToken::derive(&SecretSlice::from(vec![8u8; 32]), &nonce), token);
        assert_eq!(MailToken::parse(token.as_str()), Some(token.clone()));
        for bad in ["", "tgm_", &token.as_str()[1..], &format!("{}A", token.as_str()), "tgr_x"] {
            assert_eq!(MailToken::parse(bad), None, "{bad}");
        }
        assert_eq!(token.hash().len(), 64);
        assert!(!format!("{token:?}").contains(&token.as_str()[4..]));
    }

    #[test]
    fn links_add_the_token_to_any_query() {
        let token = MailToken::derive(&SecretSlice::from(vec![1u8; 32]), "n");
        let t = token.as_str();
        assert_eq!(link("https://app/reset", &token), format!("https://app/reset?token={t}"));
        assert_eq!(link("myapp://reset?x=1", &token), format!("myapp://reset?x=1&token={t}"));
    }
}
