//! Real-containerd fixtures: start containerd when it is not running, build a tiny OCI image
//! (busybox-static) in a tempdir, import it, run containers, and clean up in `Drop`.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the fixtures"
)]

use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const SOCKET: &str = "/run/containerd/containerd.sock";
pub const IMAGE: &str = "docker.io/dwtest/busybox:1";

fn ctr_at(socket: &str, ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ctr")
        .args(["--address", socket, "--timeout", "20s", "-n", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ctr")
}

fn socket_answers(socket: &str) -> bool {
    Command::new("ctr")
        .args(["--address", socket, "--timeout", "2s", "version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_for_socket(socket: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if socket_answers(socket) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Make sure the system containerd answers on [`SOCKET`]; start it if no containerd runs.
pub fn ensure_containerd() {
    if socket_answers(SOCKET) {
        return;
    }
    let running = Command::new("pgrep")
        .args(["-x", "containerd"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !running {
        // Detached through a shell: containerd must outlive this test process.
        let status = Command::new("sh")
            .args([
                "-c",
                "containerd </dev/null >/tmp/driftwatch-test-containerd.log 2>&1 &",
            ])
            .status()
            .expect("start containerd");
        assert!(status.success(), "sh failed to start containerd");
    }
    assert!(
        wait_for_socket(SOCKET, Duration::from_secs(20)),
        "containerd does not answer on {SOCKET}"
    );
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn tar_layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().expect("finish layer tar")
}

fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).expect("path");
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

/// An OCI image layout tar with two layers (busybox-static; a marker file). Returns the tar
/// path and the manifest digest.
pub fn build_image(dir: &Path, reference: &str) -> (PathBuf, String) {
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static at /bin/busybox");
    let layer1 = tar_layer(|b| {
        b.append(
            &header("bin/", tar::EntryType::Directory, 0o755, 0),
            &[][..],
        )
        .expect("dir");
        b.append(
            &header(
                "bin/busybox",
                tar::EntryType::Regular,
                0o755,
                busybox.len() as u64,
            ),
            &busybox[..],
        )
        .expect("busybox");
        let mut sh = header("bin/sh", tar::EntryType::Symlink, 0o777, 0);
        sh.set_link_name("busybox").expect("link");
        sh.set_cksum();
        b.append(&sh, &[][..]).expect("sh");
        b.append(
            &header("tmp/", tar::EntryType::Directory, 0o1777, 0),
            &[][..],
        )
        .expect("tmp");
    });
    let marker = b"driftwatch test layer\n";
    let layer2 = tar_layer(|b| {
        b.append(
            &header("etc/", tar::EntryType::Directory, 0o755, 0),
            &[][..],
        )
        .expect("etc");
        b.append(
            &header(
                "etc/dwtest",
                tar::EntryType::Regular,
                0o644,
                marker.len() as u64,
            ),
            &marker[..],
        )
        .expect("marker");
    });
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "sleep", "600"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer1), sha256(&layer2)]},
    })
    .to_string()
    .into_bytes();
    let desc = |media: &str, data: &[u8]| serde_json::json!({"mediaType": media, "digest": sha256(data), "size": data.len()});
    let layer_media = "application/vnd.oci.image.layer.v1.tar";
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [desc(layer_media, &layer1), desc(layer_media, &layer2)],
    })
    .to_string()
    .into_bytes();
    let manifest_digest = sha256(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "org.opencontainers.image.ref.name": reference,
                "io.containerd.image.name": reference,
            },
        }],
    })
    .to_string()
    .into_bytes();

    let path = dir.join("image.tar");
    let file = std::fs::File::create(&path).expect("image tar");
    let mut b = tar::Builder::new(file);
    let mut add = |name: &str, data: &[u8]| {
        let h = header(name, tar::EntryType::Regular, 0o644, data.len() as u64);
        b.append(&h, data).expect("append");
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in [&layer1, &layer2, &config, &manifest] {
        let name = format!("blobs/sha256/{}", &sha256(blob)["sha256:".len()..]);
        add(&name, blob);
    }
    b.into_inner().expect("finish image tar");
    (path, manifest_digest)
}

/// A containerd namespace holding the test image and containers; everything is removed on
/// drop, also when the test failed.
pub struct TestNamespace {
    pub socket: String,
    pub ns: String,
    pub manifest_digest: String,
    containers: Vec<String>,
    _dir: tempfile::TempDir,
}

impl TestNamespace {
    pub fn new(ns: &str) -> Self {
        Self::at(SOCKET, ns)
    }

