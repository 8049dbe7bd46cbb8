//! Finding (or starting) containerd, and clearing test namespaces.

use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Result, TestkitError};
use crate::subprocess::{self, ExecOutput};

/// containerd's default socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";
/// Environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "DRIFTWATCH_CONTAINERD_SOCK";
/// Where a containerd started by the test kit logs.
pub const CONTAINERD_LOG: &str = "/tmp/driftwatch-testkit-containerd.log";
const CONTAINERD_LOCK: &str = "/tmp/driftwatch-testkit-containerd.lock";
/// How long [`ensure_containerd`] waits for a freshly started containerd.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Default deadline for one `ctr` invocation.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(60);

/// A containerd that answers on `socket`. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerd {
    socket: PathBuf,
    started_by_testkit: bool,
}

static READY: Mutex<Option<Containerd>> = Mutex::new(None);

/// Returns a containerd that answers, starting one in the background if needed.
///
/// The socket is `$DRIFTWATCH_CONTAINERD_SOCK` or [`DEFAULT_SOCKET`]. If `ctr version` fails,
/// `containerd` is started detached (own process group, log in [`CONTAINERD_LOG`]) and polled for
/// up to [`READY_TIMEOUT`]. Safe to call from many tests and many test binaries at once: a
/// process-wide mutex and a file lock make sure only one caller starts it. The daemon is left
/// running afterwards (other test binaries use it too).
pub fn ensure_containerd() -> Result<Containerd> {
    let mut ready = READY.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = ready.as_ref() {
        return Ok(c.clone());
    }
    let socket = std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let mut c = Containerd {
        socket,
        started_by_testkit: false,
    };
    if !c.answers() {
        let _lock = lock_file(Path::new(CONTAINERD_LOCK))?;
        // Someone else may have started it while we waited for the lock.
        if !c.answers() {
            if containerd_process_running() {
                // Someone else's daemon is starting (or listens elsewhere): wait, never start a
                // second one on the same state directory.
                c.wait_ready(READY_TIMEOUT).map_err(|e| match e {
                    TestkitError::ContainerdNotReady {
                        socket, timeout, ..
                    } => TestkitError::ContainerdNotReady {
                        socket,
                        timeout,
                        log: PathBuf::from("<not started by the testkit>"),
                        log_tail: "a containerd process is running but does not answer on this \
                                   socket"
                            .into(),
                    },
                    other => other,
                })?;
            } else {
                start_containerd(&c.socket)?;
                c.started_by_testkit = true;
                c.wait_ready(READY_TIMEOUT)?;
            }
        }
    }
    *ready = Some(c.clone());
    Ok(c)
}

/// Takes an exclusive `flock` on `path` (created if missing); released when the file drops.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| TestkitError::io(path, e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| TestkitError::io(path, e.into()))?;
    Ok(file)
}

fn containerd_process_running() -> bool {
    let Ok(dir) = fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == "containerd")
    })
}

