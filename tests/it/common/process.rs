//! Processes of the harness: ports, one-shot commands and foreground daemons.
//!
//! Every daemon a test starts (Knot, BIND, NSD, Unbound, `signalbox serve`)
//! is a [`Daemon`]: a child of the test process writing to a log file,
//! killed (SIGKILL) when its owner is dropped, which includes unwinding from
//! a failed assertion. A small `sh` watchdog per daemon also kills it when
//! the test process itself dies without unwinding (SIGKILL, abort, timeout).
//!
//! Ports come from [`free_port`], which never hands out the same port twice
//! in one process, so tests running in parallel threads of the one test
//! binary do not collide.
//!
//! All suites share one test binary, so a test asserting timings of a few
//! seconds could run beside one that signs ten thousand names or drives a
//! whole BIND: [`cpu_heavy`] and [`timing_sensitive`] keep those two kinds
//! apart (heavy ones may overlap each other; light ones run beside anything).

use std::{
    collections::HashSet,
    fs,
    net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// How long [`start_daemon`] waits for a daemon to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Held shared by CPU-heavy tests, exclusively by timing-sensitive ones.
static CPU: RwLock<()> = RwLock::new(());

/// Taken at the start of a CPU-heavy test (thousands of signatures, a real
/// signer): it may run beside other heavy tests, never beside a
/// [`timing_sensitive`] one. Take it once per test (not nested).
pub fn cpu_heavy() -> RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(PoisonError::into_inner)
}

/// Taken at the start of a test whose assertions have deadlines of a few
/// seconds: it waits until no [`cpu_heavy`] test runs and keeps new ones out
/// until it ends. Take it once per test (not nested).
pub fn timing_sensitive() -> RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(PoisonError::into_inner)
}

/// A port on 127.0.0.1 that is free for UDP and TCP right now, never handed
/// out before by this process. Taken from 20000-32767, below Linux's
/// default ephemeral range, so client sockets (dig, delv, Unbound's
/// outgoing queries, tests binding port 0) do not grab it before the daemon
/// binds it. Start points differ per process (pid) and per call (counter).
pub fn free_port() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12768;
    let mut used = USED.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    for i in 0..SPAN {
        let port = (LOW + (seed.wrapping_add(n.wrapping_mul(97)).wrapping_add(i)) % SPAN) as u16;
        if used.contains(&port) {
            continue;
        }
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, port));
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        if udp.is_ok() && tcp.is_ok() {
            used.insert(port);
            return port;
        }
    }
    panic!("no free port in {LOW}-{}", LOW + SPAN - 1);
}

/// A UDP socket and a TCP listener on the same fresh port of `ip` (any
/// 127.x.y.z works on Linux without configuration), for the harness's own
/// servers; `what` names the server in the panic when 50 ports fail.
pub fn bind_udp_tcp(ip: Ipv4Addr, what: &str) -> (UdpSocket, TcpListener) {
    (0..50)
        .find_map(|_| {
            let port = free_port();
            let udp = UdpSocket::bind((ip, port)).ok()?;
            let tcp = TcpListener::bind((ip, port)).ok()?;
            Some((udp, tcp))
        })
        .unwrap_or_else(|| panic!("no free port on {ip} for {what}"))
}

/// Runs a command to its end with stdin closed: (exit code, stdout,
/// stderr); panics when it cannot be started.
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Where a [`Daemon`]'s output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// stdout and stderr to the log file, emptied first.
    Fresh,
    /// stdout and stderr appended to the log file (kept across restarts).
    Append,
    /// The daemon writes the log file itself (NSD's `logfile:`); its stdout
    /// and stderr are discarded.
    Own,
}

