//! The exec sensor: three `tp_btf` programs (exec, fork, exit), two syscall `tracepoint`
//! programs (executable mmap / mprotect) and their maps, loaded and unloaded as one unit.

use driftwatch_event::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::cgroup_skb::CgroupSkbLink;
use aya::programs::cgroup_sock_addr::CgroupSockAddrLink;
use aya::programs::tp_btf::BtfTracePointLink;
use aya::programs::trace_point::TracePointLink;
use aya::programs::{
    BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, Program,
    TracePoint,
};
use aya::{Btf, Ebpf, EbpfLoader};
use driftwatch_abi::{
    Config, DW_STAT_FILE_ARGS_FULL, DW_STAT_KILLS, DW_STAT_NET_ARGS_FULL, DW_STAT_RINGBUF_LOST_DNS,
    DW_STAT_RINGBUF_LOST_EXEC, DW_STAT_RINGBUF_LOST_EXIT, DW_STAT_RINGBUF_LOST_FILE,
    DW_STAT_RINGBUF_LOST_FORK, DW_STAT_RINGBUF_LOST_MAP, DW_STAT_RINGBUF_LOST_NET,
};
use tracing::{debug, info};

use crate::error::BpfError;
use crate::object::EXEC_BPF_OBJECT;

const CONFIG_SIZE: usize = core::mem::size_of::<driftwatch_abi::Config>();
use crate::ring_buf::EventStream;

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// `tp_btf` programs: (program name in the object, tracepoint).
const PROGRAMS: [(&str, &str); 3] = [
    ("dw_exec", "sched_process_exec"),
    ("dw_fork", "sched_process_fork"),
    ("dw_exit", "sched_process_exit"),
];

/// Syscall `tracepoint` programs: (program name in the object, category, tracepoint).
const SYSCALL_PROGRAMS: [(&str, &str, &str); 5] = [
    ("dw_mmap", "syscalls", "sys_enter_mmap"),
    ("dw_mprotect", "syscalls", "sys_enter_mprotect"),
    ("dw_pkey_mprotect", "syscalls", "sys_enter_pkey_mprotect"),
    ("dw_execve_args", "syscalls", "sys_enter_execve"),
    ("dw_execveat_args", "syscalls", "sys_enter_execveat"),
];

/// The file syscalls: (call, enter, exit) tracepoints. `dw_file_exit` is attached to every
/// `syscalls:sys_exit_<call>`; `dw_file_enter_open`/`dw_file_enter_openat` to the enter
/// tracepoints of open and openat (flags read straight from the context) and `dw_file_enter` to
/// the others.
pub const FILE_SYSCALLS: [(&str, &str, &str); 23] = [
    ("open", "sys_enter_open", "sys_exit_open"),
    ("openat", "sys_enter_openat", "sys_exit_openat"),
    ("openat2", "sys_enter_openat2", "sys_exit_openat2"),
    ("creat", "sys_enter_creat", "sys_exit_creat"),
    ("unlink", "sys_enter_unlink", "sys_exit_unlink"),
    ("unlinkat", "sys_enter_unlinkat", "sys_exit_unlinkat"),
    ("rename", "sys_enter_rename", "sys_exit_rename"),
    ("renameat", "sys_enter_renameat", "sys_exit_renameat"),
    ("renameat2", "sys_enter_renameat2", "sys_exit_renameat2"),
    ("link", "sys_enter_link", "sys_exit_link"),
    ("linkat", "sys_enter_linkat", "sys_exit_linkat"),
    ("symlink", "sys_enter_symlink", "sys_exit_symlink"),
    ("symlinkat", "sys_enter_symlinkat", "sys_exit_symlinkat"),
    ("chmod", "sys_enter_chmod", "sys_exit_chmod"),
    ("fchmod", "sys_enter_fchmod", "sys_exit_fchmod"),
    ("fchmodat", "sys_enter_fchmodat", "sys_exit_fchmodat"),
    ("chown", "sys_enter_chown", "sys_exit_chown"),
    ("fchown", "sys_enter_fchown", "sys_exit_fchown"),
    ("lchown", "sys_enter_lchown", "sys_exit_lchown"),
    ("fchownat", "sys_enter_fchownat", "sys_exit_fchownat"),
    ("mkdir", "sys_enter_mkdir", "sys_exit_mkdir"),
    ("mkdirat", "sys_enter_mkdirat", "sys_exit_mkdirat"),
    ("rmdir", "sys_enter_rmdir", "sys_exit_rmdir"),
];
/// The network syscalls: `dw_net_enter` is attached to `syscalls:sys_enter_<call>` and
/// `dw_net_exit` to `syscalls:sys_exit_<call>` of each.
pub const NET_SYSCALLS: [(&str, &str, &str); 11] = [
    ("socket", "sys_enter_socket", "sys_exit_socket"),
    ("connect", "sys_enter_connect", "sys_exit_connect"),
    ("accept", "sys_enter_accept", "sys_exit_accept"),
    ("accept4", "sys_enter_accept4", "sys_exit_accept4"),
    ("bind", "sys_enter_bind", "sys_exit_bind"),
    ("listen", "sys_enter_listen", "sys_exit_listen"),
    ("sendto", "sys_enter_sendto", "sys_exit_sendto"),
    ("sendmsg", "sys_enter_sendmsg", "sys_exit_sendmsg"),
    ("dup", "sys_enter_dup", "sys_exit_dup"),
    ("dup2", "sys_enter_dup2", "sys_exit_dup2"),
    ("dup3", "sys_enter_dup3", "sys_exit_dup3"),
];
/// `cgroup/connect4|6` and `cgroup/sendmsg4|6`, attached at the root of the cgroup v2
/// hierarchy: connects that bypass the syscall (io_uring), and network enforcement.
const NET_CGROUP_PROGRAMS: [&str; 4] = [
    "dw_net_connect4",
    "dw_net_connect6",
    "dw_net_sendmsg4",
    "dw_net_sendmsg6",
];
/// `cgroup_skb/ingress`, attached at the root of the cgroup v2 hierarchy: the DNS answers
/// (UDP from port 53) that sockets of tracked containers receive.
const DNS_INGRESS: &str = "dw_dns_ingress";
const NET_ENTER: &str = "dw_net_enter";
const NET_EXIT: &str = "dw_net_exit";
const FILE_ENTER: &str = "dw_file_enter";
const FILE_ENTER_OPEN: &str = "dw_file_enter_open";
const FILE_ENTER_OPENAT: &str = "dw_file_enter_openat";
const FILE_EXIT: &str = "dw_file_exit";

