//! The `capture` action: an evidence bundle of a container under `response.evidence_dir`.
//!
//! A bundle is a directory holding:
//!
//! * `alert.json` — the alert that started the response;
//! * `container.json` — the container's identity as the agent knows it;
//! * `spec.json` — its OCI runtime spec (from containerd), when it has one;
//! * `diff.json` — `driftwatch diff --json` of its filesystem;
//! * `processes.json` — its process tree: pid, ppid, uid, cmdline, executable path and SHA-256,
//!   cwd, start time;
//! * `sockets.json` — its open TCP and UDP sockets (its network namespace's tables, with the
//!   pid of each socket's owner);
//! * `files/<container path>` — a copy of each drifted file (the alert's `drift.path` and
//!   `proc.exepath`, and the diff's added and modified binaries), each at most
//!   `evidence_max_file_bytes`, opened beneath the upper layer without following any symlink;
//! * `manifest.json` — every other file of the bundle with its size and SHA-256 (and what was
//!   left out for the size bounds); `manifest.sig` — an ed25519 signature of `manifest.json`'s
//!   bytes, with `manifest.pub`, when a signing key is configured.
//!
//! It is written into a hidden temporary directory beside its final name and renamed into place
//! when complete, so a bundle that exists is whole. At most `evidence_max_bundles` bundles are
//! kept (the oldest removed) and each is at most `evidence_max_bytes`.

pub use driftwatch_diff::ContainerMeta as DiffMeta;
use driftwatch_event::{Alert, ContainerInfo};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot write the evidence bundle {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the evidence signing key {path} is not usable: {message}")]
    Key { path: PathBuf, message: String },
}

/// How big evidence may get.
#[derive(Debug, Clone)]
pub struct CaptureLimits {
    pub max_bundles: usize,
    pub max_bytes: u64,
    pub max_file_bytes: u64,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        CaptureLimits {
            max_bundles: 50,
            max_bytes: 512 << 20,
            max_file_bytes: 64 << 20,
        }
    }
}

/// An ed25519 signing key: a file holding the 32-byte secret seed as 64 hex digits.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// Reads the key file (64 hex digits, surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<SigningKey, CaptureError> {
        let bad = |message: String| CaptureError::Key {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let hex = text.trim();
        let bytes = hex::decode(hex).map_err(|e| bad(format!("not hex: {e}")))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("an ed25519 secret key is 32 bytes (64 hex digits)".into()))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer;
        self.0.sign(msg).to_bytes().to_vec()
    }
}

/// What a bundle is made from (the agent gathers the parts that need containerd).
#[derive(Debug)]
pub struct CaptureInput<'a> {
    pub alert: &'a Alert,
    pub incident: &'a str,
    pub container: &'a ContainerInfo,
    /// The OCI runtime spec JSON.
    pub spec: Option<&'a [u8]>,
    /// `diff --json` of the container, already rendered (or the error that stopped it).
    pub diff_json: Result<Vec<u8>, String>,
    /// Container paths of drifted files to copy (besides the alert's).
    pub drifted: Vec<Vec<u8>>,
    /// `/proc` (tests may point elsewhere).
    pub proc_root: &'a Path,
    /// The container's cgroup v2 directory (its processes).
    pub cgroup_dir: Option<PathBuf>,
}

/// One file of the manifest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ManifestEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Serialize)]
pub struct Manifest {
    pub incident: String,
    pub container: String,
    pub created: String,
    pub files: Vec<ManifestEntry>,
    /// What was left out, and why.
    pub omitted: Vec<String>,
}

/// A bundle written.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub path: PathBuf,
    pub files: usize,
    pub bytes: u64,
}

