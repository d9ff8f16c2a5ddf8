//! The keys a zone is signed with, and signing many RRsets at once.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hickory_proto::rr::RecordType;
use jiff::Timestamp;

use super::blob::{self, Bytes};
use crate::{
    config::ZoneOptions,
    dns::Rrsig,
    dnssec::signer::{SignerError, SigningKey},
    keys::{Key, Role},
    policy::Lifecycle,
};

/// Why a zone could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No active key for a role.
    #[error("zone {zone}: no active {role} with a usable private key: cannot sign {what}")]
    NoKey {
        /// The zone.
        zone: String,
        /// "KSK" or "ZSK".
        role: &'static str,
        /// What needed signing.
        what: String,
    },
    /// A key failed to sign.
    #[error("zone {zone}: {source}")]
    Signer {
        /// The zone.
        zone: String,
        /// The error.
        source: SignerError,
    },
    /// The content has no SOA at the apex.
    #[error("zone {0}: no SOA at the apex")]
    NoSoa(String),
}

/// The keys a zone is signed with at one moment.
#[derive(Debug, Default)]
pub struct ZoneSigner {
    /// Active KSKs and CSKs: sign DNSKEY, CDS, CDNSKEY at the apex.
    pub ksks: Vec<Arc<SigningKey>>,
    /// Active ZSKs and CSKs: sign everything else.
    pub zsks: Vec<Arc<SigningKey>>,
    /// Keys that should sign but cannot (no private key...).
    pub problems: Vec<String>,
    /// Where a long signing run reports how far it got (the service
    /// status); `None`: only the log.
    pub progress: Option<Arc<SigningProgress>>,
}

/// How far the signing run in progress is, for whoever watches it (the
/// daemon's systemd STATUS= line while a cold start signs a million names).
#[derive(Debug, Default)]
pub struct SigningProgress {
    run: Mutex<Option<SigningRun>>,
}

#[derive(Debug)]
struct SigningRun {
    zone: String,
    total: usize,
    done: usize,
    started: Instant,
}

/// One look at a signing run.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningSnapshot {
    /// The zone being signed.
    pub zone: String,
    /// RRsets signed so far.
    pub done: usize,
    /// RRsets to sign.
    pub total: usize,
    /// RRsets per second so far.
    pub per_second: f64,
}

impl SigningProgress {
    /// Counts `work`'s signing of `total` RRsets of `zone` as one run,
    /// however many calls of [`sign_jobs`] it makes (a cold build signs in
    /// parts).
    pub fn run<T>(&self, zone: &str, total: usize, work: impl FnOnce() -> T) -> T {
        let started = self.start(zone, total);
        let out = work();
        if started {
            self.finish();
        }
        out
    }

    /// Starts a run unless one of `zone` is going on (its parts count in
    /// it); true when it started one.
    fn start(&self, zone: &str, total: usize) -> bool {
        let Ok(mut run) = self.run.lock() else {
            return false;
        };
        if run.as_ref().is_some_and(|run| run.zone == zone) {
            return false;
        }
        *run = Some(SigningRun {
            zone: zone.to_string(),
            total,
            done: 0,
            started: Instant::now(),
        });
        true
    }

    fn add(&self, count: usize) {
        if let Ok(mut run) = self.run.lock() {
            if let Some(run) = run.as_mut() {
                run.done += count;
            }
        }
    }

    fn finish(&self) {
        if let Ok(mut run) = self.run.lock() {
            *run = None;
        }
    }

    /// The run in progress, if any.
    pub fn now(&self) -> Option<SigningSnapshot> {
        let run = self.run.lock().ok()?;
        let run = run.as_ref()?;
        Some(SigningSnapshot {
            zone: run.zone.clone(),
            done: run.done,
            total: run.total,
            per_second: run.done as f64 / run.started.elapsed().as_secs_f64().max(1e-3),
        })
    }
}

impl SigningSnapshot {
    /// Seconds left at the rate so far (none before the first batch).
    pub fn seconds_left(&self) -> Option<u64> {
        let left = self.total.saturating_sub(self.done) as f64;
        (self.done > 0).then(|| (left / self.per_second.max(1.0)).ceil() as u64)
    }
}

