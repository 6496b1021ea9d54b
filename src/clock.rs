//! The one clock that time-based logic reads.
//!
//! Dedupe expiry, stale-invocation sweeps and every later window or budget
//! take a [`SharedClock`] instead of calling the system time directly, so
//! tests can move time with [`ManualClock`].

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug {
    fn now_millis(&self) -> i64;
}

/// The clock shared by every part of the service.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    now_millis: AtomicI64,
}

impl ManualClock {
    pub fn new(start_millis: i64) -> Self {
        Self {
            now_millis: AtomicI64::new(start_millis),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.now_millis
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, millis: i64) {
        self.now_millis.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.now_millis.load(Ordering::SeqCst)
    }
}

/// Returns the system clock as a [`SharedClock`].
pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}
