//! pppd-compatible scripts (`[scripts]`): `ip-pre-up`, `ip-up` and
//! `ip-down`, run with pppd's arguments and environment so that a pptpd
//! installation's `/etc/ppp/ip-up` and the like keep working.
//!
//! - Arguments, as pppd passes them: interface, tty device, speed, local
//!   address, remote address, ipparam. Every session shares the daemon's
//!   one TUN device (`dataplane.tun_name`), where pppd has one `pppN` per
//!   session: scripts tell sessions apart by the remote address. The tty
//!   device is [`DEVICE`], the speed [`SPEED`] and ipparam the client's
//!   public address (what pptpd passes unless `noipparam`).
//! - Environment, cleared first as pppd does: pppd's variables
//!   (`PPPD_PID` is the daemon's, the same for every session), and ours
//!   ([`invocation`] lists them).
//! - Semantics: `ip-pre-up` runs before the session's route and data path
//!   are installed and the session waits for it; `ip-up` runs once the
//!   network is up, the session does not wait; `ip-down` runs exactly once
//!   for every session whose network came up and whose `ip-up` was not
//!   skipped, after that `ip-up` has finished, however the session ends:
//!   [`SessionScripts::down`] is called from the session guard's `Drop`
//!   and takes the session's state, so nothing can skip it or run it twice.
//! - Bounds: each run is killed (its whole process group) after
//!   `timeout_secs`; at most `max_concurrent` run at once; at most
//!   `max_queued` `ip-pre-up`/`ip-up` runs wait for a slot, beyond which
//!   they are skipped, counted and logged. `ip-down` is never skipped: the
//!   runs it can queue are bounded by the sessions that are up.
//! - Output: the first [`OUTPUT_MAX`] bytes of stdout and stderr go to the
//!   log, escaped; a failure or a timeout is logged with the script, the
//!   session and the user.

use std::{
    net::Ipv4Addr,
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _},
    process::Command,
    sync::{Notify, Semaphore},
    task::JoinHandle,
};

use crate::{config::ScriptsConfig, logsafe::Escaped};

/// The tty-device argument (`$2`, `DEVICE`): PPTP sessions have none.
pub const DEVICE: &str = "pptp";
/// The speed argument (`$3`, `SPEED`): pptpd's default `speed`.
pub const SPEED: &str = "115200";
/// `PATH` of the scripts (pppd leaves it unset; scripts usually set it).
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Bytes of a script's stdout, and of its stderr, that reach the log.
pub const OUTPUT_MAX: usize = 1024;
/// How long the output of a script that exited is still read (a process
/// it left in the background may hold the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Which script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PreUp,
    Up,
    Down,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::PreUp => "ip-pre-up",
            Kind::Up => "ip-up",
            Kind::Down => "ip-down",
        }
    }
}

/// What a script is told about its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    /// Acct-Session-Id, as `ctl sessions` shows it.
    pub session_id: String,
    pub call_id: u16,
    pub peer_call_id: u16,
    /// The authenticated user name.
    pub user: String,
    /// The client's public address (`CALLING_SID`, ipparam).
    pub peer: Ipv4Addr,
    /// Our public address the client reached (`CALLED_SID`).
    pub server: Ipv4Addr,
    /// Our address in the tunnel (`IPLOCAL`).
    pub local: Ipv4Addr,
    /// The client's address in the tunnel (`IPREMOTE`).
    pub remote: Ipv4Addr,
}

/// What `ip-down` adds: the session's final counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DownFacts {
    /// Since the network came up (`CONNECT_TIME`, whole seconds).
    pub connect_time: Duration,
    /// Bytes sent to the client (`BYTES_SENT`).
    pub bytes_sent: u64,
    /// Bytes received from the client (`BYTES_RCVD`).
    pub bytes_rcvd: u64,
}

/// The daemon's identity, as pppd tells its scripts its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// `PPPD_PID`.
    pub pid: u32,
    /// `ORIG_UID`: the real user id.
    pub uid: u32,
    /// `PPPLOGNAME`: that user's login name, when known.
    pub login: Option<String>,
}

impl Daemon {
    /// This process.
    pub fn current() -> Self {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        Self {
            pid: std::process::id(),
            uid,
            login: login_name(uid),
        }
    }
}

