//! uid → user name, from the `/etc/passwd` of the process's own root (a container's or the
//! host's), as Falco does.
//!
//! A container's files are hostile input: the passwd file is opened with `openat2` and
//! `RESOLVE_IN_ROOT` relative to `/proc/<pid>/root`, so no symlink can lead outside the
//! container, and at most 1 MiB is read.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

const MAX_PASSWD_BYTES: u64 = 1 << 20;
const MAX_CACHED_ROOTS: usize = 4096;

/// Parsed passwd files, cached per root (container id or "host").
#[derive(Debug, Default)]
pub struct UserNames {
    by_root: HashMap<Arc<str>, Arc<HashMap<u32, String>>>,
}

impl UserNames {
    /// The user name of `uid` inside the root shared by processes `pids` (tried in order: a
    /// short-lived process may be gone already, a container's init process lives on), cached
    /// under `key`. A root that could not be read is not cached, so the next event tries again.
    pub fn name(&mut self, key: &str, pids: &[u32], uid: u32) -> Option<String> {
        if !self.by_root.contains_key(key) {
            let table = pids.iter().find_map(|p| {
                read_passwd_in_root(&Path::new("/proc").join(p.to_string()).join("root"))
            })?;
            if self.by_root.len() >= MAX_CACHED_ROOTS {
                self.by_root.clear();
            }
            self.by_root.insert(Arc::from(key), Arc::new(table));
        }
        self.by_root.get(key).and_then(|t| t.get(&uid).cloned())
    }

    /// Forget a root's table (container removed).
    pub fn forget(&mut self, key: &str) {
        self.by_root.remove(key);
    }
}

/// Read `etc/passwd` beneath `root` without leaving it.
pub fn read_passwd_in_root(root: &Path) -> Option<HashMap<u32, String>> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &dir,
        "etc/passwd",
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_PASSWD_BYTES)
        .read_to_end(&mut buf)
        .ok()?;
    Some(parse_passwd(&buf))
}

/// Parse passwd lines `name:x:uid:...`; malformed lines are skipped; the first name of a uid wins.
pub fn parse_passwd(text: &[u8]) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for line in text.split(|b| *b == b'\n') {
        let mut parts = line.split(|b| *b == b':');
        let (Some(name), Some(_), Some(uid)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(uid) = std::str::from_utf8(uid)
            .ok()
            .and_then(|u| u.parse::<u32>().ok())
        else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        out.entry(uid)
            .or_insert_with(|| driftwatch_event::text::lossy(name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_skips_garbage() {
        let t = parse_passwd(b"root:x:0:0::/root:/bin/sh\n\ngarbage\nnobody:x:65534:65534::/:/x\nbad:x:notanumber\nroot2:x:0:0\n");
        assert_eq!(t.get(&0).map(String::as_str), Some("root"));
        assert_eq!(t.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn symlinked_passwd_cannot_escape_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        // An absolute symlink is resolved inside the root, not on the host.
        std::os::unix::fs::symlink("/hostile/passwd", root.path().join("etc/passwd")).unwrap();
        assert!(
            read_passwd_in_root(root.path()).is_none(),
            "host /hostile must not be reached"
        );
        std::fs::create_dir(root.path().join("hostile")).unwrap();
        std::fs::write(root.path().join("hostile/passwd"), b"inside:x:7:7::/:/x\n").unwrap();
        let t = read_passwd_in_root(root.path()).unwrap();
        assert_eq!(t.get(&7).map(String::as_str), Some("inside"));
        // A relative escape is clamped to the root as well.
        std::fs::remove_file(root.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", root.path().join("etc/passwd"))
            .unwrap();
        // ../../../../etc/passwd clamps to <root>/etc/passwd, the link itself: a loop, an error.
        assert!(read_passwd_in_root(root.path()).is_none());
    }
}