/// A foreground daemon, killed (with a watchdog for abrupt test exits) on drop.
pub struct Daemon {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdin closed and its output going to `log` as
    /// `mode` says; panics when it cannot be started.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path, mode: Log) -> Daemon {
        let (out, err) = match mode {
            Log::Own => (Stdio::null(), Stdio::null()),
            Log::Fresh | Log::Append => {
                let file = fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(mode == Log::Append)
                    .truncate(mode == Log::Fresh)
                    .open(log)
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
                let copy = file.try_clone().expect("clone log file");
                (file.into(), copy.into())
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        // If this process dies without dropping us, the watchdog's stdin
        // (whose only writer is this process) closes and it kills the daemon.
        let watchdog = Command::new("sh")
            .args([
                "-c",
                "read _; kill -9 \"$1\" 2>/dev/null",
                "signalbox-watchdog",
            ])
            .arg(child.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Daemon {
            name: name.to_string(),
            child,
            watchdog,
            log: log.to_path_buf(),
        }
    }

    /// The exit status once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.exited().is_none()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything in its log file so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 80 lines of its log, with a header.
    pub fn log_tail(&self) -> String {
        tail(&self.name, &self.log, 80)
    }

    /// SIGTERM, then SIGKILL if it is still running after `within`.
    pub fn terminate(&mut self, within: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// SIGKILL, and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        self.kill();
    }
}

/// The last `n` lines of a log file, with a header.
pub fn tail(name: &str, log: &Path, n: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    format!(
        "--- {name} log ({}), last {} lines ---\n{}",
        log.display(),
        lines.len() - from,
        lines[from..].join("\n")
    )
}

/// Spawns `cmd` (output appended to `log`) and polls `ready` every 50 ms
/// until Ok. Err(reason + this run's part of the log) when the daemon exits
/// or is not ready `within`.
pub fn launch(
    name: &str,
    cmd: Command,
    log: &Path,
    within: Duration,
    mut ready: impl FnMut() -> Result<(), String>,
) -> Result<Daemon, String> {
    let log_len = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let mut daemon = Daemon::spawn(name, cmd, log, Log::Append);
    let started = Instant::now();
    let failure = loop {
        if let Some(status) = daemon.exited() {
            break format!("{name} exited with {status}");
        }
        match ready() {
            Ok(()) => return Ok(daemon),
            Err(last) if started.elapsed() > within => {
                break format!("{name} not ready within {within:?}; last probe: {last}");
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    };
    drop(daemon);
    // Only this run's part of the log decides whether the port was taken.
    let text = fs::read_to_string(log).unwrap_or_default();
    let this_run = text.get(log_len as usize..).unwrap_or("");
    Err(format!(
        "{failure}\n--- {name} log ({}) ---\n{this_run}",
        log.display()
    ))
}

/// Whether a failed [`launch`] looks like a port clash (worth another port).
pub fn port_taken(err: &str) -> bool {
    err.contains("in use") || err.contains("can't bind") || err.contains("cannot bind")
}

/// Starts a daemon on a fresh port, trying up to four ports while the port
/// turns out to be taken: `setup(port)` writes its config and returns the
/// command and its log file; `ready(addr)` is polled until Ok (for up to
/// `within`). Panics with the log on any other failure.
pub fn start_on_free_port(
    name: &str,
    within: Duration,
    mut setup: impl FnMut(u16) -> (Command, PathBuf),
    mut ready: impl FnMut(SocketAddr) -> Result<(), String>,
) -> (Daemon, SocketAddr) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let (cmd, log) = setup(port);
        match launch(name, cmd, &log, within, || ready(addr)) {
            Ok(daemon) => return (daemon, addr),
            Err(e) if port_taken(&e) && attempts < 4 => continue,
            Err(e) => panic!("{e}"),
        }
    }
}

/// [`start_on_free_port`] with the log in `dir/<name>-<port>.log` and a
/// 15 s start timeout: `command(port)` writes the config and returns the
/// command.
pub fn start_daemon(
    name: &str,
    dir: &Path,
    mut command: impl FnMut(u16) -> Command,
    ready: impl FnMut(SocketAddr) -> Result<(), String>,
) -> (Daemon, SocketAddr) {
    start_on_free_port(
        name,
        START_TIMEOUT,
        |port| (command(port), dir.join(format!("{name}-{port}.log"))),
        ready,
    )
}

/// Restarts a daemon on the port it had: calls `start` up to ten times,
/// 300 ms apart, while the port is still taken (the old process may hold it
/// a moment after it exited). Panics on any other failure.
pub fn restart_on_same_port(
    name: &str,
    mut start: impl FnMut() -> Result<Daemon, String>,
) -> Daemon {
    let mut last = String::new();
    for _ in 0..10 {
        match start() {
            Ok(daemon) => return daemon,
            Err(e) if port_taken(&e) => {
                last = e;
                thread::sleep(Duration::from_millis(300));
            }
            Err(e) => panic!("restarting {name}: {e}"),
        }
    }
    panic!("restarting {name}: the port stays taken: {last}");
}
