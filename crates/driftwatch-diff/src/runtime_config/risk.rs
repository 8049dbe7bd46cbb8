//! How much a deviation matters: the grades of capabilities, environment variables, host
//! mounts and changed files under `/etc`.

use super::spec::MountSummary;
use crate::model::Risk;

const CRITICAL_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_BPF",
];
const HIGH_CAPS: &[&str] = &[
    "CAP_SYS_PTRACE",
    "CAP_NET_ADMIN",
    "CAP_DAC_READ_SEARCH",
    "CAP_PERFMON",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_SYSLOG",
    "CAP_SYS_TIME",
    "CAP_LINUX_IMMUTABLE",
];

/// Environment variables that change what code runs.
const CODE_ENV: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "NODE_OPTIONS",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "JAVA_TOOL_OPTIONS",
    "BASH_ENV",
    "ENV",
];

/// Host paths whose mounting gives the container the node.
const SENSITIVE_HOST: &[&str] = &[
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/root",
    "/home",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd",
    "/var/run/containerd",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/boot",
    "/lib/modules",
    "/usr",
];

pub(super) fn cap_risk(cap: &str) -> Risk {
    if CRITICAL_CAPS.contains(&cap) {
        Risk::Critical
    } else if HIGH_CAPS.contains(&cap) {
        Risk::High
    } else {
        Risk::Medium
    }
}

pub(super) fn env_risk(key: &str) -> Risk {
    if key.starts_with("LD_") {
        Risk::Critical
    } else if CODE_ENV.contains(&key) {
        Risk::High
    } else {
        Risk::Low
    }
}

pub(super) fn mount_risk(m: &MountSummary) -> Risk {
    let sensitive = SENSITIVE_HOST
        .iter()
        .any(|s| m.source == *s || (*s != "/" && m.source.starts_with(&format!("{s}/"))));
    match (sensitive, m.read_only) {
        (true, false) => Risk::Critical,
        (true, true) => Risk::High,
        (false, false) => Risk::Medium,
        (false, true) => Risk::Low,
    }
}

/// A changed file under `/etc`: critical for `/etc/ld.so.preload`, high for accounts, sudo,
/// the loader, PAM, ssh, cron, shell profiles, security settings, package sources and hosts.
pub(super) fn etc_file_risk(path: &str) -> Risk {
    let high = [
        "/etc/passwd",
        "/etc/shadow",
        "/etc/group",
        "/etc/sudoers",
        "/etc/ld.so.conf",
        "/etc/pam.d",
        "/etc/ssh",
        "/etc/cron",
        "/etc/profile",
        "/etc/security",
        "/etc/apt/sources.list",
        "/etc/hosts",
    ];
    if path == "/etc/ld.so.preload" {
        Risk::Critical
    } else if high.iter().any(|h| path.starts_with(h)) {
        Risk::High
    } else {
        Risk::Medium
    }
}
