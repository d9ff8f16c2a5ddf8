//! Prometheus metrics (issue 14): what a dashboard needs to see signalbox
//! working, in the Prometheus text exposition format 0.0.4 (encoded by
//! `prometheus-client`, checked by `promtool check metrics` in
//! tests/it/metrics.rs), served on `[metrics] listen` by [`http`].
//!
//! No label ever carries a child zone's name: a million children must not
//! be a million series (per-child detail is for `status`). Signalling zones
//! are few, so their gauges carry `zone`.
//!
//! Values come from three places, none of them on the UDP hot path:
//! - the served snapshot, read at scrape time ([`ZoneCollector`]: serial,
//!   names, earliest signature expiry, the last cached per serial so a
//!   scrape of a million-name zone scans it once per new version);
//! - the event loop, after every round ([`Metrics::round_done`]: rounds,
//!   their duration, the safety brake, key file errors, the time from a key
//!   file change to the answer served, child zones per delegation state);
//! - shared counters of other parts, read at scrape time
//!   ([`CounterCollector`]: answers by transport and RCODE, which the UDP
//!   threads tally per thread and batch (`server::counters`), transfers,
//!   TCP connections, UPDATE writes, response rate limiting).

pub mod http;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};

use crate::{
    dns::name::display,
    follow::Confirmed,
    parent::counters::{KIND_LABELS, NotifyCounters, RESULT_LABELS},
    policy::DelegationState,
    server::{
        SharedSnapshot,
        counters::{QueryCounters, rcode_name},
        rrl::Rrl,
    },
};

/// The metrics of one `signalbox serve`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rounds: Counter,
    round_duration: Histogram,
    brake_holding: Gauge,
    key_file_errors: Gauge,
    key_change_to_served: Histogram,
    children: Family<[(&'static str, &'static str); 1], Gauge>,
    error_reports: Family<[(&'static str, String); 1], Counter>,
}

/// What a round leaves for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct RoundFacts {
    /// How long the round took.
    pub duration: Duration,
    /// The safety brake holds a change.
    pub brake_holding: bool,
    /// Key file problems of error severity (unreadable, malformed).
    pub key_file_errors: usize,
    /// For a round caused by key file changes that served a new version:
    /// from the first change seen to the new version served.
    pub key_change_to_served: Option<Duration>,
    /// Child zones per delegation state, in [`DelegationState::ALL`] order.
    pub children: [usize; DelegationState::ALL.len()],
}

/// UPDATE write counters shared with the publishers.
pub type UpdateCounters = Arc<crate::publish::Counters>;

/// Where the metrics read at scrape time.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The served snapshot.
    pub snapshot: SharedSnapshot,
    /// UPDATE writes into signers.
    pub updates: UpdateCounters,
    /// Response rate limiting, when on.
    pub rrl: Option<Arc<Rrl>>,
    /// Answers by transport and RCODE, transfers, TCP connections.
    pub queries: Arc<QueryCounters>,
    /// Generalized NOTIFYs to parents, when the parent agent runs.
    pub notify: Option<Arc<NotifyCounters>>,
    /// When followed signers were last confirmed current, when any are.
    pub follow: Option<Arc<Confirmed>>,
}

