//! What `.busybox()` puts into an image.

use std::process::Command;
use std::time::Duration;

use crate::subprocess;

/// Where the host's busybox-static lives.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Applets linked as `/bin/<name>` (those the host busybox does not have are skipped).
pub const APPLETS: &[&str] = &[
    "[",
    "[[",
    "ash",
    "awk",
    "basename",
    "cat",
    "chgrp",
    "chmod",
    "chown",
    "cp",
    "cut",
    "date",
    "dd",
    "df",
    "dirname",
    "du",
    "echo",
    "env",
    "false",
    "find",
    "grep",
    "gunzip",
    "gzip",
    "head",
    "hostname",
    "id",
    "kill",
    "ln",
    "ls",
    "md5sum",
    "mkdir",
    "mkfifo",
    "mktemp",
    "more",
    "mount",
    "mv",
    "nproc",
    "pidof",
    "printf",
    "ps",
    "pwd",
    "readlink",
    "realpath",
    "rm",
    "rmdir",
    "sed",
    "seq",
    "sh",
    "sha256sum",
    "sleep",
    "sort",
    "stat",
    "sync",
    "tail",
    "tar",
    "tee",
    "test",
    "timeout",
    "touch",
    "tr",
    "true",
    "truncate",
    "umount",
    "uname",
    "uniq",
    "unlink",
    "usleep",
    "vi",
    "wc",
    "which",
    "whoami",
    "xargs",
    "yes",
];

/// Minimal `/etc/passwd`.
pub const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
/// Minimal `/etc/group`.
pub const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The applets of [`APPLETS`] that the host busybox provides, or all of them if it cannot say.
pub fn available_applets() -> Vec<&'static str> {
    let mut cmd = Command::new(HOST_BUSYBOX);
    cmd.arg("--list");
    match subprocess::run(cmd, Duration::from_secs(10)) {
        Ok(out) if out.success() => {
            let have: Vec<&str> = out.stdout.lines().map(str::trim).collect();
            APPLETS
                .iter()
                .copied()
                .filter(|a| have.contains(a))
                .collect()
        }
        _ => APPLETS.to_vec(),
    }
}
