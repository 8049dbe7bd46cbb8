//! Helper programs and libraries compiled from C with `gcc`, cached by flags and source hash.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Result, TestkitError};
use crate::subprocess;

/// Environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "DRIFTWATCH_TESTKIT_CACHE";
const DEFAULT_CACHE: &str = "/tmp/driftwatch-testkit-cache";
const GCC_FLAGS: &[&str] = &["-static", "-O2", "-w"];

/// Creates the file named by `argv[1]` (`O_CREAT`, mode 0644) as its very first act, then exits 0.
///
/// Tests copy this into a container as a "drifted" binary and run it with a marker path: if the
/// marker exists afterwards, the program ran; if enforcement stopped the exec, it does not.
/// Exit status 2 means no argument was given, 3 that the marker could not be created.
pub const MARKER_HELPER_C: &str = r#"#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 3;
    close(fd);
    return 0;
}
"#;

/// Does nothing and exits 0: the cheapest possible real exec (benchmarks, exec storms).
pub const NOOP_HELPER_C: &str = "int main(void) { return 0; }\n";

/// The directory under which helpers are cached (`$DRIFTWATCH_TESTKIT_CACHE` or
/// `/tmp/driftwatch-testkit-cache`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// Compiles `c_source` with `gcc -static -O2` and returns the path of the cached binary.
///
/// The cache key is the SHA-256 of the flags and the source, so a second call (from any process)
/// with the same source is a file lookup. Concurrent compilations are safe: each writes a private
/// temporary file and renames it into place.
pub fn compile_static_helper(c_source: &str) -> Result<PathBuf> {
    compile_helper(c_source, GCC_FLAGS)
}

/// Compiles `c_source` with `gcc -O2` into a dynamically linked executable (it needs the
/// image's `/lib64/ld-linux-x86-64.so.2` and libc: see `ImageBuilder::dynamic_runtime`).
pub fn compile_dynamic_helper(c_source: &str) -> Result<PathBuf> {
    compile_helper(c_source, &["-O2", "-w"])
}

/// Compiles `c_source` with `gcc -shared -fPIC -O2` into a shared library.
pub fn compile_shared_library(c_source: &str) -> Result<PathBuf> {
    compile_helper(c_source, &["-shared", "-fPIC", "-O2", "-w"])
}

/// Compiles `c_source` with `gcc <flags>`, cached by the hash of the flags and the source.
pub fn compile_helper(c_source: &str, flags: &[&str]) -> Result<PathBuf> {
    let mut h = Sha256::new();
    for f in flags {
        h.update(f.as_bytes());
        h.update([0]);
    }
    h.update(c_source.as_bytes());
    let key = hex::encode(h.finalize());
    let dir = cache_dir().join("helpers");
    let out = dir.join(&key[..32]);
    if out.is_file() {
        return Ok(out);
    }
    fs::create_dir_all(&dir).map_err(|e| TestkitError::io(&dir, e))?;
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&dir)
        .map_err(|e| TestkitError::io(&dir, e))?;
    let src = work.path().join("helper.c");
    fs::write(&src, c_source).map_err(|e| TestkitError::io(&src, e))?;
    let bin = work.path().join("helper");
    let mut cmd = Command::new("gcc");
    cmd.args(flags).arg("-o").arg(&bin).arg(&src);
    let res = subprocess::run(cmd, Duration::from_secs(120))?;
    if !res.success() {
        return Err(TestkitError::Compile {
            name: key[..12].to_owned(),
            stderr: res.stderr,
        });
    }
    fs::rename(&bin, &out).map_err(|e| TestkitError::io(&out, e))?;
    Ok(out)
}
