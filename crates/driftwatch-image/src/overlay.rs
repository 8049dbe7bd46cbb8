//! The overlay model: how overlayfs merges a stack of layer directories, one name at a time
//! (`fs/overlayfs/namei.c`, `ovl_lookup_single`). This is the one place driftwatch encodes the
//! rules; [`crate::lookup()`] (a path through the stack, for the agent's origin verdicts) and
//! `driftwatch diff`'s streaming walk (a merged directory at a time) both use it.
//!
//! * a whiteout hides the name in every layer below it: a character device 0:0 in any layer,
//!   or — in a lower layer only — a zero-size regular file with the `overlay.whiteout` xattr
//!   (an "xwhiteout");
//! * a directory with `overlay.opaque` = `y` hides everything below it (overlayfs reads one
//!   byte: the value `x` marks a directory holding xwhiteouts and is not opaque);
//! * a non-directory hides everything of the same name below it, and a directory found above
//!   stops at a non-directory below it;
//! * a directory with `overlay.redirect` (overlayfs' `redirect_dir`: a directory renamed in the
//!   container) takes its lower content from the path it names: absolute from the layer roots,
//!   or a single name relative to its parent directory ([`redirect_target`]);
//! * an upper regular file with `overlay.metacopy` was copied up for its metadata only
//!   (`metacopy=on`): its data is still the lower file's ([`is_metacopy`]).
//!
//! Xattrs are looked up in the `trusted.overlay.` namespace, the `user.overlay.` namespace
//! (an overlay mounted with `userxattr`), or both ([`XattrNamespace`]; both, the default, can
//! only hide more lower entries, i.e. fail towards "drift").
//!
//! Container files are hostile: every name is opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` relative to an already-open
//! directory of the same layer, so no symlink is ever followed and no name leads outside its
//! layer; xattrs of an entry are read through `/proc/self/fd/<dir>/<name>` with `lgetxattr`,
//! which does not follow `name` and opens nothing.

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::ffi::CStr;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// `NAME_MAX`: the longest path component.
pub const NAME_MAX: usize = 255;
/// The longest `overlay.redirect` value read.
pub const REDIRECT_MAX: usize = 4096;

/// Which xattr namespace holds overlayfs' private xattrs in the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrNamespace {
    /// `trusted.overlay.*` (the default overlay mount).
    Trusted,
    /// `user.overlay.*` (an overlay mounted with `userxattr`, e.g. rootless).
    User,
    /// Either: a whiteout or opaque mark in either namespace hides lower entries.
    #[default]
    Both,
}

impl XattrNamespace {
    pub(crate) fn names(self, pair: &'static [&'static CStr; 2]) -> &'static [&'static CStr] {
        match self {
            XattrNamespace::Trusted => &pair[..1],
            XattrNamespace::User => &pair[1..],
            XattrNamespace::Both => &pair[..],
        }
    }
}

pub(crate) static OPAQUE: [&CStr; 2] = [c"trusted.overlay.opaque", c"user.overlay.opaque"];
pub(crate) static WHITEOUT: [&CStr; 2] = [c"trusted.overlay.whiteout", c"user.overlay.whiteout"];
pub(crate) static METACOPY: [&CStr; 2] = [c"trusted.overlay.metacopy", c"user.overlay.metacopy"];
pub(crate) static REDIRECT: [&CStr; 2] = [c"trusted.overlay.redirect", c"user.overlay.redirect"];
pub(crate) static ORIGIN: [&CStr; 2] = [c"trusted.overlay.origin", c"user.overlay.origin"];

// `Stat` field types differ between architectures; these keep the casts in one place.
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "Stat's field types differ between architectures"
)]
pub fn st_dev(st: &Stat) -> u64 {
    st.st_dev as u64
}
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "Stat's field types differ between architectures"
)]
pub fn st_rdev(st: &Stat) -> u64 {
    st.st_rdev as u64
}
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "Stat's field types differ between architectures"
)]
pub fn st_ino(st: &Stat) -> u64 {
    st.st_ino as u64
}
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "Stat's field types differ between architectures"
)]
pub fn st_size(st: &Stat) -> u64 {
    u64::try_from(st.st_size as i64).unwrap_or(0)
}
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "Stat's field types differ between architectures"
)]
pub fn st_mode(st: &Stat) -> u32 {
    st.st_mode as u32
}
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "Stat's field types differ between architectures"
)]
pub fn st_blocks(st: &Stat) -> u64 {
    u64::try_from(st.st_blocks as i64).unwrap_or(0)
}
#[allow(
    clippy::unnecessary_cast,
    clippy::useless_conversion,
    reason = "Stat's field types differ between architectures"
)]
pub fn st_mtime(st: &Stat) -> (i64, u32) {
    (st.st_mtime as i64, st.st_mtime_nsec as u32)
}

