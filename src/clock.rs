//! The time every decision is made at: token expiry, grace windows, cache ages, key states,
//! lockouts. Production reads the system clock; tests hold a [`ManualClock`] and move it,
//! so that nothing has to sleep for time to pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// A cheap handle on the time; clones share one source.
#[derive(Clone, Default)]
pub struct Clock(Option<ManualClock>);

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            None => Utc::now(),
            Some(manual) => manual.now(),
        }
    }

    /// [`Clock::now`] in whole unix seconds, the unit of JWT claims.
    pub fn unix(&self) -> i64 {
        self.now().timestamp()
    }
}

/// A clock that stands still until a test moves it.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// Starts at the current system time, so tokens it stamps look ordinary to others.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self(Arc::new(AtomicI64::new(start.timestamp_micros())))
    }

    pub fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(Ordering::Acquire)).unwrap_or_default()
    }

    pub fn advance(&self, by: std::time::Duration) {
        let micros = TimeDelta::from_std(by).ok().and_then(|d| d.num_microseconds()).unwrap_or(i64::MAX);
        let _ =
            self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| Some(now.saturating_add(micros)));
    }

    /// The [`Clock`] to hand to the code under test.
    pub fn clock(&self) -> Clock {
        Clock(Some(self.clone()))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let manual = ManualClock::starting_at(DateTime::from_timestamp(1_000, 0).unwrap());
        let clock = manual.clock();
        assert_eq!(clock.unix(), 1_000);
        manual.advance(std::time::Duration::from_millis(1_500));
        assert_eq!(clock.now().timestamp_millis(), 1_001_500);
        assert!(Clock::system().unix() > 1_600_000_000);
    }
}
