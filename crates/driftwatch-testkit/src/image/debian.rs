//! A small Debian image built with `debootstrap --variant=minbase` (cached between runs), and
//! tiny local `.deb` packages built with `dpkg-deb` (no network).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::helper::cache_dir;
use super::layer::{self, Compression};
use super::layout::{self, ImportedImage};
use crate::containerd::{lock_file, Containerd};
use crate::error::{Result, TestkitError};
use crate::subprocess;

/// The suite bootstrapped.
pub const DEBIAN_SUITE: &str = "bookworm";
/// Name of the imported image.
pub const DEBIAN_IMAGE: &str = "driftwatch-test/debian:bookworm";
const MARKER: &str = ".driftwatch-complete";
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(900);

fn debian_dir() -> PathBuf {
    cache_dir().join(format!("debian-{DEBIAN_SUITE}"))
}

/// The first `URIs:` of `/etc/apt/sources.list.d/debian.sources` (else deb.debian.org).
pub fn debian_mirror() -> String {
    fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("URIs:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

/// A minbase Debian root filesystem, bootstrapped once (~80 s) and cached under the test-kit
/// cache directory. Safe from parallel callers (a lock file).
pub fn debian_rootfs() -> Result<PathBuf> {
    let dir = debian_dir();
    let rootfs = dir.join("rootfs");
    if rootfs.join(MARKER).exists() {
        return Ok(rootfs);
    }
    fs::create_dir_all(&dir).map_err(|e| TestkitError::io(&dir, e))?;
    let _lock = lock_file(&dir.join("lock"))?;
    if rootfs.join(MARKER).exists() {
        return Ok(rootfs);
    }
    let staging = dir.join(format!("staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", DEBIAN_SUITE])
        .arg(&staging)
        .arg(debian_mirror());
    subprocess::run_checked(cmd, DEBOOTSTRAP_TIMEOUT)?;
    for sub in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(rd) = fs::read_dir(staging.join(sub)) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
    fs::write(staging.join(MARKER), b"").map_err(|e| TestkitError::io(&staging, e))?;
    let _ = fs::remove_dir_all(&rootfs);
    fs::rename(&staging, &rootfs).map_err(|e| TestkitError::io(&rootfs, e))?;
    Ok(rootfs)
}

/// The rootfs as one uncompressed layer tar (`/dev`, `/proc`, `/sys` left empty).
fn rootfs_tar(rootfs: &Path) -> Result<Vec<u8>> {
    let io = |e| TestkitError::io(rootfs, e);
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let mut names: Vec<_> = fs::read_dir(rootfs)
        .map_err(io)?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        let n = name.to_string_lossy().into_owned();
        if n == MARKER {
            continue;
        }
        let p = rootfs.join(&name);
        let meta = fs::symlink_metadata(&p).map_err(io)?;
        if meta.is_dir() && !["dev", "proc", "sys"].contains(&n.as_str()) {
            b.append_dir_all(&n, &p).map_err(io)?;
        } else {
            b.append_path_with_name(&p, &n).map_err(io)?;
        }
    }
    b.into_inner().map_err(io)
}

/// The Debian image imported into `namespace` as [`DEBIAN_IMAGE`]; the OCI tar is cached next
/// to the rootfs, so later runs only import it.
pub fn debian_image(containerd: &Containerd, namespace: &str) -> Result<ImportedImage> {
    let rootfs = debian_rootfs()?;
    let dir = debian_dir();
    let tar = dir.join("image.tar");
    let meta = dir.join("image.json");
    let built = {
        let _lock = lock_file(&dir.join("image.lock"))?;
        match fs::read(&meta)
            .ok()
            .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
        {
            Some(v) if tar.exists() => v,
            _ => {
                let blob = layer::encode(rootfs_tar(&rootfs)?, Compression::Gzip)?;
                let env = vec![format!("PATH={}", super::DEFAULT_PATH)];
                let cmd = vec!["bash".to_owned()];
                let image = layout::assemble(
                    DEBIAN_IMAGE,
                    vec![blob],
                    &env,
                    &cmd,
                    &Default::default(),
                    &[],
                )?;
                image.write_oci_tar(&tar)?;
                let v = serde_json::json!({
                    "manifest_digest": image.manifest_digest,
                    "config_digest": image.config_digest,
                    "diff_ids": image.diff_ids(),
                });
                fs::write(&meta, v.to_string()).map_err(|e| TestkitError::io(&meta, e))?;
                v
            }
        }
    };
    {
        let _lock = lock_file(Path::new("/tmp/driftwatch-testkit-import.lock"))?;
        containerd.ctr_checked(namespace, &["images", "import", &tar.to_string_lossy()])?;
    }
    let s = |k: &str| built[k].as_str().unwrap_or_default().to_owned();
    Ok(ImportedImage {
        reference: DEBIAN_IMAGE.to_owned(),
        namespace: namespace.to_owned(),
        manifest_digest: s("manifest_digest"),
        config_digest: s("config_digest"),
        diff_ids: built["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Build `name_version_all.deb` in `out_dir` with `files` (`(path, bytes, mode)`) using
/// `dpkg-deb --build --root-owner-group`. Returns the .deb's path.
pub fn build_deb(
    out_dir: &Path,
    name: &str,
    version: &str,
    files: &[(&str, &[u8], u32)],
) -> Result<PathBuf> {
    let root = tempfile::tempdir().map_err(|e| TestkitError::io("<tempdir>", e))?;
    let debian = root.path().join("DEBIAN");
    fs::create_dir_all(&debian).map_err(|e| TestkitError::io(&debian, e))?;
    let control = format!(
        "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: driftwatch tests <tests@example.invalid>\nDescription: driftwatch test package\n"
    );
    fs::write(debian.join("control"), control).map_err(|e| TestkitError::io(&debian, e))?;
    for (path, bytes, mode) in files {
        let rel = layer::normalize(path)?;
        let p = root.path().join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| TestkitError::io(parent, e))?;
        }
        let mut f = fs::File::create(&p).map_err(|e| TestkitError::io(&p, e))?;
        f.write_all(bytes).map_err(|e| TestkitError::io(&p, e))?;
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(*mode))
            .map_err(|e| TestkitError::io(&p, e))?;
    }
    fs::create_dir_all(out_dir).map_err(|e| TestkitError::io(out_dir, e))?;
    let deb = out_dir.join(format!("{name}_{version}_all.deb"));
    let mut cmd = Command::new("dpkg-deb");
    cmd.args(["--build", "--root-owner-group"])
        .arg(root.path())
        .arg(&deb);
    subprocess::run_checked(cmd, Duration::from_secs(60))?;
    Ok(deb)
}
