//! Events: the moments an operator wants to hear about without reading
//! every log line, each one structured log event (target
//! `signalbox::event`, field `event`, the zone in `zone`) and, with
//! `[hooks] exec`, one run of the operator's program (issue 14; operators
//! ask Cascade and OpenDNSSEC for exactly this).
//!
//! | event | when | fields |
//! |---|---|---|
//! | `ds-seen` | the parent observer finds DS for a child that had none (RFC 7344 §4: the parent acted on CDS) | `zone`, `ds` |
//! | `ds-changed` | the parent's DS set for a child changed | `zone`, `ds` |
//! | `ds-gone` | the parent's DS set for a child is now empty | `zone` |
//! | `zone-held` | nothing new may be published for a child (unreadable keys, a signer that disagrees with its key directory, ...) | `zone`, `reason` |
//! | `zone-released` | a held child is planned again | `zone`, `state` |
//! | `brake-holding` | the safety brake starts holding a round | `affected`, `published`, `limit` |
//! | `brake-released` | it lets rounds through again | |
//! | `notify-failed` | a generalized NOTIFY (RFC 9859) got no answer | `zone`, `qtype`, `target`, `reason` |
//! | `notify-rejected` | the parent's target answered it with an error RCODE | `zone`, `qtype`, `target`, `rcode` |
//! | `notify-held` | after `[notify] max_wait`, the nameservers still disagree (RFC 9975) or, with `gate = "parent"`, the parent would still refuse | `zone`, `qtype`, `cause` (`disagreement`, `refusal`), `reason` |
//!
//! DS events compare with the last observation, which is kept across
//! restarts: a child's first observation fires none (a fresh start with a
//! million children would otherwise run the hook a million times).
//!
//! The hook gets the event in its environment: `SIGNALBOX_EVENT`,
//! `SIGNALBOX_TIME` (RFC 3339), `SIGNALBOX_MESSAGE`, and every field as
//! `SIGNALBOX_<FIELD>` (`SIGNALBOX_ZONE`, `SIGNALBOX_DS`, ...). Runs are one
//! at a time, in order, from a queue of [`QUEUE`] events; a run that outlasts
//! `[hooks] timeout` is killed. When the queue is full (a slow hook, a flood
//! of events) further events are logged but not run, and the count of those
//! is logged, rate limited. A failing hook is logged; signalbox does not
//! retry it (the hook decides what a failure means).

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use jiff::Timestamp;
use tokio::{io::AsyncReadExt, sync::mpsc};

use crate::{
    config::HooksConfig,
    log_limit::LogLimit,
    vital::{Ends, Vitals},
};

/// Events waiting for the hook, at most.
pub const QUEUE: usize = 1024;

/// Octets of a hook's standard error kept for the log.
const STDERR_KEPT: usize = 4096;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The parent has DS for a child that had none.
    DsSeen,
    /// The parent's DS set changed.
    DsChanged,
    /// The parent has no DS for the child any more.
    DsGone,
    /// A child is held.
    ZoneHeld,
    /// A held child is planned again.
    ZoneReleased,
    /// The safety brake holds a round.
    BrakeHolding,
    /// The safety brake lets rounds through again.
    BrakeReleased,
    /// A NOTIFY got no answer.
    NotifyFailed,
    /// A NOTIFY was answered with an error.
    NotifyRejected,
    /// A NOTIFY is held: the nameservers disagree, or the parent would
    /// refuse.
    NotifyHeld,
    /// An RFC 9567 error report arrived (`[report] agent`).
    ErrorReport,
}

impl EventKind {
    /// The name in logs and `SIGNALBOX_EVENT`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DsSeen => "ds-seen",
            EventKind::DsChanged => "ds-changed",
            EventKind::DsGone => "ds-gone",
            EventKind::ZoneHeld => "zone-held",
            EventKind::ZoneReleased => "zone-released",
            EventKind::BrakeHolding => "brake-holding",
            EventKind::BrakeReleased => "brake-released",
            EventKind::NotifyFailed => "notify-failed",
            EventKind::NotifyRejected => "notify-rejected",
            EventKind::NotifyHeld => "notify-held",
            EventKind::ErrorReport => "error-report",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub time: Timestamp,
    /// One line for people.
    pub message: String,
    /// Named values (`zone` first when there is one).
    pub fields: Vec<(&'static str, String)>,
}

impl Event {
    /// An event now.
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Event {
            kind,
            time: Timestamp::now(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// With one more field.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((name, value.into()));
        self
    }

    /// The value of field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The hook's environment.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "SIGNALBOX_EVENT".to_string(),
                self.kind.as_str().to_string(),
            ),
            ("SIGNALBOX_TIME".to_string(), self.time.to_string()),
            ("SIGNALBOX_MESSAGE".to_string(), self.message.clone()),
        ];
        env.extend(self.fields.iter().map(|(name, value)| {
            (
                format!("SIGNALBOX_{}", name.to_ascii_uppercase()),
                value.clone(),
            )
        }));
        env
    }

    fn log(&self) {
        let fields: Vec<String> = self
            .fields
            .iter()
            .filter(|(name, _)| *name != "zone")
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        tracing::info!(
            target: "signalbox::event",
            event = self.kind.as_str(),
            zone = self.field("zone"),
            details = fields.join(" "),
            "{}",
            self.message
        );
    }
}