impl std::fmt::Display for SigningSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "signing {}: {} of {} RRsets, {}/s",
            self.zone, self.done, self.total, self.per_second as u64
        )?;
        if let Some(left) = self.seconds_left() {
            write!(f, ", about {left} s left")?;
        }
        Ok(())
    }
}

impl ZoneSigner {
    /// The active keys among `keys` at `now` (published, activated, not
    /// inactive, revoked or deleted), loaded for signing. When only one kind
    /// is active, it plays both parts.
    pub fn from_keys(keys: &[Arc<Key>], now: Timestamp) -> Self {
        let mut signer = ZoneSigner::default();
        for key in keys {
            let life = Lifecycle::of(key, now, None);
            if !(life.published && life.activated) || life.inactive || life.revoked || life.deleted
            {
                continue;
            }
            match key.signing_key() {
                Ok(signing) => {
                    let signing = Arc::new(signing);
                    let role = key.role();
                    if role.signs_keys() {
                        signer.ksks.push(signing.clone());
                    }
                    if role != Role::Ksk {
                        signer.zsks.push(signing);
                    }
                }
                Err(e) => signer.problems.push(e.to_string()),
            }
        }
        // A zone with keys of one kind only (a lone SEP key made by
        // `dnssec-keygen -f KSK`, no .state to call it a CSK) signs
        // everything with them, as dnssec-signzone does.
        if signer.zsks.is_empty() {
            signer.zsks = signer.ksks.clone();
        } else if signer.ksks.is_empty() {
            signer.ksks = signer.zsks.clone();
        }
        signer
    }

    /// (algorithm, tag) of every key, to tell when the key set changed.
    pub fn fingerprint(&self) -> Vec<(bool, u8, u16)> {
        let mut out: Vec<(bool, u8, u16)> = self
            .ksks
            .iter()
            .map(|k| (true, k.algorithm.number(), k.tag))
            .chain(
                self.zsks
                    .iter()
                    .map(|k| (false, k.algorithm.number(), k.tag)),
            )
            .collect();
        out.sort_unstable();
        out
    }
}

/// One RRset to sign.
pub struct SignJob {
    /// Owner in lower-case wire form.
    pub wire: Bytes,
    /// Index of the RRset in its node.
    pub index: usize,
    /// Type.
    pub rtype: RecordType,
    /// TTL.
    pub ttl: u32,
    /// The records (`type class ttl rdlength rdata` each, canonical order).
    pub records: Box<[u8]>,
    /// Signed by the KSKs (else the ZSKs).
    pub by_ksk: bool,
}

/// The RRSIGs of one RRset in the zone store's form, encoded by the thread
/// that made them (decoded [`Rrsig`]s are several times larger).
#[derive(Debug, Clone, Default)]
pub struct Signatures {
    /// The RRSIG records, `type class ttl rdlength rdata` each.
    pub blob: Box<[u8]>,
    /// Earliest expiration.
    pub expires: u32,
    /// (algorithm, key tag) of each.
    pub signers: Box<[(u8, u16)]>,
}

impl Signatures {
    /// Encodes `sigs` for an RRset with TTL `ttl`.
    pub fn encode(sigs: &[Rrsig], ttl: u32) -> Self {
        let mut blob = Vec::new();
        for sig in sigs {
            crate::dns::wire::put_record_body(
                &mut blob,
                u16::from(RecordType::RRSIG),
                ttl,
                &sig.to_wire(),
            );
        }
        Signatures {
            blob: blob.into(),
            expires: sigs.iter().map(|s| s.expiration).min().unwrap_or(0),
            signers: sigs.iter().map(|s| (s.algorithm, s.key_tag)).collect(),
        }
    }

    /// Number of signatures.
    pub fn len(&self) -> usize {
        self.signers.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }
}

/// A long signing run as it goes: counted on its [`SigningProgress`] board
/// (the signer's, or one of its own) and logged every few seconds (count,
/// rate, ETA) so an operator starting a million-name zone sees it move.
struct Progress<'a> {
    board: &'a SigningProgress,
    last: Mutex<Instant>,
}

