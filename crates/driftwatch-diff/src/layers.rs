//! Overlay directory stacks, walked one name at a time like overlayfs (`ovl_lookup_single`):
//! a whiteout (char device 0:0, or in a lower layer a zero-size file with `overlay.whiteout`)
//! hides the name below it, an opaque directory (`overlay.opaque` = `y`) hides everything below
//! it, a non-directory hides everything below it and a directory stops at a non-directory below.
//!
//! Every name is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)` relative to an already-open directory of the same
//! layer: no symlink is ever followed and no name leads outside its layer.

use driftwatch_image::XattrNamespace;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::ffi::CStr;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

static OPAQUE: [&CStr; 2] = [c"trusted.overlay.opaque", c"user.overlay.opaque"];
static WHITEOUT: [&CStr; 2] = [c"trusted.overlay.whiteout", c"user.overlay.whiteout"];
static METACOPY: [&CStr; 2] = [c"trusted.overlay.metacopy", c"user.overlay.metacopy"];
static REDIRECT: [&CStr; 2] = [c"trusted.overlay.redirect", c"user.overlay.redirect"];

pub(crate) fn xattr_names(
    ns: XattrNamespace,
    pair: &'static [&'static CStr; 2],
) -> &'static [&'static CStr] {
    match ns {
        XattrNamespace::Trusted => &pair[..1],
        XattrNamespace::User => &pair[1..],
        XattrNamespace::Both => &pair[..],
    }
}

/// One layer's directory that is part of a merged directory.
#[derive(Debug)]
pub(crate) struct LayerDir {
    /// 0 is the upper layer when the stack has one, else the topmost lower layer.
    pub layer: usize,
    pub upper: bool,
    /// Shared with the file workers that read names of this directory.
    pub fd: Arc<OwnedFd>,
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

/// The first entry the stack provides for a name.
#[derive(Debug)]
pub(crate) struct Hit {
    /// Index into the probed chain.
    pub pos: usize,
    pub st: Stat,
}

/// What a stack holds under one name.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// The entry seen in the merged view, if any.
    pub hit: Option<Hit>,
    /// When `hit` is a directory and `want_dirs` was set: that directory in every layer that
    /// contributes to it, topmost first.
    pub dirs: Vec<LayerDir>,
    /// The directory hit is opaque in some layer (lower layers below it are hidden).
    pub opaque: bool,
}

#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(crate) fn st_dev(st: &Stat) -> u64 {
    st.st_dev as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(crate) fn st_rdev(st: &Stat) -> u64 {
    st.st_rdev as u64
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(crate) fn st_size(st: &Stat) -> u64 {
    u64::try_from(st.st_size as i64).unwrap_or(0)
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(crate) fn st_mode(st: &Stat) -> u32 {
    st.st_mode as u32
}
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
pub(crate) fn st_blocks(st: &Stat) -> u64 {
    u64::try_from(st.st_blocks as i64).unwrap_or(0)
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// Open a layer root directory (a host path from the mount table: host symlinks are fine).
pub(crate) fn open_root(
    path: &std::path::Path,
    layer: usize,
    upper: bool,
) -> std::io::Result<LayerDir> {
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

/// Open `name` in `dir` as a directory of the same layer, never following a symlink.
pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
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
            Err(Errno::NOSYS) => return rfs::openat(dir, name, oflags, Mode::empty()),
            r => return r,
        }
    }
}

/// Open regular file `name` in `dir` for reading, never following a symlink, never blocking
/// on a FIFO.
pub(crate) fn open_file(dir: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
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

pub(crate) fn is_opaque(dir: BorrowedFd<'_>, ns: XattrNamespace) -> bool {
    for xname in xattr_names(ns, &OPAQUE) {
        let mut val = [0u8; 1];
        if let Ok(1) = rfs::fgetxattr(dir, *xname, &mut val[..]) {
            if val[0] == b'y' {
                return true;
            }
        }
    }
    false
}

/// Is the open upper file a metadata-only copy-up (`overlay.metacopy`, any value)?
pub(crate) fn is_metacopy(fd: BorrowedFd<'_>, ns: XattrNamespace) -> bool {
    xattr_names(ns, &METACOPY)
        .iter()
        .any(|x| rfs::fgetxattr(fd, *x, &mut [0u8; 64][..]).is_ok())
}

/// The `overlay.redirect` of an open upper directory (a directory renamed by overlayfs'
/// `redirect_dir`): the path it was renamed from, absolute from the layer root or relative to
/// its parent. At most 4 KiB; empty values are ignored.
pub(crate) fn redirect(dir: BorrowedFd<'_>, ns: XattrNamespace) -> Option<Vec<u8>> {
    for xname in xattr_names(ns, &REDIRECT) {
        let mut val = [0u8; 4096];
        if let Ok(n) = rfs::fgetxattr(dir, *xname, &mut val[..]) {
            if n > 0 {
                return val.get(..n).map(<[u8]>::to_vec);
            }
        }
    }
    None
}

/// Is the entry a whiteout? Upper layers only know the char device 0:0.
pub(crate) fn is_whiteout(
    dir: BorrowedFd<'_>,
    name: &CStr,
    st: &Stat,
    upper: bool,
    ns: XattrNamespace,
) -> bool {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::CharacterDevice => st_rdev(st) == 0,
        FileType::RegularFile if !upper && st_size(st) == 0 => {
            xattr_present_at(dir, name, xattr_names(ns, &WHITEOUT))
        }
        _ => false,
    }
}

/// `lgetxattr` on `/proc/self/fd/<dir>/<name>` (no `getxattrat`; `name` is not followed).
fn xattr_present_at(dir: BorrowedFd<'_>, name: &CStr, xnames: &[&CStr]) -> bool {
    let mut buf = Vec::with_capacity(32 + name.to_bytes().len());
    if write!(buf, "/proc/self/fd/{}/", dir.as_raw_fd()).is_err() {
        return false;
    }
    buf.extend_from_slice(name.to_bytes());
    buf.push(0);
    let Ok(path) = CStr::from_bytes_with_nul(&buf) else {
        return false;
    };
    xnames
        .iter()
        .any(|x| rfs::lgetxattr_query(path, *x).is_ok())
}

/// What `chain` (one merged directory, topmost layer first) holds under `name`.
///
/// With `want_dirs`, a directory hit comes with that directory opened in every contributing
/// layer. Errors other than "not there" in a layer are treated as "not there" in that layer and
/// logged: a vanishing entry is normal in a live container.
pub(crate) fn probe(chain: &[LayerDir], name: &CStr, want_dirs: bool, ns: XattrNamespace) -> Probe {
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
        if is_whiteout(ld.fd.as_fd(), name, &st, ld.upper, ns) {
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
        match open_dir(ld.fd.as_fd(), name) {
            Ok(fd) => {
                let opaque = pos + 1 < chain.len() && is_opaque(fd.as_fd(), ns);
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

/// Names of a directory fd, sorted (`.` and `..` left out).
pub(crate) fn read_names(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<std::ffi::CString>> {
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
