//! The key caches (`keys::dir::cache`) between runs: restored before the
//! first round's scan, so a warm start `stat`s its key files instead of
//! reading them; written (by the zone saver's thread) after every full
//! round that learnt something and at shutdown.
//!
//! Keys of the zones served here (the signalling zones signalbox signs)
//! are never restored from a cache: their `.private` files must be read.

use std::time::Instant;

use super::Daemon;

impl Daemon {
    /// Seeds every key directory from its saved cache, where there is one.
    pub(super) fn restore_key_caches(&mut self) {
        let dirs: Vec<_> = self.keys.dirs().cloned().collect();
        for dir in dirs {
            let path = self.state.key_cache_path(&dir);
            let started = Instant::now();
            let data = match std::fs::read(&path) {
                Ok(data) => data,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(cache = %path.display(), "cannot read the key cache: {e}; reading every key file");
                    continue;
                }
            };
            let zones = &self.zones;
            match self
                .keys
                .restore(&dir, &data, |zone| zones.contains_key(zone))
            {
                Some(Ok(restored)) => tracing::info!(
                    dir = %dir.display(),
                    keys = restored.keys,
                    left_out = restored.left_out,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "key cache restored: only key files changed since are read"
                ),
                Some(Err(e)) => tracing::warn!(
                    dir = %dir.display(),
                    cache = %path.display(),
                    "{e}: reading every key file"
                ),
                None => {}
            }
        }
    }

    /// Hands the key caches that changed to the saver.
    pub(super) fn save_key_caches(&mut self) {
        for (dir, data) in self.keys.stale_caches() {
            self.saver.write_file(self.state.key_cache_path(&dir), data);
        }
    }

    /// After a reload: restored keys of zones now signed here are read
    /// again, with their private keys.
    pub(super) fn reread_signing_keys(&mut self) {
        let zones = &self.zones;
        let count = self.keys.reread_not_loaded(|zone| zones.contains_key(zone));
        if count > 0 {
            tracing::info!(
                keys = count,
                "keys of newly served zones are read again, with their private keys"
            );
        }
    }
}
