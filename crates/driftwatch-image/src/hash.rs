use crate::error::ImageError;
use rustix::fs::{FileType, Mode, OFlags};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// SHA-256 of a regular file's content. The last path component is never followed
/// (`O_NOFOLLOW`); earlier components are resolved normally, so pass paths whose directories
/// were checked (a [`crate::LowerHit::path`]). FIFOs, devices and sockets are refused without
/// blocking.
pub fn sha256_file(path: &Path) -> Result<[u8; 32], ImageError> {
    let hash_err = |source: io::Error| ImageError::Hash {
        path: path.to_path_buf(),
        source,
    };
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| hash_err(e.into()))?;
    sha256_fd(fd).map_err(hash_err)
}

/// SHA-256 of the content of an open regular file, read from its current offset.
pub fn sha256_fd(fd: impl Into<OwnedFd>) -> io::Result<[u8; 32]> {
    let fd: OwnedFd = fd.into();
    let st = rustix::fs::fstat(fd.as_fd())?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut file = std::fs::File::from(fd);
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().into())
}
