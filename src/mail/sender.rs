//! [`Sender`]: the one task of an instance that delivers the outbox.
//!
//! It claims the messages that are due (on PostgreSQL, skipping those another instance is
//! claiming, so that each goes out once), sends them, and removes each that went out. One
//! that failed is tried again after a delay that doubles from [`FIRST_RETRY_MS`] up to
//! [`MAX_RETRY_MS`], for [`MAX_ATTEMPTS`] attempts (a few hours), and then dropped with an
//! error in the log; a permanent refusal (5xx) is dropped at once. A claim is a lease: a
//! sender that dies holding one (a crash, a restart) leaves the message to be claimed again
//! once the lease ends, so a restart loses nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Letter, Mailer, OUTBOX_KIND, SendError};
use crate::clock::Clock;
use crate::db::mail::{Outbox, OutboxRow, purge_cooldowns};
use crate::db::{DbError, Pool};
use crate::metrics::{MailResult, Metrics};

/// The delay before the first retry.
pub const FIRST_RETRY_MS: i64 = 2_000;
/// The longest delay between two attempts.
pub const MAX_RETRY_MS: i64 = 600_000;
/// Attempts before a message is given up: 2 s doubling to 10 min, then every 10 min, is
/// about three hours.
pub const MAX_ATTEMPTS: i32 = 25;
/// How long a claimed message is the claimer's: more than an SMTP exchange may take.
const LEASE_MS: i64 = 60_000;
/// Messages claimed at once.
const BATCH: i64 = 16;
/// How often the outbox is looked at without being woken: for retries that fall due, and
/// for messages other instances queued.
const POLL: Duration = Duration::from_millis(500);
/// How often the password-reset cooldowns that are over are removed.
const PURGE_EVERY: Duration = Duration::from_secs(60);

pub struct Sender {
    pub pool: Pool,
    pub clock: Clock,
    pub mailer: Arc<Mailer>,
    pub metrics: Arc<Metrics>,
    /// Notified when a request queued a message, so that it goes out at once.
    pub wake: Arc<Notify>,
}

/// The delay after the `attempts`-th failed attempt.
pub fn retry_delay_ms(attempts: i32) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
    FIRST_RETRY_MS.saturating_mul(1 << doublings).min(MAX_RETRY_MS)
}

impl Sender {
    /// Delivers until the process ends.
    pub async fn run(self) {
        let mut purged = tokio::time::Instant::now();
        loop {
            if purged.elapsed() >= PURGE_EVERY {
                purged = tokio::time::Instant::now();
                let now = self.clock.now().timestamp_millis();
                if let Err(e) = self.pool.write(move |conn| purge_cooldowns(conn, now)).await {
                    log::warn!("the password-reset cooldowns could not be purged: {e}");
                }
            }
            match self.deliver_due().await {
                // More may be due right away.
                Ok(claimed) if claimed as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => log::warn!("the outbox could not be read: {e}"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Claims the messages due now and tries each once; how many it claimed.
    pub async fn deliver_due(&self) -> Result<usize, DbError> {
        let now = self.clock.now().timestamp_millis();
        let rows = self.pool.write(move |conn| Outbox::claim_due(conn, now, LEASE_MS, BATCH)).await?;
        let claimed = rows.len();
        // At once: each waits on its own SMTP exchange, and a burst (a forgot flood naming
        // real addresses) must not keep a real user's mail waiting behind it.
        let delivered = futures_util::future::join_all(rows.into_iter().map(|row| self.deliver(row))).await;
        delivered.into_iter().collect::<Result<Vec<()>, DbError>>()?;
        Ok(claimed)
    }

    async fn deliver(&self, row: OutboxRow) -> Result<(), DbError> {
        let OutboxRow { id, kind, payload, attempts } = row;
        let letter: Result<Letter, _> = serde_json::from_str(&payload);
        let (template, result) = match (kind.as_str(), letter) {
            (OUTBOX_KIND, Ok(letter)) => (letter.template.as_str(), self.mailer.send(&letter).await),
            (_, Ok(_)) | (_, Err(_)) => ("unknown", Err(SendError::Permanent(format!("not a mail: {kind}")))),
        };
        let attempts = attempts + 1;
        let outcome = match result {
            Ok(()) => {
                self.pool.write(move |conn| Outbox::delivered(conn, id)).await?;
                log::info!("mail sent kind={template} outbox_id={id}");
                MailResult::Sent
            }
            Err(SendError::Transient(error)) if attempts < MAX_ATTEMPTS => {
                let retry_at = self.clock.now().timestamp_millis() + retry_delay_ms(attempts);
                log::warn!(
                    "mail not sent, retried later kind={template} outbox_id={id} attempts={attempts}: {error}"
                );
                self.pool.write(move |conn| Outbox::failed(conn, id, &error, Some(retry_at))).await?;
                MailResult::Retried
            }
            Err(error) => {
                log::error!("mail given up kind={template} outbox_id={id} attempts={attempts}: {error}");
                let error = error.to_string();
                self.pool.write(move |conn| Outbox::failed(conn, id, &error, None)).await?;
                MailResult::Dropped
            }
        };
        self.metrics.mail(template, outcome);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_within_five_seconds_and_go_on_for_hours() {
        assert!(retry_delay_ms(1) <= 5_000);
        assert_eq!(retry_delay_ms(2), 2 * retry_delay_ms(1));
        assert_eq!(retry_delay_ms(100), MAX_RETRY_MS);
        let total: i64 = (1..MAX_ATTEMPTS).map(retry_delay_ms).sum();
        assert!(total >= 3_600_000, "{total} ms");
    }
}
