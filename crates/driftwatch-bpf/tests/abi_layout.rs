//! The ABI layout test: every struct of `abi.h`, as the compiler laid it out in the compiled BPF
//! object (its `.BTF` section), must match the `#[repr(C)]` mirror in `driftwatch-abi` — same
//! size, same fields in the same order at the same offsets. Fails if a field moves on either
//! side.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use driftwatch_abi::{
    Config, DnsEvent, EventHeader, ExecEvent, ExitEvent, FileEvent, FileId, ForkEvent, MapEvent,
    NetEvent, Task,
};
use object::{Object, ObjectSection};

const BTF_MAGIC: u16 = 0xeb9f;

#[derive(Debug)]
struct BtfStruct {
    size: u32,
    /// (name, bit offset) in declaration order.
    members: Vec<(String, u32)>,
}

/// A minimal reader of the BTF type section: enough to list structs and their members.
fn btf_structs(btf: &[u8]) -> HashMap<String, BtfStruct> {
    let u16_at = |off: usize| u16::from_ne_bytes(btf[off..off + 2].try_into().expect("in bounds"));
    let u32_at = |off: usize| u32::from_ne_bytes(btf[off..off + 4].try_into().expect("in bounds"));

    assert_eq!(u16_at(0), BTF_MAGIC, "not native-endian BTF");
    let hdr_len = u32_at(4) as usize;
    let type_off = hdr_len + u32_at(8) as usize;
    let type_len = u32_at(12) as usize;
    let str_off = hdr_len + u32_at(16) as usize;
    let str_len = u32_at(20) as usize;
    let strings = &btf[str_off..str_off + str_len];
    let name = |off: u32| -> String {
        let s = &strings[off as usize..];
        let end = s.iter().position(|b| *b == 0).expect("NUL-terminated");
        String::from_utf8(s[..end].to_vec()).expect("UTF-8 name")
    };

    let mut out = HashMap::new();
    let mut p = type_off;
    let end = type_off + type_len;
    while p < end {
        let name_off = u32_at(p);
        let info = u32_at(p + 4);
        let size_or_type = u32_at(p + 8);
        let vlen = (info & 0xffff) as usize;
        let kind = (info >> 24) & 0x1f;
        let kind_flag = info >> 31 != 0;
        p += 12;
        let extra = match kind {
            1 => 4,              // INT
            2 | 7 | 8..=12 => 0, // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC
            3 => 12,             // ARRAY
            4 | 5 => {
                // STRUCT / UNION
                let members = (0..vlen)
                    .map(|i| {
                        let m = p + i * 12;
                        let raw = u32_at(m + 8);
                        // With kind_flag the top 8 bits are a bitfield size.
                        let bits = if kind_flag { raw & 0x00ff_ffff } else { raw };
                        (name(u32_at(m)), bits)
                    })
                    .collect();
                if kind == 4 {
                    out.insert(
                        name(name_off),
                        BtfStruct {
                            size: size_or_type,
                            members,
                        },
                    );
                }
                12 * vlen
            }
            6 => 8 * vlen,   // ENUM
            13 => 8 * vlen,  // FUNC_PROTO
            14 => 4,         // VAR
            15 => 12 * vlen, // DATASEC
            16 | 18 => 0,    // FLOAT, TYPE_TAG
            17 => 4,         // DECL_TAG
            19 => 12 * vlen, // ENUM64
            other => panic!("unknown BTF kind {other}"),
        };
        p += extra;
    }
    out
}

fn object_btf() -> HashMap<String, BtfStruct> {
    let obj = object::File::parse(driftwatch_bpf::EXEC_BPF_OBJECT).expect("parse BPF ELF");
    let sec = obj
        .section_by_name(".BTF")
        .expect("object has .BTF (compiled with -g)");
    btf_structs(sec.data().expect(".BTF data"))
}

/// Asserts one struct: size and every (field, offset) pair, in order, with no extra fields.
fn check(all: &HashMap<String, BtfStruct>, c_name: &str, size: usize, fields: &[(&str, usize)]) {
    let s = all
        .get(c_name)
        .unwrap_or_else(|| panic!("struct {c_name} is not in the BPF object's BTF"));
    assert_eq!(s.size as usize, size, "size of struct {c_name}");
    let btf: Vec<(&str, usize)> = s
        .members
        .iter()
        .map(|(n, bits)| (n.as_str(), *bits as usize / 8))
        .collect();
    assert_eq!(btf, fields, "fields of struct {c_name} (C vs Rust)");
}