impl Progress<'_> {
    const BATCH: usize = 4096;
    const EVERY: Duration = Duration::from_secs(2);

    fn add(&self, count: usize) {
        self.board.add(count);
        let Ok(mut last) = self.last.try_lock() else {
            return; // another thread is logging
        };
        if last.elapsed() < Self::EVERY {
            return;
        }
        *last = Instant::now();
        if let Some(run) = self.board.now() {
            tracing::info!(
                zone = run.zone,
                signed = run.done,
                total = run.total,
                per_second = run.per_second as u64,
                eta_seconds = run.seconds_left(),
                "signing"
            );
        }
    }
}

/// Signs every job of `zone`, spreading the work over the machine's cores.
pub fn sign_jobs(
    zone: &str,
    jobs: &[SignJob],
    signer: &ZoneSigner,
    now: u32,
    options: &ZoneOptions,
) -> Result<Vec<Signatures>, SignerError> {
    let inception = now.saturating_sub(options.signature_inception_offset);
    let sign_one = |job: &SignJob| -> Result<Signatures, SignerError> {
        let jitter = if options.signature_jitter == 0 {
            0
        } else {
            jitter_hash(&job.wire, job.rtype) % options.signature_jitter
        };
        let expiration = now.wrapping_add(options.signature_validity - jitter);
        let rdatas: Vec<&[u8]> = blob::records(&job.records).map(|r| &r[10..]).collect();
        let keys = if job.by_ksk {
            &signer.ksks
        } else {
            &signer.zsks
        };
        let sigs = keys
            .iter()
            .map(|k| {
                k.sign_wire(
                    &job.wire, job.rtype, job.ttl, &rdatas, inception, expiration,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Signatures::encode(&sigs, job.ttl))
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads <= 1 || jobs.len() < 64 {
        let signed = jobs.iter().map(sign_one).collect();
        // Counted in a run going on (a cold build's part), if any.
        if let Some(board) = signer.progress.as_deref() {
            board.add(jobs.len());
        }
        return signed;
    }
    let chunk = jobs.len().div_ceil(threads);
    let own_board = SigningProgress::default();
    let progress = Progress {
        board: signer.progress.as_deref().unwrap_or(&own_board),
        last: Mutex::new(Instant::now()),
    };
    let own_run = progress.board.start(zone, jobs.len());
    let progress = &progress;
    let signed = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for batch in part.chunks(Progress::BATCH) {
                        for job in batch {
                            out.push(sign_one(job)?);
                        }
                        progress.add(batch.len());
                    }
                    Ok::<_, SignerError>(out)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part?),
                Err(_) => {
                    return Err(SignerError::Failed {
                        key: "signing thread panicked".into(),
                    });
                }
            }
        }
        Ok(out)
    });
    if own_run {
        progress.board.finish();
    }
    signed
}

/// FNV-1a of owner and type: a stable per-RRset jitter, so expirations stay
/// spread across restarts.
fn jitter_hash(wire: &[u8], rtype: RecordType) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in wire.iter().chain(u16::from(rtype).to_be_bytes().iter()) {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_a_run_count_in_it() {
        let board = SigningProgress::default();
        board.run("_signal.ns1.example.net.", 10, || {
            // A part (`sign_jobs` on some of the RRsets) starts no run of
            // its own, and its end does not end the whole.
            assert!(!board.start("_signal.ns1.example.net.", 4));
            board.add(4);
            assert!(!board.start("_signal.ns1.example.net.", 6));
            board.add(6);
            let seen = board.now().expect("a run");
            assert_eq!((seen.done, seen.total), (10, 10));
        });
        assert_eq!(board.now(), None);
    }

    #[test]
    fn a_signing_run_is_seen_while_it_runs_and_gone_after() {
        let board = SigningProgress::default();
        assert_eq!(board.now(), None);
        board.start("_signal.ns1.example.net.", 3_000_000);
        board.add(4096);
        board.add(4096);
        let seen = board.now().expect("a run");
        assert_eq!((seen.done, seen.total), (8192, 3_000_000));
        let line = seen.to_string();
        assert!(
            line.starts_with("signing _signal.ns1.example.net.: 8192 of 3000000 RRsets, "),
            "{line}"
        );
        assert!(line.contains(" s left"), "{line}");
        board.finish();
        assert_eq!(board.now(), None);
    }
}