/// The login name of `uid` (getpwuid_r), if it has one.
fn login_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is its
    // size; on success `pw_name` points into `buf`, NUL-terminated.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: checked non-null above; NUL-terminated within `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// An environment value: up to the first NUL (as pppd's C strings end),
/// which `execve` could not pass.
fn env_value(text: &str) -> String {
    text.split('\0').next().unwrap_or_default().to_owned()
}

/// The arguments and environment of one run: pppd's six arguments, pppd's
/// variables (`PPPD_PID`, `PEERNAME`, `IPLOCAL`, `IPREMOTE`, `IFNAME`,
/// `DEVICE`, `SPEED`, `ORIG_UID`, `PPPLOGNAME` when known, and for
/// `ip-down` `CONNECT_TIME`, `BYTES_SENT`, `BYTES_RCVD`), `PATH`, and ours
/// (`PPTP_SESSION_ID`, `PPTP_CALL_ID`, `PPTP_PEER_CALL_ID`, `CALLING_SID`,
/// `CALLED_SID`). pppd's `LINKNAME`, `CALL_FILE` and `DNS1`/`DNS2` come
/// from options a PPTP server does not have and are not set.
pub fn invocation(
    ifname: &str,
    facts: &SessionFacts,
    daemon: &Daemon,
    down: Option<&DownFacts>,
) -> (Vec<String>, Vec<(&'static str, String)>) {
    let args = vec![
        ifname.to_owned(),
        DEVICE.to_owned(),
        SPEED.to_owned(),
        facts.local.to_string(),
        facts.remote.to_string(),
        facts.peer.to_string(),
    ];
    let mut env = vec![
        ("PATH", PATH.to_owned()),
        ("PPPD_PID", daemon.pid.to_string()),
        ("ORIG_UID", daemon.uid.to_string()),
        ("IFNAME", env_value(ifname)),
        ("DEVICE", DEVICE.to_owned()),
        ("SPEED", SPEED.to_owned()),
        ("PEERNAME", env_value(&facts.user)),
        ("IPLOCAL", facts.local.to_string()),
        ("IPREMOTE", facts.remote.to_string()),
        ("PPTP_SESSION_ID", env_value(&facts.session_id)),
        ("PPTP_CALL_ID", facts.call_id.to_string()),
        ("PPTP_PEER_CALL_ID", facts.peer_call_id.to_string()),
        ("CALLING_SID", facts.peer.to_string()),
        ("CALLED_SID", facts.server.to_string()),
    ];
    if let Some(login) = &daemon.login {
        env.push(("PPPLOGNAME", env_value(login)));
    }
    if let Some(down) = down {
        env.push(("CONNECT_TIME", down.connect_time.as_secs().to_string()));
        env.push(("BYTES_SENT", down.bytes_sent.to_string()));
        env.push(("BYTES_RCVD", down.bytes_rcvd.to_string()));
    }
    (args, env)
}

/// Counters of the scripts (`ctl stats`).
#[derive(Default)]
pub struct ScriptStats {
    pub started: AtomicU64,
    /// Could not start, exited non-zero or by a signal.
    pub failed: AtomicU64,
    /// Killed after `timeout_secs`.
    pub timed_out: AtomicU64,
    /// `ip-pre-up`/`ip-up` runs skipped: `max_queued` were waiting.
    pub overflow: AtomicU64,
}

/// The daemon's script runner; `None` from [`Scripts::new`] when no
/// script is configured.
pub struct Scripts {
    pre_up: Option<PathBuf>,
    up: Option<PathBuf>,
    down: Option<PathBuf>,
    timeout: Duration,
    slots: Semaphore,
    /// `ip-pre-up`/`ip-up` runs waiting for a slot or running.
    queued: AtomicUsize,
    max_queued: usize,
    max_concurrent: usize,
    ifname: String,
    daemon: Daemon,
    pub stats: ScriptStats,
    /// Runs not finished (queued or running), for [`Scripts::drain`].
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Scripts {
    /// The runner for `config`; `ifname` is the TUN device's name.
    pub fn new(config: &ScriptsConfig, ifname: &str, daemon: Daemon) -> Option<Arc<Self>> {
        if config.ip_pre_up.is_none() && config.ip_up.is_none() && config.ip_down.is_none() {
            return None;
        }
        for path in [&config.ip_pre_up, &config.ip_up, &config.ip_down]
            .into_iter()
            .flatten()
        {
            if !path.is_file() {
                tracing::warn!(path = %path.display(), "script not found (yet): its runs will fail until it exists");
            }
        }
        let max_concurrent = usize::try_from(config.max_concurrent.max(1)).unwrap_or(1);
        Some(Arc::new(Self {
            pre_up: config.ip_pre_up.clone(),
            up: config.ip_up.clone(),
            down: config.ip_down.clone(),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
            slots: Semaphore::new(max_concurrent),
            queued: AtomicUsize::new(0),
            max_queued: usize::try_from(config.max_queued).unwrap_or(usize::MAX),
            max_concurrent,
            ifname: ifname.to_owned(),
            daemon,
            stats: ScriptStats::default(),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        }))
    }

    /// The counters, named for `ctl stats`.
    pub fn stats_list(&self) -> Vec<(String, u64)> {
        let s = &self.stats;
        [
            ("scripts_started", &s.started),
            ("scripts_failed", &s.failed),
            ("scripts_timed_out", &s.timed_out),
            ("scripts_overflow", &s.overflow),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.load(Ordering::Relaxed)))
        .collect()
    }

    /// Waits until every queued or running script has finished, at most
    /// `within`; returns how many had not.
    pub async fn drain(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let idle = self.idle.notified();
            let left = self.in_flight.load(Ordering::Acquire);
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight.load(Ordering::Acquire);
            }
        }
    }

    fn path(&self, kind: Kind) -> Option<&Path> {
        match kind {
            Kind::PreUp => self.pre_up.as_deref(),
            Kind::Up => self.up.as_deref(),
            Kind::Down => self.down.as_deref(),
        }
    }

    /// Counts a run in flight until the returned token drops.
    fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Admits an `ip-pre-up`/`ip-up` run unless `max_queued` wait already
    /// (the running ones do not count against it).
    fn admit(self: &Arc<Self>, kind: Kind, facts: &SessionFacts) -> Option<Queued> {
        let bound = self.max_queued + self.max_concurrent;
        let admitted = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < bound).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            let skipped = self.stats.overflow.fetch_add(1, Ordering::Relaxed) + 1;
            // The first skip and then every 100th: a burst of sessions
            // does not flood the log (the counter has them all).
            if skipped == 1 || skipped.is_multiple_of(100) {
                tracing::warn!(
                    script = kind.name(),
                    session = %facts.session_id,
                    call_id = facts.call_id,
                    user = %Escaped::new(&facts.user),
                    skipped,
                    "script skipped: {} runs already wait (scripts.max_queued)",
                    self.max_queued
                );
            }
            return None;
        }
        Some(Queued(self.clone()))
    }

    /// Runs the script of `kind` for `facts`, within the concurrency and
    /// time bounds, and logs how it went.
    async fn run(&self, kind: Kind, facts: &SessionFacts, down: Option<&DownFacts>) {
        let Some(path) = self.path(kind) else { return };
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        let (args, env) = invocation(&self.ifname, facts, &self.daemon, down);
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        let outcome = execute(path, &args, &env, self.timeout).await;
        self.report(kind, path, facts, &outcome);
    }

    fn report(&self, kind: Kind, path: &Path, facts: &SessionFacts, outcome: &Outcome) {
        let stdout = Escaped::new(&outcome.stdout).max_chars(OUTPUT_MAX);
        let stderr = Escaped::new(&outcome.stderr).max_chars(OUTPUT_MAX);
        let script = kind.name();
        let session = &facts.session_id;
        let call_id = facts.call_id;
        let user = Escaped::new(&facts.user);
        let path = path.display();
        match &outcome.end {
            End::Exited(status) if status.success() => tracing::info!(
                script,
                %path,
                %session,
                call_id,
                %user,
                %stdout,
                %stderr,
                "script finished"
            ),
            End::Exited(status) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let status = match (status.code(), status.signal()) {
                    (Some(code), _) => format!("exit status {code}"),
                    (None, Some(signal)) => format!("killed by signal {signal}"),
                    (None, None) => status.to_string(),
                };
                tracing::warn!(script, %path, %session, call_id, %user, %stdout, %stderr, "script failed: {status}");
            }
            End::SpawnFailed(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(script, %path, %session, call_id, %user, "script failed to start: {e}");
            }
            End::TimedOut => {
                self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    script,
                    %path,
                    %session,
                    call_id,
                    %user,
                    %stdout,
                    %stderr,
                    "script timed out after {} s: its process group was killed",
                    self.timeout.as_secs()
                );
            }
        }
    }
}

