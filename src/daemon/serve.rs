//! `signalbox serve`: the event loop. Key-directory events (debounced),
//! key timing timers, periodic rescans and polling, the hourly signature
//! check, SIGHUP and the control socket, parent views and followed apexes
//! all become rounds, run one at a time on a blocking thread. After each
//! round its secondaries are NOTIFYed (RFC 1996) and the parent agent gets
//! the children whose signals changed.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use jiff::Timestamp;
use tokio::{
    sync::{mpsc as tmpsc, oneshot},
    time::Instant,
};

use super::{
    Daemon, DaemonError, ReloadError, RoundInput, RoundReport,
    after_round::AfterRound,
    control,
    facts::{on_followed_apexes, on_foreign_keys, on_parent_views},
    key_changes::{CutIns, KeyChanges},
    service::{ROUND_WATCHDOG_LIMIT, SdNotify},
    watch,
};
use crate::{
    metrics::{self, Metrics},
    server,
    vital::Ends,
};

/// Runs a round on a blocking thread (signing may take a while) and gives
/// the daemon back. Meanwhile the systemd watchdog is fed, for at most
/// [`ROUND_WATCHDOG_LIMIT`] (src/daemon/service.rs).
async fn run_round(
    daemon: Daemon,
    input: RoundInput,
    sd: &SdNotify,
    after: &mut AfterRound,
) -> Result<(Daemon, RoundReport), DaemonError> {
    let signing = Arc::clone(&daemon.signing);
    let phase = if daemon.first_round {
        "first round"
    } else {
        "round"
    };
    let mut round = tokio::task::spawn_blocking(move || {
        let mut daemon = daemon;
        let report = daemon.round(input, Timestamp::now());
        (daemon, report)
    });
    let watchdog = sd.watchdog_interval();
    let started = Instant::now();
    // Feeds the watchdog and, while a long signing run goes on, tells
    // systemd how far it got (STATUS=).
    let mut tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(1)));
    let mut starved = false;
    loop {
        tokio::select! {
            done = &mut round => {
                // What cut in last is delivered before the round's own.
                after.deliver_waiting_cut_ins();
                return done.map_err(DaemonError::Round);
            }
            Some(cut_in) = after.cut_ins.recv() => after.deliver_cut_in(cut_in),
            _ = tick.tick() => {
                if let Some(run) = signing.now() {
                    sd.status(&format!("{phase}: {run}"));
                }
                if watchdog.is_none() {
                    continue;
                }
                if started.elapsed() < ROUND_WATCHDOG_LIMIT {
                    sd.watchdog();
                } else if !starved {
                    starved = true;
                    tracing::error!(
                        running_s = started.elapsed().as_secs(),
                        "a round is still running: no longer feeding the systemd watchdog, which restarts signalbox"
                    );
                }
            }
        }
    }
}

/// The next error report the server queued (`[report] agent`); never
/// without an agent.
async fn next_report(
    queue: &mut Option<tokio::sync::mpsc::Receiver<crate::server::report::ReportQuery>>,
) -> Option<crate::server::report::ReportQuery> {
    match queue {
        Some(queue) => queue.recv().await,
        None => std::future::pending().await,
    }
}

/// A full round: rescan everything, recompute every child.
fn full_round() -> RoundInput {
    RoundInput {
        full: true,
        ..RoundInput::default()
    }
}

/// A control command's answer, sent once the round it asked for is done.
type PendingReply = (oneshot::Sender<control::Reply>, control::Reply);

