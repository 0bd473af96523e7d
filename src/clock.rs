//! The time the dialer decides by. Production reads the system clock; tests
//! inject a manual clock to stand at any local time, in any zone.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// How long to wait, in real time, for this clock to read `at` (zero
    /// once it does); a clock that does not run by itself says how soon to
    /// look again.
    fn until(&self, at: DateTime<Utc>) -> std::time::Duration;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn until(&self, at: DateTime<Utc>) -> std::time::Duration {
        (at - Utc::now()).to_std().unwrap_or_default()
    }
}

/// A clock that stands still until moved.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn at(now: DateTime<Utc>) -> Self {
        ManualClock(Arc::new(Mutex::new(now)))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// It moves only when told to: every second, or at once when it reads
    /// `at` already.
    fn until(&self, at: DateTime<Utc>) -> std::time::Duration {
        if self.now() >= at {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_secs(1)
        }
    }
}