pub fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// One layer's directory that is part of a merged directory.
#[derive(Debug)]
pub struct LayerDir {
    /// 0 is the upper layer when the stack has one, else the topmost lower layer.
    pub layer: usize,
    pub upper: bool,
    /// Shared with the file workers that read names of this directory.
    pub fd: Arc<OwnedFd>,
    /// The layer's device (a directory on another device is a mount inside the layer).
    pub dev: u64,
}

impl LayerDir {
    /// Another handle on the same open directory.
    pub fn share(&self) -> LayerDir {
        LayerDir {
            layer: self.layer,
            upper: self.upper,
            fd: Arc::clone(&self.fd),
            dev: self.dev,
        }
    }
}

/// Open a layer root directory (a host path from the mount table: host symlinks are fine).
pub fn open_root(path: &std::path::Path, layer: usize, upper: bool) -> std::io::Result<LayerDir> {
    let fd = rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dev = st_dev(&rfs::fstat(&fd)?);
    Ok(LayerDir {
        layer,
        upper,
        fd: Arc::new(fd),
        dev,
    })
}

/// Open the single name `name` in `dir` as a directory of the same layer (device `dev`),
/// never following a symlink, never crossing a mount.
pub fn open_dir<P: rustix::path::Arg + Copy>(
    dir: BorrowedFd<'_>,
    name: P,
    dev: u64,
) -> rustix::io::Result<OwnedFd> {
    let oflags =
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    let resolve = ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV;
    let mut attempts = 0;
    loop {
        match rfs::openat2(dir, name, oflags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if attempts < 3 => attempts += 1,
            Err(Errno::NOSYS) => {
                // openat2 is missing (kernel < 5.6, or filtered): `openat(O_NOFOLLOW)` on a
                // single name is as safe; a mount is detected by the device number.
                let fd = rfs::openat(dir, name, oflags, Mode::empty())?;
                if st_dev(&rfs::fstat(&fd)?) != dev {
                    return Err(Errno::XDEV);
                }
                return Ok(fd);
            }
            r => return r,
        }
    }
}

/// Open regular file `name` in `dir` for reading, never following a symlink, never blocking
/// on a FIFO.
pub fn open_file(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    let oflags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let bytes = name.to_bytes();
    if !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/') {
        // One component that is neither `.` nor `..`: it cannot leave `dir`, and `O_NOFOLLOW`
        // refuses a symlink, so plain `openat` is as safe as `openat2` and cheaper.
        return rfs::openat(dir, name, oflags, Mode::empty());
    }
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rfs::openat2(dir, name, oflags, Mode::empty(), resolve) {
        Err(Errno::NOSYS) => rfs::openat(dir, name, oflags, Mode::empty()),
        r => r,
    }
}