const MAP_EVENTS: &str = "dw_events";
const MAP_POLICY: &str = "dw_policy";
const MAP_CONFIG: &str = "dw_config";
const MAP_STATS: &str = "dw_stats";
const MAP_ALLOW: &str = "dw_allow";
const MAP_DOOM: &str = "dw_doom";
const MAP_EXEC_ARGS: &str = "dw_exec_args";
const MAP_NET_ALLOW: &str = "dw_net_allow";
const MAP_NET_DRIFTED: &str = "dw_net_drifted";
/// The data of a `dw_net_allow` key after its prefix length: protocol (1), family (1), port
/// (2, network byte order), cgroup id (8), address (16).
const NET_ALLOW_DATA: usize = 28;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `struct dw_exec_args`: ktime (8), argc (4), truncated (4), then the arguments.
const EXEC_ARGS_SIZE: usize =
    16 + driftwatch_abi::DW_EXEC_ARGS_MAX * driftwatch_abi::DW_EXEC_ARG_LEN;

/// How to load the sensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SensorOptions {
    /// Global enforcement switch (`dw_config.enforce`): without it nothing is ever killed,
    /// whatever the policy map says.
    pub enforce: bool,
    /// Events of this process (normally the agent's own pid) are not reported; 0 = none.
    pub agent_tgid: u32,
    /// The host's mount namespace inode (`/proc/self/ns/mnt` of an agent in the host's mount
    /// namespace): tasks still in it are never killed, since they are not inside a container
    /// yet (runc's set-up). Executable mappings are reported only for tasks outside it, and
    /// exec records carry the working directory only for them. 0 = unknown (every task counts
    /// as in a container).
    pub host_mntns_ino: u32,
    /// Attach the file sensor (file-changing syscalls of container tasks). Without it no file
    /// record is produced and the file syscalls stay off the tracepoint path.
    pub files: bool,
    /// Attach the network sensor (socket, connect, accept, bind, listen, sendto, sendmsg and
    /// dup of container tasks). Without it no network record is produced.
    pub net: bool,
}

/// Counters kept by the BPF programs, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SensorStats {
    /// Exec records dropped because the ring buffer was full.
    pub lost_exec: u64,
    /// Fork records dropped because the ring buffer was full.
    pub lost_fork: u64,
    /// Exit records dropped because the ring buffer was full.
    pub lost_exit: u64,
    /// Map records dropped because the ring buffer was full.
    pub lost_map: u64,
    /// Drifted execs and suspicious executable mappings killed in the kernel.
    pub kills: u64,
    /// File records dropped because the ring buffer was full.
    pub lost_file: u64,
    /// File syscalls whose arguments could not be kept until their exit (`dw_file_args` full).
    pub file_args_full: u64,
    /// Network records dropped because the ring buffer was full.
    pub lost_net: u64,
    /// Network syscalls whose arguments could not be kept until their exit (`dw_net_args`
    /// full).
    pub net_args_full: u64,
    /// DNS records dropped because the ring buffer was full.
    pub lost_dns: u64,
}

/// The loaded and attached process sensor.
///
/// Dropping it detaches the programs and frees the maps (the [`EventStream`], if taken, keeps
/// the ring buffer alive but receives nothing more).
///
/// Concurrency: after [`ExecSensor::take_events`] the ring buffer reader is independent of the
/// sensor; the sensor (policy map, stats, links) can be moved to or shared with the task that
/// writes policy (`Arc<Mutex<ExecSensor>>` or by ownership). Both types are `Send`.
pub struct ExecSensor {
    // Field order is drop order: links first, then the programs and maps.
    links: Vec<BtfTracePointLink>,
    syscall_links: Vec<TracePointLink>,
    cgroup_links: Vec<CgroupSockAddrLink>,
    /// `cgroup_skb/ingress` (DNS answers), when attached.
    dns_link: Option<CgroupSkbLink>,
    events: Option<RingBuf<MapData>>,
    policy: HashMap<MapData, u64, u32>,
    stats: PerCpuArray<MapData, u64>,
    config: Array<MapData, [u8; CONFIG_SIZE]>,
    /// What `dw_config` must hold; anything else was written by someone else.
    config_bytes: [u8; CONFIG_SIZE],
    gate: Option<GateMaps>,
    /// `dw_net_allow`: the peers of network-enforced cgroups.
    net_allow: LpmTrie<MapData, [u8; NET_ALLOW_DATA], u32>,
    /// `dw_net_drifted`: tgid → start_ns of drifted processes.
    net_drifted: HashMap<MapData, u32, u64>,
    /// The file programs are attached.
    files: bool,
    /// The network programs are attached.
    net: bool,
    _ebpf: Ebpf,
}

/// The maps through which the exec gate (the agent's fanotify exec-permission handler) tells
/// the kernel programs its verdicts: `dw_allow` (upper-layer files holding unchanged image
/// bytes, which enforcement lets run) and `dw_doom` (processes whose next exec is killed).
/// Taken once from the sensor with [`ExecSensor::take_gate_maps`]; `Send`, for the gate's thread.
pub struct GateMaps {
    allow: HashMap<MapData, [u8; 16], [u8; 16]>,
    doom: HashMap<MapData, u32, u64>,
    exec_args: HashMap<MapData, u32, [u8; EXEC_ARGS_SIZE]>,
}

/// Now, on the clock of `bpf_ktime_get_boot_ns()` (`CLOCK_BOOTTIME`), in ns.
pub fn boot_time_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// The argv an enforced container task passed to `execve`, as kept at syscall entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArgs {
    /// Boot-time ns of the syscall entry.
    pub ktime_ns: u64,
    /// At most `DW_EXEC_ARGS_MAX` arguments, each at most `DW_EXEC_ARG_LEN - 1` bytes.
    pub args: Vec<Vec<u8>>,
    /// An argument was cut, or more were passed than were kept.
    pub truncated: bool,
}

impl ExecArgs {
    fn parse(b: &[u8; EXEC_ARGS_SIZE]) -> ExecArgs {
        let u32_at = |o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut ktime = [0u8; 8];
        ktime.copy_from_slice(&b[..8]);
        let argc = (u32_at(8) as usize).min(driftwatch_abi::DW_EXEC_ARGS_MAX);
        let args = b[16..]
            .chunks(driftwatch_abi::DW_EXEC_ARG_LEN)
            .take(argc)
            .map(|a| {
                let end = a.iter().position(|c| *c == 0).unwrap_or(a.len());
                a[..end].to_vec()
            })
            .collect();
        ExecArgs {
            ktime_ns: u64::from_ne_bytes(ktime),
            args,
            truncated: u32_at(12) != 0,
        }
    }
}

impl fmt::Debug for GateMaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateMaps").finish_non_exhaustive()
    }
}

