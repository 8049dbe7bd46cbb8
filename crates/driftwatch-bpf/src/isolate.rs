//! Network isolation of one cgroup (`bpf/isolate.bpf.c`): a responder with a lifetime of its
//! own. Its six programs are attached to the container's cgroup v2 directory by bpf links pinned
//! in bpffs, and its map (`dw_isolated`: cgroup id → since/until) is pinned beside them, so an
//! isolation outlives the process that made it (the agent, the CLI) and is undone only by
//! [`Isolator::release`] — or, in the kernel, by its TTL: an expired entry passes everything
//! until someone removes its pins.
//!
//! Layout under the pin directory (default [`DEFAULT_PIN_DIR`]):
//!
//! ```text
//! /sys/fs/bpf/driftwatch/isolate/dw_isolated            the map
//! /sys/fs/bpf/driftwatch/isolate/programs-<hash>/...     the six programs, verified once
//! /sys/fs/bpf/driftwatch/isolate/<cgroup id>/egress      one link per program
//!                                           /ingress /connect4 /connect6 /sendmsg4 /sendmsg6
//! ```
//!
//! The programs are loaded (verified) and pinned by the first isolation on the node; later
//! isolations only open them and attach, which keeps an isolation to about a millisecond.
//!
//! Every change is made under an exclusive `flock` of the pin directory, so two processes
//! isolating at once never attach twice. The map entry is written before the links are attached
//! and, on release, ended first and removed only a while after the links were unpinned (the
//! programs drop a cgroup with no entry: fail closed; and the kernel detaches an unpinned link a
//! moment later, from a work queue).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, Map, MapData};
use aya::programs::{CgroupSkb, CgroupSockAddr, Program};
use aya::{Ebpf, EbpfLoader};

use crate::error::BpfError;
use crate::object::ISOLATE_BPF_OBJECT;

/// Where isolations are pinned unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/driftwatch/isolate";
/// The map's name in the object (and its pin's file name).
const MAP: &str = "dw_isolated";
/// `DW_ISO_MAX_ENTRIES` of `isolate.bpf.c`.
pub const MAX_ISOLATIONS: u32 = 4096;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// `enum bpf_cmd` and `enum bpf_attach_type` values of the uapi `linux/bpf.h`.
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_CREATE: libc::c_long = 28;

/// The programs: (name in the object, link pin name, `bpf_attach_type`).
const PROGRAMS: [(&str, &str, u32); 6] = [
    ("dw_iso_egress", "egress", 1),
    ("dw_iso_ingress", "ingress", 0),
    ("dw_iso_connect4", "connect4", 10),
    ("dw_iso_connect6", "connect6", 11),
    ("dw_iso_sendmsg4", "sendmsg4", 14),
    ("dw_iso_sendmsg6", "sendmsg6", 15),
];

/// How long after its end a released entry without links is kept (the kernel detaches an
/// unpinned link from a work queue, a moment after the unpin returns).
pub const RELEASED_GRACE_NS: u64 = 1_000_000_000;

/// Number of links an isolation holds when whole.
pub const LINKS_PER_ISOLATION: usize = PROGRAMS.len();

/// Why an isolation could not be made, read or undone.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// The pin directory is not on a BPF filesystem.
    #[error(
        "{path} is not on a BPF filesystem (bpffs): mount it (`mount -t bpf bpf /sys/fs/bpf`) \
         or choose a pin directory on one"
    )]
    NoBpffs { path: PathBuf },
    /// The cgroup directory is not on the cgroup v2 hierarchy.
    #[error("{path} is not a cgroup v2 directory (isolation needs the cgroup v2 hierarchy)")]
    NotCgroup2 { path: PathBuf },
    /// The cgroup directory does not exist (any more).
    #[error("cgroup {path} is gone (the container exited or was removed)")]
    CgroupGone { path: PathBuf },
    /// The cgroup directory is another cgroup than the one named by id.
    #[error("cgroup {path} has id {found}, not {expected} (the container was replaced)")]
    CgroupMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    /// A file operation on the pin directory or the cgroup failed.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Loading the object, its programs or its map failed.
    #[error("isolation BPF object")]
    Bpf(#[from] BpfError),
    /// `BPF_LINK_CREATE` or `BPF_OBJ_PIN` failed.
    #[error("{call} for program `{program}` on {path}")]
    Link {
        call: &'static str,
        program: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The map holds [`MAX_ISOLATIONS`] cgroups already.
    #[error("too many isolated cgroups (at most {MAX_ISOLATIONS})")]
    Full,
}

/// One isolated cgroup as the kernel holds it (times in boot-time ns, as
/// [`crate::boot_time_ns`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isolation {
    pub cgroup_id: u64,
    /// When it began; 0 when the links are pinned but the map has no entry (a release or an
    /// isolation interrupted half-way: the programs drop everything then).
    pub since_ns: u64,
    /// When the kernel stops enforcing it; `None`: until released.
    pub until_ns: Option<u64>,
    /// Links pinned ([`LINKS_PER_ISOLATION`] when whole).
    pub links: usize,
}

