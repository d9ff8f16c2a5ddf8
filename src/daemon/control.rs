//! The control socket (`<state dir>/control.sock`, mode 0600): `reload`,
//! `confirm`, `status` and `explain` from the command line to the running
//! daemon. One
//! command per connection; the answer is `ok` or `error` on the first line,
//! then text. `status` names every key directory held because it cannot be
//! read (since when, why) and the zones held by a key that cannot be read.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::vital::{Ends, Vitals};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt},
    net::UnixListener,
    sync::{mpsc, oneshot},
};

/// A command to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Re-read the config; a bad one is rejected with its errors.
    Reload,
    /// Let a round held by the safety brake through.
    Confirm,
    /// Report zones, serials and the brake.
    Status,
    /// The same as JSON (`status --json`).
    StatusJson,
    /// One child's story (`explain ZONE [--json]`).
    Explain {
        /// The child zone.
        zone: String,
        /// As JSON.
        json: bool,
    },
}

impl Command {
    fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let command = match (words.next()?, words.next()) {
            ("reload", None) => Command::Reload,
            ("confirm", None) => Command::Confirm,
            ("status", None) => Command::Status,
            ("status-json", None) => Command::StatusJson,
            ("explain", Some(zone)) => Command::Explain {
                zone: zone.to_string(),
                json: false,
            },
            ("explain-json", Some(zone)) => Command::Explain {
                zone: zone.to_string(),
                json: true,
            },
            _ => return None,
        };
        words.next().is_none().then_some(command)
    }

    /// The wire spelling (one line).
    pub fn to_line(&self) -> String {
        match self {
            Command::Reload => "reload".into(),
            Command::Confirm => "confirm".into(),
            Command::Status => "status".into(),
            Command::StatusJson => "status-json".into(),
            Command::Explain { zone, json: false } => format!("explain {zone}"),
            Command::Explain { zone, json: true } => format!("explain-json {zone}"),
        }
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Success?
    pub ok: bool,
    /// What to print.
    pub text: String,
}

/// A command with the way back to its sender.
#[derive(Debug)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

/// The socket's path in a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// Binds the socket (replacing a stale one) and forwards commands to `tx`.
/// Refuses when another daemon answers on it: two daemons on one state
/// directory would fight over serials.
pub fn listen(path: &Path, tx: mpsc::Sender<Request>, vitals: &Vitals) -> io::Result<()> {
    if UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "another signalbox is running with this state directory ({})",
                path.display()
            ),
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    vitals.task("control socket", Ends::Never, async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: do not spin.
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read);
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let reply = match Command::parse(&line) {
                    None => Reply {
                        ok: false,
                        text: format!(
                            "unknown command {:?} (reload, confirm, status, status-json, explain ZONE, explain-json ZONE)",
                            line.trim()
                        ),
                    },
                    Some(command) => {
                        let (reply_tx, reply_rx) = oneshot::channel();
                        if tx
                            .send(Request {
                                command,
                                reply: reply_tx,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        reply_rx.await.unwrap_or(Reply {
                            ok: false,
                            text: "the daemon is shutting down".into(),
                        })
                    }
                };
                let text = format!(
                    "{}\n{}\n",
                    if reply.ok { "ok" } else { "error" },
                    reply.text.trim_end()
                );
                let _ = write.write_all(text.as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// Sends `command` to the daemon whose state directory is `state_dir`.
pub fn send(state_dir: &Path, command: &Command, timeout: Duration) -> io::Result<Reply> {
    let path = socket_path(state_dir);
    let mut stream = UnixStream::connect(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{}: {e} (is `signalbox serve` running?)", path.display()),
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(format!("{}\n", command.to_line()).as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut text = String::new();
    reader.read_to_string(&mut text)?;
    Ok(Reply {
        ok: first.trim() == "ok",
        text,
    })
}