/// An upper-layer file as the kernel names it: its filesystem's kernel `dev_t`
/// (`MKDEV(major, minor)`, not the userspace `st_dev` encoding), inode number and ctime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperFile {
    pub dev: u64,
    pub ino: u64,
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
}

impl UpperFile {
    /// From `stat(2)` fields: converts the userspace `st_dev` to the kernel encoding.
    pub fn from_stat(st_dev: u64, ino: u64, ctime_sec: i64, ctime_nsec: i64) -> UpperFile {
        let major = u64::from(rustix::fs::major(st_dev));
        let minor = u64::from(rustix::fs::minor(st_dev));
        UpperFile {
            dev: (major << 20) | minor,
            ino,
            ctime_sec,
            ctime_nsec: u32::try_from(ctime_nsec).unwrap_or(0),
        }
    }

    fn key(&self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.dev.to_ne_bytes());
        k[8..].copy_from_slice(&self.ino.to_ne_bytes());
        k
    }

    fn value(&self) -> [u8; 16] {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&self.ctime_sec.to_ne_bytes());
        v[8..12].copy_from_slice(&self.ctime_nsec.to_ne_bytes());
        v
    }
}

/// `IPPROTO_TCP`, for [`NetPeer::protocol`].
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`, for [`NetPeer::protocol`].
pub const IPPROTO_UDP: u8 = 17;

/// A peer a network-enforced cgroup may connect or send datagrams to: one entry of
/// `dw_net_allow`.
///
/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, prefix ≥ 96) is the IPv4 entry it maps (the
/// kernel matches an IPv6 socket's mapped destinations against IPv4 entries); the address's
/// bits past the prefix are ignored (`10.1.2.3/16` is `10.1.0.0/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetPeer {
    /// The cgroup v2 id of the container.
    pub cgroup_id: u64,
    /// The socket's `IPPROTO_*` ([`IPPROTO_TCP`], [`IPPROTO_UDP`]).
    pub protocol: u8,
    /// The address or network (`/0`: any address).
    pub net: IpNet,
    /// The destination port; `None` for any port.
    pub port: Option<u16>,
}

impl NetPeer {
    /// One address (`/32`, `/128`) on one port or any.
    pub fn host(cgroup_id: u64, protocol: u8, addr: IpAddr, port: Option<u16>) -> NetPeer {
        NetPeer {
            cgroup_id,
            protocol,
            net: IpNet::host(addr),
            port,
        }
    }

    /// The canonical form: an IPv4-mapped address as IPv4, bits past the prefix cleared
    /// ([`IpNet::canonical`]).
    #[must_use]
    pub fn normalized(&self) -> NetPeer {
        NetPeer {
            net: self.net.canonical(),
            ..*self
        }
    }

    /// The `dw_net_allow` key (`struct dw_net_allow_key`, abi.h) of the canonical form.
    fn key(&self) -> LpmKey<[u8; NET_ALLOW_DATA]> {
        let p = self.normalized();
        let mut d = [0u8; NET_ALLOW_DATA];
        d[0] = p.protocol;
        d[2..4].copy_from_slice(&p.port.unwrap_or(0).to_be_bytes());
        d[4..12].copy_from_slice(&p.cgroup_id.to_ne_bytes());
        match p.net.addr() {
            IpAddr::V4(a) => {
                d[1] = AF_INET;
                d[12..16].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                d[1] = AF_INET6;
                d[12..28].copy_from_slice(&a.octets());
            }
        }
        LpmKey::new(
            driftwatch_abi::DW_NET_ALLOW_FIXED_BITS + u32::from(p.net.prefix()),
            d,
        )
    }

    /// A `dw_net_allow` key read back; `None` if it is not one this loader writes.
    fn from_key(key: &LpmKey<[u8; NET_ALLOW_DATA]>) -> Option<NetPeer> {
        let d = key.data();
        let prefix = key
            .prefix_len()
            .checked_sub(driftwatch_abi::DW_NET_ALLOW_FIXED_BITS)?;
        let mut cg = [0u8; 8];
        cg.copy_from_slice(d.get(4..12)?);
        let addr = match d[1] {
            AF_INET => IpAddr::V4(Ipv4Addr::new(d[12], d[13], d[14], d[15])),
            AF_INET6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(d.get(12..28)?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            _ => return None,
        };
        let port = u16::from_be_bytes([d[2], d[3]]);
        Some(NetPeer {
            cgroup_id: u64::from_ne_bytes(cg),
            protocol: d[0],
            net: IpNet::new(addr, u8::try_from(prefix).ok()?)?,
            port: (port != 0).then_some(port),
        })
    }
}

fn ignore_absent(r: Result<(), aya::maps::MapError>, map: &'static str) -> Result<(), BpfError> {
    match r {
        Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(aya::maps::MapError::SyscallError(s))
            if s.io_error.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) =>
        {
            Ok(())
        }
        Err(e) => Err(BpfError::map(map, "remove", e)),
    }
}

impl GateMaps {
    /// Lets `file` run under enforcement while its ctime stays the same.
    pub fn allow(&mut self, file: &UpperFile) -> Result<(), BpfError> {
        self.allow
            .insert(file.key(), file.value(), 0)
            .map_err(|e| BpfError::map(MAP_ALLOW, "insert", e))
    }

    /// Withdraws a verdict; an absent entry is not an error.
    pub fn forget(&mut self, file: &UpperFile) -> Result<(), BpfError> {
        ignore_absent(self.allow.remove(&file.key()), MAP_ALLOW)
    }

    /// Entries in `dw_allow`.
    pub fn allowed_len(&self) -> usize {
        self.allow.keys().filter(Result::is_ok).count()
    }

    /// Names process `tgid`: its next exec (within `DW_DOOM_TTL_NS`) is killed in the kernel.
    pub fn doom(&mut self, tgid: u32) -> Result<(), BpfError> {
        let now = boot_time_ns();
        self.doom
            .insert(tgid, now, 0)
            .map_err(|e| BpfError::map(MAP_DOOM, "insert", e))
    }

    /// The argv process `tgid` last passed to `execve` (kept only for tasks of enforced
    /// containers), if any.
    pub fn exec_args(&self, tgid: u32) -> Option<ExecArgs> {
        self.exec_args
            .get(&tgid, 0)
            .ok()
            .map(|b| ExecArgs::parse(&b))
    }
}