impl Isolation {
    /// Whether the kernel enforces it at `now_ns` (boot time).
    pub fn in_force(&self, now_ns: u64) -> bool {
        self.links > 0 && self.until_ns.is_none_or(|u| now_ns < u)
    }
}

/// Isolations pinned under one directory of a bpffs.
#[derive(Debug, Clone)]
pub struct Isolator {
    pin_dir: PathBuf,
}

impl Default for Isolator {
    fn default() -> Self {
        Self::new(DEFAULT_PIN_DIR)
    }
}

/// The 16 bytes of `struct dw_isolation`: since, until (native endian).
type Value = [u8; 16];

fn value(since_ns: u64, until_ns: u64) -> Value {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&since_ns.to_ne_bytes());
    v[8..].copy_from_slice(&until_ns.to_ne_bytes());
    v
}

fn parse_value(v: &Value) -> (u64, u64) {
    let mut since = [0u8; 8];
    let mut until = [0u8; 8];
    since.copy_from_slice(&v[..8]);
    until.copy_from_slice(&v[8..]);
    (u64::from_ne_bytes(since), u64::from_ne_bytes(until))
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> IsolateError + 'p {
    move |source| IsolateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn fs_magic(st: &rustix::fs::StatFs) -> i64 {
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type is i64 on x86_64 and another width elsewhere"
    )]
    let t = st.f_type as i64;
    t
}

