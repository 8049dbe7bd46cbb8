//! cgroup v2 paths and ids: `/proc/<pid>/cgroup`, the cgroup2 mount, and which container a
//! cgroup path names.
//!
//! The cgroup v2 id that `bpf_get_current_cgroup_id()` returns is the kernfs node id of the
//! cgroup directory, which is also its inode number: `stat(<cgroup2 mount>/<path>).st_ino`.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The cgroup v2 path (`0::/path` line) of a `/proc/<pid>/cgroup` file.
pub fn unified_path(content: &str) -> Option<&str> {
    content
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim_end)
        .filter(|p| p.starts_with('/'))
}

/// Host directory of a cgroup v2 path under the cgroup2 mount point.
pub fn cgroup_dir(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

/// The cgroup v2 id of a cgroup directory: its inode number.
pub fn cgroup_id(mount: &Path, path: &str) -> io::Result<u64> {
    std::fs::metadata(cgroup_dir(mount, path)).map(|m| m.ino())
}

/// What a cgroup path says about the container it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupContainerRef {
    /// containerd namespace when the path has containerd's default `/<namespace>/<id>` form.
    pub namespace: Option<String>,
    pub id: String,
}

/// Prefixes runtimes put before the container id in systemd unit names.
const UNIT_PREFIXES: &[&str] = &[
    "cri-containerd-",
    "docker-",
    "crio-",
    "libpod-",
    "containerd-",
];
/// Suffixes of systemd units that belong to the host.
const HOST_UNIT_SUFFIXES: &[&str] = &[".slice", ".service", ".scope", ".mount", ".socket"];

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The container a cgroup path names, if any:
/// - `/<ns>/<id>` (containerd/ctr cgroupfs default) → namespace hint and id;
/// - a last component that is 64 hex characters (`/kubepods/.../pod<uid>/<id>`, `/docker/<id>`);
/// - a systemd scope `cri-containerd-<id>.scope`, `docker-<id>.scope`, ... .
///
/// Host cgroups (`/`, `/system.slice/foo.service`, `/user.slice/...`) give `None`.
pub fn container_from_path(path: &str) -> Option<CgroupContainerRef> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let last = *components.last()?;
    let unit = last.strip_suffix(".scope").unwrap_or(last);
    for prefix in UNIT_PREFIXES {
        if let Some(id) = unit.strip_prefix(prefix) {
            if is_hex64(id) || (last.ends_with(".scope") && is_plain_id(id)) {
                return Some(CgroupContainerRef {
                    namespace: None,
                    id: id.to_string(),
                });
            }
        }
    }
    if is_hex64(last) {
        let namespace = (components.len() == 2).then(|| components[0].to_string());
        return Some(CgroupContainerRef {
            namespace,
            id: last.to_string(),
        });
    }
    if components.len() == 2
        && is_plain_id(components[0])
        && is_plain_id(last)
        && !components
            .iter()
            .any(|c| HOST_UNIT_SUFFIXES.iter().any(|s| c.ends_with(s)))
    {
        return Some(CgroupContainerRef {
            namespace: Some(components[0].to_string()),
            id: last.to_string(),
        });
    }
    None
}