/// A change to the sensor's maps that the agent did not make (someone with `CAP_BPF` wrote
/// them, e.g. with `bpftool map update`). Each one has been repaired when it is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tamper {
    /// `dw_config` (enforcement switch, agent pid, host mount namespace) was rewritten.
    Config,
    /// A policy entry the agent did not write (`flags` as found).
    PolicyAdded { cgroup_id: u64, flags: u32 },
    /// A policy entry the agent wrote was deleted.
    PolicyRemoved { cgroup_id: u64 },
    /// A policy entry's flags were changed.
    PolicyChanged {
        cgroup_id: u64,
        expected: u32,
        found: u32,
    },
    /// An allowed peer (`dw_net_allow`) the agent did not write; `None` for a key this loader
    /// never writes.
    NetPeerAdded { peer: Option<NetPeer> },
    /// An allowed peer the agent wrote was deleted.
    NetPeerRemoved { peer: NetPeer },
    /// A drifted process (`dw_net_drifted`) the agent did not name.
    NetDriftedAdded { tgid: u32, start_ns: u64 },
    /// A drifted process the agent named was deleted (`found: None`) or its start time changed.
    NetDriftedChanged {
        tgid: u32,
        expected: u64,
        found: Option<u64>,
    },
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tamper::Config => write!(f, "the sensor configuration map dw_config was rewritten"),
            Tamper::PolicyAdded { cgroup_id, flags } => write!(
                f,
                "a policy entry was added for cgroup {cgroup_id} (flags {flags:#x})"
            ),
            Tamper::PolicyRemoved { cgroup_id } => {
                write!(f, "the policy entry of cgroup {cgroup_id} was deleted")
            }
            Tamper::PolicyChanged {
                cgroup_id,
                expected,
                found,
            } => write!(
                f,
                "the policy entry of cgroup {cgroup_id} was changed from {expected:#x} to {found:#x}"
            ),
            Tamper::NetPeerAdded { peer: Some(p) } => write!(
                f,
                "an allowed peer was added for cgroup {}: protocol {} {} port {}",
                p.cgroup_id,
                p.protocol,
                p.net,
                p.port.map_or_else(|| "any".to_string(), |p| p.to_string())
            ),
            Tamper::NetPeerAdded { peer: None } => {
                write!(f, "a malformed entry was added to dw_net_allow")
            }
            Tamper::NetPeerRemoved { peer: p } => write!(
                f,
                "an allowed peer of cgroup {} was deleted: protocol {} {} port {}",
                p.cgroup_id,
                p.protocol,
                p.net,
                p.port.map_or_else(|| "any".to_string(), |p| p.to_string())
            ),
            Tamper::NetDriftedAdded { tgid, start_ns } => write!(
                f,
                "process {tgid} (start {start_ns}) was named drifted by someone else"
            ),
            Tamper::NetDriftedChanged {
                tgid,
                expected,
                found: None,
            } => write!(
                f,
                "the drifted entry of process {tgid} (start {expected}) was deleted"
            ),
            Tamper::NetDriftedChanged {
                tgid,
                expected,
                found: Some(found),
            } => write!(
                f,
                "the drifted entry of process {tgid} was changed from start {expected} to {found}"
            ),
        }
    }
}

impl fmt::Debug for ExecSensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecSensor")
            .field("links", &(self.links.len() + self.syscall_links.len()))
            .field("events_taken", &self.events.is_none())
            .finish_non_exhaustive()
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, BpfError> {
    ebpf.take_map(name)
        .ok_or(BpfError::MissingItem { what: "map", name })
}