/// The exclusive lock of the pin directory, released on drop (the fd closes).
struct Lock(#[allow(dead_code, reason = "held for its fd")] File);

impl Isolator {
    /// Isolations pinned under `pin_dir` (created when needed; must be on a bpffs).
    pub fn new(pin_dir: impl Into<PathBuf>) -> Self {
        Self {
            pin_dir: pin_dir.into(),
        }
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    fn links_dir(&self, cgroup_id: u64) -> PathBuf {
        self.pin_dir.join(cgroup_id.to_string())
    }

    /// Creates the pin directory (checking that it is on a bpffs) and locks it.
    fn lock(&self) -> Result<Lock, IsolateError> {
        let mut existing = self.pin_dir.as_path();
        while !existing.exists() {
            existing = existing.parent().unwrap_or(Path::new("/"));
        }
        let st = rustix::fs::statfs(existing).map_err(|e| IsolateError::Io {
            action: "statfs",
            path: existing.to_path_buf(),
            source: e.into(),
        })?;
        if fs_magic(&st) != BPF_FS_MAGIC {
            return Err(IsolateError::NoBpffs {
                path: self.pin_dir.clone(),
            });
        }
        std::fs::create_dir_all(&self.pin_dir).map_err(io_err("create", &self.pin_dir))?;
        let dir = File::open(&self.pin_dir).map_err(io_err("open", &self.pin_dir))?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            IsolateError::Io {
                action: "lock",
                path: self.pin_dir.clone(),
                source: e.into(),
            }
        })?;
        Ok(Lock(dir))
    }

    /// The pinned map, `None` when no isolation was ever made here.
    fn pinned_map(&self) -> Result<Option<HashMap<MapData, u64, Value>>, IsolateError> {
        let path = self.pin_dir.join(MAP);
        if !path.exists() {
            return Ok(None);
        }
        let data = MapData::from_pin(&path).map_err(|e| BpfError::map(MAP, "open pinned", e))?;
        let map = HashMap::try_from(Map::HashMap(data))
            .map_err(|e| BpfError::map(MAP, "open pinned", e))?;
        Ok(Some(map))
    }

    /// The pinned map, created and pinned (by loading the object) the first time.
    fn map(&self) -> Result<HashMap<MapData, u64, Value>, IsolateError> {
        if let Some(map) = self.pinned_map()? {
            return Ok(map);
        }
        let mut ebpf = self.load_object()?;
        let map = ebpf.take_map(MAP).ok_or(BpfError::MissingItem {
            what: "map",
            name: MAP,
        })?;
        Ok(HashMap::try_from(map).map_err(|e| BpfError::map(MAP, "open", e))?)
    }

    /// The object, its map opened from its pin or created and pinned; no program loaded.
    fn load_object(&self) -> Result<Ebpf, IsolateError> {
        Ok(EbpfLoader::new()
            .btf(None)
            .map_pin_path(&self.pin_dir)
            .load(ISOLATE_BPF_OBJECT)
            .map_err(BpfError::from_load)?)
    }

    /// The six programs' fds. They are pinned under `programs-<hash of the object>/` the first
    /// time (loading and verifying them costs tens of milliseconds; opening a pin, microseconds),
    /// so an isolation attaches already verified programs; another build of the object pins its
    /// own.
    fn programs(&self) -> Result<Vec<(&'static str, OwnedFd)>, IsolateError> {
        let dir = self
            .pin_dir
            .join(format!("programs-{:016x}", object_hash()));
        let pinned = |name: &str| dir.join(name);
        if !PROGRAMS.iter().all(|(name, _, _)| pinned(name).exists()) {
            std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            let mut ebpf = self.load_object()?;
            for (name, _, _) in PROGRAMS {
                let path = pinned(name);
                if path.exists() {
                    continue;
                }
                let prog = load_program(&mut ebpf, name)?;
                prog.pin(&path).map_err(|e| IsolateError::Io {
                    action: "pin",
                    path: path.clone(),
                    source: io::Error::other(e),
                })?;
            }
            self.unpin_programs_but(&dir)?;
        }
        PROGRAMS
            .iter()
            .map(|&(name, _, _)| {
                let path = pinned(name);
                obj_get(&path)
                    .map(|fd| (name, fd))
                    .map_err(|source| IsolateError::Link {
                        call: "BPF_OBJ_GET",
                        program: name,
                        path,
                        source,
                    })
            })
            .collect()
    }

    /// Creates the map and verifies and pins the programs now, so that the first isolation does
    /// not pay for it (tens of milliseconds): for the agent to call at start.
    pub fn prepare(&self) -> Result<(), IsolateError> {
        let _lock = self.lock()?;
        self.map()?;
        self.programs()?;
        Ok(())
    }

    /// Unpins the programs of other builds of the object (`programs-*` but `keep`): isolations
    /// made with them keep their programs through their links.
    fn unpin_programs_but(&self, keep: &Path) -> Result<(), IsolateError> {
        let entries = std::fs::read_dir(&self.pin_dir).map_err(io_err("read", &self.pin_dir))?;
        for e in entries.flatten() {
            let path = e.path();
            if path == keep || !e.file_name().to_string_lossy().starts_with("programs-") {
                continue;
            }
            for p in std::fs::read_dir(&path)
                .map_err(io_err("read", &path))?
                .flatten()
            {
                std::fs::remove_file(p.path()).map_err(io_err("unpin", &p.path()))?;
            }
            std::fs::remove_dir(&path).map_err(io_err("remove", &path))?;
        }
        Ok(())
    }

    /// Isolates the cgroup at `cgroup_dir` (whose id must be `cgroup_id`) until `until_ns`
    /// (boot time; `None`: until released). Idempotent: a cgroup already isolated keeps its
    /// links and its start, and gets the new end; links missing after an interrupted call are
    /// attached. Returns the isolation as the kernel now holds it.
    pub fn isolate(
        &self,
        cgroup_dir: &Path,
        cgroup_id: u64,
        until_ns: Option<u64>,
    ) -> Result<Isolation, IsolateError> {
        let cgroup = open_cgroup(cgroup_dir, cgroup_id)?;
        let _lock = self.lock()?;
        let now = crate::boot_time_ns();
        let links_dir = self.links_dir(cgroup_id);
        let missing: Vec<_> = PROGRAMS
            .iter()
            .filter(|(_, pin, _)| !links_dir.join(pin).exists())
            .collect();

        let mut map = self.map()?;
        let since = match map.get(&cgroup_id, 0) {
            Ok(v) => {
                let (since, until) = parse_value(&v);
                let whole = missing.is_empty();
                if whole && (until == 0 || now < until) {
                    since
                } else {
                    now
                }
            }
            Err(_) => now,
        };
        let until = until_ns.unwrap_or(0);
        map.insert(cgroup_id, value(since, until), 0).map_err(|e| {
            match BpfError::map_insert(MAP, MAX_ISOLATIONS, e) {
                BpfError::MapFull { .. } => IsolateError::Full,
                other => IsolateError::Bpf(other),
            }
        })?;
        if !missing.is_empty() {
            let programs = self.programs()?;
            std::fs::create_dir_all(&links_dir).map_err(io_err("create", &links_dir))?;
            for &&(name, pin, attach_type) in &missing {
                let Some((_, prog_fd)) = programs.iter().find(|(n, _)| *n == name) else {
                    return Err(BpfError::MissingItem {
                        what: "cgroup program",
                        name,
                    }
                    .into());
                };
                let link = link_create(prog_fd.as_fd(), cgroup.as_fd(), attach_type).map_err(
                    |source| IsolateError::Link {
                        call: "BPF_LINK_CREATE",
                        program: name,
                        path: cgroup_dir.to_path_buf(),
                        source,
                    },
                )?;
                let path = links_dir.join(pin);
                obj_pin(link.as_fd(), &path).map_err(|source| IsolateError::Link {
                    call: "BPF_OBJ_PIN",
                    program: name,
                    path: path.clone(),
                    source,
                })?;
            }
        }
        tracing::debug!(cgroup_id, cgroup = %cgroup_dir.display(), attached = missing.len(), "isolated");
        Ok(Isolation {
            cgroup_id,
            since_ns: since,
            until_ns: (until != 0).then_some(until),
            links: LINKS_PER_ISOLATION,
        })
    }

    /// Undoes the isolation of `cgroup_id`: its map entry is made to end now (the programs pass
    /// everything from this instant), then its links are unpinned, which detaches them — the
    /// kernel does that a moment later, from a work queue, so the entry stays, ended, until a
    /// later call removes it ([`RELEASED_GRACE_NS`] after). Whether there was anything to undo.
    pub fn release(&self, cgroup_id: u64) -> Result<bool, IsolateError> {
        let _lock = self.lock()?;
        let now = crate::boot_time_ns();
        let mut found = false;
        let mut map = self.pinned_map()?;
        if let Some(map) = map.as_mut() {
            if let Ok(v) = map.get(&cgroup_id, 0) {
                let (since, until) = parse_value(&v);
                if until == 0 || until > now {
                    map.insert(cgroup_id, value(since, now), 0)
                        .map_err(|e| BpfError::map(MAP, "update", e))?;
                    found = true;
                }
            }
        }
        let links_dir = self.links_dir(cgroup_id);
        for (_, pin, _) in PROGRAMS {
            let path = links_dir.join(pin);
            match std::fs::remove_file(&path) {
                Ok(()) => found = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("unpin", &path)(e)),
            }
        }
        match std::fs::remove_dir(&links_dir) {
            Ok(()) => found = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &links_dir)(e)),
        }
        if let Some(map) = map.as_mut() {
            self.remove_ended(map, now)?;
        }
        if found {
            tracing::debug!(cgroup_id, "isolation released");
        }
        Ok(found)
    }

    /// Removes the entries that ended more than [`RELEASED_GRACE_NS`] ago and have no links
    /// (released, or expired and unpinned): their links are surely detached by now.
    fn remove_ended(
        &self,
        map: &mut HashMap<MapData, u64, Value>,
        now: u64,
    ) -> Result<(), IsolateError> {
        let mut ended = Vec::new();
        for key in map.keys().take(MAX_ISOLATIONS as usize) {
            let key = key.map_err(|e| BpfError::map(MAP, "iterate", e))?;
            let Ok(v) = map.get(&key, 0) else {
                continue;
            };
            let (_, until) = parse_value(&v);
            if until != 0
                && until.saturating_add(RELEASED_GRACE_NS) < now
                && !self.links_dir(key).exists()
            {
                ended.push(key);
            }
        }
        for key in ended {
            map.remove(&key)
                .map_err(|e| BpfError::map(MAP, "remove", e))?;
        }
        Ok(())
    }

    /// When nothing is isolated any more, removes every pin (the programs, the map) and the pin
    /// directory; whether it did.
    pub fn remove_unused(&self) -> Result<bool, IsolateError> {
        if !self.pin_dir.exists() || !self.list()?.is_empty() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        self.unpin_programs_but(Path::new(""))?;
        let map = self.pin_dir.join(MAP);
        match std::fs::remove_file(&map) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("unpin", &map)(e)),
        }
        std::fs::remove_dir(&self.pin_dir).map_err(io_err("remove", &self.pin_dir))?;
        Ok(true)
    }

    /// Every isolation: each map entry and each directory of pinned links, by cgroup id; an
    /// entry that ended and has no links (released) is not one.
    pub fn list(&self) -> Result<Vec<Isolation>, IsolateError> {
        let now = crate::boot_time_ns();
        let mut out: std::collections::BTreeMap<u64, Isolation> = Default::default();
        if let Some(map) = self.pinned_map()? {
            for key in map.keys() {
                let key = key.map_err(|e| BpfError::map(MAP, "iterate", e))?;
                let Ok(v) = map.get(&key, 0) else {
                    continue; // removed meanwhile
                };
                let (since, until) = parse_value(&v);
                out.insert(
                    key,
                    Isolation {
                        cgroup_id: key,
                        since_ns: since,
                        until_ns: (until != 0).then_some(until),
                        links: 0,
                    },
                );
            }
        }
        let entries = match std::fs::read_dir(&self.pin_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                out.retain(|_, i| i.until_ns.is_none_or(|u| u > now));
                return Ok(out.into_values().collect());
            }
            Err(e) => return Err(io_err("read", &self.pin_dir)(e)),
        };
        for entry in entries.flatten() {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let links = PROGRAMS
                .iter()
                .filter(|(_, pin, _)| entry.path().join(pin).exists())
                .count();
            out.entry(id)
                .or_insert(Isolation {
                    cgroup_id: id,
                    since_ns: 0,
                    until_ns: None,
                    links: 0,
                })
                .links = links;
        }
        out.retain(|_, i| i.links > 0 || i.until_ns.is_none_or(|u| u > now));
        Ok(out.into_values().collect())
    }
}