/// Runs `signalbox serve` until SIGINT/SIGTERM.
pub async fn serve(config_path: &Path) -> Result<(), DaemonError> {
    let sd = SdNotify::from_env();
    sd.status("reading the configuration, key files and saved zones");
    // The config, key files and saved zones are read on a blocking thread.
    let path = config_path.to_path_buf();
    let daemon = tokio::task::spawn_blocking(move || Daemon::new(&path))
        .await
        .map_err(DaemonError::Round)??;
    // Installed before anything is served: a SIGTERM or SIGHUP from now on
    // is handled (the first during the first round waits for it, then shuts
    // down cleanly), not the default action.
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup(), "SIGHUP")?;
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate(), "SIGTERM")?;
    let mut daemon = daemon;
    // Watched from before the first answer: a key written once the saved
    // zones are served, while the secondaries are asked or while the first
    // round runs (at a million children, seconds long) may cut into that
    // round, or is recomputed right after it; it waits neither for the
    // periodic rescan nor for a listing of its directory
    // (`key_changes.rs`).
    let changes = KeyChanges::new(daemon.config.watch.debounce);
    let (wake_tx, mut wake_rx) = tmpsc::unbounded_channel::<()>();
    let watch_dirs = |daemon: &Daemon| {
        let dirs: Vec<PathBuf> = daemon.keys.dirs().cloned().collect();
        watch::watch(
            &dirs,
            daemon.config.watch.mode,
            changes.clone(),
            wake_tx.clone(),
        )
    };
    let mut watcher = watch_dirs(&daemon);
    // A warm start answers from the saved zones at once, and while the
    // first round runs; transfers wait until the secondaries were asked
    // what they hold.
    daemon.publish_snapshot();
    let listening = server::start(&daemon.config.server, daemon.snapshot(), &daemon.vitals).await?;
    for addr in &listening.addrs {
        tracing::info!(%addr, "serving");
    }
    // Before any new serial: what the secondaries hold (a standby taking
    // over continues above it, and drops a journal it cannot trust); on a
    // cold start, taken by the first round before its first new serial.
    daemon.check_secondaries_or_defer().await;
    daemon.publish_snapshot();
    daemon.rrl = listening.rrl;
    daemon.events = crate::event::Events::start(&daemon.config.hooks, &daemon.vitals);
    let mut report_queue = daemon.report_queue.take();
    let mut ctl_rx = open_control_socket(&daemon)?;
    let mut deaths = daemon.deaths.take();
    let mut died = None;
    let agent = daemon.start_agent();
    let mut apexes = daemon.start_followers();
    let mut foreign = daemon.start_foreign_fetch();
    if let Some(handle) = &agent {
        // Their other providers' trust may come from the parent's DS.
        daemon.watch_provided(&handle.watch);
    }
    daemon.start_publishers();
    let notify_counters = agent.as_ref().map(|a| Arc::clone(&a.counters));
    let metrics = start_metrics(&daemon, listening.queries, notify_counters).await?;
    let (agent_reports, mut agent_views) = match agent {
        Some(handle) => {
            daemon.agent.questions = Some(handle.questions);
            (Some(handle.reports), Some(handle.views))
        }
        None => (None, None),
    };
    let (cut_in_tx, cut_in_rx) = tmpsc::unbounded_channel();
    let mut after = AfterRound {
        notifying: HashMap::new(),
        agent: agent_reports,
        cut_ins: cut_in_rx,
        metrics: metrics.clone(),
    };
    daemon.cut_ins = Some(CutIns {
        changes: changes.clone(),
        done: cut_in_tx,
    });
    sd.status(
        "first round: reading keys and signing (a warm start serves its saved zones meanwhile)",
    );
    let started = Instant::now();
    let (mut daemon, mut first) = run_round(daemon, full_round(), &sd, &mut after).await?;
    if let Some(metrics) = &metrics {
        metrics.round_done(daemon.round_facts(&first, started.elapsed(), None));
    }
    after.deliver(&daemon, &mut first);
    sd.ready(&daemon.status_line());
    let mut watchdog =
        tokio::time::interval(sd.watchdog_interval().unwrap_or(Duration::from_secs(3600)));

    watcher.note_held(daemon.unreadable_key_dirs());
    let mut rescan = tokio::time::interval(daemon.config.watch.rescan_interval);
    rescan.tick().await;
    let mut poll = tokio::time::interval(daemon.config.watch.poll_interval);
    let mut refresh = tokio::time::interval(Duration::from_secs(3600));
    refresh.tick().await;

    loop {
        let timer = daemon.schedule.next().map(|at| {
            let wait = (at - Timestamp::now().as_second()).max(0) as u64;
            Instant::now() + Duration::from_secs(wait)
        });
        let held_retry = daemon.serial_hold.due().map(Instant::from_std);
        let mut input: Option<RoundInput> = None;
        let mut key_change_seen: Option<Instant> = None;
        let mut reply: Option<PendingReply> = None;
        // A reload may have changed it.
        changes.set_debounce(daemon.config.watch.debounce);
        let debounced = changes.deadline();
        tokio::select! {
            // A key change was noted: its debounce deadline may be new.
            Some(()) = wake_rx.recv() => while wake_rx.try_recv().is_ok() {},
            _ = tokio::time::sleep_until(debounced.unwrap_or_else(Instant::now)), if debounced.is_some() => {
                let round;
                (round, key_change_seen) = changes.take();
                input = Some(round);
            }
            _ = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                let names = daemon.schedule.due(Timestamp::now());
                if !names.is_empty() {
                    input = Some(RoundInput { names, ..RoundInput::default() });
                }
            }
            _ = rescan.tick() => input = Some(full_round()),
            _ = poll.tick(), if watcher.polls() => changes.rescan_now(&watcher.to_poll()),
            _ = refresh.tick() => input = Some(RoundInput { refresh: true, ..RoundInput::default() }),
            _ = tokio::time::sleep_until(held_retry.unwrap_or_else(Instant::now)), if held_retry.is_some() => {
                input = Some(daemon.serial_hold.retry_round());
            }
            _ = watchdog.tick() => sd.watchdog(),
            Some(query) = next_report(&mut report_queue) => {
                if let Some(report) = daemon.take_error_report(query) {
                    if let Some(metrics) = &metrics {
                        metrics.error_report(report.ede);
                    }
                }
            }
            _ = hangup.recv() => {
                let (next, outcome) = reload(daemon, &sd).await?;
                daemon = next;
                match outcome {
                    Ok(text) => {
                        tracing::info!("{text} (SIGHUP)");
                        watcher = watch_dirs(&daemon);
                        input = Some(full_round());
                    }
                    Err(errors) => tracing::error!("reload rejected, the old config stays:\n{errors}"),
                }
            }
            Some(request) = ctl_rx.recv() => {
                let reloaded = matches!(request.command, control::Command::Reload);
                let next;
                (next, input, reply) = on_control(daemon, request, &sd).await?;
                daemon = next;
                if reloaded && input.is_some() {
                    watcher = watch_dirs(&daemon);
                }
            }
            Some(first) = recv_opt(&mut agent_views) => {
                input = on_parent_views(&mut daemon, first, agent_views.as_mut());
            }
            Some(first) = recv_opt(&mut apexes) => {
                input = Some(on_followed_apexes(&mut daemon, first, apexes.as_mut()));
            }
            Some(first) = recv_opt(&mut foreign) => {
                input = Some(on_foreign_keys(&mut daemon, first, foreign.as_mut()));
            }
            Some(death) = recv_opt(&mut deaths) => {
                died = Some(death);
                break;
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        if let Some(input) = input {
            let started = Instant::now();
            let (next, mut report) = run_round(daemon, input, &sd, &mut after).await?;
            daemon = next;
            if let Some(metrics) = &metrics {
                metrics.round_done(
                    daemon.round_facts(
                        &report,
                        started.elapsed(),
                        key_change_seen
                            .filter(|_| report.new_versions > 0)
                            .map(|seen| seen.elapsed()),
                    ),
                );
            }
            after.deliver(&daemon, &mut report);
            sd.status(&daemon.status_line());
            let read_again = watcher.note_held(daemon.unreadable_key_dirs());
            if !read_again.is_empty() {
                // A directory back after a hold may be a new inode: watch it
                // anew, and look once more for what changed meanwhile.
                watcher = watch_dirs(&daemon);
                watcher.note_held(daemon.unreadable_key_dirs());
                changes.rescan_now(&read_again);
            }
            if !report.flux_dirs.is_empty() {
                changes.retry_flux(&report.flux_dirs);
            }
            if let Some((tx, mut text)) = reply {
                if report.held {
                    text.text
                        .push_str("\nthe safety brake still holds after this round");
                }
                let _ = tx.send(text);
            }
        }
    }
    sd.stopping();
    shut_down(daemon).await?;
    // A vital part died: exit non-zero (after the flush) so the supervisor
    // starts a fresh process.
    died.map_or(Ok(()), |death| Err(death.into()))
}