/// Writes one evidence bundle under `dir`.
pub fn capture(
    dir: &Path,
    input: &CaptureInput<'_>,
    limits: &CaptureLimits,
    key: Option<&SigningKey>,
    now_ns: u64,
) -> Result<Bundle, CaptureError> {
    let wr = |path: &Path, source| CaptureError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| wr(dir, e))?;
    let short: String = input.container.id.chars().take(12).collect();
    let name = format!("{}-{}-{}", input.incident, safe_name(&short), now_ns);
    let tmp = dir.join(format!(".tmp-{name}"));
    let fin = dir.join(&name);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| wr(&tmp, e))?;
    let mut b = Writer {
        root: tmp.clone(),
        files: Vec::new(),
        omitted: Vec::new(),
        bytes: 0,
        limits: limits.clone(),
    };
    let result = (|| -> Result<(), CaptureError> {
        b.json("alert.json", input.alert)?;
        b.json("container.json", input.container)?;
        match input.spec {
            Some(s) => b.bytes("spec.json", s)?,
            None => b
                .omitted
                .push("spec.json: containerd gave no runtime spec".into()),
        }
        match &input.diff_json {
            Ok(d) => b.bytes("diff.json", d)?,
            Err(e) => b.omitted.push(format!("diff.json: {e}")),
        }
        let procs = processes(input.proc_root, input.cgroup_dir.as_deref());
        b.json("processes.json", &procs)?;
        let socks = sockets(input.proc_root, &procs);
        b.json("sockets.json", &socks)?;
        b.copy_drifted(input)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let manifest = Manifest {
        incident: input.incident.to_string(),
        container: input.container.id.clone(),
        created: driftwatch_event::format_rfc3339_nanos(now_ns),
        files: b.files.clone(),
        omitted: b.omitted.clone(),
    };
    let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mpath = tmp.join("manifest.json");
    std::fs::write(&mpath, &text).map_err(|e| wr(&mpath, e))?;
    if let Some(k) = key {
        let spath = tmp.join("manifest.sig");
        std::fs::write(&spath, hex::encode(k.sign(&text))).map_err(|e| wr(&spath, e))?;
        let ppath = tmp.join("manifest.pub");
        std::fs::write(&ppath, k.public_hex()).map_err(|e| wr(&ppath, e))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| wr(&fin, e))?;
    prune(dir, limits.max_bundles);
    Ok(Bundle {
        path: fin,
        files: b.files.len(),
        bytes: b.bytes,
    })
}

/// A name safe as one path component.
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Removes the oldest bundles past `max` (and stale temporary directories).
fn prune(dir: &Path, max: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut bundles: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let name = e.file_name();
        if name.as_bytes().starts_with(b".tmp-") {
            continue;
        }
        let t = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        bundles.push((t, e.path()));
    }
    if bundles.len() <= max {
        return;
    }
    bundles.sort();
    let excess = bundles.len() - max;
    for (_, p) in bundles.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_dir_all(&p) {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove an old evidence bundle");
        }
    }
}

struct Writer {
    root: PathBuf,
    files: Vec<ManifestEntry>,
    omitted: Vec<String>,
    bytes: u64,
    limits: CaptureLimits,
}

impl Writer {
    fn err(&self, rel: &str, source: std::io::Error) -> CaptureError {
        CaptureError::Write {
            path: self.root.join(rel),
            source,
        }
    }

    fn json<T: Serialize + ?Sized>(&mut self, rel: &str, v: &T) -> Result<(), CaptureError> {
        let bytes = serde_json::to_vec_pretty(v).unwrap_or_default();
        self.bytes(rel, &bytes)
    }

    fn bytes(&mut self, rel: &str, data: &[u8]) -> Result<(), CaptureError> {
        let len = data.len() as u64;
        if self.bytes + len > self.limits.max_bytes {
            self.omitted.push(format!(
                "{rel}: {len} bytes would pass the bundle's size bound"
            ));
            return Ok(());
        }
        std::fs::write(self.root.join(rel), data).map_err(|e| self.err(rel, e))?;
        self.bytes += len;
        self.files.push(ManifestEntry {
            path: rel.to_string(),
            size: len,
            sha256: hex::encode(Sha256::digest(data)),
        });
        Ok(())
    }