impl ExecSensor {
    /// Loads the programs, writes `dw_config` and attaches the six tracepoints (three
    /// `tp_btf`, `syscalls:sys_enter_mmap`, `sys_enter_mprotect` and `sys_enter_pkey_mprotect`).
    pub fn load(opts: &SensorOptions) -> Result<Self, BpfError> {
        if !Path::new(KERNEL_BTF).exists() {
            return Err(BpfError::MissingBtf {
                path: KERNEL_BTF,
                source: None,
            });
        }
        let btf = Btf::from_sys_fs().map_err(|e| BpfError::MissingBtf {
            path: KERNEL_BTF,
            source: Some(e),
        })?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&btf))
            .load(EXEC_BPF_OBJECT)
            .map_err(BpfError::from_load)?;

        // Configuration goes in before anything is attached.
        let mut config: Array<MapData, [u8; CONFIG_SIZE]> =
            Array::try_from(take_map(&mut ebpf, MAP_CONFIG)?)
                .map_err(|e| BpfError::map(MAP_CONFIG, "open", e))?;
        let cfg_value = Config {
            agent_tgid: opts.agent_tgid,
            enforce: u32::from(opts.enforce),
            host_mntns_ino: opts.host_mntns_ino,
            fmode_backing: kernel_fmode_backing(),
        };
        let config_bytes = cfg_value.to_bytes();
        config
            .set(0, config_bytes, 0)
            .map_err(|e| BpfError::map(MAP_CONFIG, "write", e))?;

        let policy = HashMap::try_from(take_map(&mut ebpf, MAP_POLICY)?)
            .map_err(|e| BpfError::map(MAP_POLICY, "open", e))?;
        let stats = PerCpuArray::try_from(take_map(&mut ebpf, MAP_STATS)?)
            .map_err(|e| BpfError::map(MAP_STATS, "open", e))?;
        let gate = GateMaps {
            allow: HashMap::try_from(take_map(&mut ebpf, MAP_ALLOW)?)
                .map_err(|e| BpfError::map(MAP_ALLOW, "open", e))?,
            doom: HashMap::try_from(take_map(&mut ebpf, MAP_DOOM)?)
                .map_err(|e| BpfError::map(MAP_DOOM, "open", e))?,
            exec_args: HashMap::try_from(take_map(&mut ebpf, MAP_EXEC_ARGS)?)
                .map_err(|e| BpfError::map(MAP_EXEC_ARGS, "open", e))?,
        };
        let net_allow = LpmTrie::try_from(take_map(&mut ebpf, MAP_NET_ALLOW)?)
            .map_err(|e| BpfError::map(MAP_NET_ALLOW, "open", e))?;
        let net_drifted = HashMap::try_from(take_map(&mut ebpf, MAP_NET_DRIFTED)?)
            .map_err(|e| BpfError::map(MAP_NET_DRIFTED, "open", e))?;

        let mut links = Vec::with_capacity(PROGRAMS.len());
        for (name, tracepoint) in PROGRAMS {
            let prog: &mut BtfTracePoint = match ebpf.program_mut(name) {
                Some(Program::BtfTracePoint(p)) => p,
                _ => {
                    return Err(BpfError::MissingItem {
                        what: "tp_btf program",
                        name,
                    })
                }
            };
            prog.load(tracepoint, &btf)
                .map_err(|e| BpfError::from_program(name, tracepoint, "load", e))?;
            let id = prog
                .attach()
                .map_err(|e| BpfError::from_program(name, tracepoint, "attach", e))?;
            let link = prog
                .take_link(id)
                .map_err(|e| BpfError::from_program(name, tracepoint, "attach", e))?;
            debug!(program = name, tracepoint, "attached");
            links.push(link);
        }
        let mut syscall_links = Vec::with_capacity(
            SYSCALL_PROGRAMS.len() + 2 * (FILE_SYSCALLS.len() + NET_SYSCALLS.len()),
        );
        for (name, category, tracepoint) in SYSCALL_PROGRAMS {
            load_tracepoint(&mut ebpf, name, tracepoint)?;
            syscall_links.push(attach_tracepoint(&mut ebpf, name, category, tracepoint)?);
            debug!(program = name, category, tracepoint, "attached");
        }
        if opts.files {
            for name in [FILE_ENTER_OPEN, FILE_ENTER_OPENAT, FILE_ENTER, FILE_EXIT] {
                load_tracepoint(&mut ebpf, name, "sys_*_file")?;
            }
            for (call, enter_tp, exit_tp) in FILE_SYSCALLS {
                let enter = match call {
                    "open" => FILE_ENTER_OPEN,
                    "openat" => FILE_ENTER_OPENAT,
                    _ => FILE_ENTER,
                };
                for (name, tracepoint) in [(enter, enter_tp), (FILE_EXIT, exit_tp)] {
                    syscall_links.push(attach_tracepoint(&mut ebpf, name, "syscalls", tracepoint)?);
                }
            }
            debug!(calls = FILE_SYSCALLS.len(), "file programs attached");
        }
        if opts.net {
            for name in [NET_ENTER, NET_EXIT] {
                load_tracepoint(&mut ebpf, name, "sys_*_net")?;
            }
            for (_call, enter_tp, exit_tp) in NET_SYSCALLS {
                for (name, tracepoint) in [(NET_ENTER, enter_tp), (NET_EXIT, exit_tp)] {
                    syscall_links.push(attach_tracepoint(&mut ebpf, name, "syscalls", tracepoint)?);
                }
            }
            debug!(calls = NET_SYSCALLS.len(), "network programs attached");
        }
        let mut cgroup_links = Vec::new();
        if opts.net {
            match attach_cgroup_programs(&mut ebpf) {
                Ok(links) => cgroup_links = links,
                // The syscall programs still see every connect but io_uring's.
                Err(e) => tracing::warn!(
                    error = %e,
                    "cgroup/connect4|6 and sendmsg4|6 not attached: connects made through \
                     io_uring are not seen, network enforcement is unavailable"
                ),
            }
        }
        let mut dns_link = None;
        if opts.net {
            match attach_dns_ingress(&mut ebpf) {
                Ok(link) => dns_link = Some(link),
                // Everything else works; only the peers' DNS names (fd.sip.name) are missing.
                Err(e) => tracing::warn!(
                    error = %e,
                    "cgroup_skb/ingress not attached: DNS names of peers are not learned"
                ),
            }
        }
        drop(btf);
        release_freed_heap();
        // Mapped only now: the reader maps the ring's data twice (8 MiB of RSS), which should not
        // add to the parsed kernel BTF, the agent's memory peak. Records written meanwhile wait in
        // the ring.
        let events = RingBuf::try_from(take_map(&mut ebpf, MAP_EVENTS)?)
            .map_err(|e| BpfError::map(MAP_EVENTS, "open", e))?;
        info!(
            enforce = opts.enforce,
            agent_tgid = opts.agent_tgid,
            "exec sensor attached"
        );
        Ok(Self {
            links,
            syscall_links,
            cgroup_links,
            dns_link,
            events: Some(events),
            policy,
            stats,
            config,
            config_bytes,
            gate: Some(gate),
            net_allow,
            net_drifted,
            files: opts.files,
            net: opts.net,
            _ebpf: ebpf,
        })
    }

    /// Takes the exec gate's maps (once; `None` afterwards).
    pub fn take_gate_maps(&mut self) -> Option<GateMaps> {
        self.gate.take()
    }

    /// Takes the ring buffer reader (once). Must be called inside a tokio runtime.
    pub fn take_events(&mut self) -> Result<EventStream, BpfError> {
        let ring = self.events.take().ok_or(BpfError::EventsAlreadyTaken)?;
        EventStream::new(ring)
    }

    /// Sets the `dw_policy` flags (`POLICY_F_*`) of a cgroup v2 id.
    pub fn set_policy(&mut self, cgroup_id: u64, flags: u32) -> Result<(), BpfError> {
        self.policy
            .insert(cgroup_id, flags, 0)
            .map_err(|e| BpfError::map(MAP_POLICY, "insert", e))
    }

    /// Removes a cgroup from `dw_policy`; removing an absent key is not an error.
    pub fn remove_policy(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        ignore_absent(self.policy.remove(&cgroup_id), MAP_POLICY)
    }

    /// Reads the BPF-side counters.
    pub fn stats(&self) -> Result<SensorStats, BpfError> {
        let read = |idx: u32| -> Result<u64, BpfError> {
            let per_cpu = self
                .stats
                .get(&idx, 0)
                .map_err(|e| BpfError::map(MAP_STATS, "read", e))?;
            Ok(per_cpu.iter().fold(0u64, |acc, v| acc.saturating_add(*v)))
        };
        Ok(SensorStats {
            lost_exec: read(DW_STAT_RINGBUF_LOST_EXEC)?,
            lost_fork: read(DW_STAT_RINGBUF_LOST_FORK)?,
            lost_exit: read(DW_STAT_RINGBUF_LOST_EXIT)?,
            lost_map: read(DW_STAT_RINGBUF_LOST_MAP)?,
            lost_file: read(DW_STAT_RINGBUF_LOST_FILE)?,
            file_args_full: read(DW_STAT_FILE_ARGS_FULL)?,
            lost_net: read(DW_STAT_RINGBUF_LOST_NET)?,
            net_args_full: read(DW_STAT_NET_ARGS_FULL)?,
            lost_dns: read(DW_STAT_RINGBUF_LOST_DNS)?,
            kills: read(DW_STAT_KILLS)?,
        })
    }

    /// Compare the kernel maps with what the agent wrote (`expected_policy`: cgroup id → flags),
    /// repair every difference, and return what was found.
    pub fn check_integrity(
        &mut self,
        expected_policy: &std::collections::HashMap<u64, u32>,
    ) -> Result<Vec<Tamper>, BpfError> {
        let mut found = Vec::new();
        let cfg = self
            .config
            .get(&0, 0)
            .map_err(|e| BpfError::map(MAP_CONFIG, "read", e))?;
        if cfg != self.config_bytes {
            self.config
                .set(0, self.config_bytes, 0)
                .map_err(|e| BpfError::map(MAP_CONFIG, "write", e))?;
            found.push(Tamper::Config);
        }
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<(u64, u32)> = self.policy.iter().filter_map(Result::ok).collect();
        for (cgroup_id, flags) in entries {
            seen.insert(cgroup_id);
            match expected_policy.get(&cgroup_id) {
                None => {
                    self.remove_policy(cgroup_id)?;
                    found.push(Tamper::PolicyAdded { cgroup_id, flags });
                }
                Some(&expected) if expected != flags => {
                    self.set_policy(cgroup_id, expected)?;
                    found.push(Tamper::PolicyChanged {
                        cgroup_id,
                        expected,
                        found: flags,
                    });
                }
                Some(_) => {}
            }
        }
        for (&cgroup_id, &flags) in expected_policy {
            if !seen.contains(&cgroup_id) {
                self.set_policy(cgroup_id, flags)?;
                found.push(Tamper::PolicyRemoved { cgroup_id });
            }
        }
        Ok(found)
    }

    /// Per program: (name, runs, total run time in ns) as the kernel counts them — only while
    /// run-time statistics are enabled (`BPF_ENABLE_STATS`, `kernel.bpf_stats_enabled`); zeros
    /// otherwise. For measuring what each program costs per call.
    pub fn program_run_stats(&self) -> Vec<(String, u64, u64)> {
        self._ebpf
            .programs()
            .filter_map(|(name, p)| {
                let info = p.info().ok()?;
                let ns = u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
                Some((name.to_string(), info.run_count(), ns))
            })
            .collect()
    }

    /// Whether the cgroup connect programs (connects through io_uring) are attached.
    pub fn uring_connects_seen(&self) -> bool {
        !self.cgroup_links.is_empty()
    }

    /// Whether the DNS program (`cgroup_skb/ingress`: the DNS answers containers receive) is
    /// attached.
    pub fn dns_answers_seen(&self) -> bool {
        self.dns_link.is_some()
    }

    /// Whether network enforcement can work: `cgroup/connect4|6` and `cgroup/sendmsg4|6` are
    /// attached at the cgroup v2 root (bpf links owned by this process, never pinned: when it
    /// exits, whatever the way, the kernel detaches them and nothing stays refused).
    pub fn net_enforce_available(&self) -> bool {
        self.cgroup_links.len() == NET_CGROUP_PROGRAMS.len()
    }

    /// Turns network enforcement on or off for a cgroup: sets or clears
    /// [`driftwatch_abi::POLICY_F_NET_ENFORCE`] in its `dw_policy` flags (a cgroup without an
    /// entry gets `POLICY_F_TRACKED | POLICY_F_NET_ENFORCE`; turning it off for one writes
    /// nothing and returns 0) and returns the flags now in the map, which
    /// [`ExecSensor::check_integrity`]'s `expected_policy` must hold from then on. Writing the
    /// flags with [`ExecSensor::set_policy`] does the same. [`BpfError::NetEnforceUnavailable`]
    /// when turning it on without the cgroup programs.
    ///
    /// While it is on (and the sensor was loaded with `enforce`), every connect and every
    /// datagram with a destination of the cgroup's tasks is refused with `EPERM` before
    /// anything leaves, unless its destination is this host (loopback, `0.0.0.0`, `::`), or the
    /// process is not in `dw_net_drifted` ([`ExecSensor::mark_net_drifted`]) and `dw_net_allow`
    /// has the destination ([`ExecSensor::allow_net_peer`]). Refused attempts are reported
    /// ([`driftwatch_event::NetEvent::denied`]).
    pub fn set_net_enforce(&mut self, cgroup_id: u64, enabled: bool) -> Result<u32, BpfError> {
        use driftwatch_abi::{POLICY_F_NET_ENFORCE, POLICY_F_TRACKED};
        if enabled && !self.net_enforce_available() {
            return Err(BpfError::NetEnforceUnavailable);
        }
        let current = match self.policy.get(&cgroup_id, 0) {
            Ok(flags) => Some(flags),
            Err(aya::maps::MapError::KeyNotFound) => None,
            Err(e) => return Err(BpfError::map(MAP_POLICY, "read", e)),
        };
        let flags = match (current, enabled) {
            (None, false) => return Ok(0),
            (None, true) => POLICY_F_TRACKED | POLICY_F_NET_ENFORCE,
            (Some(f), true) => f | POLICY_F_NET_ENFORCE,
            (Some(f), false) => f & !POLICY_F_NET_ENFORCE,
        };
        self.set_policy(cgroup_id, flags)?;
        Ok(flags)
    }

    /// Lets `peer.cgroup_id` reach `peer` under network enforcement (an entry of
    /// `dw_net_allow`; writing it again is not an error). [`BpfError::MapFull`] past
    /// `DW_NET_ALLOW_MAX_ENTRIES` (65,536) entries over all cgroups.
    pub fn allow_net_peer(&mut self, peer: &NetPeer) -> Result<(), BpfError> {
        let key = peer.key();
        self.net_allow
            .insert(&key, driftwatch_abi::DW_NET_ALLOW_VALUE, 0)
            .map_err(|e| {
                BpfError::map_insert(MAP_NET_ALLOW, driftwatch_abi::DW_NET_ALLOW_MAX_ENTRIES, e)
            })
    }

    /// Removes an entry written by [`ExecSensor::allow_net_peer`] (the same peer, in any
    /// spelling that normalizes alike); an absent entry is not an error.
    pub fn remove_net_peer(&mut self, peer: &NetPeer) -> Result<(), BpfError> {
        let key = peer.key();
        ignore_absent(self.net_allow.remove(&key), MAP_NET_ALLOW)
    }

    /// The allowed peers of a cgroup, in their canonical form ([`NetPeer::normalized`]).
    pub fn net_peers(&self, cgroup_id: u64) -> Result<Vec<NetPeer>, BpfError> {
        let mut out = Vec::new();
        for key in self.net_allow.keys() {
            let key = key.map_err(|e| BpfError::map(MAP_NET_ALLOW, "iterate", e))?;
            if let Some(p) = NetPeer::from_key(&key).filter(|p| p.cgroup_id == cgroup_id) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Removes every allowed peer of a cgroup (its container went away); returns how many.
    pub fn clear_net_peers(&mut self, cgroup_id: u64) -> Result<usize, BpfError> {
        let peers = self.net_peers(cgroup_id)?;
        for p in &peers {
            self.remove_net_peer(p)?;
        }
        Ok(peers.len())
    }

    /// Names a process whose code is drift (`dw_net_drifted`): in a network-enforced cgroup
    /// its connects and datagrams are refused, allowed peers included (loopback excepted).
    /// `start_ns` is [`driftwatch_event::TaskInfo::start_ns`] of one of its events (the
    /// kernel compares it with the process's own, so a reused PID is not refused); replaces an
    /// earlier entry of `tgid`. [`BpfError::MapFull`] past `DW_NET_DRIFTED_MAX_ENTRIES`
    /// (16,384) processes: unmark them when they exit.
    pub fn mark_net_drifted(&mut self, tgid: u32, start_ns: u64) -> Result<(), BpfError> {
        self.net_drifted.insert(tgid, start_ns, 0).map_err(|e| {
            BpfError::map_insert(
                MAP_NET_DRIFTED,
                driftwatch_abi::DW_NET_DRIFTED_MAX_ENTRIES,
                e,
            )
        })
    }

    /// As [`ExecSensor::check_integrity`], for network enforcement's maps: compares
    /// `dw_net_allow` with `expected_peers` (compared in their canonical form) and
    /// `dw_net_drifted` with `expected_drifted` (tgid → start_ns), repairs every difference and
    /// returns what was found. Costs a syscall or two per entry of each map.
    pub fn check_net_integrity(
        &mut self,
        expected_peers: &std::collections::HashSet<NetPeer>,
        expected_drifted: &std::collections::HashMap<u32, u64>,
    ) -> Result<Vec<Tamper>, BpfError> {
        type KeyId = (u32, [u8; NET_ALLOW_DATA]);
        let mut found = Vec::new();
        let mut expected: std::collections::HashMap<KeyId, NetPeer> =
            std::collections::HashMap::new();
        for p in expected_peers {
            let key = p.key();
            expected.insert((key.prefix_len(), key.data()), p.normalized());
        }
        let keys: Vec<LpmKey<[u8; NET_ALLOW_DATA]>> = self
            .net_allow
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| BpfError::map(MAP_NET_ALLOW, "iterate", e))?;
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            let id = (key.prefix_len(), key.data());
            if expected.contains_key(&id) {
                seen.insert(id);
                continue;
            }
            ignore_absent(self.net_allow.remove(&key), MAP_NET_ALLOW)?;
            found.push(Tamper::NetPeerAdded {
                peer: NetPeer::from_key(&key),
            });
        }
        for (id, peer) in &expected {
            if !seen.contains(id) {
                self.allow_net_peer(peer)?;
                found.push(Tamper::NetPeerRemoved { peer: *peer });
            }
        }
        let entries: Vec<(u32, u64)> = self
            .net_drifted
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|e| BpfError::map(MAP_NET_DRIFTED, "iterate", e))?;
        let mut seen = std::collections::HashSet::new();
        for (tgid, start_ns) in entries {
            seen.insert(tgid);
            match expected_drifted.get(&tgid) {
                None => {
                    ignore_absent(self.net_drifted.remove(&tgid), MAP_NET_DRIFTED)?;
                    found.push(Tamper::NetDriftedAdded { tgid, start_ns });
                }
                Some(&want) if want != start_ns => {
                    self.mark_net_drifted(tgid, want)?;
                    found.push(Tamper::NetDriftedChanged {
                        tgid,
                        expected: want,
                        found: Some(start_ns),
                    });
                }
                Some(_) => {}
            }
        }
        for (&tgid, &want) in expected_drifted {
            if !seen.contains(&tgid) {
                self.mark_net_drifted(tgid, want)?;
                found.push(Tamper::NetDriftedChanged {
                    tgid,
                    expected: want,
                    found: None,
                });
            }
        }
        Ok(found)
    }

    /// Removes the `dw_net_drifted` entry of process (`tgid`, `start_ns`) if it is that
    /// process's (an entry of a later process with the same PID stays); returns whether one
    /// was removed.
    pub fn unmark_net_drifted(&mut self, tgid: u32, start_ns: u64) -> Result<bool, BpfError> {
        match self.net_drifted.get(&tgid, 0) {
            Ok(v) if v == start_ns => {
                ignore_absent(self.net_drifted.remove(&tgid), MAP_NET_DRIFTED)?;
                Ok(true)
            }
            Ok(_) | Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(BpfError::map(MAP_NET_DRIFTED, "read", e)),
        }
    }

    /// Whether all five programs are attached (they stay so until the sensor is dropped).
    pub fn programs_attached(&self) -> bool {
        self.links.len() == PROGRAMS.len()
            && self.syscall_links.len()
                == SYSCALL_PROGRAMS.len()
                    + if self.files {
                        2 * FILE_SYSCALLS.len()
                    } else {
                        0
                    }
                    + if self.net { 2 * NET_SYSCALLS.len() } else { 0 }
    }
}