/// How long shutdown waits for pending zone saves.
const SHUTDOWN_SAVE_LIMIT: Duration = Duration::from_secs(120);

/// SIGTERM/SIGINT: no more rounds; the zones changed since their last save
/// are saved now (waiting at most `SHUTDOWN_SAVE_LIMIT`), so the next start
/// is warm and serves what was served (docs/ARCHITECTURE.md, "State on
/// disk"). A failed save costs the next start its head start, not its
/// serial (that is recorded before serving), so the exit is still clean.
async fn shut_down(daemon: Daemon) -> Result<(), DaemonError> {
    tracing::info!("shutting down: saving zones");
    let started = std::time::Instant::now();
    let flushed = tokio::task::spawn_blocking(move || {
        let mut daemon = daemon;
        daemon.save_key_caches(crate::model::CacheSave::Shutdown);
        let flushed = daemon.saver.flush(SHUTDOWN_SAVE_LIMIT);
        if flushed.is_ok() {
            daemon.mark_key_caches_complete();
        }
        flushed
    })
    .await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match flushed {
        Ok(()) => tracing::info!(elapsed_ms, "zones saved; exiting"),
        Err(e) => tracing::error!(
            elapsed_ms,
            "{e}: the next start serves older saved zones (or starts cold) until its first round"
        ),
    }
    Ok(())
}

