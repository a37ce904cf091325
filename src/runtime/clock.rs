//! The one place the OS monotonic clock becomes [`crate::time::Instant`].

use crate::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        let us = self.origin.elapsed().as_micros();
        Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// The tokio instant matching a pure-module deadline, for `sleep_until`.
    pub fn to_tokio(&self, t: Instant) -> tokio::time::Instant {
        self.origin + std::time::Duration::from_micros(t.as_micros())
    }
}

/// Sleeps until `deadline`; never resolves without one (for a `select!` arm).
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending::<()>().await,
    }
}
