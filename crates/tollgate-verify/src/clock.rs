//! [`Clock`]: the time a [`Verifier`](crate::Verifier) decides by (key ages, retry and
//! cooldown intervals, revocation polls and horizons). [`SystemClock`] by default;
//! [`ManualClock`] in tests, where time moves only when the test says so.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A wait that a [`Clock`] ends.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait Clock: fmt::Debug + Send + Sync {
    /// Monotonic time, for ages and intervals.
    fn instant(&self) -> Instant;
    /// Wall-clock time in unix seconds, for comparisons with tollgate's timestamps.
    fn unix_secs(&self) -> i64;
    /// Ends once [`instant`](Self::instant) has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;
}

/// The operating system's clocks and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn unix_secs(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// A clock that stands still until [`advance`](Self::advance)d; clones share one time.
/// It starts at the system's current time, so tokens stamped with it look recent.
#[derive(Clone)]
pub struct ManualClock {
    start: Instant,
    unix_start: SystemTime,
    /// Time advanced so far; waiting sleeps watch it.
    elapsed: Arc<tokio::sync::watch::Sender<Duration>>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::starting_at(SystemTime::now())
    }

    /// A clock whose wall-clock time starts at `unix_start`: a test gives the same start to
    /// the clock of the tollgate it runs, so that both say the same second as they move.
    pub fn starting_at(unix_start: SystemTime) -> Self {
        Self {
            start: Instant::now(),
            unix_start,
            elapsed: Arc::new(tokio::sync::watch::Sender::new(Duration::ZERO)),
        }
    }

    /// Moves time on by `by`, ending the sleeps whose deadline it reaches.
    pub fn advance(&self, by: Duration) {
        self.elapsed.send_modify(|elapsed| *elapsed += by);
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.borrow()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("elapsed", &self.elapsed()).finish()
    }
}

impl Clock for ManualClock {
    fn instant(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn unix_secs(&self) -> i64 {
        (self.unix_start + self.elapsed()).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        // The future owns a clone, so the sender outlives every receiver.
        let clock = self.clone();
        Box::pin(async move {
            let mut elapsed = clock.elapsed.subscribe();
            let _ = elapsed.wait_for(|elapsed| clock.start + *elapsed >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_ends_when_time_reaches_its_deadline() {
        let clock = ManualClock::new();
        let (start, unix_start) = (clock.instant(), clock.unix_secs());
        let sleep = tokio::spawn(clock.sleep_until(start + Duration::from_secs(10)));
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!sleep.is_finished());
        clock.clone().advance(Duration::from_secs(6));
        sleep.await.unwrap();
        assert_eq!(clock.instant() - start, Duration::from_secs(10));
        assert_eq!(clock.unix_secs() - unix_start, 10);
        // A deadline already passed ends at once.
        clock.sleep_until(start).await;

        let at = UNIX_EPOCH + Duration::from_millis(1_000_900);
        let clock = ManualClock::starting_at(at);
        assert_eq!(clock.unix_secs(), 1_000);
        clock.advance(Duration::from_millis(100));
        assert_eq!(clock.unix_secs(), 1_001);
    }
}