impl Metrics {
    /// The metrics, reading `sources` at scrape time.
    pub fn new(sources: Sources) -> Self {
        let Sources {
            snapshot,
            updates,
            rrl,
            queries,
            notify,
            follow,
        } = sources;
        let mut registry = Registry::with_prefix("signalbox");
        let build_info = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build_info
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("build_info", "signalbox's version (always 1)", build_info);
        let rounds = Counter::default();
        registry.register(
            "rounds",
            "Rounds run (scan, plan, brake, apply)",
            rounds.clone(),
        );
        let round_duration = Histogram::new([0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0, 60.0, 300.0]);
        registry.register_with_unit(
            "round_duration",
            "How long a round took",
            Unit::Seconds,
            round_duration.clone(),
        );
        let brake_holding = Gauge::default();
        registry.register(
            "safety_brake_holding",
            "1 while the safety brake holds a change (signalbox confirm lets it through)",
            brake_holding.clone(),
        );
        let key_file_errors = Gauge::default();
        registry.register(
            "key_file_errors",
            "Key file problems that need an operator (unreadable, malformed), at the last round",
            key_file_errors.clone(),
        );
        let key_change_to_served = Histogram::new([0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 60.0]);
        registry.register_with_unit(
            "key_change_to_served",
            "From a key file change seen to the new signals served",
            Unit::Seconds,
            key_change_to_served.clone(),
        );
        let children = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        for state in DelegationState::ALL {
            children.get_or_create(&[("state", state.as_str())]).set(0);
        }
        registry.register(
            "children",
            "Child zones by delegation state (bootstrapping, rolling, in_sync, insecure, deleting, \
             held, error); from the parent's DS as observed, else from key metadata",
            children.clone(),
        );
        let error_reports = Family::<[(&'static str, String); 1], Counter>::default();
        registry.register(
            "error_reports",
            "RFC 9567 error reports received as the monitoring agent ([report] agent), by \
             extended DNS error code (RFC 8914)",
            error_reports.clone(),
        );
        registry.register_collector(Box::new(ZoneCollector {
            snapshot,
            expiry: Mutex::default(),
            follow,
        }));
        registry.register_collector(Box::new(CounterCollector {
            updates,
            rrl,
            queries,
            notify,
        }));
        Metrics {
            registry,
            rounds,
            round_duration,
            brake_holding,
            key_file_errors,
            key_change_to_served,
            children,
            error_reports,
        }
    }

    /// Counts an error report taken.
    pub fn error_report(&self, ede: u16) {
        self.error_reports
            .get_or_create(&[("ede", ede.to_string())])
            .inc();
    }

    /// Notes a finished round.
    pub fn round_done(&self, facts: RoundFacts) {
        self.rounds.inc();
        self.round_duration.observe(facts.duration.as_secs_f64());
        self.brake_holding.set(i64::from(facts.brake_holding));
        self.key_file_errors
            .set(i64::try_from(facts.key_file_errors).unwrap_or(i64::MAX));
        if let Some(latency) = facts.key_change_to_served {
            self.key_change_to_served.observe(latency.as_secs_f64());
        }
        for (state, count) in DelegationState::ALL.iter().zip(facts.children) {
            self.children
                .get_or_create(&[("state", state.as_str())])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// The text a scrape gets.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Per served signalling zone, from the snapshot being served.
#[derive(Debug)]
struct ZoneCollector {
    snapshot: SharedSnapshot,
    /// Earliest signature expiry per apex, for the serial it was found at.
    expiry: Mutex<HashMap<String, (u32, u32)>>,
    /// Followed signers (few: a `zone` label each).
    follow: Option<Arc<Confirmed>>,
}

impl Collector for ZoneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let snapshot = self.snapshot.load();
        let mut serials = Vec::new();
        let mut names = Vec::new();
        let mut expiries = Vec::new();
        let mut cache = self.expiry.lock().unwrap_or_else(|e| e.into_inner());
        for zone in snapshot.zones() {
            let store = zone.store();
            let apex = display(store.apex());
            let serial = store.serial();
            serials.push((apex.clone(), i64::from(serial)));
            names.push((apex.clone(), store.len() as i64));
            let earliest = match cache.get(&apex) {
                Some(&(at, expires)) if at == serial => Some(expires),
                _ => store.earliest_expiration(),
            };
            if let Some(expires) = earliest {
                cache.insert(apex.clone(), (serial, expires));
                expiries.push((apex, i64::from(expires)));
            }
        }
        drop(cache);
        gauge_family(
            &mut encoder,
            "zone_serial",
            "SOA serial served, per signalling zone",
            &serials,
        )?;
        gauge_family(
            &mut encoder,
            "zone_names",
            "Owner names in the served signalling zone",
            &names,
        )?;
        gauge_family(
            &mut encoder,
            "zone_signatures_earliest_expiry_timestamp_seconds",
            "When the first RRSIG of the served zone expires (Unix time)",
            &expiries,
        )?;
        // The family is always described (without samples when no zone is
        // followed), so dashboards and alert rules find it.
        let mut family = encoder.encode_descriptor(
            "follow_lag_seconds",
            "Seconds since the followed signer's serial was last confirmed (a successful SOA check), per followed zone",
            None,
            MetricType::Gauge,
        )?;
        let lags = self
            .follow
            .as_ref()
            .map(|follow| follow.lags(jiff::Timestamp::now()))
            .unwrap_or_default();
        for (zone, lag) in lags {
            let labels = [("zone", zone.as_str())];
            ConstGauge::new(lag).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// One gauge per zone.
fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(String, i64)],
) -> Result<(), fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (zone, value) in values {
        let labels = [("zone", zone.as_str())];
        ConstGauge::new(*value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Counters other parts keep, read at scrape time.
#[derive(Debug)]
struct CounterCollector {
    updates: UpdateCounters,
    /// Response rate limiting, when on.
    rrl: Option<Arc<Rrl>>,
    /// The server's answers.
    queries: Arc<QueryCounters>,
    /// The parent agent's NOTIFYs.
    notify: Option<Arc<NotifyCounters>>,
}

impl Collector for CounterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.encode_queries(&mut encoder)?;
        self.encode_notify(&mut encoder)?;
        let mut family = encoder.encode_descriptor(
            "update_writes",
            "UPDATEs into signers by result: written and seen, failed, dropped or reverted by the server",
            None,
            MetricType::Counter,
        )?;
        let read = |c: &AtomicU64| c.load(Relaxed);
        for (result, value) in [
            ("written", read(&self.updates.written)),
            ("failed", read(&self.updates.failed)),
            ("dropped", read(&self.updates.dropped)),
        ] {
            let labels = [("result", result)];
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        if let Some(rrl) = &self.rrl {
            let totals = rrl.totals();
            let mut family = encoder.encode_descriptor(
                "rrl_limited",
                "UDP answers over the rate limit ([server.rrl]) by action: dropped, or slipped (sent truncated, TC=1)",
                None,
                MetricType::Counter,
            )?;
            for (action, value) in [("dropped", totals.dropped), ("slipped", totals.slipped)] {
                let labels = [("action", action)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl CounterCollector {
    /// `queries_total{transport,rcode}` (the usual RCODEs always, the rest
    /// once seen), `transfers_total{type,result}`, `tcp_connections`.
    fn encode_queries(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let totals = self.queries.totals();
        let mut family = encoder.encode_descriptor(
            "queries",
            "Answers sent, by transport and RCODE (a transfer counts once; answers RRL dropped are not here)",
            None,
            MetricType::Counter,
        )?;
        for (transport, counts) in [("udp", &totals.udp), ("tcp", &totals.tcp)] {
            for (rcode, &count) in counts.iter().enumerate() {
                if count == 0 && !matches!(rcode, 0..=5 | 9) {
                    continue;
                }
                let labels = [("transport", transport), ("rcode", rcode_name(rcode))];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "transfers",
            "Zone transfers sent (AXFR, IXFR), complete or cut off",
            None,
            MetricType::Counter,
        )?;
        let kinds = [
            ("axfr", "complete"),
            ("axfr", "cut"),
            ("ixfr", "complete"),
            ("ixfr", "cut"),
        ];
        for ((kind, result), &count) in kinds.iter().zip(&totals.transfers) {
            let labels = [("type", *kind), ("result", *result)];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        let family = encoder.encode_descriptor(
            "tcp_connections",
            "TCP connections open now",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(totals.tcp_open).encode(family)
    }
}

impl CounterCollector {
    /// `notify_sent_total{type,result}`, `notify_pending`,
    /// `gate_waiting`: zeros when no parent agent runs, so alerts and
    /// dashboards find the series.
    fn encode_notify(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let totals = self.notify.as_ref().map(|n| n.totals()).unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "notify_sent",
            "Generalized NOTIFYs (RFC 9859) to parents by type and result",
            None,
            MetricType::Counter,
        )?;
        for (kind, row) in KIND_LABELS.iter().zip(&totals.sent) {
            for (result, &count) in RESULT_LABELS.iter().zip(row) {
                let labels = [("type", *kind), ("result", *result)];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        let family = encoder.encode_descriptor(
            "notify_pending",
            "NOTIFYs owed to parents (children x type), as of the last ledger save",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(totals.pending as i64).encode(family)?;
        let family = encoder.encode_descriptor(
            "gate_waiting",
            "Owed NOTIFYs waiting for every nameserver to serve the same signals (RFC 9975), or for the parent's acceptance (gate = parent)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(totals.gate_waiting as i64).encode(family)
    }
}
