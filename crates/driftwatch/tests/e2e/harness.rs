//! Test harness: one shared containerd namespace and image, the real agent binary as a child
//! process, and helpers to wait for its alerts.

use driftwatch_testkit::{
    build_deb, cleanup_namespace, debian_image, ensure_containerd, Container, Containerd,
    ImageBuilder, MountSpec, RunOpts, MARKER_HELPER_C,
};

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The containerd namespace of the e2e tests: `DWTEST_NS` or `dwtest-e2e`. Every run cleans its
/// namespace first, so concurrent runs (two worktrees on one machine) need distinct names.
pub fn ns() -> &'static str {
    static NS: OnceLock<String> = OnceLock::new();
    NS.get_or_init(|| std::env::var("DWTEST_NS").unwrap_or_else(|_| "dwtest-e2e".to_string()))
}
pub const IMAGE: &str = "driftwatch-test/e2e:1";
pub const DRIFT_RULE: &str = "Drift Detected (Container Image Modified Binary)";

/// A static program that prints "hello" — overwritten in place by the `modified` test.
const HELLO_C: &str = r#"
#include <unistd.h>
int main(void) { write(1, "hello\n", 6); return 0; }
"#;

/// `fexec FILE ARGS…`: open FILE and run it with `execveat(fd, "", …, AT_EMPTY_PATH)`.
const FEXEC_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv, char **envp) {
    if (argc < 2) return 2;
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 3;
    syscall(SYS_execveat, fd, "", argv + 1, envp, AT_EMPTY_PATH);
    return 4;
}
"#;

/// `memexec FILE ARGV0 ARGS…`: copy FILE into a memfd and execute the memfd (fileless execution).
const MEMEXEC_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
int main(int argc, char **argv, char **envp) {
    if (argc < 2) return 2;
    int src = open(argv[1], O_RDONLY);
    int mfd = memfd_create("payload", MFD_CLOEXEC);
    if (src < 0 || mfd < 0) return 3;
    char buf[65536];
    ssize_t n;
    while ((n = read(src, buf, sizeof buf)) > 0)
        if (write(mfd, buf, n) != n) return 3;
    fexecve(mfd, argv + 2, envp);
    return 4;
}
"#;

/// A dynamically linked program (it maps libc through the loader).
const DYNHELLO_C: &str = r#"
#include <stdio.h>
int main(void) { puts("dynhello"); return 0; }
"#;

/// `dlopener LIB`: dlopen a library (its constructor runs).
const DLOPENER_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 3; }
    return 0;
}
"#;

/// A library whose constructor creates the file named by `$MARKER` (when set): its code ran.
const LIBMARKER_C: &str = r#"
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((constructor)) static void ran(void) {
    const char *m = getenv("MARKER");
    if (m) { int fd = open(m, O_WRONLY | O_CREAT, 0644); if (fd >= 0) close(fd); }
}
"#;

/// An image script: interpreters running it are not drift.
const OK_SCRIPT: &str = "#!/bin/sh\necho ok\n";

/// A dynamic program whose ELF interpreter (`PT_INTERP`) is `/tmp/ld.so`, a path no image
/// provides: whatever is dropped there runs first. Creates $MARKER, prints "odd".
const ODDINTERP_C: &str = r#"
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    const char *m = getenv("MARKER");
    if (m) { int fd = open(m, O_WRONLY | O_CREAT, 0644); if (fd >= 0) close(fd); }
    write(1, "odd\n", 4);
    return 0;
}
"#;

/// Agents see every exec on the node and an enforcing one kills drift anywhere it knows: the
/// agent tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub struct Env {
    pub containerd: Containerd,
    pub image: String,
    _serial: MutexGuard<'static, ()>,
}

/// Serialise, make sure containerd runs, clean leftovers of earlier runs once, import the image.
fn oddinterp() -> Vec<u8> {
    let bin = driftwatch_testkit::compile_helper(
        ODDINTERP_C,
        &["-O2", "-w", "-Wl,--dynamic-linker=/tmp/ld.so"],
    )
    .expect("compile oddinterp");
    std::fs::read(bin).expect("read oddinterp")
}