    /// Copies each drifted file from the upper layer (never following a symlink).
    fn copy_drifted(&mut self, input: &CaptureInput<'_>) -> Result<(), CaptureError> {
        let mut paths: Vec<Vec<u8>> = Vec::new();
        for k in ["drift.path", "proc.exepath"] {
            if let Some(p) = input.alert.str_field(k) {
                paths.push(p.as_bytes().to_vec());
            }
        }
        paths.extend(input.drifted.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        paths.retain(|p| p.starts_with(b"/") && seen.insert(p.clone()));
        let Some(upper) = input
            .container
            .rootfs
            .as_ref()
            .and_then(|l| l.upperdir.clone())
        else {
            if !paths.is_empty() {
                self.omitted
                    .push("files: the container has no known upper layer".into());
            }
            return Ok(());
        };
        for p in paths {
            let shown = driftwatch_event::text::lossy(&p);
            let file = match driftwatch_image::open_in_layer(&upper, &p) {
                Ok(f) => f,
                // Image files (not in the upper layer) are not drift; others are reported.
                Err(e) => {
                    if !is_not_found(&e) {
                        self.omitted.push(format!("files{shown}: {e}"));
                    }
                    continue;
                }
            };
            self.copy_file(&p, &shown, file)?;
        }
        Ok(())
    }

    fn copy_file(
        &mut self,
        p: &[u8],
        shown: &str,
        mut file: std::fs::File,
    ) -> Result<(), CaptureError> {
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let take = size.min(self.limits.max_file_bytes);
        if self.bytes + take > self.limits.max_bytes {
            self.omitted.push(format!(
                "files{shown}: {size} bytes would pass the bundle's size bound"
            ));
            return Ok(());
        }
        // The container path under files/, component by component (no `..`: names come from
        // the alert and the diff, which give absolute, normalised paths; anything odd is
        // replaced).
        let mut rel = PathBuf::from("files");
        for c in p.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            if c == b"." || c == b".." {
                rel.push("_");
            } else {
                rel.push(OsStr::from_bytes(c));
            }
        }
        let dest = self.root.join(&rel);
        let relname = rel.display().to_string();
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.err(&relname, e))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .map_err(|e| self.err(&relname, e))?;
        let mut hasher = Sha256::new();
        let mut left = take;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = file
                .read(&mut buf[..want])
                .map_err(|e| self.err(&relname, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| self.err(&relname, e))?;
            left -= n as u64;
        }
        let copied = take - left;
        self.bytes += copied;
        if size > copied {
            self.omitted.push(format!(
                "files{shown}: only the first {copied} of {size} bytes (evidence_max_file_bytes)"
            ));
        }
        self.files.push(ManifestEntry {
            path: relname,
            size: copied,
            sha256: hex::encode(hasher.finalize()),
        });
        Ok(())
    }
}

fn is_not_found(e: &driftwatch_image::ImageError) -> bool {
    let mut s: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = s {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::NotFound;
        }
        s = err.source();
    }
    false
}