fn start_containerd(socket: &Path) -> Result<()> {
    // Double fork through sh so the daemon is re-parented to init (no zombie here) and lives in
    // its own process group (a Ctrl-C on the test run does not take it down).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"containerd --address "$1" >>"$2" 2>&1 </dev/null &"#)
        .arg("sh")
        .arg(socket)
        .arg(CONTAINERD_LOG)
        .stdin(Stdio::null())
        .process_group(0);
    subprocess::run_checked(cmd, Duration::from_secs(10)).map(drop)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read log: {e}>"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Containerd {
    /// Uses the containerd at `socket` without checking or starting anything.
    pub fn at(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            started_by_testkit: false,
        }
    }

    /// The gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether this process (or another test process holding the lock) started the daemon.
    pub fn started_by_testkit(&self) -> bool {
        self.started_by_testkit
    }

    /// Whether `ctr version` succeeds against the socket right now.
    pub fn answers(&self) -> bool {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--connect-timeout", "2s", "version"]);
        subprocess::run(cmd, Duration::from_secs(5)).is_ok_and(|o| o.success())
    }

    /// Polls `ctr version` until it answers or `timeout` passes.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.answers() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(200));
        }
        Err(TestkitError::ContainerdNotReady {
            socket: self.socket.clone(),
            timeout,
            log: PathBuf::from(CONTAINERD_LOG),
            log_tail: log_tail(Path::new(CONTAINERD_LOG), 20),
        })
    }

    /// A `ctr --address SOCKET -n NAMESPACE` command to add a subcommand to.
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(namespace);
        cmd
    }

    /// Runs `ctr -n NAMESPACE ARGS…`, failing on a non-zero exit or after [`CTR_TIMEOUT`].
    pub fn ctr_checked(&self, namespace: &str, args: &[&str]) -> Result<ExecOutput> {
        let mut cmd = self.ctr(namespace);
        cmd.args(args);
        subprocess::run_checked(cmd, CTR_TIMEOUT)
    }

    /// First-column names printed by a `ctr … ls -q`-like listing (header lines skipped).
    fn list(&self, namespace: &str, args: &[&str], header: bool) -> Result<Vec<String>> {
        let out = self.ctr_checked(namespace, args)?;
        Ok(out
            .stdout
            .lines()
            .skip(usize::from(header))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect())
    }

    /// The ids of the containers in `namespace`.
    pub fn containers(&self, namespace: &str) -> Result<Vec<String>> {
        self.list(namespace, &["containers", "ls", "-q"], false)
    }

    /// The image names in `namespace`.
    pub fn images(&self, namespace: &str) -> Result<Vec<String>> {
        self.list(namespace, &["images", "ls", "-q"], false)
    }

    /// `(container id, pid, status)` of every task in `namespace`.
    pub fn tasks(&self, namespace: &str) -> Result<Vec<(String, u32, String)>> {
        let out = self.ctr_checked(namespace, &["tasks", "ls"])?;
        let mut tasks = Vec::new();
        for line in out.stdout.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if let [id, pid, status, ..] = cols[..] {
                let pid = pid.parse().map_err(|_| TestkitError::Parse {
                    what: "ctr tasks ls".into(),
                    detail: line.into(),
                })?;
                tasks.push((id.to_owned(), pid, status.to_owned()));
            }
        }
        Ok(tasks)
    }

    /// Removes every task, container, image and active snapshot in `namespace`.
    ///
    /// Call it at the start of a test binary to clear leftovers of crashed earlier runs. Give
    /// each test binary its own namespace: this kills everything in it.
    pub fn cleanup_namespace(&self, namespace: &str) -> Result<()> {
        for (id, _, _) in self.tasks(namespace)? {
            // Best effort: a task may be gone between listing and removal.
            let _ = self.ctr_checked(namespace, &["tasks", "rm", "-f", &id]);
        }
        for id in self.containers(namespace)? {
            let _ = self.ctr_checked(namespace, &["containers", "rm", &id]);
        }
        let images = self.images(namespace)?;
        if !images.is_empty() {
            let mut args = vec!["images", "rm", "--sync"];
            args.extend(images.iter().map(String::as_str));
            let _ = self.ctr_checked(namespace, &args);
        }
        // Active snapshots left without a container (a crash between create and rm).
        let out = self.ctr_checked(namespace, &["snapshots", "ls"])?;
        for line in out.stdout.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.last() == Some(&"Active") {
                let _ = self.ctr_checked(namespace, &["snapshots", "rm", cols[0]]);
            }
        }
        let left = self.containers(namespace)?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(TestkitError::CommandFailed {
                command: format!("cleanup of namespace {namespace}"),
                status: "containers left".into(),
                stderr: left.join(", "),
            })
        }
    }
}

/// Shorthand for [`Containerd::cleanup_namespace`].
pub fn cleanup_namespace(containerd: &Containerd, namespace: &str) -> Result<()> {
    containerd.cleanup_namespace(namespace)
}
