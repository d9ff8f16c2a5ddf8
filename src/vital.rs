//! The daemon's vital parts: the threads and tasks whose silent death would
//! leave a process that looks alive but no longer answers, follows, publishes
//! or saves (a UDP thread, the TCP accept loop, the follower, the parent
//! agent, the UPDATE publishers, the state saver).
//!
//! Each runs under [`Vitals`]: a panic or an unexpected return is caught,
//! logged with the part's name, and reported on one channel the event loop
//! watches; the event loop then shuts down cleanly (saved state flushed) and
//! the process exits non-zero, so its supervisor (systemd's
//! `Restart=on-failure`) starts a fresh one. Restarting a part in place would
//! hide a bug behind a loop; a fresh process starts from the saved state and
//! the key files, which are the truth.

use std::{
    any::Any,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    thread,
};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// A vital part that stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{part} stopped: {why}")]
pub struct Death {
    /// Which part (a thread or task name).
    pub part: String,
    /// The panic message, or "returned".
    pub why: String,
}

/// When a vital part may end without dying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// Never: a return is a death (a UDP thread, an accept loop).
    Never,
    /// When its input channel closes, which happens only at shutdown (a
    /// publisher, the parent agent, the state saver): only a panic is a
    /// death.
    WhenInputCloses,
}

/// Starts vital threads and tasks and reports their deaths.
#[derive(Debug, Clone)]
pub struct Vitals {
    deaths: UnboundedSender<Death>,
}

impl Vitals {
    /// A new set of vital parts and where their deaths are reported.
    pub fn new() -> (Vitals, UnboundedReceiver<Death>) {
        let (deaths, rx) = unbounded_channel();
        (Vitals { deaths }, rx)
    }

    /// A set whose deaths are only logged (for callers without an event
    /// loop, such as tests and one-shot commands).
    pub fn detached() -> Vitals {
        Vitals::new().0
    }

    /// Starts an OS thread named `name` running `work`.
    pub fn thread(
        &self,
        name: String,
        ends: Ends,
        work: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<thread::JoinHandle<()>> {
        let vitals = self.clone();
        let part = name.clone();
        thread::Builder::new().name(name).spawn(move || {
            let why = match catch_unwind(AssertUnwindSafe(work)) {
                Ok(()) if ends == Ends::WhenInputCloses => return,
                Ok(()) => "returned".to_string(),
                Err(panic) => panic_message(panic.as_ref()),
            };
            vitals.died(part, why);
        })
    }

    /// Spawns `work` on the current tokio runtime.
    pub fn task(
        &self,
        name: impl Into<String>,
        ends: Ends,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        let vitals = self.clone();
        let part = name.into();
        let handle = tokio::spawn(work);
        tokio::spawn(async move {
            let why = match handle.await {
                Ok(()) if ends == Ends::WhenInputCloses => return,
                Ok(()) => "returned".to_string(),
                Err(e) if e.is_panic() => panic_message(e.into_panic().as_ref()),
                // Cancelled: the runtime is shutting down.
                Err(_) => return,
            };
            vitals.died(part, why);
        });
    }

    fn died(&self, part: String, why: String) {
        tracing::error!(
            part,
            why,
            "a vital part of signalbox stopped; shutting down so the supervisor restarts it"
        );
        let _ = self.deaths.send(Death { part, why });
    }
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "panicked".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_thread_is_reported_with_its_name() {
        let (vitals, mut deaths) = Vitals::new();
        let handle = vitals
            .thread("udp-test".into(), Ends::Never, || panic!("boom"))
            .expect("spawn");
        handle.join().expect("the panic is caught");
        let death = deaths.try_recv().expect("reported");
        assert_eq!(death.part, "udp-test");
        assert_eq!(death.why, "boom");
    }

    #[test]
    fn a_returning_task_is_reported_unless_it_may_end_and_a_panic_always_is() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (vitals, mut deaths) = Vitals::new();
        let death = runtime.block_on(async {
            vitals.task("publisher", Ends::WhenInputCloses, async {});
            vitals.task("follower", Ends::Never, async {});
            deaths.recv().await
        });
        assert_eq!(
            death,
            Some(Death {
                part: "follower".into(),
                why: "returned".into()
            })
        );
        let failed = runtime.block_on(async {
            vitals.task("agent", Ends::WhenInputCloses, async { panic!("lost") });
            deaths.recv().await
        });
        assert_eq!(failed.map(|d| d.why), Some("lost".to_string()));
    }
}