/// `driftwatch diff --json` of a container (its layers, runtime spec and image config), and
/// the container paths of the drifted binaries it found (added or modified), at most
/// `max_files` of them.
pub fn render_diff(
    meta: driftwatch_diff::ContainerMeta,
    layers: driftwatch_event::OverlayLayers,
    runtime_spec: Option<Vec<u8>>,
    image_config: Option<Vec<u8>>,
    max_files: usize,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    use driftwatch_diff::{Category, ChangeKind, DiffError, FileEntry, ReportSink};
    struct Collect {
        json: driftwatch_diff::render::JsonReport<Vec<u8>>,
        binaries: Vec<Vec<u8>>,
        max: usize,
    }
    impl ReportSink for Collect {
        fn begin(&mut self, m: &driftwatch_diff::ContainerMeta) -> Result<(), DiffError> {
            self.json.begin(m)
        }
        fn file(&mut self, e: &FileEntry) -> Result<(), DiffError> {
            if e.drift
                && e.category == Category::Binary
                && matches!(e.change, ChangeKind::Added | ChangeKind::Modified)
                && self.binaries.len() < self.max
            {
                let path = match &e.path_hex {
                    Some(h) => hex::decode(h).unwrap_or_else(|_| e.path.clone().into_bytes()),
                    None => e.path.clone().into_bytes(),
                };
                self.binaries.push(path);
            }
            self.json.file(e)
        }
        fn packages(&mut self, r: &driftwatch_diff::PackageReport) -> Result<(), DiffError> {
            self.json.packages(r)
        }
        fn runtime(
            &mut self,
            r: Option<&driftwatch_diff::RuntimeSummary>,
        ) -> Result<(), DiffError> {
            self.json.runtime(r)
        }
        fn config(&mut self, f: &[driftwatch_diff::ConfigFinding]) -> Result<(), DiffError> {
            self.json.config(f)
        }
        fn finish(&mut self, s: &driftwatch_diff::Summary) -> Result<(), DiffError> {
            self.json.finish(s)
        }
    }
    let input = driftwatch_diff::DiffInput {
        meta,
        layers,
        runtime_spec,
        image_config,
        baseline: None,
    };
    let mut sink = Collect {
        json: driftwatch_diff::render::JsonReport::new(Vec::new()),
        binaries: Vec::new(),
        max: max_files,
    };
    driftwatch_diff::diff(&input, &driftwatch_diff::DiffOptions::default(), &mut sink)
        .map_err(|e| e.to_string())?;
    Ok((sink.json.into_inner(), sink.binaries))
}

/// One process of the container.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcessRecord {
    pub pid: u32,
    pub ppid: u32,
    pub uid: Option<u32>,
    pub cmdline: Vec<String>,
    pub exe: Option<String>,
    pub exe_sha256: Option<String>,
    pub cwd: Option<String>,
    /// Start after boot, ns.
    pub start_boot_ns: Option<u64>,
    /// Inodes of its sockets.
    #[serde(skip)]
    pub socket_inodes: Vec<u64>,
}

/// The processes of the cgroup (and of its sub-cgroups), sorted by pid. A process that exits
/// while it is read is left out or recorded with what was read.
pub fn processes(proc_root: &Path, cgroup_dir: Option<&Path>) -> Vec<ProcessRecord> {
    let mut pids = Vec::new();
    if let Some(dir) = cgroup_dir {
        collect_pids(dir, &mut pids, 0);
    }
    pids.sort_unstable();
    pids.dedup();
    pids.into_iter()
        .filter_map(|pid| process(proc_root, pid))
        .collect()
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>, depth: usize) {
    if depth > 16 || out.len() > 100_000 {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out, depth + 1);
            }
        }
    }
}

fn process(proc_root: &Path, pid: u32) -> Option<ProcessRecord> {
    let base = proc_root.join(pid.to_string());
    let stat = driftwatch_runtime::procfs::read_stat(proc_root, pid)?;
    let uid = std::fs::read_to_string(base.join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        });
    let cmdline = std::fs::read(base.join("cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(driftwatch_event::text::lossy)
                .collect()
        })
        .unwrap_or_default();
    let link = |name: &str| {
        std::fs::read_link(base.join(name))
            .ok()
            .map(|p| driftwatch_event::text::lossy(p.as_os_str().as_bytes()))
    };
    // /proc/<pid>/exe opens the executable itself (a magic link to the file object, not a path
    // walk in the container), so no container symlink is followed.
    let exe_sha256 = std::fs::File::open(base.join("exe"))
        .ok()
        .and_then(|f| driftwatch_image::sha256_fd(f).ok())
        .map(hex::encode);
    let mut socket_inodes = Vec::new();
    if let Ok(rd) = std::fs::read_dir(base.join("fd")) {
        for e in rd.flatten().take(65_536) {
            if let Ok(t) = std::fs::read_link(e.path()) {
                let t = t.as_os_str().as_bytes();
                if let Some(n) = t
                    .strip_prefix(b"socket:[")
                    .and_then(|r| r.strip_suffix(b"]"))
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .and_then(|n| n.parse().ok())
                {
                    socket_inodes.push(n);
                }
            }
        }
    }
    Some(ProcessRecord {
        pid,
        ppid: stat.ppid,
        uid,
        cmdline,
        exe: link("exe"),
        exe_sha256,
        cwd: link("cwd"),
        start_boot_ns: stat.start_boot_ns,
        socket_inodes,
    })
}