/// The cgroup v2 hierarchy's mount point, from `/proc/self/mountinfo` (never assumed: a hybrid
/// layout mounts it at `/sys/fs/cgroup/unified`, a pure v2 one at `/sys/fs/cgroup`).
fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (left, right) = l.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mut f = left.split_whitespace();
        let root = f.nth(3)?;
        let point = f.next()?;
        (fstype == "cgroup2" && root == "/")
            .then(|| std::path::PathBuf::from(unescape_mount(point)))
    })
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let escaped = b.get(i + 1..i + 4).and_then(|d| {
            let v = d.iter().try_fold(0u16, |acc, c| {
                (b'0'..=b'7')
                    .contains(c)
                    .then(|| acc * 8 + u16::from(c - b'0'))
            })?;
            u8::try_from(v).ok()
        });
        match escaped {
            Some(v) if c == b'\\' => {
                out.push(v);
                i += 4;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The tracepoint program `name` of the object.
fn tracepoint_program<'e>(
    ebpf: &'e mut Ebpf,
    name: &'static str,
) -> Result<&'e mut TracePoint, BpfError> {
    match ebpf.program_mut(name) {
        Some(Program::TracePoint(p)) => Ok(p),
        _ => Err(BpfError::MissingItem {
            what: "tracepoint program",
            name,
        }),
    }
}

