//! `[hooks]`: a program signalbox runs for every event an operator acts on
//! (issue 14; [`crate::event`] lists them). Absent or without `exec`, events
//! are only logged.
//!
//! ```toml
//! [hooks]
//! exec = "/usr/local/lib/signalbox/on-event"   # run with the event in SIGNALBOX_* variables
//! timeout = "30s"                              # killed after this long (default 30s)
//! ```
//!
//! The program is run directly (no shell), one event at a time, with an
//! empty standard input; a relative path is relative to the config file.
//! It must exist and be executable when the config is loaded.

use std::{os::unix::fs::PermissionsExt, path::PathBuf, time::Duration};

use serde::Deserialize;
use toml::Spanned;

use super::{checker::Checker, duration::ConfigDuration};

/// `timeout` when not set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `[hooks]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    exec: Option<Spanned<String>>,
    timeout: Option<Spanned<ConfigDuration>>,
}

/// `[hooks]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HooksConfig {
    /// The program run per event; `None`: events are only logged.
    pub exec: Option<PathBuf>,
    /// How long one run may take before it is killed.
    pub timeout: Duration,
}

impl Checker<'_> {
    pub(super) fn hooks(&mut self, raw: &RawHooks, base: &std::path::Path) -> HooksConfig {
        let timeout = self.duration_at_least(
            &raw.timeout,
            "hooks.timeout",
            DEFAULT_TIMEOUT,
            Duration::from_secs(1),
        );
        let exec = raw.exec.as_ref().and_then(|value| {
            let path = self.path(value, base);
            let problem = match std::fs::metadata(&path) {
                Err(e) => Some(format!("cannot use {}: {e}", path.display())),
                Ok(meta) if !meta.is_file() => Some(format!("{} is not a file", path.display())),
                Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Some(format!(
                    "{} is not executable (chmod +x it)",
                    path.display()
                )),
                Ok(_) => None,
            };
            match problem {
                Some(message) => {
                    self.error(value.span(), "hooks.exec".into(), message);
                    None
                }
                None => Some(path),
            }
        });
        HooksConfig { exec, timeout }
    }
}