/// Where events go: the log always, the hook when one is configured.
/// Cheap to clone; every part that has events holds one.
#[derive(Debug, Clone)]
pub struct Events {
    queue: Option<mpsc::Sender<Event>>,
    hook: Arc<RwLock<HooksConfig>>,
    not_run: Arc<AtomicU64>,
    not_run_log: Arc<LogLimit>,
}

impl Events {
    /// Events that are only logged (tests, one-shot commands).
    pub fn log_only() -> Self {
        Events {
            queue: None,
            hook: Arc::default(),
            not_run: Arc::default(),
            not_run_log: Arc::new(LogLimit::new(1, 60)),
        }
    }

    /// Starts the hook runner (a vital part) on the current runtime.
    pub fn start(config: &HooksConfig, vitals: &Vitals) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let events = Events {
            queue: Some(tx),
            ..Events::log_only()
        };
        events.reconfigure(config);
        let hook = Arc::clone(&events.hook);
        vitals.task("event hook", Ends::WhenInputCloses, run_hooks(rx, hook));
        events
    }

    /// Takes a reloaded `[hooks]`.
    pub fn reconfigure(&self, config: &HooksConfig) {
        if let Ok(mut hook) = self.hook.write() {
            *hook = config.clone();
        }
    }

    /// Logs `event` and queues it for the hook.
    pub fn emit(&self, event: Event) {
        event.log();
        let Some(queue) = &self.queue else {
            return;
        };
        if self.hook.read().is_ok_and(|h| h.exec.is_none()) {
            return;
        }
        if queue.try_send(event).is_err() {
            let total = self.not_run.fetch_add(1, Relaxed) + 1;
            if self.not_run_log.allow().is_some() {
                tracing::warn!(
                    not_run = total,
                    queue = QUEUE,
                    "events not given to the hook: its queue is full (a slow hook?); they are \
                     still logged"
                );
            }
        }
    }
}

/// Runs the hook for each queued event, one at a time.
async fn run_hooks(mut rx: mpsc::Receiver<Event>, hook: Arc<RwLock<HooksConfig>>) {
    while let Some(event) = rx.recv().await {
        let config = hook.read().map(|h| h.clone()).unwrap_or_default();
        let Some(exec) = config.exec else {
            continue;
        };
        run_one(&exec, config.timeout, &event).await;
    }
}

/// One run of the hook for `event`, logged when it fails.
async fn run_one(exec: &PathBuf, timeout: Duration, event: &Event) {
    let event_name = event.kind.as_str();
    let child = tokio::process::Command::new(exec)
        .envs(event.environment())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(hook = %exec.display(), event = event_name, "cannot run the hook: {e}");
            return;
        }
    };
    let mut child = child;
    let stderr = child.stderr.take();
    let run = async {
        // The first STDERR_KEPT octets of its standard error are kept for
        // the log; the rest is read and dropped, so a chatty hook neither
        // fills memory nor blocks on a full pipe.
        let mut kept = Vec::new();
        if let Some(mut stderr) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
        (child.wait().await, kept)
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => tracing::error!(
            hook = %exec.display(),
            event = event_name,
            timeout_s = timeout.as_secs(),
            "the hook did not finish in time and was killed"
        ),
        Ok((Err(e), _)) => {
            tracing::error!(hook = %exec.display(), event = event_name, "the hook failed: {e}")
        }
        Ok((Ok(status), kept)) if !status.success() => {
            let stderr = String::from_utf8_lossy(&kept);
            tracing::warn!(
                hook = %exec.display(),
                event = event_name,
                status = %status,
                stderr = stderr.lines().next().unwrap_or(""),
                "the hook failed"
            );
        }
        Ok(_) => tracing::debug!(hook = %exec.display(), event = event_name, "hook ran"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_carries_the_event_and_every_field() {
        let event = Event::new(EventKind::DsSeen, "the parent publishes DS")
            .with("zone", "example.com.")
            .with("ds", "12345/13/2");
        let env = event.environment();
        let get = |k: &str| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("SIGNALBOX_EVENT"), Some("ds-seen"));
        assert_eq!(get("SIGNALBOX_ZONE"), Some("example.com."));
        assert_eq!(get("SIGNALBOX_DS"), Some("12345/13/2"));
        assert_eq!(get("SIGNALBOX_MESSAGE"), Some("the parent publishes DS"));
        assert!(get("SIGNALBOX_TIME").is_some_and(|t| t.parse::<Timestamp>().is_ok()));
    }
}
