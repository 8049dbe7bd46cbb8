//! Deciding one regular file of the upper layer: the part of the walk that reads file data (on
//! a file worker, or on the walking thread with no workers).
//!
//! A container file is opened beneath its directory and read once, exactly its `st_size` bytes
//! as it was stat'ed: its SHA-256 (unless `--hash none`), the MD5 of a dpkg-owned file, its
//! first bytes (ELF or script), and the comparison with the image file of the same name when
//! that file has the same size, all in the same pass. A metadata-only copy-up (`metacopy`) has
//! no data of its own: the image file is read in its place and nothing is compared.

use super::{meta_changes, Ctx, Done, HashMode};
use crate::classify::Facts;
use crate::model::{ChangeKind, FileEntry, FileType, Side, UnmanagedChange};
use driftwatch_image::overlay;
use driftwatch_image::read_full;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Read buffer of a worker (and the same again for the image file).
const READ_BUF: usize = 128 << 10;

/// One regular file of the upper layer to read.
pub(super) struct FileJob {
    pub(super) dir: Arc<OwnedFd>,
    pub(super) name: CString,
    pub(super) path: Vec<u8>,
    pub(super) up: Side,
    /// 512-byte blocks allocated to the upper file (0 with data: maybe a metacopy).
    pub(super) up_blocks: u64,
    /// The image's entry and the lower directory that holds it.
    pub(super) lower: Option<(Side, Arc<OwnedFd>)>,
}

/// The read buffers of one thread: `a` for the container file, `b` for the image file.
pub(super) struct Bufs {
    a: Vec<u8>,
    b: Vec<u8>,
}

impl Bufs {
    pub(super) fn new() -> Bufs {
        Bufs {
            a: vec![0; READ_BUF],
            b: vec![0; READ_BUF],
        }
    }
}

/// What reading a container file found, besides the hash it stores in its [`Side`].
struct Content {
    /// Its facts for classification.
    facts: Facts,
    /// With an image file to compare: whether the bytes differ.
    differs: Option<bool>,
    /// The image file's SHA-256, with `--hash all` when the bytes differ.
    lower_sha256: Option<[u8; 32]>,
    /// The debsums check of a dpkg-owned file.
    unmanaged: Option<UnmanagedChange>,
}

/// What one read of a container file found.
#[derive(Default)]
struct ReadOut {
    sha256: Option<[u8; 32]>,
    md5: Option<[u8; 16]>,
    head: [u8; 4],
    head_len: usize,
    /// With an image file to compare: whether the bytes differ.
    differs: Option<bool>,
    /// The image file's SHA-256, when asked for and the bytes differ.
    lower_sha256: Option<[u8; 32]>,
}

/// What a read pass computes besides the head.
#[derive(Clone, Copy)]
struct Want {
    sha: bool,
    md5: bool,
    /// The image file's SHA-256 when it differs (`--hash all`).
    lower_sha: bool,
}

