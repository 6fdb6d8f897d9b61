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
use crate::db::DbError;
use crate::db::mail::{MailTokens, NewMailToken, Outbox, Purpose};
use crate::db::manager::WriteConn;
use crate::db::models::User;

const TOKEN_PREFIX: &str = "tgm_";
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// The outbox's kind for mails (webhooks will have theirs).
pub const OUTBOX_KIND: &str = "mail";

/// Which mail a letter is, and so its template and its `kind` label in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    PasswordReset,
    /// A link that confirms an address: the account's, or the one it is to change to.
    EmailVerify,
    /// To the old address of an account whose address is to change.
    EmailChangeNotice,
    Test,
}

impl Template {
    const ALL: [Template; 4] =
        [Template::PasswordReset, Template::EmailVerify, Template::EmailChangeNotice, Template::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Template::PasswordReset => "password_reset",
            Template::EmailVerify => "email_verify",
            Template::EmailChangeNotice => "email_change_notice",
            Template::Test => "test",
        }
    }

    /// The purpose of the token the letter carries, if it carries one.
    pub fn purpose(self) -> Option<Purpose> {
        match self {
            Template::PasswordReset => Some(Purpose::PasswordReset),
            Template::EmailVerify => Some(Purpose::EmailVerify),
            Template::EmailChangeNotice | Template::Test => None,
        }
    }

    fn subject(self, app_name: &str) -> String {
        match self {
            Template::PasswordReset => format!("{app_name}: reset your password"),
            Template::EmailVerify => format!("{app_name}: confirm your email address"),
            Template::EmailChangeNotice => format!("{app_name}: your email address is being changed"),
            Template::Test => format!("{app_name}: test mail"),
        }
    }

    fn source(self) -> [(&'static str, &'static str); 2] {
        match self {
            Template::PasswordReset => [
                ("txt", include_str!("templates/password_reset.txt")),
                ("html", include_str!("templates/password_reset.html")),
            ],
            Template::EmailVerify => [
                ("txt", include_str!("templates/email_verify.txt")),
                ("html", include_str!("templates/email_verify.html")),
            ],
            Template::EmailChangeNotice => [
                ("txt", include_str!("templates/email_change_notice.txt")),
                ("html", include_str!("templates/email_change_notice.html")),
            ],
            Template::Test => {
                [("txt", include_str!("templates/test.txt")), ("html", include_str!("templates/test.html"))]
            }
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
    /// The address an account is to change to ([`Template::EmailChangeNotice`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_email: Option<String>,
}

/// A letter with a new token of its template's purpose for the account, to `to`.
pub struct TokenLetter {
    pub template: Template,
    pub user_id: uuid::Uuid,
    pub username: String,
    pub to: String,
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

/// A token's lifetime as a mail says it: "24 hours", "60 minutes", "1 minute".
fn duration_words(secs: i64) -> String {
    let (n, unit) =
        if secs >= 7200 && secs % 3600 == 0 { (secs / 3600, "hour") } else { ((secs / 60).max(1), "minute") };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
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
    settings: MailSettings,
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
        for template in Template::ALL {
            for (suffix, source) in template.source() {
                let name = format!("{}.{suffix}", template.as_str());
                templates
                    .add_template_owned(name.clone(), source)
                    .map_err(|e| format!("mail template {name}: {e}"))?;
            }
        }
        Ok(Some(Self {
            transport,
            from: from.clone(),
            settings: settings.clone(),
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

    /// Where a letter's link points, and how long its token lives.
    fn link_settings(&self, template: Template) -> Option<(&str, i64)> {
        match template {
            Template::PasswordReset => Some((&self.settings.reset_url, self.settings.reset_ttl_secs)),
            Template::EmailVerify => Some((&self.settings.verify_url, self.settings.verify_ttl_secs)),
            Template::EmailChangeNotice | Template::Test => None,
        }
    }

    /// Queues a letter, in the caller's transaction: it goes out if and only if the change
    /// it belongs to commits. The caller wakes the sender after the commit.
    pub fn queue(&self, conn: &mut WriteConn, letter: &Letter, now_ms: i64) -> Result<(), DbError> {
        let payload = serde_json::to_string(letter).map_err(|e| DbError::Other(e.to_string()))?;
        Outbox::enqueue(conn, OUTBOX_KIND, &payload, now_ms)
    }

    /// Issues the account a new token of the letter's purpose, replacing any other, and
    /// queues the letter that carries it, unless one went to the same address within
    /// `MAIL_COOLDOWN_SECS`: whether it did. In the caller's transaction, after the user's
    /// row was locked, so that two requests at once cannot both pass the cooldown.
    pub fn queue_with_token(
        &self,
        conn: &mut WriteConn,
        letter: TokenLetter,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let (Some(purpose), Some((_, ttl_secs))) =
            (letter.template.purpose(), self.link_settings(letter.template))
        else {
            return Err(DbError::Other(format!("{} carries no token", letter.template.as_str())));
        };
        let nonce = MailToken::nonce();
        let hash = self.token(&nonce).hash();
        let token = NewMailToken {
            user_id: letter.user_id,
            purpose,
            hash: &hash,
            nonce: &nonce,
            email: &letter.to,
            now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_secs.saturating_mul(1000)),
        };
        if !MailTokens::issue(conn, &token, self.cooldown_ms())? {
            return Ok(false);
        }
        let TokenLetter { template, username, to, .. } = letter;
        self.queue(conn, &Letter { template, to, username, nonce: Some(nonce), new_email: None }, now_ms)?;
        Ok(true)
    }

    /// Queues a verification link to the user's address, on the row as locked, if it has
    /// an unverified one and none went to it within the cooldown: whether it did.
    pub fn queue_verification(
        &self,
        conn: &mut WriteConn,
        user: &User,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let Some(email) = user.email.clone().filter(|_| !user.email_verified) else { return Ok(false) };
        let letter = TokenLetter {
            template: Template::EmailVerify,
            user_id: user.id.0,
            username: user.username.clone(),
            to: email,
        };
        self.queue_with_token(conn, letter, now_ms)
    }

    pub fn cooldown_ms(&self) -> i64 {
        self.settings.cooldown_secs.saturating_mul(1000)
    }

    fn write(&self, letter: &Letter) -> Result<Message, SendError> {
        let link_settings = self.link_settings(letter.template);
        let link =
            letter.nonce.as_deref().zip(link_settings).map(|(nonce, (url, _))| link(url, &self.token(nonce)));
        let context = minijinja::context! {
            app_name => &self.settings.app_name,
            username => &letter.username,
            address => &letter.to,
            new_address => &letter.new_email,
            link => link,
            ttl => link_settings.map(|(_, ttl_secs)| duration_words(ttl_secs)),
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
            .subject(letter.template.subject(&self.settings.app_name))
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
    fn lifetimes_read_as_words() {
        assert_eq!(duration_words(86400), "24 hours");
        assert_eq!(duration_words(3600), "60 minutes");
        assert_eq!(duration_words(7200), "2 hours");
        assert_eq!(duration_words(90), "1 minute");
        assert_eq!(duration_words(1), "1 minute");
    }

    #[test]
    fn links_add_the_token_to_any_query() {
        let token = MailToken::derive(&SecretSlice::from(vec![1u8; 32]), "n");
        let t = token.as_str();
        assert_eq!(link("https://app/reset", &token), format!("https://app/reset?token={t}"));
        assert_eq!(link("myapp://reset?x=1", &token), format!("myapp://reset?x=1&token={t}"));
    }
}