/// One socket of the container's network namespace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SocketRecord {
    pub proto: String,
    pub local: String,
    pub remote: String,
    pub state: String,
    pub inode: u64,
    /// The container processes holding it.
    pub pids: Vec<u32>,
}

/// The TCP and UDP sockets of the network namespace of the container's first process.
pub fn sockets(proc_root: &Path, procs: &[ProcessRecord]) -> Vec<SocketRecord> {
    let Some(first) = procs.first() else {
        return Vec::new();
    };
    let base = proc_root.join(first.pid.to_string()).join("net");
    let mut out = Vec::new();
    for (proto, file, v6) in [
        ("tcp", "tcp", false),
        ("tcp6", "tcp6", true),
        ("udp", "udp", false),
        ("udp6", "udp6", true),
    ] {
        let Ok(text) = std::fs::read_to_string(base.join(file)) else {
            continue;
        };
        for line in text.lines().skip(1).take(100_000) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(l), Some(r), Some(st), Some(ino)) = (f.get(1), f.get(2), f.get(3), f.get(9))
            else {
                continue;
            };
            let inode: u64 = ino.parse().unwrap_or(0);
            let pids = procs
                .iter()
                .filter(|p| p.socket_inodes.contains(&inode))
                .map(|p| p.pid)
                .collect();
            out.push(SocketRecord {
                proto: proto.into(),
                local: endpoint(l, v6).unwrap_or_else(|| l.to_string()),
                remote: endpoint(r, v6).unwrap_or_else(|| r.to_string()),
                state: tcp_state(proto, st),
                inode,
                pids,
            });
        }
    }
    out
}

/// `0100007F:1F90` (the kernel's hex, each 32-bit word in host order) as `127.0.0.1:8080`.
fn endpoint(s: &str, v6: bool) -> Option<String> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    if v6 {
        let mut b = [0u8; 16];
        for i in 0..4 {
            b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
        }
        Some(format!("[{}]:{port}", std::net::Ipv6Addr::from(b)))
    } else {
        Some(format!("{}:{port}", std::net::Ipv4Addr::from(word(0)?)))
    }
}

