//! The broker-wide shutdown flag, as every task and handler sees it.

use std::time::Duration;

use tokio::sync::watch;

/// A cloneable view of the broker-wide shutdown flag.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Follows `flag`, which the server sets to true to stop.
    pub fn new(flag: watch::Receiver<bool>) -> Self {
        Self(flag)
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `every`; false once the broker is shutting down, so
    /// periodic tasks read `while shutdown.tick(every).await { ... }`.
    pub async fn tick(&self, every: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(every) => true,
            _ = self.wait() => false,
        }
    }
}