/// A run in flight; drops when it has finished.
struct InFlight(Arc<Scripts>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// An admitted `ip-pre-up`/`ip-up` run.
struct Queued(Arc<Scripts>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How a run ended.
#[derive(Debug)]
enum End {
    Exited(ExitStatus),
    SpawnFailed(std::io::Error),
    TimedOut,
}

#[derive(Debug)]
struct Outcome {
    end: End,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Kills a process group on drop unless disarmed: a run whose future is
/// dropped (its session task aborted) or that timed out leaves nothing
/// running.
struct GroupKill(Option<i32>);

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals the group whose
            // id is our child's pid; the child is not reaped yet (we only
            // disarm after `wait`), so the id cannot have been reused.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads up to [`OUTPUT_MAX`] bytes into `into`, then discards the rest so
/// the writer never blocks on a full pipe.
async fn collect(mut reader: impl AsyncRead + Unpin, into: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 512];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut out = into.lock().unwrap_or_else(|e| e.into_inner());
                let room = OUTPUT_MAX.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Runs `path args` with exactly `env`, in a process group of its own,
/// stdin from /dev/null; kills the group after `timeout`.
async fn execute(
    path: &Path,
    args: &[String],
    env: &[(&'static str, String)],
    timeout: Duration,
) -> Outcome {
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome {
                end: End::SpawnFailed(e),
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
        }
    };
    let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
    let (stdout, stderr) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(collect(out, stdout.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(collect(err, stderr.clone())));
    }
    let end = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            // Reaped: the group id may be reused from now on.
            group.0 = None;
            End::Exited(status)
        }
        Ok(Err(e)) => {
            group.kill();
            let _ = child.wait().await;
            End::SpawnFailed(e)
        }
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            End::TimedOut
        }
    };
    // The output written so far; a background process that still holds
    // the pipes gets a short grace, then its output is no longer read.
    for reader in readers {
        let abort = reader.abort_handle();
        if tokio::time::timeout(OUTPUT_GRACE, reader).await.is_err() {
            abort.abort();
        }
    }
    let take =
        |m: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner()));
    Outcome {
        end,
        stdout: take(&stdout),
        stderr: take(&stderr),
    }
}