fn tcp_state(proto: &str, hex: &str) -> String {
    if proto.starts_with("udp") {
        return if hex == "07" {
            "unconnected"
        } else {
            "connected"
        }
        .into();
    }
    match hex {
        "01" => "ESTABLISHED",
        "02" => "SYN_SENT",
        "03" => "SYN_RECV",
        "04" => "FIN_WAIT1",
        "05" => "FIN_WAIT2",
        "06" => "TIME_WAIT",
        "07" => "CLOSE",
        "08" => "CLOSE_WAIT",
        "09" => "LAST_ACK",
        "0A" => "LISTEN",
        "0B" => "CLOSING",
        other => other,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_as_the_kernel_writes_them() {
        assert_eq!(endpoint("0100007F:1F90", false).unwrap(), "127.0.0.1:8080");
        assert_eq!(
            endpoint("00000000000000000000000001000000:0050", true).unwrap(),
            "[::1]:80"
        );
        assert_eq!(tcp_state("tcp", "0A"), "LISTEN");
    }

    #[test]
    fn a_bundle_holds_hashed_files_and_never_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(upper.join("tmp")).unwrap();
        std::fs::write(upper.join("tmp/evil"), b"#!/bin/sh\necho pwned\n").unwrap();
        std::fs::write(dir.path().join("secret"), b"host secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), upper.join("tmp/link")).unwrap();
        std::fs::write(upper.join("big"), vec![7u8; 5000]).unwrap();
        let container = ContainerInfo {
            id: "0123456789abcdef".into(),
            name: "web".into(),
            rootfs: Some(driftwatch_event::OverlayLayers {
                upperdir: Some(upper.clone()),
                lowerdirs: vec![],
                workdir: None,
            }),
            ..Default::default()
        };
        let alert = Alert {
            time_ns: 1,
            rule: "r".into(),
            priority: driftwatch_event::Priority::Critical,
            output: "o".into(),
            output_fields: [
                ("drift.path".to_string(), serde_json::json!("/tmp/evil")),
                ("proc.exepath".to_string(), serde_json::json!("/tmp/link")),
            ]
            .into(),
            tags: vec![],
            source: "syscall".into(),
            hostname: "h".into(),
        };
        let keyfile = dir.path().join("key");
        std::fs::write(&keyfile, "11".repeat(32)).unwrap();
        let key = SigningKey::from_file(&keyfile).unwrap();
        let input = CaptureInput {
            alert: &alert,
            incident: "inc1",
            container: &container,
            spec: Some(b"{\"ociVersion\":\"1.0\"}"),
            diff_json: Err("no layers".into()),
            drifted: vec![b"/big".to_vec(), b"/missing".to_vec()],
            proc_root: Path::new("/proc"),
            cgroup_dir: None,
        };
        let limits = CaptureLimits {
            max_bundles: 2,
            max_bytes: 1 << 20,
            max_file_bytes: 1000,
        };
        let ev = dir.path().join("ev");
        let b = capture(&ev, &input, &limits, Some(&key), 5).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.path.join("manifest.json")).unwrap()).unwrap();
        let files = manifest["files"].as_array().unwrap();
        for f in files {
            let data = std::fs::read(b.path.join(f["path"].as_str().unwrap())).unwrap();
            assert_eq!(f["sha256"], hex::encode(Sha256::digest(&data)), "{f}");
            assert_eq!(f["size"], data.len() as u64);
        }
        let names: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert!(names.contains(&"files/tmp/evil"), "{names:?}");
        assert!(
            !names.iter().any(|n| n.contains("link")),
            "a symlink is never followed: {names:?}"
        );
        assert_eq!(
            std::fs::read(b.path.join("files/big")).unwrap().len(),
            1000,
            "bounded per file"
        );
        let omitted = manifest["omitted"].to_string();
        assert!(omitted.contains("diff.json: no layers"), "{omitted}");
        assert!(omitted.contains("/tmp/link"), "{omitted}");
        // The signature verifies against the public key written beside it.
        let sig =
            hex::decode(std::fs::read_to_string(b.path.join("manifest.sig")).unwrap()).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        let text = std::fs::read(b.path.join("manifest.json")).unwrap();
        use ed25519_dalek::Verifier;
        key.0.verifying_key().verify(&text, &sig).unwrap();
        // At most two bundles are kept; no temporary directory is left behind.
        for t in [6, 7] {
            std::thread::sleep(std::time::Duration::from_millis(20));
            capture(&ev, &input, &limits, None, t).unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(&ev)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(!b.path.exists(), "the oldest was removed");
    }

    #[test]
    fn the_process_tree_of_a_cgroup_is_read() {
        // This test's own process, through a fake cgroup directory listing it.
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        std::fs::write(
            dir.path().join("cgroup.procs"),
            format!("{me}\n999999999\n"),
        )
        .unwrap();
        let procs = processes(Path::new("/proc"), Some(dir.path()));
        assert_eq!(procs.len(), 1, "a pid that does not exist is left out");
        let p = &procs[0];
        assert_eq!(p.pid, me);
        assert_eq!(p.ppid, std::os::unix::process::parent_id());
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            p.exe_sha256.as_deref(),
            Some(hex::encode(Sha256::digest(&exe)).as_str())
        );
        assert!(p.start_boot_ns.is_some());
    }
}
