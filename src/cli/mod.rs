//! Command-line parsing and the one-shot commands.
//!
//! Exit codes: 0 ok; 1 done, with warnings that need attention (a zone held,
//! a key in error, a signal that cannot be published); 2 usage or config error.

/// `print!` for command output: a reader that went away (`signalbox
/// signals | head`) ends the command quietly, as it ends `cat`, instead of
/// a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

/// `println!` for command output (see [`out!`]).
macro_rules! outln {
    () => {
        $crate::cli::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {{
        $crate::cli::write_out(format_args!($($arg)*));
        $crate::cli::write_out(format_args!("\n"));
    }};
}

mod check;
mod dist;
mod keys;
mod parent;
mod signals;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Exit status: everything fine.
pub const EXIT_OK: u8 = 0;
/// Exit status: done, with warnings (a zone held, a key unreadable).
pub const EXIT_WARNINGS: u8 = 1;
/// Exit status: usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Keeps the parent side of DNSSEC delegations in sync: CDS/CDNSKEY, CSYNC
/// and RFC 9615 bootstrap signals computed from BIND key directories.
#[derive(Debug, Parser)]
#[command(name = "signalbox", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level for stderr (error, warn, info, debug, trace; default: info
    /// for serve, warn otherwise); RUST_LOG overrides.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log format on stderr: `text` for people, `json` (one object per
    /// line) for log shippers.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// How log events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event, fields flattened.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign and serve the signalling zones (until SIGINT/SIGTERM).
    Serve {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Tell the running daemon to re-read its config (like SIGHUP).
    Reload {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Let a change held by the safety brake through.
    Confirm {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Show the running daemon's zones, serials and safety brake.
    Status {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Machine-readable output (docs in src/daemon/status.rs).
        #[arg(long)]
        json: bool,
    },
    /// One child zone's whole story, from the running daemon: its keys,
    /// what is published where and why, what the parent has, NOTIFYs sent,
    /// holds and the next timing event.
    Explain {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The child zone.
        zone: String,
        /// Machine-readable output (docs in src/daemon/explain.rs).
        #[arg(long)]
        json: bool,
    },
    /// Check a config file and the key directories it names.
    CheckConfig {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the records each child zone should publish, with reasons.
    Signals {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Only this zone.
        #[arg(long)]
        zone: Option<String>,
        /// The time to compute for: RFC 3339 or BIND YYYYMMDDHHMMSS (default: now).
        #[arg(long)]
        at: Option<String>,
        /// The zones' current SOA serial, for CSYNC.
        #[arg(long)]
        soa_serial: Option<u32>,
    },
    /// Show the parent's side of a child: DSYNC discovery, NOTIFY targets,
    /// the parent's DS and NS, and whether every nameserver agrees.
    Parent {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The child zone.
        #[arg(long)]
        zone: String,
    },
    /// A child's delegation as its parent will see it: asks every address of
    /// every nameserver over UDP and TCP, checks the CDS/CDNSKEY against
    /// the RFCs and the parent's profile, and names the outcome. Exit 0
    /// when the parent would accept (or nothing is pending), 1 when it
    /// would refuse or the servers disagree, 2 for usage errors.
    Check {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The child zone.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        zone: Option<String>,
        /// Every child zone of the config, one after the other; the text
        /// lists those with something pending (and a tally).
        #[arg(long)]
        all: bool,
        /// What the parent checks: generic (the RFCs), ch, se, cz.
        #[arg(long, default_value = "generic")]
        profile: String,
        /// Machine-readable output (the `Verdict` of src/check/mod.rs; an
        /// array of them with --all).
        #[arg(long)]
        json: bool,
    },
    /// Discover the parent's NOTIFY target and send a generalized NOTIFY
    /// (RFC 9859) for a child now, printing each step.
    Notify {
        /// The config file.
        #[arg(short, long)]
        config: PathBuf,
        /// The child zone.
        #[arg(long)]
        zone: String,
        /// Which change to announce.
        #[arg(long = "type", value_enum, default_value = "cds")]
        kind: parent::NotifyType,
        /// Do everything but send.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the keys of a BIND key directory.
    Keys {
        /// The directory.
        dir: PathBuf,
        /// The time to describe the keys at (default: now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Write man pages and shell completions into a directory (for
    /// packaging).
    #[command(hide = true)]
    Dist {
        /// Where to write `man/` and `completions/`.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    // Held until exit: dropping it flushes the log queue.
    let _log_writer = init_logging(
        cli.log_level.as_deref().unwrap_or(default_level),
        cli.log_format,
    );
    log_panics();
    let code = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Reload { config } => control(&config, signalbox::daemon::control::Command::Reload),
        Command::Confirm { config } => {
            control(&config, signalbox::daemon::control::Command::Confirm)
        }
        Command::Status { config, json } => control(
            &config,
            if json {
                signalbox::daemon::control::Command::StatusJson
            } else {
                signalbox::daemon::control::Command::Status
            },
        ),
        Command::Explain { config, zone, json } => control(
            &config,
            signalbox::daemon::control::Command::Explain { zone, json },
        ),
        Command::CheckConfig { config } => check::run(&config),
        Command::Signals {
            config,
            zone,
            at,
            soa_serial,
        } => signals::run(&config, zone.as_deref(), at.as_deref(), soa_serial),
        Command::Keys { dir, at } => keys::run(&dir, at.as_deref()),
        Command::Dist { out } => dist::run(&out),
        Command::Parent { config, zone } => parent::run_parent(&config, &zone),
        Command::Check {
            config,
            zone,
            all: _,
            profile,
            json,
        } => parent::run_check(&config, zone.as_deref(), &profile, json),
        Command::Notify {
            config,
            zone,
            kind,
            dry_run,
        } => parent::run_notify(&config, &zone, kind, dry_run),
    };
    ExitCode::from(code)
}

fn serve(config: &std::path::Path) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_WARNINGS;
        }
    };
    match runtime.block_on(signalbox::daemon::serve(config)) {
        Ok(()) => EXIT_OK,
        Err(signalbox::daemon::DaemonError::Config(errors)) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
            EXIT_CONFIG
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_WARNINGS
        }
    }
}

/// Sends a command to the daemon over its control socket.
fn control(config: &std::path::Path, command: signalbox::daemon::control::Command) -> u8 {
    let parsed = match signalbox::config::load(config) {
        Ok(parsed) => parsed,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
            if command == signalbox::daemon::control::Command::Reload {
                eprintln!("error: not sent: the daemon would reject this config too");
            }
            return EXIT_CONFIG;
        }
    };
    match signalbox::daemon::control::send(
        &parsed.state.dir,
        &command,
        std::time::Duration::from_secs(120),
    ) {
        Ok(reply) => {
            if reply.ok {
                out!("{}", reply.text);
                EXIT_OK
            } else {
                eprint!("error: {}", reply.text);
                EXIT_CONFIG
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_WARNINGS
        }
    }
}

/// Logs to stderr through a bounded queue and a writer thread: a stalled
/// stderr (a full pipe, a stuck journald) drops log lines instead of
/// blocking the UDP threads or the event loop.
fn init_logging(level: &str, format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("log")
        .finish(std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Text => logs.with_ansi(ansi).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    guard
}

/// Panics are logged as errors, with the thread and the place, like every
/// other event (a vital part's death is then reported by
/// [`signalbox::vital`]).
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location,
            "panic: {}",
            signalbox::vital::panic_message(info.payload())
        );
    }));
}