pub fn env() -> Env {
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    static SETUP: OnceLock<(Containerd, String)> = OnceLock::new();
    let (containerd, image) = SETUP.get_or_init(|| {
        let c = ensure_containerd().expect("containerd");
        cleanup_namespace(&c, ns()).expect("cleanup");
        let img = ImageBuilder::new(IMAGE)
            .busybox()
            .static_helper("/bin/marker", MARKER_HELPER_C)
            .layer()
            .static_helper("/usr/bin/hello", HELLO_C)
            .static_helper("/usr/bin/fexec", FEXEC_C)
            .static_helper("/usr/bin/memexec", MEMEXEC_C)
            .dynamic_runtime()
            .dynamic_helper("/usr/bin/dynhello", DYNHELLO_C)
            .dynamic_helper("/usr/bin/dlopener", DLOPENER_C)
            .shared_library("/usr/lib/libmarker.so", LIBMARKER_C)
            .file("/usr/local/bin/ok.sh", OK_SCRIPT.as_bytes().to_vec(), 0o755)
            .file("/usr/bin/oddinterp", oddinterp(), 0o755)
            .import(&c, ns())
            .expect("import test image");
        (c, img.reference)
    });
    Env {
        containerd: containerd.clone(),
        image: image.clone(),
        _serial: serial,
    }
}

impl Env {
    pub fn run(&self, prefix: &str, opts: RunOpts) -> Container {
        let id = driftwatch_testkit::unique_id(prefix);
        Container::run(&self.containerd, ns(), &self.image, &id, opts).expect("run container")
    }
}

/// Run a shell command in the container; returns (exit code, stdout).
pub fn sh(c: &Container, script: &str) -> (Option<i32>, String) {
    let out = c.exec(&["sh", "-c", script]).expect("exec");
    (out.code(), out.stdout.clone())
}

pub struct Agent {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_driftwatch")
}