/// One session's scripts. Clones share the state: the session task runs
/// `pre_up` and `up`, its guard's `Drop` runs `down`.
#[derive(Clone, Default)]
pub struct SessionScripts {
    inner: Arc<Mutex<SessionState>>,
}

#[derive(Default)]
struct SessionState {
    scripts: Option<Arc<Scripts>>,
    /// Set when the network came up and `ip-up` was not skipped: an
    /// `ip-down` is owed.
    up: Option<UpRan>,
}

struct UpRan {
    facts: SessionFacts,
    since: Instant,
    /// The `ip-up` run, which `ip-down` waits for.
    ip_up: Option<JoinHandle<()>>,
}

impl SessionScripts {
    /// For a session of a daemon that runs `scripts` (none: nothing runs).
    pub fn new(scripts: Option<Arc<Scripts>>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(SessionState { scripts, up: None })),
        }
    }

    fn scripts(&self) -> Option<Arc<Scripts>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .scripts
            .clone()
    }

    /// `ip-pre-up`, waited for (bounded by the timeout); its exit status
    /// does not stop the session, as with pppd.
    pub async fn pre_up(&self, facts: &SessionFacts) {
        let Some(scripts) = self.scripts() else {
            return;
        };
        if scripts.pre_up.is_none() {
            return;
        }
        let Some(_queued) = scripts.admit(Kind::PreUp, facts) else {
            return;
        };
        let _in_flight = scripts.enter();
        scripts.run(Kind::PreUp, facts, None).await;
    }

    /// The network is up: `ip-up` starts (not waited for), and an
    /// `ip-down` is owed unless `ip-up` was skipped. A second call before
    /// `down` changes nothing.
    pub fn up(&self, facts: SessionFacts) {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(scripts) = state.scripts.clone() else {
            return;
        };
        if state.up.is_some() {
            return;
        }
        let ip_up = if scripts.up.is_some() {
            let Some(queued) = scripts.admit(Kind::Up, &facts) else {
                return;
            };
            let in_flight = scripts.enter();
            let (runner, f) = (scripts.clone(), facts.clone());
            Some(tokio::spawn(async move {
                let _in_flight = in_flight;
                let _queued = queued;
                runner.run(Kind::Up, &f, None).await;
            }))
        } else {
            None
        };
        state.up = Some(UpRan {
            facts,
            since: Instant::now(),
            ip_up,
        });
    }

    /// The network went down or the session ended: `ip-down`, once, with
    /// the counters `counters` gives (bytes sent, bytes received), after
    /// the session's `ip-up` has finished. Synchronous (the guard's `Drop`
    /// calls it): the run is spawned and counted in flight at once, so
    /// [`Scripts::drain`] waits for it at shutdown.
    pub fn down(&self, counters: impl FnOnce() -> (u64, u64)) {
        let (scripts, up) = {
            let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Some(up) = state.up.take() else { return };
            let Some(scripts) = state.scripts.clone() else {
                return;
            };
            (scripts, up)
        };
        if scripts.down.is_none() {
            return;
        }
        let (bytes_sent, bytes_rcvd) = counters();
        let down = DownFacts {
            connect_time: up.since.elapsed(),
            bytes_sent,
            bytes_rcvd,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                script = Kind::Down.name(),
                session = %up.facts.session_id,
                "no runtime left to run the script"
            );
            return;
        };
        let in_flight = scripts.enter();
        runtime.spawn(async move {
            let _in_flight = in_flight;
            if let Some(ip_up) = up.ip_up {
                let _ = ip_up.await;
            }
            scripts.run(Kind::Down, &up.facts, Some(&down)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    //! The arguments and environment, and the runner on real processes
    //! (`/bin/sh`): output captured, failures and timeouts counted, the
    //! process group killed, `ip-down` exactly once after `ip-up`.

    use std::collections::HashMap;

    use super::*;

    fn facts() -> SessionFacts {
        SessionFacts {
            session_id: "5f5e1000-1a2b-00000003".into(),
            call_id: 0x1a2b,
            peer_call_id: 9,
            user: "alice".into(),
            peer: Ipv4Addr::new(198, 18, 0, 2),
            server: Ipv4Addr::new(198, 18, 0, 1),
            local: Ipv4Addr::new(198, 19, 0, 1),
            remote: Ipv4Addr::new(198, 19, 64, 7),
        }
    }

    fn daemon() -> Daemon {
        Daemon {
            pid: 4242,
            uid: 0,
            login: Some("root".into()),
        }
    }

    #[test]
    fn ip_up_gets_pppds_arguments_and_environment() {
        let (args, env) = invocation("pptp0", &facts(), &daemon(), None);
        assert_eq!(
            args,
            [
                "pptp0",
                "pptp",
                "115200",
                "198.19.0.1",
                "198.19.64.7",
                "198.18.0.2"
            ]
        );
        let env: HashMap<_, _> = env.into_iter().collect();
        let want = [
            ("PATH", PATH),
            ("PPPD_PID", "4242"),
            ("ORIG_UID", "0"),
            ("PPPLOGNAME", "root"),
            ("IFNAME", "pptp0"),
            ("DEVICE", "pptp"),
            ("SPEED", "115200"),
            ("PEERNAME", "alice"),
            ("IPLOCAL", "198.19.0.1"),
            ("IPREMOTE", "198.19.64.7"),
            ("PPTP_SESSION_ID", "5f5e1000-1a2b-00000003"),
            ("PPTP_CALL_ID", "6699"),
            ("PPTP_PEER_CALL_ID", "9"),
            ("CALLING_SID", "198.18.0.2"),
            ("CALLED_SID", "198.18.0.1"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(env.len(), want.len(), "nothing else: {env:?}");
        assert!(!env.contains_key("CONNECT_TIME"));
    }

    #[test]
    fn ip_down_adds_the_final_counters() {
        let down = DownFacts {
            connect_time: Duration::from_millis(61_900),
            bytes_sent: 1234,
            bytes_rcvd: 5678,
        };
        let (args, env) = invocation("pptp0", &facts(), &daemon(), Some(&down));
        assert_eq!(args.len(), 6);
        let env: HashMap<_, _> = env.into_iter().collect();
        assert_eq!(env["CONNECT_TIME"], "61");
        assert_eq!(env["BYTES_SENT"], "1234");
        assert_eq!(env["BYTES_RCVD"], "5678");
    }

    #[test]
    fn unknown_login_is_left_out_and_nul_ends_a_value() {
        let mut f = facts();
        f.user = "bob\0evil".into();
        let d = Daemon {
            login: None,
            ..daemon()
        };
        let (_, env) = invocation("pptp0", &f, &d, None);
        let env: HashMap<_, _> = env.into_iter().collect();
        assert_eq!(env["PEERNAME"], "bob");
        assert!(!env.contains_key("PPPLOGNAME"));
    }

    #[test]
    fn root_has_a_login_name() {
        assert_eq!(login_name(0).as_deref(), Some("root"));
    }

    /// A scratch folder removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "pptp-scripts-{name}-{}-{}",
                std::process::id(),
                Instant::now().elapsed().as_nanos()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn script(&self, name: &str, body: &str) -> PathBuf {
            use std::os::unix::fs::PermissionsExt as _;
            let path = self.0.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn runner(config: ScriptsConfig) -> Arc<Scripts> {
        Scripts::new(&config, "pptp0", Daemon::current()).expect("a script is configured")
    }

    #[tokio::test]
    async fn a_script_sees_its_arguments_and_only_its_environment() {
        let dir = Scratch::new("env");
        let out = dir.0.join("out");
        let up = dir.script(
            "ip-up",
            &format!("echo \"$@\" > {o}; env | sort >> {o}", o = out.display()),
        );
        let scripts = runner(ScriptsConfig {
            ip_up: Some(up),
            ..ScriptsConfig::default()
        });
        let session = SessionScripts::new(Some(scripts.clone()));
        session.up(facts());
        assert_eq!(scripts.drain(Duration::from_secs(10)).await, 0);
        let text = std::fs::read_to_string(&out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("pptp0 pptp 115200 198.19.0.1 198.19.64.7 198.18.0.2")
        );
        let env: HashMap<&str, &str> = lines.filter_map(|l| l.split_once('=')).collect();
        assert_eq!(env["PEERNAME"], "alice");
        assert_eq!(env["CALLING_SID"], "198.18.0.2");
        assert_eq!(env["PPPD_PID"], std::process::id().to_string());
        // The test's own environment does not leak in (sh adds PWD etc.).
        assert!(!env.contains_key("CARGO"), "{env:?}");
        assert!(!env.contains_key("HOME"), "{env:?}");
        assert_eq!(scripts.stats.started.load(Ordering::Relaxed), 1);
        assert_eq!(scripts.stats.failed.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn ip_down_runs_once_after_ip_up_with_the_counters() {
        let dir = Scratch::new("down");
        let log = dir.0.join("log");
        let up = dir.script("ip-up", &format!("sleep 0.3; echo up >> {}", log.display()));
        let down = dir.script(
            "ip-down",
            &format!(
                "echo down $BYTES_SENT $BYTES_RCVD $CONNECT_TIME >> {}",
                log.display()
            ),
        );
        let scripts = runner(ScriptsConfig {
            ip_up: Some(up),
            ip_down: Some(down),
            ..ScriptsConfig::default()
        });
        let session = SessionScripts::new(Some(scripts.clone()));
        // Nothing owed before the network is up.
        session.down(|| unreachable!("no ip-down before ip-up"));
        session.up(facts());
        session.up(facts());
        let copy = session.clone();
        copy.down(|| (10, 20));
        session.down(|| unreachable!("ip-down owed once only"));
        assert_eq!(scripts.drain(Duration::from_secs(10)).await, 0);
        // ip-up slept before writing: ip-down still came after it.
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "up\ndown 10 20 0\n");
        assert_eq!(scripts.stats.started.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_hanging_script_is_killed_with_its_children() {
        let dir = Scratch::new("hang");
        let pids = dir.0.join("pids");
        let pre_up = dir.script(
            "ip-pre-up",
            &format!(
                "sleep 600 & echo $! > {}; echo started; wait",
                pids.display()
            ),
        );
        let scripts = runner(ScriptsConfig {
            ip_pre_up: Some(pre_up),
            timeout_secs: 1,
            ..ScriptsConfig::default()
        });
        let session = SessionScripts::new(Some(scripts.clone()));
        tokio::time::timeout(Duration::from_secs(10), session.pre_up(&facts()))
            .await
            .expect("ip-pre-up is bounded by the timeout");
        assert_eq!(scripts.stats.timed_out.load(Ordering::Relaxed), 1);
        let child: i32 = std::fs::read_to_string(&pids)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background `sleep` was in the group: gone (or a zombie
        // reaped by init shortly).
        let mut gone = false;
        for _ in 0..50 {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z ") {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the script's child {child} survived the timeout");
    }

    #[tokio::test]
    async fn failures_are_counted_and_overflow_skips_ip_up_and_its_ip_down() {
        let dir = Scratch::new("fail");
        let log = dir.0.join("log");
        let fail = dir.script("ip-pre-up", "echo oops >&2; exit 3");
        let up = dir.script("ip-up", &format!("sleep 1; echo up >> {}", log.display()));
        let down = dir.script("ip-down", &format!("echo down >> {}", log.display()));
        let scripts = runner(ScriptsConfig {
            ip_pre_up: Some(fail),
            ip_up: Some(up),
            ip_down: Some(down),
            max_concurrent: 1,
            max_queued: 0,
            ..ScriptsConfig::default()
        });
        let first = SessionScripts::new(Some(scripts.clone()));
        first.pre_up(&facts()).await;
        assert_eq!(scripts.stats.failed.load(Ordering::Relaxed), 1);
        first.up(facts());
        // One slot, none to wait in: the second session's ip-up is skipped
        // and it owes no ip-down.
        let second = SessionScripts::new(Some(scripts.clone()));
        second.up(facts());
        assert_eq!(scripts.stats.overflow.load(Ordering::Relaxed), 1);
        second.down(|| unreachable!("ip-up was skipped"));
        first.down(|| (0, 0));
        assert_eq!(scripts.drain(Duration::from_secs(10)).await, 0);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "up\ndown\n");
    }

    #[tokio::test]
    async fn a_missing_script_is_a_failure() {
        let scripts = runner(ScriptsConfig {
            ip_pre_up: Some("/nonexistent/ip-pre-up".into()),
            ..ScriptsConfig::default()
        });
        SessionScripts::new(Some(scripts.clone()))
            .pre_up(&facts())
            .await;
        assert_eq!(scripts.stats.failed.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_scripts_table_is_checked() {
        use crate::config::{Config, ConfigError};
        let c = Config::parse(
            "[scripts]\nip_up = \"/etc/ppp/ip-up\"\ntimeout_secs = 5\n",
            "x",
        )
        .unwrap();
        assert_eq!(
            c.scripts.ip_up.as_deref(),
            Some(Path::new("/etc/ppp/ip-up"))
        );
        assert_eq!(c.scripts.ip_down, None, "off unless set");
        for (text, field, message) in [
            (
                "ip_down = \"ip-down\"",
                "scripts.ip_down",
                "not an absolute path",
            ),
            (
                "timeout_secs = 0",
                "scripts.timeout_secs",
                "outside 1..=3600",
            ),
            (
                "max_concurrent = 0",
                "scripts.max_concurrent",
                "outside 1..=1024",
            ),
            (
                "max_queued = 70000",
                "scripts.max_queued",
                "outside 0..=65535",
            ),
        ] {
            match Config::parse(&format!("[scripts]\n{text}\n"), "x") {
                Err(ConfigError::Invalid {
                    line,
                    field: f,
                    message: m,
                    ..
                }) => {
                    assert_eq!((line, f.as_str()), (2, field), "{text}");
                    assert!(m.contains(message), "{text}: {m}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_configured_script_no_runner() {
        assert!(Scripts::new(&ScriptsConfig::default(), "pptp0", daemon()).is_none());
    }
}