    pub fn at(socket: &str, ns: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (tar, manifest_digest) = build_image(dir.path(), IMAGE);
        let mut this = Self {
            socket: socket.to_string(),
            ns: ns.to_string(),
            manifest_digest,
            containers: Vec::new(),
            _dir: dir,
        };
        this.cleanup_leftovers();
        let out = this.ctr(&["images", "import", tar.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        this
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        ctr_at(&self.socket, &self.ns, args)
    }

    /// Containers of an earlier, aborted run.
    fn cleanup_leftovers(&mut self) {
        let out = self.ctr(&["containers", "ls", "-q"]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            self.remove(id.trim());
        }
    }

    /// `ctr run -d` with the given labels; returns the init pid.
    pub fn run(&mut self, id: &str, labels: &[(&str, &str)]) -> u32 {
        let mut args: Vec<String> = vec!["run".into(), "-d".into()];
        for (k, v) in labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        args.extend([
            IMAGE.into(),
            id.into(),
            "/bin/busybox".into(),
            "sleep".into(),
            "600".into(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.containers.push(id.to_string());
        let out = self.ctr(&args);
        assert!(
            out.status.success(),
            "ctr run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.pid(id).expect("task pid")
    }

    pub fn pid(&self, id: &str) -> Option<u32> {
        let out = self.ctr(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(id))
                .then(|| f.next()?.parse().ok())
                .flatten()
        })
    }

    /// Kill and delete a container (task, container, snapshot).
    pub fn remove(&mut self, id: &str) {
        let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.ctr(&["tasks", "delete", id]);
            if out.status.success()
                || String::from_utf8_lossy(&out.stderr).contains("not found")
                || Instant::now() > deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.ctr(&["containers", "delete", id]);
        self.containers.retain(|c| c != id);
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        for id in self.containers.clone() {
            self.remove(&id);
        }
        let _ = self.ctr(&["images", "rm", IMAGE]);
        // Content and snapshots go with containerd's asynchronous GC; then the namespace can.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ctr_at(&self.socket, "default", &["namespaces", "rm", &self.ns])
            .status
            .success()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Inode of the cgroup2 directory of a process (its cgroup v2 id).
pub fn cgroup_dir_of(pid: u32) -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.starts_with("cgroup2 ")).then(|| pre.split(' ').nth(4).map(PathBuf::from))?
        })
        .expect("a cgroup2 mount");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("0:: line");
    mount.join(path.trim_start_matches('/'))
}

pub fn ino(path: impl AsRef<Path>) -> u64 {
    std::fs::metadata(path).expect("stat").ino()
}

/// The cgroup id the kernel reports for a cgroup directory (`name_to_handle_at`, as systemd
/// and bpftool compute it), through a small C helper; `None` when no C compiler is there.
pub fn kernel_cgroup_id(dir: &Path) -> Option<u64> {
    let tmp = tempfile::tempdir().ok()?;
    let src = tmp.path().join("cgid.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    struct { struct file_handle fh; unsigned char buf[128]; } h;
    int mount_id;
    unsigned long long id = 0;
    if (argc < 2) return 2;
    h.fh.handle_bytes = 128;
    if (name_to_handle_at(AT_FDCWD, argv[1], &h.fh, &mount_id, 0) != 0) { perror("name_to_handle_at"); return 1; }
    memcpy(&id, h.fh.f_handle, sizeof id);
    printf("%llu\n", id);
    return 0;
}
"#,
    )
    .ok()?;
    let bin = tmp.path().join("cgid");
    let ok = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let out = Command::new(&bin).arg(dir).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A private containerd (own root, state and socket, no CRI plugin), killed on drop.
pub struct PrivateContainerd {
    pub dir: tempfile::TempDir,
    pub socket: String,
    child: Option<std::process::Child>,
}

impl PrivateContainerd {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dwtest-containerd-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let socket = dir.path().join("containerd.sock").display().to_string();
        let config = format!(
            r#"version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#,
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("config");
        let mut this = Self {
            dir,
            socket,
            child: None,
        };
        this.restart();
        this
    }

    /// (Re)start the daemon and wait until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(self.dir.path().join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        self.child = Some(child);
        assert!(
            wait_for_socket(&self.socket, Duration::from_secs(20)),
            "private containerd does not answer"
        );
    }

    /// Kill the daemon (as a crash would); running shims and containers survive.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        self.kill();
        // Unmount anything the snapshotter left mounted under our root before the tempdir goes.
        let root = self.dir.path().display().to_string();
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            for m in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
                if m.starts_with(&root) {
                    let _ = Command::new("umount").arg("-l").arg(m).status();
                }
            }
        }
    }
}