/// `driftwatch COMMAND ARGS` (warnings only on stderr): (exit code, stdout, stderr).
pub fn cli(command: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(agent_bin())
        .arg(command)
        .args(args)
        .env("DRIFTWATCH_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run driftwatch {command}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Agent {
    /// Start `driftwatch agent --json --output-file … --listen …` and wait for /readyz. The
    /// network baselines go to a directory of the agent's own unless `extra` names one.
    pub fn start(extra: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let stdout = std::fs::File::create(dir.path().join("stdout")).expect("stdout file");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut cmd = Command::new(agent_bin());
        cmd.arg("agent")
            .arg("--json")
            .arg("--output-file")
            .arg(dir.path().join("alerts.jsonl"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        if !extra.contains(&"--baseline-dir") {
            cmd.arg("--baseline-dir").arg(dir.path().join("baselines"));
        }
        let child = cmd
            .args(extra)
            .env("DRIFTWATCH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn agent");
        let mut a = Agent {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = a.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("agent exited early ({status}): {}", a.stderr());
            }
            if http_get(port, "/readyz").map(|(s, _)| s) == Some(200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "agent not ready in 60 s: {}",
                a.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        a
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    pub fn alerts_file(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }

    /// Every alert written to the output file so far.
    pub fn alerts(&self) -> Vec<Value> {
        read_jsonl(&self.alerts_file())
    }

    /// Wait until an alert matching `pred` is written (or panic after `secs`).
    pub fn wait_alert(&self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(a) = self.alerts().into_iter().find(|a| pred(a)) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "no alert for {what} within {secs} s; alerts: {:#?}\nstderr: {}",
                self.alerts(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Drop a fresh copy of the marker helper in the container's /tmp, run it, and wait for its
    /// alert: every event of that container before it has then been processed.
    pub fn sentinel(&self, c: &Container) -> Value {
        let name = format!("/tmp/sentinel-{}", driftwatch_testkit::unique_id("s"));
        let (code, _) = sh(c, &format!("cp /bin/marker {name} && {name} {name}.ran"));
        assert_eq!(code, Some(0), "sentinel ran");
        self.wait_alert(30, &name, |a| {
            a["output_fields"]["proc.exepath"] == name.as_str()
        })
    }

    pub fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    /// Value of one metric series, e.g. `driftwatch_events_total{kind="exec"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics(), series)
    }

    /// Poll a metric until `pred` holds (or panic after `secs`); returns its value.
    pub fn wait_metric(&self, series: &str, secs: u64, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.metric(series);
            if let Some(v) = v.filter(|v| pred(*v)) {
                return v;
            }
            assert!(Instant::now() < deadline, "{series} = {v:?} after {secs} s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `sig` to the agent process.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let child = self.child.as_ref().expect("running");
        let pid = rustix::process::Pid::from_child(child);
        rustix::process::kill_process(pid, sig).expect("signal the agent");
    }

    /// SIGTERM, then wait for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// A minimal HTTP/1.0 GET: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Alerts of the drift rule for one container.
pub fn drift_alerts_for(alerts: &[Value], container_id: &str) -> Vec<Value> {
    alerts
        .iter()
        .filter(|a| a["rule"] == DRIFT_RULE && a["output_fields"]["container.id"] == container_id)
        .cloned()
        .collect()
}

/// A container of the Debian test image (debootstrap, cached) in which a small test-built .deb
/// `package` (one script, `/usr/bin/<package>`) was installed with `dpkg -i` and
/// `/etc/bash.bashrc` edited: package and config drift. `prefix` names the container.
pub fn debian_after_dpkg_install(e: &Env, prefix: &str, package: &str) -> Container {
    let img = debian_image(&e.containerd, ns()).expect("debian image (debootstrap, cached)");
    let debs = tempfile::tempdir().expect("tempdir");
    let script = format!("#!/bin/sh\necho {package}\n");
    let deb = build_deb(
        debs.path(),
        package,
        "1.0",
        &[(&format!("/usr/bin/{package}"), script.as_bytes(), 0o755)],
    )
    .expect("build .deb");
    let opts = RunOpts {
        mounts: vec![MountSpec::Bind {
            src: debs.path().to_path_buf(),
            dst: "/debs".into(),
            read_only: true,
        }],
        ..RunOpts::default()
    };
    let id = driftwatch_testkit::unique_id(prefix);
    let c = Container::run(&e.containerd, ns(), &img.reference, &id, opts).expect("run debian");
    let name = deb.file_name().and_then(|n| n.to_str()).expect("deb name");
    let (rc, out) = sh(
        &c,
        &format!("dpkg -i /debs/{name} && echo '# drift' >> /etc/bash.bashrc"),
    );
    assert_eq!(rc, Some(0), "{out}");
    c
}

/// The SHA-256 (hex) of `path` in container `c`, by its own `sha256sum`.
pub fn sha256_in(c: &Container, path: &str) -> String {
    let (_, sum) = sh(c, &format!("sha256sum {path}"));
    sum.split_whitespace()
        .next()
        .expect("sha256sum")
        .to_string()
}

/// The responder's incident of `c` (from `GET /incidents`) once it has `steps` steps.
pub fn wait_incident(agent: &Agent, c: &Container, steps: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, body)) = http_get(agent.port, "/incidents") {
            let list: Vec<Value> = serde_json::from_str(&body).expect("incidents JSON");
            if let Some(i) = list.iter().find(|i| i["container"]["id"] == c.id()) {
                if i["steps"].as_array().map_or(0, Vec::len) >= steps {
                    return i.clone();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no incident with {steps} steps for {}: {}",
            c.id(),
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An incident's steps as (action, result).
pub fn step_results(i: &Value) -> Vec<(String, String)> {
    i["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["action"].as_str().unwrap_or("").to_string(),
                s["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}