/// Starts the `/metrics` endpoint when `[metrics] listen` is set (a
/// vital part: it must answer as long as signalbox runs).
async fn start_metrics(
    daemon: &Daemon,
    queries: Arc<server::counters::QueryCounters>,
    notify: Option<Arc<crate::parent::counters::NotifyCounters>>,
) -> Result<Option<Arc<Metrics>>, DaemonError> {
    let Some(addr) = daemon.config.metrics.listen else {
        return Ok(None);
    };
    let listener = metrics::http::bind(addr)
        .await
        .map_err(|source| DaemonError::Metrics { addr, source })?;
    let metrics = Arc::new(Metrics::new(metrics::Sources {
        snapshot: daemon.snapshot(),
        updates: Arc::clone(&daemon.sidecar.counters),
        rrl: daemon.rrl.clone(),
        queries,
        notify,
        follow: daemon.sidecar.confirmed.clone(),
    }));
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    daemon.vitals.task(
        "metrics",
        Ends::Never,
        metrics::http::serve(listener, Arc::clone(&metrics)),
    );
    Ok(Some(metrics))
}

/// Opens the control socket; a running daemon on the same state directory
/// is an error, any other failure only costs `reload`/`confirm` by socket.
fn open_control_socket(daemon: &Daemon) -> Result<tmpsc::Receiver<control::Request>, DaemonError> {
    let (ctl_tx, ctl_rx) = tmpsc::channel::<control::Request>(16);
    let socket = control::socket_path(&daemon.config.state.dir);
    match control::listen(&socket, ctl_tx, &daemon.vitals) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(DaemonError::ControlSocket(e));
        }
        Err(e) => {
            tracing::warn!(path = %socket.display(), error = %e, "no control socket: reload with SIGHUP; confirm is unavailable")
        }
    }
    Ok(ctl_rx)
}