/// Opens a cgroup v2 directory and checks that it is cgroup `cgroup_id`.
fn open_cgroup(dir: &Path, cgroup_id: u64) -> Result<File, IsolateError> {
    let file = File::open(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            IsolateError::CgroupGone {
                path: dir.to_path_buf(),
            }
        } else {
            io_err("open", dir)(e)
        }
    })?;
    let st = rustix::fs::fstatfs(&file).map_err(|e| io_err("statfs", dir)(e.into()))?;
    if fs_magic(&st) != CGROUP2_SUPER_MAGIC {
        return Err(IsolateError::NotCgroup2 {
            path: dir.to_path_buf(),
        });
    }
    let found = file.metadata().map_err(io_err("stat", dir))?.ino();
    if found != cgroup_id {
        return Err(IsolateError::CgroupMismatch {
            path: dir.to_path_buf(),
            expected: cgroup_id,
            found,
        });
    }
    Ok(file)
}

/// Loads (verifies) one of the object's cgroup programs.
fn load_program<'e>(ebpf: &'e mut Ebpf, name: &'static str) -> Result<&'e mut Program, BpfError> {
    let missing = BpfError::MissingItem {
        what: "cgroup program",
        name,
    };
    let prog = ebpf.program_mut(name).ok_or(missing)?;
    match prog {
        Program::CgroupSkb(p) => load_once_skb(p, name)?,
        Program::CgroupSockAddr(p) => load_once_sock_addr(p, name)?,
        _ => {
            return Err(BpfError::MissingItem {
                what: "cgroup program",
                name,
            })
        }
    }
    Ok(prog)
}