/// Expand a systemd slice name the way runc does: `a-b-c.slice` →
/// `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
pub fn expand_slice(slice: &str) -> Option<String> {
    let name = slice.strip_suffix(".slice")?;
    if name == "-" {
        return Some("/".to_string());
    }
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.ends_with('-') {
        return None;
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if part.is_empty() {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Some(path)
}

/// A runtime spec `linux.cgroupsPath` as a cgroupfs path: absolute paths are kept, the
/// systemd form `slice:prefix:name` becomes `/<expanded slice>/<prefix>-<name>.scope`.
pub fn spec_cgroups_path_to_fs(cgroups_path: &str) -> Option<String> {
    if cgroups_path.is_empty() {
        return None;
    }
    if cgroups_path.starts_with('/') {
        return Some(cgroups_path.to_string());
    }
    let mut parts = cgroups_path.split(':');
    let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || name.is_empty() {
        return None;
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let base = expand_slice(slice)?;
    let unit = if name.ends_with(".slice") {
        // The name is itself a slice: runc places the container in it directly.
        return expand_slice(name);
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Some(if base == "/" {
        format!("/{unit}")
    } else {
        format!("{base}/{unit}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn unified_line_is_found_in_hybrid_and_pure_v2_files() {
        let hybrid = "9:name=systemd:/\n4:memory:/x\n0::/default/web\n";
        assert_eq!(unified_path(hybrid), Some("/default/web"));
        assert_eq!(unified_path("0::/\n"), Some("/"));
        assert_eq!(unified_path("4:memory:/x\n"), None);
        assert_eq!(unified_path(""), None);
        // A path outside our cgroup namespace still starts with '/'.
        assert_eq!(
            unified_path("0::/../../kubepods\n"),
            Some("/../../kubepods")
        );
    }

    #[test]
    fn container_ids_from_cgroup_paths() {
        let r = container_from_path("/default/web").unwrap();
        assert_eq!(
            (r.namespace.as_deref(), r.id.as_str()),
            (Some("default"), "web")
        );
        let r = container_from_path(&format!("/k8s.io/{ID}")).unwrap();
        assert_eq!(
            (r.namespace.as_deref(), r.id.as_str()),
            (Some("k8s.io"), ID)
        );
        let r = container_from_path(&format!("/kubepods/burstable/pod1234/{ID}")).unwrap();
        assert_eq!((r.namespace, r.id.as_str()), (None, ID));
        let r = container_from_path(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap();
        assert_eq!((r.namespace, r.id.as_str()), (None, ID));
        let r = container_from_path(&format!("/system.slice/docker-{ID}.scope")).unwrap();
        assert_eq!(r.id, ID);
        assert_eq!(
            container_from_path(&format!("/docker/{ID}")).unwrap().id,
            ID
        );
    }

    #[test]
    fn host_cgroup_paths_name_no_container() {
        for p in [
            "/",
            "",
            "/system.slice/ssh.service",
            "/user.slice/user-0.slice/session-3.scope",
            "/init.scope",
            "/a/b/c",
        ] {
            assert_eq!(container_from_path(p), None, "{p}");
        }
        // Any other two-level path may be containerd's `/<ns>/<id>`: a candidate, which a
        // lookup then confirms or caches as a miss.
        assert_eq!(container_from_path("/svc/abc").unwrap().id, "abc");
    }

    #[test]
    fn systemd_cgroups_paths_are_expanded() {
        assert_eq!(
            expand_slice("kubepods-burstable-pod12.slice").as_deref(),
            Some("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice")
        );
        assert_eq!(expand_slice("-.slice").as_deref(), Some("/"));
        assert_eq!(expand_slice("bad"), None);
        assert_eq!(expand_slice("a--b.slice"), None);
        assert_eq!(
            spec_cgroups_path_to_fs(&format!("kubepods-besteffort-pod9.slice:cri-containerd:{ID}")).unwrap(),
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/cri-containerd-{ID}.scope"
            )
        );
        assert_eq!(
            spec_cgroups_path_to_fs(":docker:abc").as_deref(),
            Some("/system.slice/docker-abc.scope")
        );
        assert_eq!(
            spec_cgroups_path_to_fs("/default/web").as_deref(),
            Some("/default/web")
        );
        assert_eq!(spec_cgroups_path_to_fs("nonsense"), None);
        assert_eq!(spec_cgroups_path_to_fs(""), None);
        assert_eq!(spec_cgroups_path_to_fs("a:b:c:d"), None);
    }

    #[test]
    fn cgroup_id_is_the_inode_of_our_own_cgroup_dir() {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let Some(mount) = crate::mountinfo::cgroup2_mount(&mountinfo) else {
            eprintln!("no cgroup2 mount: skipped");
            return;
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let path = unified_path(&own).unwrap();
        let id = cgroup_id(&mount, path).unwrap();
        let ino = std::fs::metadata(cgroup_dir(&mount, path)).unwrap().ino();
        assert_eq!(id, ino);
        assert!(id > 0);
    }
}
