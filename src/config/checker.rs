//! Collecting config errors: every problem in a config file is reported at
//! once, each as `file:line:col: key.path: message`, and the small value
//! checks (names, paths, durations, integers, addresses) that every table
//! uses.

use std::{
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::rr::Name;
use toml::Spanned;

use super::{ConfigError, ConfigErrors, duration::ConfigDuration, normalize_path};
use crate::dns::parse_name;

/// Validates a config, collecting every error instead of stopping at the
/// first; each error names the file, line, column and key path of the value.
pub(super) struct Checker<'a> {
    file: PathBuf,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Checker<'a> {
    /// A checker for `text`, read from `file`.
    pub(super) fn new(file: &Path, text: &'a str) -> Self {
        Checker {
            file: file.to_path_buf(),
            text,
            errors: Vec::new(),
        }
    }

    /// Every error found (none when the config is valid).
    pub(super) fn into_errors(self) -> ConfigErrors {
        ConfigErrors(self.errors)
    }
}

impl Checker<'_> {
    /// The 1-based line and column of a byte offset in the text.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// Records an error at `span` (`0..0` in empty text: the file itself).
    pub(super) fn error(&mut self, span: Range<usize>, key: String, message: String) {
        let (line, column) = if span == (0..0) && self.text.is_empty() {
            (0, 0)
        } else {
            self.line_col(span.start)
        };
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            column,
            key,
            message,
        });
    }

    /// A domain name, else an error at its span.
    pub(super) fn name(&mut self, value: &Spanned<String>, key: &str) -> Option<Name> {
        match parse_name(value.get_ref()) {
            Ok(name) => Some(name),
            Err(e) => {
                self.error(value.span(), key.to_string(), e.to_string());
                None
            }
        }
    }

    /// The names of a list, each once, skipping (and reporting) bad ones.
    pub(super) fn names(&mut self, values: &[Spanned<String>], key: &str) -> Vec<Name> {
        let mut out: Vec<Name> = Vec::new();
        for (i, value) in values.iter().enumerate() {
            if let Some(name) = self.name(value, &format!("{key}[{i}]")) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// A duration of at least `min`, else an error at its span and `default`.
    pub(super) fn duration_at_least(
        &mut self,
        value: &Option<Spanned<ConfigDuration>>,
        key: &str,
        default: Duration,
        min: Duration,
    ) -> Duration {
        match value {
            None => default,
            Some(v) if v.get_ref().0 >= min => v.get_ref().0,
            Some(v) => {
                self.error(
                    v.span(),
                    key.to_string(),
                    format!("at least {}", super::duration::format(min)),
                );
                default
            }
        }
    }

    /// An integer in `range`, else an error at its span and `default`.
    pub(super) fn int_in(
        &mut self,
        value: &Option<Spanned<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.error(
                    v.span(),
                    key.to_string(),
                    format!("must be in {}..={}", range.start(), range.end()),
                );
                default
            }
        }
    }

    /// A path from the config, relative to the config file's directory.
    pub(super) fn path(&mut self, value: &Spanned<String>, base: &Path) -> PathBuf {
        normalize_path(&base.join(value.get_ref()))
    }

    /// An `address:port`, else an error at its span that shows `example`.
    pub(super) fn address(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        example: &str,
    ) -> Option<SocketAddr> {
        match value.get_ref().parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    value.span(),
                    key.to_string(),
                    format!(
                        "{:?} is not an address:port (e.g. {example})",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }
}