/// FNV-1a of the embedded object: names the directory of its pinned programs.
fn object_hash() -> u64 {
    static HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HASH.get_or_init(|| {
        ISOLATE_BPF_OBJECT
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    })
}

fn load_once_skb(p: &mut CgroupSkb, name: &'static str) -> Result<(), BpfError> {
    if p.fd().is_ok() {
        return Ok(());
    }
    p.load()
        .map_err(|e| BpfError::from_program(name, "cgroup_skb", "load", e))
}

fn load_once_sock_addr(p: &mut CgroupSockAddr, name: &'static str) -> Result<(), BpfError> {
    if p.fd().is_ok() {
        return Ok(());
    }
    p.load()
        .map_err(|e| BpfError::from_program(name, "cgroup/sock_addr", "load", e))
}

/// `bpf(cmd, attr, size)` on a zeroed attribute buffer.
#[allow(
    unsafe_code,
    reason = "aya 0.13 cannot pin a cgroup link (no FdLink from CgroupSkbLink or \
              CgroupSockAddrLink): BPF_LINK_CREATE and BPF_OBJ_PIN are made here; see the SAFETY \
              note"
)]
fn bpf(cmd: libc::c_long, attr: &mut [u64; 8]) -> io::Result<libc::c_long> {
    let size = std::mem::size_of_val(attr);
    // SAFETY: `attr` is a valid, writable buffer of `size` bytes for the whole call (the kernel
    // copies at most `size` bytes in and out); the pointers inside it (a path) are valid
    // NUL-terminated strings the caller keeps alive across the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `BPF_LINK_CREATE` of a cgroup program: the link's fd (closing it detaches, unless pinned).
fn link_create(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 8];
    // struct { __u32 prog_fd; __u32 target_fd; __u32 attach_type; __u32 flags; ... }
    attr[0] = u64::from(prog.as_raw_fd() as u32) | (u64::from(cgroup.as_raw_fd() as u32) << 32);
    attr[1] = u64::from(attach_type);
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    owned_fd(fd)
}