/// Load (verify) the tracepoint program `name`; `tracepoint` names it in an error.
fn load_tracepoint(
    ebpf: &mut Ebpf,
    name: &'static str,
    tracepoint: &'static str,
) -> Result<(), BpfError> {
    tracepoint_program(ebpf, name)?
        .load()
        .map_err(|e| BpfError::from_program(name, tracepoint, "load", e))
}

/// Attach the loaded tracepoint program `name` to `category:tracepoint`; the link is the
/// caller's to keep (dropping it detaches).
fn attach_tracepoint(
    ebpf: &mut Ebpf,
    name: &'static str,
    category: &'static str,
    tracepoint: &'static str,
) -> Result<TracePointLink, BpfError> {
    let prog = tracepoint_program(ebpf, name)?;
    let id = prog
        .attach(category, tracepoint)
        .map_err(|e| BpfError::from_trace_point_attach(name, category, tracepoint, e))?;
    prog.take_link(id)
        .map_err(|e| BpfError::from_program(name, tracepoint, "attach", e))
}

/// The root of the cgroup v2 hierarchy, opened (for attaching cgroup programs).
fn open_cgroup2_root() -> Result<(std::path::PathBuf, std::fs::File), BpfError> {
    let root = cgroup2_mount().ok_or_else(|| BpfError::CgroupRoot {
        path: "(no cgroup2 mount in /proc/self/mountinfo)".to_string(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })?;
    let dir = std::fs::File::open(&root).map_err(|source| BpfError::CgroupRoot {
        path: root.display().to_string(),
        source,
    })?;
    Ok((root, dir))
}

/// Loads and attaches `cgroup/connect4|6` and `cgroup/sendmsg4|6` at the cgroup v2 root (bpf
/// links, so several programs coexist there; never pinned, so they go when this process's fds
/// close: network enforcement fails open).
fn attach_cgroup_programs(ebpf: &mut Ebpf) -> Result<Vec<CgroupSockAddrLink>, BpfError> {
    let (root, dir) = open_cgroup2_root()?;
    let mut links = Vec::with_capacity(NET_CGROUP_PROGRAMS.len());
    for name in NET_CGROUP_PROGRAMS {
        let prog: &mut CgroupSockAddr = match ebpf.program_mut(name) {
            Some(Program::CgroupSockAddr(p)) => p,
            _ => {
                return Err(BpfError::MissingItem {
                    what: "cgroup sock_addr program",
                    name,
                })
            }
        };
        prog.load()
            .map_err(|e| BpfError::from_program(name, "cgroup/sock_addr", "load", e))?;
        let id = prog
            .attach(&dir, CgroupAttachMode::Single)
            .map_err(|e| BpfError::from_program(name, "cgroup/sock_addr", "attach", e))?;
        links.push(
            prog.take_link(id)
                .map_err(|e| BpfError::from_program(name, "cgroup/sock_addr", "attach", e))?,
        );
    }
    debug!(root = %root.display(), "cgroup connect programs attached");
    Ok(links)
}

/// Loads and attaches `cgroup_skb/ingress` (the DNS answers) at the cgroup v2 root, as a bpf
/// link: the kernel attaches a link in multi mode (`BPF_F_ALLOW_MULTI`), so it coexists with
/// other programs there; ours never drops a packet.
fn attach_dns_ingress(ebpf: &mut Ebpf) -> Result<CgroupSkbLink, BpfError> {
    let (root, dir) = open_cgroup2_root()?;
    let prog: &mut CgroupSkb = match ebpf.program_mut(DNS_INGRESS) {
        Some(Program::CgroupSkb(p)) => p,
        _ => {
            return Err(BpfError::MissingItem {
                what: "cgroup_skb program",
                name: DNS_INGRESS,
            })
        }
    };
    prog.load()
        .map_err(|e| BpfError::from_program(DNS_INGRESS, "cgroup_skb/ingress", "load", e))?;
    let id = prog
        .attach(&dir, CgroupSkbAttachType::Ingress, CgroupAttachMode::Single)
        .map_err(|e| BpfError::from_program(DNS_INGRESS, "cgroup_skb/ingress", "attach", e))?;
    let link = prog
        .take_link(id)
        .map_err(|e| BpfError::from_program(DNS_INGRESS, "cgroup_skb/ingress", "attach", e))?;
    debug!(root = %root.display(), "cgroup_skb/ingress (DNS) attached");
    Ok(link)
}

/// The running kernel's `FMODE_BACKING` bit (`dw_config.fmode_backing`), from its release.
fn kernel_fmode_backing() -> u32 {
    match std::fs::read_to_string(OSRELEASE) {
        Ok(release) => driftwatch_abi::fmode_backing_for_release(release.trim()),
        Err(e) => {
            // Only mprotect(PROT_EXEC) of overlay files is judged on the backing file then.
            tracing::warn!(error = %e, "cannot read {OSRELEASE}; assuming no backing files");
            0
        }
    }
}

/// Parsing the kernel's BTF for CO-RE relocations allocates several MB that are free again once
/// the programs are loaded; glibc keeps them in the heap unless asked to give them back. (The
/// agent's memory budget is 40 MB; this is about a fifth of it.)
#[cfg(target_env = "gnu")]
#[allow(
    unsafe_code,
    reason = "malloc_trim is an FFI call; see the SAFETY note"
)]
fn release_freed_heap() {
    // SAFETY: malloc_trim has no preconditions; it only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(target_env = "gnu"))]
fn release_freed_heap() {}

#[cfg(test)]
mod exec_args_tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_and_the_cgroup2_mount() {
        assert_eq!(unescape_mount("/a\\040b\\777c"), "/a b\\777c");
        let root = cgroup2_mount().expect("cgroup2 mounted on this machine");
        assert!(root.join("cgroup.procs").exists(), "{}", root.display());
    }

    fn record(ktime: u64, argc: u32, truncated: u32, args: &[&[u8]]) -> [u8; EXEC_ARGS_SIZE] {
        let mut b = [0u8; EXEC_ARGS_SIZE];
        b[..8].copy_from_slice(&ktime.to_ne_bytes());
        b[8..12].copy_from_slice(&argc.to_ne_bytes());
        b[12..16].copy_from_slice(&truncated.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            let o = 16 + i * driftwatch_abi::DW_EXEC_ARG_LEN;
            b[o..o + a.len()].copy_from_slice(a);
        }
        b
    }

    #[test]
    fn kept_argv_is_parsed_up_to_argc_and_each_nul() {
        let a = ExecArgs::parse(&record(7, 2, 0, &[b"sh", b"/tmp/x.sh", b"ignored"]));
        assert_eq!(a.ktime_ns, 7);
        assert_eq!(a.args, [b"sh".to_vec(), b"/tmp/x.sh".to_vec()]);
        assert!(!a.truncated);
    }

    #[test]
    fn a_corrupt_argc_is_clamped_and_a_full_argument_kept_whole() {
        let long = [b'a'; driftwatch_abi::DW_EXEC_ARG_LEN];
        let a = ExecArgs::parse(&record(1, u32::MAX, 1, &[&long]));
        assert_eq!(a.args.len(), driftwatch_abi::DW_EXEC_ARGS_MAX);
        assert_eq!(
            a.args[0].len(),
            driftwatch_abi::DW_EXEC_ARG_LEN,
            "no NUL: the whole slot"
        );
        assert!(a.args[1].is_empty());
        assert!(a.truncated);
    }
}