impl Ctx<'_> {
    /// Decide a regular file of the upper layer.
    pub(super) fn file(&self, job: FileJob, bufs: &mut Bufs) -> Done {
        let FileJob {
            dir,
            name,
            path,
            mut up,
            up_blocks,
            lower,
        } = job;
        let img = match lower {
            Some((img, _)) if img.file_type != Some(FileType::File) => {
                return self.type_changed(dir.as_fd(), &name, &path, up, img, bufs);
            }
            lower => lower,
        };
        let metacopy = self.is_metacopy(dir.as_fd(), &name, &up, up_blocks);
        // The image file is only read when it has the container file's size.
        let same_size = img
            .as_ref()
            .filter(|(i, _)| i.size == up.size)
            .map(|(_, ldir)| ldir.as_fd());
        let content = if metacopy {
            self.metacopy_content(&name, same_size, &path, &mut up, bufs)
        } else {
            self.read_content(dir.as_fd(), &name, same_size, &path, &mut up, bufs)
        };
        let change = if img.is_some() {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        let mut e = FileEntry::new(&path, change);
        if metacopy {
            e.notes.push(if content.differs.is_some() {
                "metadata-only copy-up (overlay metacopy): the data is the image file's".into()
            } else {
                "metadata-only copy-up (overlay metacopy) whose data is not at this path in the image: content not compared".into()
            });
        }
        if let Some(img) = img {
            self.compare_with_image(&mut e, img, &name, &up, &content, bufs);
        }
        e.container = Some(up);
        self.finish(&mut e, &path, &content.facts);
        Done {
            unmanaged: content.unmanaged,
            entry: Some(e),
        }
    }

    /// A regular file where the image has something else (`img`): read for its facts and
    /// hash, compared with nothing.
    fn type_changed(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        mut up: Side,
        img: Side,
        bufs: &mut Bufs,
    ) -> Done {
        let mut e = FileEntry::new(path, ChangeKind::TypeChanged);
        e.changed.push("type".into());
        e.image = Some(img);
        let content = self.read_content(dir, name, None, path, &mut up, bufs);
        e.container = Some(up);
        self.finish(&mut e, path, &content.facts);
        Done {
            unmanaged: content.unmanaged,
            entry: Some(e),
        }
    }

    /// Whether `name` in `dir` is a metadata-only copy-up (overlay metacopy), whose bytes are
    /// the image file's. Only a data-less upper file is asked (no xattr call for the others).
    fn is_metacopy(&self, dir: BorrowedFd<'_>, name: &CStr, up: &Side, up_blocks: u64) -> bool {
        up_blocks == 0
            && up.size.unwrap_or(0) > 0
            && overlay::open_file(dir, name)
                .is_ok_and(|fd| overlay::is_metacopy(fd.as_fd(), self.opts.xattrs))
    }

    /// The content of a metacopy file: the image file's (`name` in `image_dir`, when it has
    /// the same size), read as the container's data, hashed once and compared with nothing.
    fn metacopy_content(
        &self,
        name: &CStr,
        image_dir: Option<BorrowedFd<'_>>,
        path: &[u8],
        up: &mut Side,
        bufs: &mut Bufs,
    ) -> Content {
        match image_dir {
            Some(ldir) => Content {
                differs: Some(false),
                lower_sha256: None,
                ..self.read_content(ldir, name, None, path, up, bufs)
            },
            None => Content {
                facts: Facts {
                    file_type: Some(FileType::File),
                    exec_bits: up.mode.is_some_and(|m| m & 0o111 != 0),
                    ..Facts::default()
                },
                differs: None,
                lower_sha256: None,
                unmanaged: None,
            },
        }
    }

    /// The verdict on a container file against the image file of its name (`img`, in the
    /// lower directory beside it): content (as read, or by size when it was not compared),
    /// metadata, and with `--hash all` the image file's hash.
    fn compare_with_image(
        &self,
        e: &mut FileEntry,
        (mut img, ldir): (Side, Arc<OwnedFd>),
        name: &CStr,
        up: &Side,
        content: &Content,
        bufs: &mut Bufs,
    ) {
        let differs = content.differs.unwrap_or(img.size != up.size);
        e.content_changed = Some(differs);
        meta_changes(&img, up, &mut e.changed);
        if !differs {
            e.change = if e.changed.is_empty() {
                ChangeKind::CopiedUp
            } else {
                ChangeKind::Metadata
            };
        }
        if self.opts.hash == HashMode::All {
            if !differs && up.sha256.is_some() {
                img.sha256.clone_from(&up.sha256);
            } else if let Some(h) = content.lower_sha256 {
                // Hashed in the comparison's read.
                img.sha256 = Some(to_hex(&h));
            } else if let Ok(fd) = overlay::open_file(ldir.as_fd(), name) {
                img.sha256 = self
                    .sha256_of(fd, img.size.unwrap_or(0), &mut bufs.b)
                    .ok()
                    .map(|h| to_hex(&h));
            }
        }
        e.image = Some(img);
    }

    /// Read a container file's data (`name` in `dir`): its facts for classification, its hash
    /// into `up`, the debsums check; whether it differs from the same name in `lower` (an
    /// image file of the same size) and, with `--hash all`, the image file's hash when it
    /// differs.
    fn read_content(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        lower: Option<BorrowedFd<'_>>,
        path: &[u8],
        up: &mut Side,
        bufs: &mut Bufs,
    ) -> Content {
        let mut content = Content {
            facts: Facts {
                file_type: Some(FileType::File),
                exec_bits: up.mode.is_some_and(|m| m & 0o111 != 0),
                package_owned: self.dpkg.is_some_and(|d| d.owner(path).is_some()),
                ..Facts::default()
            },
            differs: None,
            lower_sha256: None,
            unmanaged: None,
        };
        let want = Want {
            sha: self.opts.hash != HashMode::None,
            md5: self.dpkg.is_some_and(|d| d.has_md5(path)),
            lower_sha: self.opts.hash == HashMode::All,
        };
        let upper_fd = match overlay::open_file(dir, name) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(path), error = %e, "cannot open container file");
                return content;
            }
        };
        let lower_fd = lower.and_then(|d| overlay::open_file(d, name).ok());
        let size = up.size.unwrap_or(0);
        let out = match self.read_pass(upper_fd, size, lower_fd, want, bufs) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(path = %crate::pathfmt::escape(path), error = %e, "cannot read container file");
                return content;
            }
        };
        let head = &out.head[..out.head_len];
        content.facts.elf = head == b"\x7fELF";
        content.facts.script = head.starts_with(b"#!");
        up.sha256 = out.sha256.as_ref().map(|h| to_hex(h));
        if let (Some(d), Some(md5)) = (self.dpkg, out.md5) {
            content.unmanaged = d.check(path, Some(&md5));
        }
        content.differs = out.differs;
        content.lower_sha256 = out.lower_sha256;
        content
    }

    /// Read the first `size` bytes of `upper` (its size when it was stat'ed: the hash is of
    /// what was reported) once: optional SHA-256 and MD5, the first bytes, and the comparison
    /// with `lower` (an image file of that size). Stops as soon as nothing more is needed, and
    /// never reads past `size`, so no read is spent on finding the end of the file.
    ///
    /// With `want.lower_sha`, once the bytes differ the image file is read on to its end in the
    /// same pass and hashed: its hash starts from the container hash's state before the first
    /// differing chunk (the bytes before it are equal), so no byte is hashed twice and no file
    /// opened twice.
    fn read_pass(
        &self,
        upper: OwnedFd,
        size: u64,
        lower: Option<OwnedFd>,
        want: Want,
        bufs: &mut Bufs,
    ) -> io::Result<ReadOut> {
        let mut out = ReadOut::default();
        let mut fu = std::fs::File::from(upper);
        let mut fl = lower.map(std::fs::File::from);
        let mut sha = want.sha.then(Sha256::new);
        let mut md5 = want.md5.then(Md5::new);
        let want_lower_sha = want.lower_sha && sha.is_some() && fl.is_some();
        // The image file's hash, once it differs.
        let mut lower_sha: Option<Sha256> = None;
        let mut equal = fl.is_some();
        let mut first = true;
        let mut remaining = size;
        let mut read = 0u64;
        while remaining > 0 {
            let more_needed = sha.is_some() || md5.is_some() || equal || lower_sha.is_some();
            // Only the head is needed: read just that.
            let cap = if more_needed { bufs.a.len() } else { 4 };
            let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(cap);
            let n = read_full(&mut fu, &mut bufs.a[..want])?;
            read += n as u64;
            if first {
                out.head_len = n.min(4);
                out.head[..out.head_len].copy_from_slice(&bufs.a[..out.head_len]);
                first = false;
            }
            // Compare (and hash the image side) before the container hash takes this chunk.
            if equal || lower_sha.is_some() {
                if let Some(fl) = fl.as_mut() {
                    let m = read_full(fl, &mut bufs.b[..n])?;
                    read += m as u64;
                    if equal && (m != n || bufs.a[..n] != bufs.b[..m]) {
                        equal = false;
                        if want_lower_sha {
                            lower_sha.clone_from(&sha);
                        }
                    }
                    if let Some(h) = lower_sha.as_mut() {
                        h.update(&bufs.b[..m]);
                    }
                }
            }
            if let Some(h) = sha.as_mut() {
                h.update(&bufs.a[..n]);
            }
            if let Some(h) = md5.as_mut() {
                h.update(&bufs.a[..n]);
            }
            if n < want {
                // Shorter than when it was stat'ed: changing under us, not the image's bytes;
                // the image file was not read to its end.
                equal = false;
                lower_sha = None;
                break;
            }
            remaining -= n as u64;
            if !(sha.is_some() || md5.is_some() || equal || lower_sha.is_some()) {
                break;
            }
        }
        self.bytes_read.fetch_add(read, Ordering::Relaxed);
        if fl.is_some() {
            out.differs = Some(!equal);
        }
        out.lower_sha256 = lower_sha.map(|h| h.finalize().into());
        out.sha256 = sha.map(|h| h.finalize().into());
        out.md5 = md5.map(|h| h.finalize().into());
        Ok(out)
    }

    /// The SHA-256 of the first `size` bytes of `fd` (an image file, with `--hash all`).
    fn sha256_of(&self, fd: OwnedFd, size: u64, buf: &mut [u8]) -> io::Result<[u8; 32]> {
        let mut f = std::fs::File::from(fd);
        let mut h = Sha256::new();
        let mut remaining = size;
        while remaining > 0 {
            let want = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = read_full(&mut f, &mut buf[..want])?;
            self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            h.update(&buf[..n]);
            if n < want {
                break;
            }
            remaining -= n as u64;
        }
        Ok(h.finalize().into())
    }
}

/// Lower-case hex (the `hex` crate goes through a `char` iterator: slower on 100,000 hashes).
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}
