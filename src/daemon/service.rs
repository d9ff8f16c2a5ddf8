//! What `signalbox serve` tells its service manager (systemd's
//! `Type=notify` protocol, sd_notify(3)).
//!
//! - `READY=1` once the first round is done, i.e. once the snapshot being
//!   served is the one signed from today's key files (a warm start answers
//!   from the saved zones before that, but is not yet "ready": units ordered
//!   after signalbox must see current signals).
//! - `STATUS=` one line of what it is doing: reading the configuration, the
//!   first round, then after every round the zones served, the safety brake
//!   and held key directories (`systemctl status signalbox` shows it).
//! - `WATCHDOG=1` from the event loop every half `WatchdogSec=`. While a
//!   round runs on its blocking thread the loop keeps pinging for at most
//!   [`ROUND_WATCHDOG_LIMIT`]: a cold start at a million children takes about
//!   a minute, a round that runs far past that is wedged, and systemd then
//!   restarts the service.
//! - `RELOADING=1` around a reload, `STOPPING=1` at shutdown.
//!
//! Without `NOTIFY_SOCKET` (not run by systemd) every call does nothing. A
//! notification that cannot be sent is logged once per kind of failure and
//! never stops the daemon.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use sd_notify::NotifyState;

/// How long the event loop keeps feeding the watchdog while one round runs.
pub const ROUND_WATCHDOG_LIMIT: Duration = Duration::from_secs(15 * 60);

/// The service manager, as far as signalbox talks to it.
#[derive(Debug, Default)]
pub struct SdNotify {
    /// A failed send was logged already.
    failed: AtomicBool,
}

impl SdNotify {
    /// A link to the service manager named by the environment.
    pub fn from_env() -> Self {
        SdNotify::default()
    }

    /// How often the watchdog wants a ping (half of `WatchdogSec=`), when
    /// it is enabled for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled().map(|full| (full / 2).max(Duration::from_millis(100)))
    }

    /// The first signed snapshot is served.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// What the daemon is doing now.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// The event loop is alive.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// A reload starts (`done`: false) or ends (`done`: true).
    pub fn reloading(&self, done: bool) {
        if done {
            self.send(&[NotifyState::Ready]);
        } else {
            match sd_notify::NotifyState::monotonic_usec_now() {
                Ok(now) => self.send(&[NotifyState::Reloading, now]),
                Err(_) => self.send(&[NotifyState::Reloading]),
            }
        }
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn send(&self, states: &[NotifyState]) {
        if let Err(error) = sd_notify::notify(states) {
            if !self.failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(%error, "cannot notify the service manager (NOTIFY_SOCKET)");
            }
        }
    }
}