/// The descriptor a `bpf()` command returned, owned.
fn owned_fd(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    #[allow(
        unsafe_code,
        reason = "the fd a bpf() command returned is new and ours; see the SAFETY note"
    )]
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(fd)
}

/// `BPF_OBJ_GET`: opens a pinned BPF object (a program here).
fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = [0u64; 8];
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; ... }
    attr[0] = c.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    owned_fd(fd)
}

/// `BPF_OBJ_PIN`: pins a link (or any BPF object) at `path` on a bpffs.
fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = [0u64; 8];
    // struct { __aligned_u64 pathname; __u32 bpf_fd; __u32 file_flags; ... }
    attr[0] = c.as_ptr() as u64;
    attr[1] = u64::from(fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut attr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        assert_eq!(parse_value(&value(7, 9)), (7, 9));
        assert_eq!(parse_value(&value(u64::MAX, 0)), (u64::MAX, 0));
    }

    #[test]
    fn in_force_until_the_end_and_only_with_links() {
        let iso = Isolation {
            cgroup_id: 1,
            since_ns: 10,
            until_ns: Some(100),
            links: LINKS_PER_ISOLATION,
        };
        assert!(iso.in_force(99));
        assert!(!iso.in_force(100));
        assert!(Isolation {
            until_ns: None,
            ..iso
        }
        .in_force(u64::MAX));
        assert!(!Isolation { links: 0, ..iso }.in_force(50));
    }

    #[test]
    fn a_pin_dir_off_bpffs_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Isolator::new(dir.path().join("isolate"))
            .release(1)
            .expect_err("tmp is not bpffs");
        assert!(matches!(e, IsolateError::NoBpffs { .. }), "{e:?}");
        assert!(e.to_string().contains("bpffs"), "{e}");
    }
}