macro_rules! fields {
    ($ty:ty: $($f:ident),* $(,)?) => {
        &[$((stringify!($f), offset_of!($ty, $f))),*]
    };
}

#[test]
fn abi_structs_match_compiled_bpf_object() {
    let all = object_btf();
    check(
        &all,
        "dw_event_header",
        size_of::<EventHeader>(),
        fields!(EventHeader:
        kind, version, len, ktime_ns),
    );
    check(
        &all,
        "dw_task",
        size_of::<Task>(),
        fields!(Task:
        pid, tgid, ppid, uid, gid, euid, egid, mntns_ino, cgroup_id, pidns_ino, _pad0, comm,
        start_ns),
    );
    check(
        &all,
        "dw_exec_event",
        size_of::<ExecEvent>(),
        fields!(ExecEvent:
        hdr, task, exe, flags, old_pid, filename_len, interp_len, path_len, path_components,
        argv_len, cwd_len, cwd_components, _pad1, filename, interp, path, argv, cwd),
    );
    check(
        &all,
        "dw_file_id",
        size_of::<FileId>(),
        fields!(FileId:
        ino, ctime_sec, mtime_sec, ctime_nsec, mtime_nsec, dev, nlink, size, s_magic, mode,
        _pad0),
    );
    check(
        &all,
        "dw_map_event",
        size_of::<MapEvent>(),
        fields!(MapEvent:
        hdr, task, file, flags, prot, map_flags, how, path_len, path_components, _pad0, _pad1,
        addr, len, off, path),
    );
    check(
        &all,
        "dw_file_event",
        size_of::<FileEvent>(),
        fields!(FileEvent:
        hdr, task, file, ret, flags, op_flags, mode, uid, gid, fd, dirfd1, dirfd2, op, path_len,
        path_components, name1_len, dir1_len, dir1_components, name2_len, dir2_len,
        dir2_components, _pad0, _pad1, path, name1, dir1, name2, dir2),
    );
    check(
        &all,
        "dw_net_event",
        size_of::<NetEvent>(),
        fields!(NetEvent:
        hdr, task, ret, fd, fd2, op, family, sock_type, protocol, flags, arg, lport, rport, _pad0,
        laddr, raddr),
    );
    check(
        &all,
        "dw_dns_event",
        size_of::<DnsEvent>(),
        fields!(DnsEvent:
        hdr, cgroup_id, family, sport, dport, payload_len, flags, udp_len, saddr, daddr, payload),
    );
    check(
        &all,
        "dw_fork_event",
        size_of::<ForkEvent>(),
        fields!(ForkEvent: hdr, child),
    );
    check(
        &all,
        "dw_exit_event",
        size_of::<ExitEvent>(),
        fields!(ExitEvent:
        hdr, task, exit_code, _pad0),
    );
    check(
        &all,
        "dw_config",
        size_of::<Config>(),
        fields!(Config: agent_tgid, enforce, host_mntns_ino, fmode_backing),
    );
    // The exec gate's maps are written as byte arrays by `driftwatch_bpf::GateMaps`
    // (`UpperFile::key`/`value`): dev then ino; ctime seconds then nanoseconds.
    check(&all, "dw_allow_key", 16, &[("dev", 0), ("ino", 8)]);
    // The exec gate reads dw_exec_args as bytes (`driftwatch_bpf::ExecArgs::parse`).
    check(
        &all,
        "dw_exec_args",
        16 + driftwatch_abi::DW_EXEC_ARGS_MAX * driftwatch_abi::DW_EXEC_ARG_LEN,
        &[
            ("ktime_ns", 0),
            ("argc", 8),
            ("truncated", 12),
            ("args", 16),
        ],
    );
    // dw_net_allow keys are written as bytes by `driftwatch_bpf::NetPeer` (prefix length, then
    // protocol, family, port, cgroup id and address).
    check(
        &all,
        "dw_net_allow_key",
        32,
        &[
            ("prefixlen", 0),
            ("protocol", 4),
            ("family", 5),
            ("port", 6),
            ("cgroup_id", 8),
            ("addr", 16),
        ],
    );
    check(
        &all,
        "dw_allow_value",
        16,
        &[("ctime_sec", 0), ("ctime_nsec", 8), ("_pad0", 12)],
    );
}