/// An `--at` that is neither RFC 3339 nor a BIND timestamp.
#[derive(Debug, thiserror::Error)]
#[error("--at: {0}")]
struct AtError(#[from] signalbox::keys::bind::TimestampError);

/// Parses `--at`, or returns now.
fn time_arg(at: Option<&str>) -> Result<jiff::Timestamp, AtError> {
    match at {
        None => Ok(jiff::Timestamp::now()),
        Some(text) => Ok(signalbox::keys::bind::timestamp::parse_user(text)?),
    }
}

/// A config with its key directories scanned and its child zones resolved.
struct Loaded {
    config: signalbox::config::Config,
    store: signalbox::model::KeyStore,
    children: Vec<signalbox::model::ChildZone>,
    model_errors: Vec<signalbox::model::ModelError>,
}

/// Loads the config (printing its errors) and scans every key directory,
/// re-reading for up to the flux grace period while BIND is mid-rewrite.
fn load(path: &std::path::Path) -> Result<Loaded, u8> {
    let config = match signalbox::config::load(path) {
        Ok(config) => config,
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("error: {error}");
            }
            return Err(EXIT_CONFIG);
        }
    };
    let mut store = signalbox::model::KeyStore::new(&config);
    let store_started = std::time::Instant::now();
    store.scan(store_started);
    while store.has_pending_flux()
        && store_started.elapsed() <= signalbox::keys::dir::DEFAULT_FLUX_GRACE
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
        store.scan(std::time::Instant::now());
    }
    let (children, model_errors) = signalbox::model::children(&config, &store);
    Ok(Loaded {
        config,
        store,
        children,
        model_errors,
    })
}

/// Writes command output to stdout. A closed pipe ends the process with
/// status 0 (the reader has what it wanted); another write error ends it
/// with an error message.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(EXIT_OK));
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(i32::from(EXIT_WARNINGS));
    }
}
