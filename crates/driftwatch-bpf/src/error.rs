//! Loader errors, with the common failure modes turned into actionable messages.

use std::io;

use aya::maps::MapError;
use aya::programs::trace_point::TracePointError;
use aya::programs::ProgramError;
use aya::EbpfError;

/// Lines of the verifier log kept in [`BpfError::VerifierRejected`].
const VERIFIER_LOG_TAIL_LINES: usize = 40;

/// Why the sensor could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The kernel exposes no BTF, so CO-RE relocations and `tp_btf` programs are impossible.
    #[error(
        "kernel BTF not found at {path}: the kernel must be built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    MissingBtf {
        path: &'static str,
        #[source]
        source: Option<aya::BtfError>,
    },
    /// EPERM from the bpf() syscall.
    #[error(
        "permission denied while {operation}: run as root, or grant CAP_BPF and CAP_PERFMON \
         (CAP_SYS_ADMIN on kernels older than 5.8)"
    )]
    PermissionDenied {
        operation: String,
        #[source]
        source: io::Error,
    },
    /// The verifier refused a program.
    #[error(
        "BPF program `{program}` was rejected by the kernel verifier ({source}); log tail:\n\
         {log_tail}"
    )]
    VerifierRejected {
        program: &'static str,
        log_tail: String,
        #[source]
        source: io::Error,
    },
    /// The kernel has no such tracepoint (no `btf_trace_<name>` type in its BTF).
    #[error("tracepoint `{tracepoint}` not found in the kernel's BTF")]
    TracepointNotFound {
        tracepoint: &'static str,
        #[source]
        source: ProgramError,
    },
    /// A syscall trace event the sensor attaches to is missing (no tracefs, or a kernel without
    /// syscall trace events).
    #[error(
        "tracepoint `{category}:{name}` not found: the sensor needs tracefs mounted \
         (/sys/kernel/tracing; `mount -t tracefs nodev /sys/kernel/tracing`) and a kernel built \
         with CONFIG_FTRACE_SYSCALLS=y"
    )]
    SyscallTracepointNotFound {
        category: &'static str,
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    /// Parsing the object, relocating it or creating its maps failed.
    #[error("failed to load the BPF object")]
    Load(#[source] EbpfError),
    /// Another program error while loading or attaching.
    #[error("failed to {action} BPF program `{program}`")]
    Program {
        program: &'static str,
        action: &'static str,
        #[source]
        source: ProgramError,
    },
    /// The embedded object lacks a program or map this loader expects (a build mismatch).
    #[error("the BPF object has no {what} `{name}`")]
    MissingItem {
        what: &'static str,
        name: &'static str,
    },
    /// A map operation failed.
    #[error("BPF map `{map}`: {action} failed")]
    Map {
        map: &'static str,
        action: &'static str,
        #[source]
        source: MapError,
    },
    /// [`crate::ExecSensor::take_events`] was called twice.
    #[error("the event ring buffer was already taken")]
    EventsAlreadyTaken,
    /// Registering or polling the ring buffer fd failed.
    #[error("ring buffer {action} failed")]
    RingBuffer {
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// A map has no room for another entry (`dw_net_allow`, `dw_net_drifted`): nothing was
    /// written.
    #[error("BPF map `{map}` is full ({capacity} entries)")]
    MapFull { map: &'static str, capacity: u32 },
    /// Network enforcement needs `cgroup/connect4|6` and `cgroup/sendmsg4|6` attached at the
    /// cgroup v2 root (see [`crate::ExecSensor::net_enforce_available`]).
    #[error(
        "network enforcement is unavailable: the cgroup connect/sendmsg programs are not \
         attached (network sensor not loaded, or no cgroup v2 hierarchy)"
    )]
    NetEnforceUnavailable,
    /// The cgroup v2 hierarchy is not mounted, or its root cannot be opened.
    #[error("cgroup v2 root {path}: cannot open")]
    CgroupRoot {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn is_eperm(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error())
}

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(VERIFIER_LOG_TAIL_LINES);
    lines.get(start..).unwrap_or_default().join("\n")
}

impl BpfError {
    pub(crate) fn from_load(e: EbpfError) -> Self {
        match e {
            EbpfError::MapError(MapError::CreateError { name, io_error, .. })
                if is_eperm(&io_error) =>
            {
                Self::PermissionDenied {
                    operation: format!("creating map `{name}`"),
                    source: io_error,
                }
            }
            other => Self::Load(other),
        }
    }

    pub(crate) fn from_program(
        program: &'static str,
        tracepoint: &'static str,
        action: &'static str,
        e: ProgramError,
    ) -> Self {
        match e {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                let log = verifier_log.to_string();
                if is_eperm(&io_error) && log.trim().is_empty() {
                    Self::PermissionDenied {
                        operation: format!("loading program `{program}`"),
                        source: io_error,
                    }
                } else {
                    Self::VerifierRejected {
                        program,
                        log_tail: log_tail(&log),
                        source: io_error,
                    }
                }
            }
            ProgramError::SyscallError(s) if is_eperm(&s.io_error) => Self::PermissionDenied {
                operation: format!("{action} program `{program}` ({})", s.call),
                source: s.io_error,
            },
            e @ ProgramError::Btf(_) => Self::TracepointNotFound {
                tracepoint,
                source: e,
            },
            source => Self::Program {
                program,
                action,
                source,
            },
        }
    }

    /// An error attaching a `tracepoint` program to `category:name`.
    pub(crate) fn from_trace_point_attach(
        program: &'static str,
        category: &'static str,
        name: &'static str,
        e: ProgramError,
    ) -> Self {
        let missing = match &e {
            // No tracefs mounted (aya looks in /sys/kernel/tracing and /sys/kernel/debug/tracing).
            ProgramError::IOError(_) => true,
            ProgramError::TracePointError(TracePointError::FileError { io_error, .. }) => {
                io_error.kind() == io::ErrorKind::NotFound
            }
            _ => false,
        };
        if missing {
            Self::SyscallTracepointNotFound {
                category,
                name,
                source: e,
            }
        } else {
            Self::from_program(program, name, "attach", e)
        }
    }

    /// A map insert's error, full maps told apart (`E2BIG` from a hash map, `ENOSPC` from an
    /// LPM trie).
    pub(crate) fn map_insert(map: &'static str, capacity: u32, source: MapError) -> Self {
        if let MapError::SyscallError(s) = &source {
            let full = [rustix::io::Errno::TOOBIG, rustix::io::Errno::NOSPC]
                .iter()
                .any(|e| s.io_error.raw_os_error() == Some(e.raw_os_error()));
            if full {
                return Self::MapFull { map, capacity };
            }
        }
        Self::map(map, "insert", source)
    }

    pub(crate) fn map(map: &'static str, action: &'static str, source: MapError) -> Self {
        if let MapError::SyscallError(s) = &source {
            if is_eperm(&s.io_error) {
                let operation = format!("{action} on map `{map}`");
                let io = io::Error::from(rustix::io::Errno::PERM);
                return Self::PermissionDenied {
                    operation,
                    source: io,
                };
            }
        }
        Self::Map {
            map,
            action,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_last_lines() {
        let log: String = (0..100).map(|i| format!("line {i}\n\n")).collect();
        let tail = log_tail(&log);
        assert_eq!(tail.lines().count(), VERIFIER_LOG_TAIL_LINES);
        assert!(tail.ends_with("line 99"));
        assert!(tail.starts_with("line 60"));
    }

    #[test]
    fn eperm_messages_name_capabilities() {
        let e = BpfError::PermissionDenied {
            operation: "loading program `dw_exec`".into(),
            source: io::Error::from(rustix::io::Errno::PERM),
        };
        let msg = e.to_string();
        assert!(msg.contains("CAP_BPF") && msg.contains("root"), "{msg}");
    }

    #[test]
    fn missing_syscall_tracepoint_names_it_and_the_fix() {
        let missing = |e: ProgramError| {
            BpfError::from_trace_point_attach("dw_mmap", "syscalls", "sys_enter_mmap", e)
        };
        let e = missing(ProgramError::TracePointError(TracePointError::FileError {
            filename: "/sys/kernel/tracing/events/syscalls/sys_enter_mmap/id".into(),
            io_error: io::Error::from(rustix::io::Errno::NOENT),
        }));
        let msg = e.to_string();
        assert!(
            msg.contains("syscalls:sys_enter_mmap")
                && msg.contains("tracefs")
                && msg.contains("CONFIG_FTRACE_SYSCALLS"),
            "{msg}"
        );
        let e = missing(ProgramError::IOError(io::Error::other("tracefs not found")));
        assert!(
            matches!(e, BpfError::SyscallTracepointNotFound { .. }),
            "{e:?}"
        );
        let e = missing(ProgramError::IOError(io::Error::other("x")));
        assert!(e.to_string().contains("tracefs"));
    }
}