/// Is the open directory opaque (`overlay.opaque` = `y`)? Absent, unsupported or longer values
/// are not opaque.
pub fn is_opaque(dir: BorrowedFd<'_>, ns: XattrNamespace) -> rustix::io::Result<bool> {
    for xname in ns.names(&OPAQUE) {
        // overlayfs reads exactly one byte: a longer value (ERANGE) is not opaque.
        let mut val = [0u8; 1];
        match rfs::fgetxattr(dir, *xname, &mut val[..]) {
            Ok(1) if val[0] == b'y' => return Ok(true),
            Ok(_) | Err(Errno::NODATA | Errno::NOTSUP | Errno::RANGE) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Is the open upper file a metadata-only copy-up (`overlay.metacopy`, any value)? Its data is
/// then still the lower file's.
pub fn is_metacopy(fd: BorrowedFd<'_>, ns: XattrNamespace) -> bool {
    ns.names(&METACOPY)
        .iter()
        .any(|x| rfs::fgetxattr(fd, *x, &mut [0u8; 64][..]).is_ok())
}

/// The `overlay.redirect` of an open directory (a directory renamed by overlayfs'
/// `redirect_dir`): the path it was renamed from, absolute from the layer root or relative to
/// its parent. At most [`REDIRECT_MAX`] bytes; empty values are ignored.
pub fn redirect(dir: BorrowedFd<'_>, ns: XattrNamespace) -> Option<Vec<u8>> {
    for xname in ns.names(&REDIRECT) {
        let mut val = [0u8; REDIRECT_MAX];
        if let Ok(n) = rfs::fgetxattr(dir, *xname, &mut val[..]) {
            if n > 0 {
                return val.get(..n).map(<[u8]>::to_vec);
            }
        }
    }
    None
}

/// Where a redirect points: the components of the directory's source path in the layers
/// below, from their roots. An absolute redirect names the whole path; a relative one is a
/// single name in the same parent directory (`parent`: the components of that parent). `None`
/// for a value overlayfs would refuse (an empty component, `.`, `..`, a `/` in a relative
/// redirect, an over-long name).
pub fn redirect_target(value: &[u8], parent: &[&[u8]]) -> Option<Vec<Vec<u8>>> {
    let valid = |c: &[u8]| !c.is_empty() && c != b"." && c != b".." && c.len() <= NAME_MAX;
    if let Some(abs) = value.strip_prefix(b"/") {
        let comps: Vec<Vec<u8>> = abs
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        return (!comps.is_empty() && comps.iter().all(|c| valid(c))).then_some(comps);
    }
    if !valid(value) || value.contains(&b'/') || value.contains(&0) {
        return None;
    }
    let mut comps: Vec<Vec<u8>> = parent.iter().map(|c| c.to_vec()).collect();
    comps.push(value.to_vec());
    Some(comps)
}

/// Is the entry `name` of `dir`, whose `lstat` is `st`, a whiteout? The upper layer only knows
/// the character device 0:0.
pub fn is_whiteout<P: AsRef<[u8]>>(
    dir: BorrowedFd<'_>,
    name: P,
    st: &Stat,
    upper: bool,
    ns: XattrNamespace,
) -> rustix::io::Result<bool> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::CharacterDevice => Ok(st_rdev(st) == 0),
        FileType::RegularFile if !upper && st_size(st) == 0 => {
            xattr_present_at(dir, name.as_ref(), ns.names(&WHITEOUT))
        }
        _ => Ok(false),
    }
}

/// Does the entry `name` of `dir` carry `overlay.origin` (the kernel's copy-up mark)?
pub fn has_origin(
    dir: BorrowedFd<'_>,
    name: &[u8],
    ns: XattrNamespace,
) -> rustix::io::Result<bool> {
    xattr_present_at(dir, name, ns.names(&ORIGIN))
}

/// Is any of `xnames` set on the entry `name` of directory `dir`, without following it?
///
/// There is no `getxattrat` in rustix and `fgetxattr` refuses `O_PATH` descriptors, so this
/// goes through `/proc/self/fd/<dir>/<name>`: the magic link leads to the directory already
/// opened, and `lgetxattr` does not follow `name`. No file is opened (a device node never is).
fn xattr_present_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    xnames: &[&CStr],
) -> rustix::io::Result<bool> {
    if name.len() > NAME_MAX || name.contains(&0) || name.contains(&b'/') {
        return Err(Errno::INVAL);
    }
    // "/proc/self/fd/" + i32 + "/" + NAME_MAX + NUL
    let mut buf = [0u8; 14 + 11 + 1 + NAME_MAX + 1];
    let len = {
        let mut w = &mut buf[..];
        let room = w.len();
        // Cannot fail: the buffer is sized for the longest fd number and name.
        write!(w, "/proc/self/fd/{}/", dir.as_raw_fd())
            .and_then(|()| w.write_all(name))
            .map_err(|_| Errno::NAMETOOLONG)?;
        room - w.len()
    };
    let path = CStr::from_bytes_with_nul(&buf[..=len]).map_err(|_| Errno::INVAL)?;
    for xname in xnames {
        match rfs::lgetxattr_query(path, *xname) {
            Ok(_) => return Ok(true),
            Err(Errno::NODATA | Errno::NOTSUP) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// The first entry the stack provides for a name.
#[derive(Debug)]
pub struct Hit {
    /// Index into the probed chain.
    pub pos: usize,
    pub st: Stat,
}

/// What a stack holds under one name.
#[derive(Debug, Default)]
pub struct Probe {
    /// The entry seen in the merged view, if any.
    pub hit: Option<Hit>,
    /// When `hit` is a directory and `want_dirs` was set: that directory in every layer that
    /// contributes to it, topmost first.
    pub dirs: Vec<LayerDir>,
    /// The directory hit is opaque in some layer (lower layers below it are hidden).
    pub opaque: bool,
}

/// What `chain` (one merged directory, topmost layer first) holds under `name`.
///
/// With `want_dirs`, a directory hit comes with that directory opened in every contributing
/// layer. Errors other than "not there" in a layer are treated as "not there" in that layer and
/// logged: a vanishing entry is normal in a live container.
pub fn probe(chain: &[LayerDir], name: &CStr, want_dirs: bool, ns: XattrNamespace) -> Probe {
    let mut out = Probe::default();
    for (pos, ld) in chain.iter().enumerate() {
        let st = match rfs::statat(&ld.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => {
                tracing::debug!(layer = ld.layer, error = %e, "stat in layer failed");
                continue;
            }
        };
        if is_whiteout(ld.fd.as_fd(), name.to_bytes(), &st, ld.upper, ns).unwrap_or(false) {
            break;
        }
        let dir = is_dir(&st);
        match &out.hit {
            None => {
                out.hit = Some(Hit { pos, st });
                if !dir {
                    break;
                }
            }
            // A directory above stops at a non-directory below.
            Some(_) if !dir => break,
            Some(_) => {}
        }
        if !want_dirs {
            // Only the merged entry was asked for, and it is a directory: opaque or not,
            // nothing below can change it.
            break;
        }
        if st_dev(&st) != ld.dev {
            tracing::debug!(
                layer = ld.layer,
                "mount point inside a layer: not descended"
            );
            break;
        }
        match open_dir(ld.fd.as_fd(), name, ld.dev) {
            Ok(fd) => {
                let opaque = pos + 1 < chain.len() && is_opaque(fd.as_fd(), ns).unwrap_or(false);
                out.dirs.push(LayerDir {
                    layer: ld.layer,
                    upper: ld.upper,
                    fd: Arc::new(fd),
                    dev: ld.dev,
                });
                if opaque {
                    out.opaque = true;
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(layer = ld.layer, error = %e, "cannot open directory in layer");
                break;
            }
        }
    }
    out
}

/// The directory a renamed (`redirect_dir`) directory came from, merged over `lower_roots`:
/// that directory in every lower layer that holds it, topmost first (empty when the image has
/// no directory there). `parent_lowers` is the renamed directory's parent in the lower layers,
/// for a relative redirect; `parent` its components.
pub fn redirect_chain(
    lower_roots: &[LayerDir],
    parent_lowers: &[LayerDir],
    parent: &[&[u8]],
    value: &[u8],
    ns: XattrNamespace,
) -> Vec<LayerDir> {
    let Some(target) = redirect_target(value, parent) else {
        return Vec::new();
    };
    // A relative redirect is one name in the parent; an absolute one a walk from the roots.
    let (mut chain, comps): (Vec<LayerDir>, &[Vec<u8>]) = if value.starts_with(b"/") {
        (lower_roots.iter().map(LayerDir::share).collect(), &target)
    } else {
        (
            parent_lowers.iter().map(LayerDir::share).collect(),
            &target[target.len() - 1..],
        )
    };
    for comp in comps {
        let Ok(name) = std::ffi::CString::new(comp.as_slice()) else {
            return Vec::new();
        };
        let p = probe(&chain, &name, true, ns);
        if !p.hit.as_ref().is_some_and(|h| is_dir(&h.st)) {
            return Vec::new();
        }
        chain = p.dirs;
    }
    chain
}

/// Names of a directory fd, sorted (`.` and `..` left out).
pub fn read_names(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<std::ffi::CString>> {
    let mut names = Vec::new();
    let mut d = rfs::Dir::read_from(dir)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name();
        if n.to_bytes() == b"." || n.to_bytes() == b".." {
            continue;
        }
        names.push(n.to_owned());
    }
    names.sort_unstable();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_targets_follow_overlayfs_rules() {
        let parent: &[&[u8]] = &[b"etc"];
        assert_eq!(
            redirect_target(b"/etc/app", parent),
            Some(vec![b"etc".to_vec(), b"app".to_vec()])
        );
        assert_eq!(
            redirect_target(b"old", parent),
            Some(vec![b"etc".to_vec(), b"old".to_vec()])
        );
        for bad in [
            &b""[..],
            b"/",
            b"..",
            b".",
            b"a/b",
            b"/a/../b",
            b"/a/./b",
            b"a\0",
        ] {
            assert_eq!(redirect_target(bad, parent), None, "{bad:?}");
        }
        assert_eq!(redirect_target(&[b'x'; 256], parent), None);
    }
}
