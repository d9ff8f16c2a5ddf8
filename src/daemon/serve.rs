//! `signalbox serve`: the event loop. Key-directory events (debounced),
//! key timing timers, periodic rescans and polling, the hourly signature
//! check, SIGHUP and the control socket, parent views and followed apexes
//! all become rounds, run one at a time on a blocking thread.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_proto::rr::Name;
use jiff::Timestamp;
use tokio::{sync::mpsc as tmpsc, time::Instant};

use super::{Daemon, DaemonError, RoundInput, RoundReport, control, watch};
use crate::server;

/// Runs a round on a blocking thread (signing may take a while) and gives
/// the daemon back.
async fn run_round(
    daemon: Daemon,
    input: RoundInput,
) -> Result<(Daemon, RoundReport), DaemonError> {
    tokio::task::spawn_blocking(move || {
        let mut daemon = daemon;
        let report = daemon.round(input, Timestamp::now());
        (daemon, report)
    })
    .await
    .map_err(DaemonError::Round)
}

/// Runs `signalbox serve` until SIGINT/SIGTERM.
pub async fn serve(config_path: &Path) -> Result<(), DaemonError> {
    let daemon = Daemon::new(config_path)?;
    let snapshot = daemon.snapshot();
    let server_config = daemon.config.server.clone();
    // A warm start answers from the saved zones while the first round runs.
    let bound = server::start(&server_config, snapshot).await?;
    for addr in &bound {
        tracing::info!(%addr, "serving");
    }
    let (ctl_tx, mut ctl_rx) = tmpsc::channel::<control::Request>(16);
    let socket = control::socket_path(&daemon.config.state.dir);
    match control::listen(&socket, ctl_tx) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(DaemonError::ControlSocket(e));
        }
        Err(e) => {
            tracing::warn!(path = %socket.display(), error = %e, "no control socket: reload with SIGHUP; confirm is unavailable")
        }
    }
    let mut daemon = daemon;
    let agent = daemon.start_agent();
    let mut apexes = daemon.start_followers();
    daemon.start_publishers();
    let (agent_reports, mut agent_views) = match agent {
        Some(handle) => (Some(handle.reports), Some(handle.views)),
        None => (None, None),
    };
    let (mut daemon, first) = run_round(
        daemon,
        RoundInput {
            full: true,
            ..RoundInput::default()
        },
    )
    .await?;
    if let Some(tx) = &agent_reports {
        for child in first.child_reports {
            let _ = tx.send(child);
        }
    }
    let mut notifying: HashMap<(Name, std::net::SocketAddr), tokio::task::JoinHandle<()>> =
        HashMap::new();
    for (apex, serial) in &first.new_serials {
        daemon.notify_secondaries(apex, *serial, &mut notifying);
    }

    let (dir_tx, mut dir_rx) = tmpsc::unbounded_channel::<watch::Touched>();
    let mut watcher = watch::watch(
        &daemon.keys.dirs().cloned().collect::<Vec<_>>(),
        daemon.config.watch.mode,
        dir_tx.clone(),
    );
    // Directories to rescan whole, and single files to rescan.
    let mut dirty: BTreeSet<PathBuf> = BTreeSet::new();
    let mut dirty_files: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut deadline: Option<Instant> = None;
    let mut rescan = tokio::time::interval(daemon.config.watch.rescan_interval);
    rescan.tick().await;
    let mut poll = tokio::time::interval(daemon.config.watch.poll_interval);
    let mut refresh = tokio::time::interval(Duration::from_secs(3600));
    refresh.tick().await;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|source| DaemonError::Signal {
            signal: "SIGHUP",
            source,
        })?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| DaemonError::Signal {
        signal: "SIGTERM",
        source,
    })?;

    loop {
        let timer = daemon.schedule.next().map(|at| {
            let wait = (at - Timestamp::now().as_second()).max(0) as u64;
            Instant::now() + Duration::from_secs(wait)
        });
        let mut input: Option<RoundInput> = None;
        let mut reply: Option<(tokio::sync::oneshot::Sender<control::Reply>, control::Reply)> =
            None;
        tokio::select! {
            Some(touched) = dir_rx.recv() => {
                let mut note = |(dir, file): watch::Touched| match file {
                    Some(file) => {
                        dirty_files.entry(dir).or_default().insert(file);
                    }
                    None => {
                        dirty.insert(dir);
                    }
                };
                note(touched);
                while let Ok(touched) = dir_rx.try_recv() {
                    note(touched);
                }
                deadline.get_or_insert(Instant::now() + daemon.config.watch.debounce);
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                deadline = None;
                let mut files = std::mem::take(&mut dirty_files);
                files.retain(|dir, _| !dirty.contains(dir));
                input = Some(RoundInput { dirs: std::mem::take(&mut dirty), files, ..RoundInput::default() });
            }
            _ = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                let names = daemon.schedule.due(Timestamp::now());
                if !names.is_empty() {
                    input = Some(RoundInput { names, ..RoundInput::default() });
                }
            }
            _ = rescan.tick() => input = Some(RoundInput { full: true, ..RoundInput::default() }),
            _ = poll.tick(), if !watcher.polled.is_empty() => {
                dirty.extend(watcher.polled.iter().cloned());
                deadline.get_or_insert(Instant::now());
            }
            _ = refresh.tick() => input = Some(RoundInput { refresh: true, ..RoundInput::default() }),
            _ = hangup.recv() => {
                match daemon.reload() {
                    Ok(text) => {
                        tracing::info!("{text} (SIGHUP)");
                        watcher = watch::watch(&daemon.keys.dirs().cloned().collect::<Vec<_>>(), daemon.config.watch.mode, dir_tx.clone());
                        input = Some(RoundInput { full: true, ..RoundInput::default() });
                    }
                    Err(errors) => tracing::error!("reload rejected, the old config stays:\n{errors}"),
                }
            }
            Some(request) = ctl_rx.recv() => {
                match request.command {
                    control::Command::Reload => match daemon.reload() {
                        Ok(text) => {
                            tracing::info!("{text}");
                            watcher = watch::watch(&daemon.keys.dirs().cloned().collect::<Vec<_>>(), daemon.config.watch.mode, dir_tx.clone());
                            input = Some(RoundInput { full: true, ..RoundInput::default() });
                            reply = Some((request.reply, control::Reply { ok: true, text }));
                        }
                        Err(errors) => {
                            tracing::error!("reload rejected, the old config stays:\n{errors}");
                            let _ = request.reply.send(control::Reply { ok: false, text: format!("rejected, the old config stays:\n{errors}") });
                        }
                    },
                    control::Command::Confirm => {
                        let text = daemon.confirm();
                        tracing::warn!("{text}");
                        input = Some(RoundInput { full: true, ..RoundInput::default() });
                        reply = Some((request.reply, control::Reply { ok: true, text }));
                    }
                    control::Command::Status => {
                        let _ = request.reply.send(control::Reply { ok: true, text: daemon.status() });
                    }
                }
            }
            Some((zone, view)) = async { match agent_views.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                let mut names = BTreeSet::new();
                if daemon.parent_view(zone.clone(), view) {
                    names.insert(zone);
                }
                if let Some(rx) = agent_views.as_mut() {
                    while let Ok((zone, view)) = rx.try_recv() {
                        if daemon.parent_view(zone.clone(), view) {
                            names.insert(zone);
                        }
                    }
                }
                if !names.is_empty() {
                    input = Some(RoundInput { names, ..RoundInput::default() });
                }
            }
            Some((zone, apex)) = async { match apexes.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                let mut names = BTreeSet::new();
                daemon.sidecar.followed.insert(zone.clone(), apex);
                names.insert(zone);
                if let Some(rx) = apexes.as_mut() {
                    while let Ok((zone, apex)) = rx.try_recv() {
                        daemon.sidecar.followed.insert(zone.clone(), apex);
                        names.insert(zone);
                    }
                }
                input = Some(RoundInput { names, ..RoundInput::default() });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        if let Some(input) = input {
            let (next, report) = run_round(daemon, input).await?;
            daemon = next;
            for (apex, serial) in &report.new_serials {
                daemon.notify_secondaries(apex, *serial, &mut notifying);
            }
            if let Some(tx) = &agent_reports {
                for child in report.child_reports {
                    let _ = tx.send(child);
                }
            }
            if !report.flux_dirs.is_empty() {
                // BIND is mid-rewrite: look again shortly, without stalling
                // others (a key in flux is re-read by any scan of its
                // directory, so no file needs naming).
                for dir in &report.flux_dirs {
                    dirty_files.entry(dir.clone()).or_default();
                }
                deadline.get_or_insert(Instant::now() + Duration::from_millis(200));
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
    tracing::info!("shutting down");
    Ok(())
}