/// A Unix signal stream.
fn signal(
    kind: tokio::signal::unix::SignalKind,
    name: &'static str,
) -> Result<tokio::signal::unix::Signal, DaemonError> {
    tokio::signal::unix::signal(kind).map_err(|source| DaemonError::Signal {
        signal: name,
        source,
    })
}

/// The next message of an optional channel (never, when there is none).
async fn recv_opt<T>(rx: &mut Option<tmpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx.as_mut() {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reloads the config on a blocking thread: reading it and its TSIG key
/// files must not stall the TCP listeners on the runtime's only thread.
async fn reload(
    daemon: Daemon,
    sd: &SdNotify,
) -> Result<(Daemon, Result<String, ReloadError>), DaemonError> {
    sd.reloading(false);
    let reloaded = tokio::task::spawn_blocking(move || {
        let mut daemon = daemon;
        let outcome = daemon.reload();
        (daemon, outcome)
    })
    .await
    .map_err(DaemonError::Round);
    sd.reloading(true);
    reloaded
}

/// Answers a control command; reload and confirm ask for a full round and
/// answer once it is done, status answers at once.
async fn on_control(
    mut daemon: Daemon,
    request: control::Request,
    sd: &SdNotify,
) -> Result<(Daemon, Option<RoundInput>, Option<PendingReply>), DaemonError> {
    let (input, reply) = match request.command {
        control::Command::Reload => {
            let (next, outcome) = reload(daemon, sd).await?;
            daemon = next;
            match outcome {
                Ok(text) => {
                    tracing::info!("{text}");
                    let reply = control::Reply { ok: true, text };
                    (Some(full_round()), Some((request.reply, reply)))
                }
                Err(errors) => {
                    tracing::error!("reload rejected, the old config stays:\n{errors}");
                    let _ = request.reply.send(control::Reply {
                        ok: false,
                        text: format!("rejected, the old config stays:\n{errors}"),
                    });
                    (None, None)
                }
            }
        }
        control::Command::Confirm => {
            let text = daemon.confirm();
            tracing::warn!("{text}");
            let reply = control::Reply { ok: true, text };
            (Some(full_round()), Some((request.reply, reply)))
        }
        control::Command::Status => {
            let _ = request.reply.send(control::Reply {
                ok: true,
                text: daemon.status(),
            });
            (None, None)
        }
        control::Command::StatusJson => {
            let _ = request.reply.send(control::Reply {
                ok: true,
                text: daemon.status_report().to_json(),
            });
            (None, None)
        }
        control::Command::Explain { zone, json } => {
            let reply = match daemon.explain(&zone, Timestamp::now()) {
                Ok(explanation) => {
                    let explanation = match ask_agent(&daemon, &explanation.zone).await {
                        Some(answer) => explanation.with_notify(answer),
                        None => explanation,
                    };
                    control::Reply {
                        ok: true,
                        text: if json {
                            explanation.to_json()
                        } else {
                            explanation.to_text()
                        },
                    }
                }
                Err(e) => control::Reply {
                    ok: false,
                    text: e.to_string(),
                },
            };
            let _ = request.reply.send(reply);
            (None, None)
        }
    };
    Ok((daemon, input, reply))
}

/// Asks the parent agent where `zone`'s NOTIFYs stand (`None` when no
/// agent runs or it does not answer within 2 s).
async fn ask_agent(daemon: &Daemon, zone: &str) -> Option<crate::parent::agent::ChildNotifies> {
    let questions = daemon.agent.questions.as_ref()?;
    let zone = crate::dns::parse_name(zone).ok()?;
    let (reply, answer) = oneshot::channel();
    questions
        .send(crate::parent::agent::Question { zone, reply })
        .ok()?;
    tokio::time::timeout(Duration::from_secs(2), answer)
        .await
        .ok()?
        .ok()
}