#[test]
fn btf_reader_sees_kernel_types_too() {
    // Sanity check of the reader itself on a struct we did not write.
    let all = object_btf();
    let upid = all.get("upid").expect("struct upid (used by CO-RE) in BTF");
    assert_eq!(upid.members.len(), 2);
}

/// `NAME = value` / `#define NAME value` pairs of `abi.h` whose name starts with `prefix`.
fn header_constants(prefix: &str) -> Vec<(String, u16)> {
    let header = include_str!("../bpf/include/abi.h");
    header
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("#define").trim();
            let rest = l.strip_prefix(prefix)?;
            let (name, value) = rest
                .split_once('=')
                .map(|(n, v)| (n.trim(), v))
                .or_else(|| rest.split_once(char::is_whitespace))?;
            let digits: String = value
                .trim()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some((name.to_string(), digits.parse().ok()?))
        })
        .collect()
}

/// The kernel's file-op and map-how numbers are named once, by `driftwatch-event`'s enums:
/// their discriminants must be the header's values, name for name.
#[test]
fn event_enums_carry_the_header_numbers() {
    use driftwatch_event::{FileOp, MapHow, NetOp};
    let ops: Vec<(String, u16)> = header_constants("DW_FILE_OP_")
        .into_iter()
        .filter(|(n, _)| n != "MAX")
        .collect();
    assert_eq!(ops.len(), FileOp::ALL.len(), "{ops:?}");
    for (name, value) in &ops {
        let op = FileOp::from_raw(*value).unwrap_or_else(|| panic!("DW_FILE_OP_{name}"));
        assert_eq!(op.as_str().to_ascii_uppercase(), *name);
        assert_eq!(op.raw(), *value);
    }
    assert_eq!(
        header_constants("DW_FILE_OP_")
            .iter()
            .find(|(n, _)| n == "MAX"),
        Some(&("MAX".to_string(), driftwatch_abi::DW_FILE_OP_MAX))
    );
    let net: Vec<(String, u16)> = header_constants("DW_NET_OP_")
        .into_iter()
        .filter(|(n, _)| n != "MAX")
        .collect();
    assert_eq!(net.len(), NetOp::ALL.len(), "{net:?}");
    for (name, value) in &net {
        let op = NetOp::from_raw(*value).unwrap_or_else(|| panic!("DW_NET_OP_{name}"));
        assert_eq!(op.as_str().to_ascii_uppercase(), *name);
        assert_eq!(op.raw(), *value);
    }
    assert_eq!(
        header_constants("DW_NET_OP_")
            .iter()
            .find(|(n, _)| n == "MAX"),
        Some(&("MAX".to_string(), driftwatch_abi::DW_NET_OP_MAX))
    );
    let hows = header_constants("DW_MAP_HOW_");
    assert_eq!(hows.len(), MapHow::ALL.len(), "{hows:?}");
    for (name, value) in &hows {
        let how = MapHow::from_raw(*value).unwrap_or_else(|| panic!("DW_MAP_HOW_{name}"));
        assert_eq!(format!("{how:?}").to_ascii_uppercase(), *name);
    }
}

/// Every record kind the header defines is one the decoder knows: a kind the kernel can write is
/// never an `UnknownKind` (which the agent counts as a decode error).
#[test]
fn decoder_knows_every_record_kind_of_the_header() {
    let kinds = header_constants("DW_EV_");
    assert!(kinds.len() >= 6, "{kinds:?}");
    for (name, kind) in kinds {
        let mut buf = vec![0u8; driftwatch_abi::EXEC_EVENT_SIZE];
        buf[0..2].copy_from_slice(&kind.to_ne_bytes());
        buf[2..4].copy_from_slice(&driftwatch_abi::DW_ABI_VERSION.to_ne_bytes());
        let len = u32::try_from(buf.len()).expect("fits");
        buf[4..8].copy_from_slice(&len.to_ne_bytes());
        // The length may be wrong for the kind; the kind itself must be known.
        let res = driftwatch_abi::decode(&buf);
        assert!(
            !matches!(res, Err(driftwatch_abi::DecodeError::UnknownKind(_))),
            "DW_EV_{name} ({kind}): {res:?}"
        );
    }
}
