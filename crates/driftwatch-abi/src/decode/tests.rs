use std::format;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::{
    ExecEvent, ExitEvent, FileEvent, FileId, ForkEvent, MapEvent, Task, AT_FDCWD, DW_EV_EXEC,
    DW_EV_FILE, EXEC_F_IN_POLICY, EXEC_F_KILLED, EXEC_F_ON_ROOT_MNT, EXEC_F_OVL_UPPER,
    EXEC_F_SCRIPT, FILE_EVENT_MIN_SIZE, FILE_EVENT_SIZE, FILE_F_HAVE_FILE, FILE_F_OVL_UPPER,
};

/// `renameat(AT_FDCWD, "a\nb", 3, "/etc/x")` from `/work`, as the kernel would emit it.
fn sample_file_op() -> Vec<u8> {
    let mut ev = FileEvent::zeroed();
    ev.task = sample_task(7);
    ev.op = 8; // DW_FILE_OP_RENAMEAT
    ev.ret = -2;
    ev.flags = FILE_F_OVL_UPPER;
    ev.fd = -1;
    ev.dirfd1 = AT_FDCWD;
    ev.dirfd2 = 3;
    ev.uid = u32::MAX;
    ev.gid = u32::MAX;
    let name1 = b"a\nb\xff";
    ev.name1[..name1.len()].copy_from_slice(name1);
    ev.name1_len = name1.len() as u16;
    let dir1 = b"work\0";
    ev.dir1[..dir1.len()].copy_from_slice(dir1);
    ev.dir1_len = dir1.len() as u16;
    ev.dir1_components = 1;
    let name2 = b"/etc/x";
    ev.name2[..name2.len()].copy_from_slice(name2);
    ev.name2_len = name2.len() as u16;
    let len = FILE_EVENT_MIN_SIZE + name1.len() + dir1.len() + name2.len();
    ev.hdr = EventHeader {
        kind: DW_EV_FILE,
        version: DW_ABI_VERSION,
        len: len as u32,
        ktime_ns: 5,
    };
    let mut buf = vec![0u8; FILE_EVENT_SIZE];
    let n = ev.encode(&mut buf);
    assert_eq!(n, len);
    buf.truncate(n);
    buf
}

#[test]
fn file_round_trip() {
    let buf = sample_file_op();
    let Ok(Record::File(f)) = decode(&buf) else {
        panic!("{:?}", decode(&buf));
    };
    assert_eq!(f.op, 8);
    assert_eq!(f.ret, -2);
    assert_eq!(f.task.pid, 7);
    assert_eq!(f.name1, b"a\nb\xff");
    assert_eq!(f.dir1_raw, b"work\0");
    assert_eq!(
        f.dir1_components_root_first().collect::<Vec<_>>(),
        vec![&b"work"[..]]
    );
    assert_eq!(f.name2, b"/etc/x");
    assert!(f.dir2_raw.is_empty() && f.path_raw.is_empty());
    assert_eq!((f.dirfd1, f.dirfd2, f.fd), (AT_FDCWD, 3, -1));
    assert!(f.has(FILE_F_OVL_UPPER) && !f.has(FILE_F_HAVE_FILE));
    assert_eq!(f.path().to_string(), "/");
}

#[test]
fn file_ops_round_trip_and_bad_op_rejected() {
    for op in 1..=crate::DW_FILE_OP_MAX {
        let mut buf = sample_file_op();
        set_u16(&mut buf, offset_of!(FileEvent, op), op);
        match decode(&buf) {
            Ok(Record::File(f)) => assert_eq!(f.op, op),
            other => panic!("op {op}: {other:?}"),
        }
    }
    for bad in [0, crate::DW_FILE_OP_MAX + 1] {
        let mut buf = sample_file_op();
        set_u16(&mut buf, offset_of!(FileEvent, op), bad);
        assert_eq!(decode(&buf), Err(DecodeError::UnknownFileOp(bad)));
    }
    let mut buf = sample_file_op();
    set_u16(&mut buf, offset_of!(FileEvent, op), 99);
    assert_eq!(decode(&buf), Err(DecodeError::UnknownFileOp(99)));
    let mut buf = sample_file_op();
    set_u16(&mut buf, offset_of!(FileEvent, name2_len), 4097);
    assert!(matches!(
        decode(&buf),
        Err(DecodeError::LengthExceedsArray { field: "name2", .. })
    ));
    let mut buf = sample_file_op();
    set_u16(&mut buf, offset_of!(FileEvent, dir2_len), 10);
    assert!(matches!(
        decode(&buf),
        Err(DecodeError::FieldBeyondRecord { field: "dir2", .. })
    ));
}

fn sample_file() -> FileId {
    FileId {
        ino: 1_311_000,
        ctime_sec: 1_700_000_000,
        ctime_nsec: 123,
        mtime_sec: 1_600_000_000,
        mtime_nsec: 456,
        dev: (8 << 20) | 1,
        nlink: 1,
        size: 43_000,
        s_magic: 0xef53,
        mode: 0o100_755,
        _pad0: 0,
    }
}

fn sample_task(pid: u32) -> Task {
    let mut comm = [0u8; DW_COMM_LEN];
    comm[..4].copy_from_slice(b"true");
    Task {
        pid,
        tgid: pid,
        ppid: 1,
        uid: 1000,
        gid: 1001,
        euid: 1002,
        egid: 1003,
        mntns_ino: 4_026_531_841,
        cgroup_id: 0x1234_5678_9abc,
        pidns_ino: 4_026_531_836,
        _pad0: 0,
        comm,
        start_ns: 5_000_000_123,
    }
}

/// A well-formed exec record for `/usr/bin/true a b` as the kernel would emit it.
fn sample_exec() -> Vec<u8> {
    let mut ev = ExecEvent::zeroed();
    ev.task = sample_task(42);
    ev.exe = sample_file();
    ev.flags = EXEC_F_ON_ROOT_MNT;
    ev.old_pid = 42;
    let filename = b"/bin/true";
    ev.filename[..filename.len()].copy_from_slice(filename);
    ev.filename_len = filename.len() as u16;
    let path = b"true\0bin\0usr\0";
    ev.path[..path.len()].copy_from_slice(path);
    ev.path_len = path.len() as u16;
    ev.path_components = 3;
    let argv = b"/bin/true\0a\0\0b\0";
    ev.argv[..argv.len()].copy_from_slice(argv);
    ev.argv_len = argv.len() as u16;
    let len = EXEC_EVENT_MIN_SIZE + filename.len() + path.len() + argv.len();
    ev.hdr = EventHeader {
        kind: DW_EV_EXEC,
        version: DW_ABI_VERSION,
        len: len as u32,
        ktime_ns: 99,
    };
    let mut buf = vec![0u8; EXEC_EVENT_SIZE];
    let n = ev.encode(&mut buf);
    assert_eq!(n, len);
    buf.truncate(n);
    buf
}

/// `./x.sh` run by `/bin/sh` (shebang) from `/work/dir`, as a container exec is reported.
fn sample_script_exec() -> Vec<u8> {
    let mut ev = ExecEvent::zeroed();
    ev.task = sample_task(50);
    ev.exe = sample_file();
    ev.flags = EXEC_F_ON_ROOT_MNT | EXEC_F_SCRIPT;
    let parts: [(&[u8], &mut [u8], &mut u16); 5] = [
        (b"./x.sh", &mut ev.filename, &mut ev.filename_len),
        (b"/bin/sh", &mut ev.interp, &mut ev.interp_len),
        (b"dash\0bin\0usr\0", &mut ev.path, &mut ev.path_len),
        (b"/bin/sh\0./x.sh\0", &mut ev.argv, &mut ev.argv_len),
        (b"dir\0work\0", &mut ev.cwd, &mut ev.cwd_len),
    ];
    let mut len = EXEC_EVENT_MIN_SIZE;
    for (src, dst, dst_len) in parts {
        dst[..src.len()].copy_from_slice(src);
        *dst_len = src.len() as u16;
        len += src.len();
    }
    ev.path_components = 3;
    ev.cwd_components = 2;
    ev.hdr = EventHeader {
        kind: DW_EV_EXEC,
        version: DW_ABI_VERSION,
        len: len as u32,
        ktime_ns: 100,
    };
    let mut buf = vec![0u8; EXEC_EVENT_SIZE];
    let n = ev.encode(&mut buf);
    assert_eq!(n, len);
    buf.truncate(n);
    buf
}

/// A memfd mapped executable by mmap, killed under enforce.
fn sample_map() -> Vec<u8> {
    let mut ev = MapEvent::zeroed();
    ev.task = sample_task(60);
    ev.file = FileId {
        nlink: 0,
        s_magic: crate::TMPFS_MAGIC,
        ..sample_file()
    };
    ev.flags = crate::EXEC_F_MEMFD | EXEC_F_IN_POLICY | EXEC_F_KILLED;
    ev.prot = 5;
    ev.map_flags = 2;
    ev.how = crate::MAP_HOW_MMAP;
    ev.addr = 0x7f00_0000_0000;
    ev.len = 8192;
    ev.off = 4096;
    let path = b"memfd:x (deleted)\0";
    ev.path[..path.len()].copy_from_slice(path);
    ev.path_len = path.len() as u16;
    ev.path_components = 1;
    let len = MAP_EVENT_MIN_SIZE + path.len();
    ev.hdr = EventHeader {
        kind: DW_EV_MAP,
        version: DW_ABI_VERSION,
        len: len as u32,
        ktime_ns: 101,
    };
    let mut buf = vec![0u8; MAP_EVENT_SIZE];
    let n = ev.encode(&mut buf);
    assert_eq!(n, len);
    buf.truncate(n);
    buf
}

fn set_u16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_ne_bytes());
}

fn set_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

#[test]
fn exec_round_trip() {
    let buf = sample_exec();
    let Record::Exec(e) = decode(&buf).unwrap() else {
        panic!("not an exec")
    };
    assert_eq!(e.ktime_ns, 99);
    assert_eq!(e.task.pid, 42);
    assert_eq!(e.task.ppid, 1);
    assert_eq!(e.task.uid, 1000);
    assert_eq!(e.task.egid, 1003);
    assert_eq!(e.task.cgroup_id, 0x1234_5678_9abc);
    assert_eq!(e.task.pidns_ino, 4_026_531_836);
    assert_eq!(e.task.start_ns, 5_000_000_123);
    assert_eq!(e.task.comm_bytes(), b"true");
    assert_eq!(e.exe_ino, 1_311_000);
    assert_eq!((e.exe_ctime_sec, e.exe_ctime_nsec), (1_700_000_000, 123));
    assert_eq!((e.exe_mtime_sec, e.exe_mtime_nsec), (1_600_000_000, 456));
    assert_eq!(e.exe_dev, (8 << 20) | 1);
    assert_eq!(e.exe_size, 43_000);
    assert_eq!(e.exe_s_magic, 0xef53);
    assert_eq!(e.exe_mode, 0o100_755);
    assert_eq!(e.old_pid, 42);
    assert!(e.has(EXEC_F_ON_ROOT_MNT));
    assert!(!e.has(EXEC_F_OVL_UPPER));
    assert_eq!(e.filename, b"/bin/true");
    assert_eq!(e.path_components, 3);
    let comps: Vec<&[u8]> = e.path_components_root_first().collect();
    assert_eq!(comps, [&b"usr"[..], b"bin", b"true"]);
    assert_eq!(e.path().to_string(), "/usr/bin/true");
    let args: Vec<&[u8]> = e.args().collect();
    assert_eq!(args, [&b"/bin/true"[..], b"a", b"", b"b"]);
    assert!(e.interp.is_empty() && !e.has(EXEC_F_SCRIPT));
    assert!(e.cwd_raw.is_empty());
    assert_eq!(e.cwd_components_root_first().count(), 0);
    assert_eq!(e.exe().ino, 1_311_000);
    assert_eq!(e.exe().mode, 0o100_755);
}

#[test]
fn script_exec_round_trip() {
    let buf = sample_script_exec();
    let Record::Exec(e) = decode(&buf).unwrap() else {
        panic!("not an exec")
    };
    assert!(e.has(EXEC_F_SCRIPT));
    assert_eq!(e.filename, b"./x.sh");
    assert_eq!(e.interp, b"/bin/sh");
    assert_eq!(e.path().to_string(), "/usr/bin/dash");
    let args: Vec<&[u8]> = e.args().collect();
    assert_eq!(args, [&b"/bin/sh"[..], b"./x.sh"]);
    let cwd: Vec<&[u8]> = e.cwd_components_root_first().collect();
    assert_eq!(cwd, [&b"work"[..], b"dir"]);
    assert_eq!(e.cwd().to_string(), "/work/dir");
    assert_eq!(e.cwd_components, 2);
    assert_eq!(e.exe(), decode_file_of(&buf));
}

fn decode_file_of(buf: &[u8]) -> FileRecord {
    match decode(buf).unwrap() {
        Record::Exec(e) => e.exe(),
        Record::Map(m) => m.file,
        _ => panic!("no file"),
    }
}

#[test]
fn map_round_trip() {
    let buf = sample_map();
    let rec = decode(&buf).unwrap();
    assert_eq!(rec.ktime_ns(), 101);
    assert_eq!(rec.task().map(|t| t.pid), Some(60));
    let Record::Map(m) = rec else {
        panic!("not a map")
    };
    assert_eq!(m.how, crate::MAP_HOW_MMAP);
    assert_eq!((m.prot, m.map_flags), (5, 2));
    assert_eq!((m.addr, m.len, m.off), (0x7f00_0000_0000, 8192, 4096));
    assert!(m.has(crate::EXEC_F_MEMFD | EXEC_F_IN_POLICY | EXEC_F_KILLED));
    assert!(!m.has(EXEC_F_OVL_UPPER));
    assert_eq!(m.file.nlink, 0);
    assert_eq!(m.file.ino, 1_311_000);
    assert_eq!((m.file.ctime_sec, m.file.ctime_nsec), (1_700_000_000, 123));
    assert_eq!((m.file.mtime_sec, m.file.mtime_nsec), (1_600_000_000, 456));
    assert_eq!(m.file.dev, (8 << 20) | 1);
    assert_eq!(m.file.size, 43_000);
    assert_eq!(m.file.s_magic, crate::TMPFS_MAGIC);
    assert_eq!(m.path_components, 1);
    let comps: Vec<&[u8]> = m.path_components_root_first().collect();
    assert_eq!(comps, [&b"memfd:x (deleted)"[..]]);
    assert_eq!(m.path().to_string(), "/memfd:x (deleted)");

    // mprotect
    let mut buf = sample_map();
    set_u16(&mut buf, offset_of!(MapEvent, how), crate::MAP_HOW_MPROTECT);
    let Ok(Record::Map(m)) = decode(&buf) else {
        panic!()
    };
    assert_eq!(m.how, crate::MAP_HOW_MPROTECT);
    set_u16(&mut buf, offset_of!(MapEvent, how), crate::MAP_HOW_INTERP);
    let Ok(Record::Map(m)) = decode(&buf) else {
        panic!()
    };
    assert_eq!(m.how, crate::MAP_HOW_INTERP);
}

#[test]
fn map_bad_fields_rejected() {
    let mut buf = sample_map();
    set_u16(&mut buf, offset_of!(MapEvent, how), 4);
    assert_eq!(decode(&buf), Err(DecodeError::UnknownMapHow(4)));
    let mut buf = sample_map();
    set_u16(&mut buf, offset_of!(MapEvent, how), 0);
    assert_eq!(decode(&buf), Err(DecodeError::UnknownMapHow(0)));

    let mut buf = sample_map();
    set_u16(
        &mut buf,
        offset_of!(MapEvent, path_len),
        DW_PATH_MAX as u16 + 1,
    );
    assert!(matches!(
        decode(&buf),
        Err(DecodeError::LengthExceedsArray { field: "path", .. })
    ));

    let mut buf = sample_map();
    set_u16(
        &mut buf,
        offset_of!(MapEvent, path_components),
        DW_PATH_MAX_COMPONENTS as u16 + 1,
    );
    assert!(matches!(
        decode(&buf),
        Err(DecodeError::LengthExceedsArray {
            field: "path_components",
            ..
        })
    ));

    let mut buf = sample_map();
    let len = buf.len();
    set_u16(&mut buf, offset_of!(MapEvent, path_len), 100);
    assert_eq!(
        decode(&buf),
        Err(DecodeError::FieldBeyondRecord {
            field: "path",
            end: MAP_EVENT_MIN_SIZE + 100,
            len,
        })
    );

    let mut buf = sample_map();
    set_u32(
        &mut buf,
        offset_of!(EventHeader, len),
        MAP_EVENT_MIN_SIZE as u32 - 1,
    );
    assert!(matches!(
        decode(&buf),
        Err(DecodeError::BadLength {
            kind: DW_EV_MAP,
            ..
        })
    ));
    set_u32(
        &mut buf,
        offset_of!(EventHeader, len),
        MAP_EVENT_SIZE as u32 + 1,
    );
    assert!(matches!(
        decode(&buf),
        Err(DecodeError::BadLength {
            kind: DW_EV_MAP,
            ..
        })
    ));
}

#[test]
fn exec_full_size_record_and_trailing_bytes_accepted() {
    let mut buf = sample_exec();
    buf.resize(EXEC_EVENT_SIZE + 8, 0xAA);
    // hdr.len still says the trimmed length: the extra bytes are ignored.
    assert!(matches!(decode(&buf), Ok(Record::Exec(_))));
    set_u32(
        &mut buf,
        offset_of!(EventHeader, len),
        EXEC_EVENT_SIZE as u32,
    );
    assert!(matches!(decode(&buf), Ok(Record::Exec(_))));
}

#[test]
fn empty_argv_and_path() {
    let mut buf = sample_exec();
    set_u16(&mut buf, offset_of!(ExecEvent, argv_len), 0);
    set_u16(&mut buf, offset_of!(ExecEvent, path_len), 0);
    let Record::Exec(e) = decode(&buf).unwrap() else {
        panic!()
    };
    assert_eq!(e.args().count(), 0);
    assert_eq!(e.path_components_root_first().count(), 0);
    assert_eq!(e.path().to_string(), "/");
}

#[test]
fn fork_and_exit_round_trip() {
    let fork = ForkEvent {
        hdr: EventHeader {
            kind: DW_EV_FORK,
            version: DW_ABI_VERSION,
            len: FORK_EVENT_SIZE as u32,
            ktime_ns: 7,
        },
        child: sample_task(43),
    };
    let Record::Fork(f) = decode(&fork.to_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(f.ktime_ns, 7);
    assert_eq!(f.child.pid, 43);
    assert_eq!(f.child.comm_bytes(), b"true");

    let exit = ExitEvent {
        hdr: EventHeader {
            kind: DW_EV_EXIT,
            version: DW_ABI_VERSION,
            len: EXIT_EVENT_SIZE as u32,
            ktime_ns: 8,
        },
        task: sample_task(44),
        exit_code: 9,
        _pad0: 0,
    };
    let bytes = exit.to_bytes();
    let rec = decode(&bytes).unwrap();
    assert_eq!(rec.ktime_ns(), 8);
    assert_eq!(rec.task().map(|t| t.pid), Some(44));
    let Record::Exit(e) = rec else { panic!() };
    assert_eq!(e.exit_code, 9);
}

#[test]
fn short_header_is_truncated() {
    assert_eq!(
        decode(&[]),
        Err(DecodeError::Truncated { need: 16, got: 0 })
    );
    assert_eq!(
        decode(&[1, 0, 1, 0]),
        Err(DecodeError::Truncated { need: 16, got: 4 })
    );
}

#[test]
fn record_shorter_than_hdr_len_is_truncated() {
    let buf = sample_exec();
    let cut = &buf[..buf.len() - 1];
    assert_eq!(
        decode(cut),
        Err(DecodeError::Truncated {
            need: buf.len(),
            got: buf.len() - 1
        })
    );
}

#[test]
fn unknown_kind_and_wrong_version() {
    let mut buf = sample_exec();
    set_u16(&mut buf, offset_of!(EventHeader, kind), 77);
    assert_eq!(decode(&buf), Err(DecodeError::UnknownKind(77)));
    let mut buf = sample_exec();
    for wrong in [0, DW_ABI_VERSION - 1, DW_ABI_VERSION + 1, u16::MAX] {
        set_u16(&mut buf, offset_of!(EventHeader, version), wrong);
        assert_eq!(decode(&buf), Err(DecodeError::BadVersion(wrong)));
    }
}

#[test]
fn bad_hdr_len() {
    let mut buf = sample_exec();
    set_u32(&mut buf, offset_of!(EventHeader, len), 100);
    assert!(matches!(
        decode(&buf),
        Err(DecodeError::BadLength {
            kind: 1,
            len: 100,
            ..
        })
    ));
    set_u32(&mut buf, offset_of!(EventHeader, len), u32::MAX);
    assert!(matches!(decode(&buf), Err(DecodeError::BadLength { .. })));
    let fork = ForkEvent {
        hdr: EventHeader {
            kind: DW_EV_FORK,
            version: DW_ABI_VERSION,
            len: 81,
            ktime_ns: 0,
        },
        ..ForkEvent::default()
    };
    let mut bytes = fork.to_bytes().to_vec();
    bytes.push(0);
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::BadLength {
            kind: 2,
            len: 81,
            ..
        })
    ));
}

#[test]
fn oversized_lengths_rejected() {
    for (field, off, max) in [
        (
            "filename",
            offset_of!(ExecEvent, filename_len),
            DW_FILENAME_MAX,
        ),
        ("path", offset_of!(ExecEvent, path_len), DW_PATH_MAX),
        ("argv", offset_of!(ExecEvent, argv_len), DW_ARGV_MAX),
        ("interp", offset_of!(ExecEvent, interp_len), DW_INTERP_MAX),
        ("cwd", offset_of!(ExecEvent, cwd_len), DW_CWD_MAX),
        (
            "path_components",
            offset_of!(ExecEvent, path_components),
            DW_PATH_MAX_COMPONENTS,
        ),
        (
            "cwd_components",
            offset_of!(ExecEvent, cwd_components),
            DW_PATH_MAX_COMPONENTS,
        ),
    ] {
        let mut buf = sample_exec();
        set_u16(&mut buf, off, max as u16 + 1);
        assert_eq!(
            decode(&buf),
            Err(DecodeError::LengthExceedsArray {
                field,
                len: max + 1,
                max
            }),
            "{field}"
        );
    }
}

#[test]
fn argv_beyond_record_rejected() {
    let mut buf = sample_exec();
    let len = buf.len();
    set_u16(&mut buf, offset_of!(ExecEvent, argv_len), 100);
    assert_eq!(
        decode(&buf),
        Err(DecodeError::FieldBeyondRecord {
            field: "argv",
            end: EXEC_EVENT_MIN_SIZE + b"/bin/true".len() + b"true\0bin\0usr\0".len() + 100,
            len,
        })
    );
}

#[test]
fn cwd_beyond_record_rejected() {
    let mut buf = sample_script_exec();
    let len = buf.len();
    set_u16(&mut buf, offset_of!(ExecEvent, cwd_len), 10);
    assert_eq!(
        decode(&buf),
        Err(DecodeError::FieldBeyondRecord {
            field: "cwd",
            end: len + 1,
            len,
        })
    );
}

#[test]
fn errors_display() {
    let s = format!("{}", DecodeError::Truncated { need: 16, got: 3 });
    assert_eq!(s, "truncated record: need 16 bytes, got 3");
}

#[test]
fn config_bytes() {
    let c = crate::Config {
        agent_tgid: 0x0102_0304,
        enforce: 1,
        host_mntns_ino: 0x0a0b_0c0d,
        fmode_backing: 1 << 24,
    };
    let b = c.to_bytes();
    assert_eq!(&b[..4], &0x0102_0304u32.to_ne_bytes());
    assert_eq!(&b[4..8], &1u32.to_ne_bytes());
    assert_eq!(&b[8..12], &0x0a0b_0c0du32.to_ne_bytes());
    assert_eq!(&b[12..], &(1u32 << 24).to_ne_bytes());
}

#[test]
fn fmode_backing_by_release() {
    use crate::fmode_backing_for_release as f;
    assert_eq!(f("5.15.0-91-generic"), 0);
    assert_eq!(f("6.1.0-18-amd64"), 0);
    assert_eq!(f("6.5.0"), 1 << 25);
    assert_eq!(f("6.12.48+deb13-amd64"), 1 << 25);
    assert_eq!(f("6.13"), 1 << 25);
    assert_eq!(f("6.14.0-rc1"), 1 << 24);
    assert_eq!(f("6.18.0-1-amd64"), 1 << 24);
    assert_eq!(f("7.0.0"), 1 << 24);
    assert_eq!(f(""), 0);
    assert_eq!(f("garbage"), 0);
    assert_eq!(f("6"), 0);
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8000)) {
        let _ = decode(&bytes);
    }

    /// Valid headers with random bodies exercise the per-kind paths, not just header rejection.
    #[test]
    fn decode_never_panics_with_valid_header(
        kind in 0u16..9,
        len in 0u32..8000,
        body in proptest::collection::vec(any::<u8>(), 0..8000),
    ) {
        let mut buf = vec![0u8; 16];
        buf[0..2].copy_from_slice(&kind.to_ne_bytes());
        buf[2..4].copy_from_slice(&DW_ABI_VERSION.to_ne_bytes());
        buf[4..8].copy_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&body);
        match decode(&buf) {
            Ok(Record::Exec(e)) => {
                let _ = e.path().to_string();
                let _ = e.cwd().to_string();
                let _ = e.args().count();
                let _ = e.cwd_components_root_first().count();
            }
            Ok(Record::Map(m)) => {
                let _ = m.path().to_string();
                let _ = m.path_components_root_first().count();
            }
            Ok(Record::File(f)) => {
                let _ = f.path().to_string();
                let _ = f.dir1_components_root_first().count();
                let _ = f.dir2_components_root_first().count();
            }
            _ => {}
        }
    }

    #[test]
    fn exec_lengths_fuzzed(fl in any::<u16>(), pl in any::<u16>(), al in any::<u16>(), pc in any::<u16>()) {
        let mut buf = sample_exec();
        buf.resize(EXEC_EVENT_SIZE, 0);
        set_u32(&mut buf, offset_of!(EventHeader, len), EXEC_EVENT_SIZE as u32);
        set_u16(&mut buf, offset_of!(ExecEvent, filename_len), fl);
        set_u16(&mut buf, offset_of!(ExecEvent, path_len), pl);
        set_u16(&mut buf, offset_of!(ExecEvent, argv_len), al);
        set_u16(&mut buf, offset_of!(ExecEvent, path_components), pc);
        let ok = usize::from(fl) <= DW_FILENAME_MAX && usize::from(pl) <= DW_PATH_MAX
            && usize::from(al) <= DW_ARGV_MAX && usize::from(pc) <= DW_PATH_MAX_COMPONENTS;
        let r = decode(&buf);
        prop_assert_eq!(r.is_ok(), ok);
        if let Ok(Record::Exec(e)) = r {
            prop_assert_eq!(e.filename.len(), usize::from(fl));
            prop_assert_eq!(e.path_raw.len(), usize::from(pl));
            prop_assert_eq!(e.argv.len(), usize::from(al));
        }
    }

    /// All five lengths at once, in a record of random length: accepted exactly when every
    /// length fits its array and the packed parts fit the record.
    #[test]
    fn exec_packed_lengths_fuzzed(
        lens in proptest::array::uniform5(0u16..5000),
        comps in proptest::array::uniform2(0u16..70),
        rec_len in EXEC_EVENT_MIN_SIZE..=EXEC_EVENT_SIZE,
    ) {
        let mut buf = sample_script_exec();
        buf.resize(rec_len, 0x5a);
        set_u32(&mut buf, offset_of!(EventHeader, len), rec_len as u32);
        let fields = [
            (offset_of!(ExecEvent, filename_len), DW_FILENAME_MAX),
            (offset_of!(ExecEvent, interp_len), DW_INTERP_MAX),
            (offset_of!(ExecEvent, path_len), DW_PATH_MAX),
            (offset_of!(ExecEvent, argv_len), DW_ARGV_MAX),
            (offset_of!(ExecEvent, cwd_len), DW_CWD_MAX),
        ];
        for ((off, _), len) in fields.iter().zip(lens) {
            set_u16(&mut buf, *off, len);
        }
        set_u16(&mut buf, offset_of!(ExecEvent, path_components), comps[0]);
        set_u16(&mut buf, offset_of!(ExecEvent, cwd_components), comps[1]);
        let fit = fields.iter().zip(lens).all(|((_, max), l)| usize::from(l) <= *max)
            && comps.iter().all(|c| usize::from(*c) <= DW_PATH_MAX_COMPONENTS);
        let total: usize = EXEC_EVENT_MIN_SIZE + lens.iter().map(|l| usize::from(*l)).sum::<usize>();
        let r = decode(&buf);
        prop_assert_eq!(r.is_ok(), fit && total <= rec_len);
        if let Ok(Record::Exec(e)) = r {
            prop_assert_eq!(e.filename.len(), usize::from(lens[0]));
            prop_assert_eq!(e.interp.len(), usize::from(lens[1]));
            prop_assert_eq!(e.path_raw.len(), usize::from(lens[2]));
            prop_assert_eq!(e.argv.len(), usize::from(lens[3]));
            prop_assert_eq!(e.cwd_raw.len(), usize::from(lens[4]));
            let _ = e.cwd().to_string();
        }
    }

    #[test]
    fn map_fields_fuzzed(
        pl in any::<u16>(),
        pc in any::<u16>(),
        how in any::<u16>(),
        rec_len in 0usize..=MAP_EVENT_SIZE + 8,
    ) {
        let mut buf = sample_map();
        buf.resize(rec_len.max(EVENT_HEADER_SIZE), 0);
        set_u32(&mut buf, offset_of!(EventHeader, len), rec_len as u32);
        if buf.len() >= MAP_EVENT_MIN_SIZE {
            set_u16(&mut buf, offset_of!(MapEvent, path_len), pl);
            set_u16(&mut buf, offset_of!(MapEvent, path_components), pc);
            set_u16(&mut buf, offset_of!(MapEvent, how), how);
        }
        let ok = (MAP_EVENT_MIN_SIZE..=MAP_EVENT_SIZE).contains(&rec_len)
            && usize::from(pl) <= DW_PATH_MAX
            && usize::from(pc) <= DW_PATH_MAX_COMPONENTS
            && (1..=2).contains(&how)
            && MAP_EVENT_MIN_SIZE + usize::from(pl) <= rec_len;
        let r = decode(&buf);
        prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
        if let Ok(Record::Map(m)) = r {
            prop_assert_eq!(m.path_raw.len(), usize::from(pl));
            let _ = m.path().to_string();
        }
    }

    #[test]
    fn file_lengths_fuzzed(
        lens in proptest::array::uniform5(0u16..5000),
        comps in proptest::array::uniform3(0u16..70),
        op in 0u16..30,
        rec_len in 0usize..=FILE_EVENT_SIZE + 8,
    ) {
        let mut buf = sample_file_op();
        buf.resize(rec_len.max(EVENT_HEADER_SIZE), 0);
        set_u32(&mut buf, offset_of!(EventHeader, len), rec_len as u32);
        if buf.len() >= FILE_EVENT_MIN_SIZE {
            for (off, v) in [
                (offset_of!(FileEvent, path_len), lens[0]),
                (offset_of!(FileEvent, name1_len), lens[1]),
                (offset_of!(FileEvent, dir1_len), lens[2]),
                (offset_of!(FileEvent, name2_len), lens[3]),
                (offset_of!(FileEvent, dir2_len), lens[4]),
                (offset_of!(FileEvent, path_components), comps[0]),
                (offset_of!(FileEvent, dir1_components), comps[1]),
                (offset_of!(FileEvent, dir2_components), comps[2]),
                (offset_of!(FileEvent, op), op),
            ] {
                set_u16(&mut buf, off, v);
            }
        }
        let total: usize = lens.iter().map(|l| usize::from(*l)).sum();
        let ok = (FILE_EVENT_MIN_SIZE..=FILE_EVENT_SIZE).contains(&rec_len)
            && lens.iter().all(|l| usize::from(*l) <= DW_PATH_MAX)
            && comps.iter().all(|c| usize::from(*c) <= DW_PATH_MAX_COMPONENTS)
            && (1..=23).contains(&op)
            && FILE_EVENT_MIN_SIZE + total <= rec_len;
        let r = decode(&buf);
        prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
        if let Ok(Record::File(f)) = r {
            prop_assert_eq!(f.name2.len(), usize::from(lens[3]));
            let _ = f.path().to_string();
        }
    }
}

#[test]
fn net_round_trip_bad_op_and_length_rejected() {
    use crate::{NetEvent, DW_EV_NET, NET_EVENT_SIZE, NET_F_HAVE_SOCK, NET_F_REMOTE_SOCK};
    let mut ev = NetEvent {
        hdr: EventHeader {
            kind: DW_EV_NET,
            version: DW_ABI_VERSION,
            len: NET_EVENT_SIZE as u32,
            ktime_ns: 11,
        },
        task: sample_task(45),
        ret: -115,
        fd: 3,
        fd2: -1,
        op: 2, // DW_NET_OP_CONNECT
        family: crate::AF_INET6,
        sock_type: 1,
        protocol: 6,
        flags: NET_F_HAVE_SOCK | NET_F_REMOTE_SOCK,
        arg: 0,
        lport: 40000,
        rport: 8080,
        _pad0: 0,
        laddr: [0; 16],
        raddr: [0; 16],
    };
    ev.raddr[15] = 1;
    ev.laddr[0] = 0xfe;
    let bytes = ev.to_bytes();
    let Record::Net(n) = decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!((n.ktime_ns, n.task.pid, n.op, n.ret), (11, 45, 2, -115));
    assert_eq!(
        (n.fd, n.fd2, n.family, n.sock_type, n.protocol),
        (3, -1, 10, 1, 6)
    );
    assert_eq!((n.lport, n.rport), (40000, 8080));
    assert_eq!((n.laddr[0], n.raddr[15]), (0xfe, 1));
    assert!(n.has(NET_F_REMOTE_SOCK) && !n.has(crate::NET_F_REMOTE_ARG));
    for bad in [0u16, crate::DW_NET_OP_MAX + 1, u16::MAX] {
        ev.op = bad;
        assert_eq!(decode(&ev.to_bytes()), Err(DecodeError::UnknownNetOp(bad)));
    }
    ev.op = 1;
    ev.hdr.len = NET_EVENT_SIZE as u32 - 1;
    assert!(matches!(
        decode(&ev.to_bytes()),
        Err(DecodeError::BadLength {
            kind: DW_EV_NET,
            ..
        })
    ));
}

#[test]
fn dns_round_trip_payload_cut_to_its_length_and_lengths_checked() {
    use crate::{
        DnsEvent, DNS_EVENT_MIN_SIZE, DNS_EVENT_SIZE, DNS_F_TRUNCATED, DW_DNS_PAYLOAD_MAX,
        DW_EV_DNS,
    };
    let mut ev = DnsEvent {
        hdr: EventHeader {
            kind: DW_EV_DNS,
            version: DW_ABI_VERSION,
            len: (DNS_EVENT_MIN_SIZE + 20) as u32,
            ktime_ns: 12,
        },
        cgroup_id: 99,
        family: crate::AF_INET,
        sport: 53,
        dport: 40000,
        payload_len: 20,
        flags: DNS_F_TRUNCATED,
        udp_len: 700,
        ..DnsEvent::default()
    };
    ev.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    for (i, b) in ev.payload.iter_mut().enumerate() {
        *b = i as u8;
    }
    let bytes = ev.to_bytes();
    // The wire record stops after the payload's length; the rest of the struct is not sent.
    let wire = &bytes[..DNS_EVENT_MIN_SIZE + 20];
    let Record::Dns(d) = decode(wire).unwrap() else {
        panic!()
    };
    assert_eq!(
        (d.ktime_ns, d.cgroup_id, d.family),
        (12, 99, crate::AF_INET)
    );
    assert_eq!((d.sport, d.dport, d.udp_len), (53, 40000, 700));
    assert_eq!(d.payload, &ev.payload[..20]);
    assert_eq!(&d.saddr[..4], &[10, 0, 0, 1]);
    assert!(d.has(DNS_F_TRUNCATED));
    assert!(decode(wire).unwrap().task().is_none(), "no task");
    // payload_len beyond the record, beyond the array; a record longer than the struct
    ev.payload_len = 21;
    assert!(matches!(
        decode(&ev.to_bytes()[..DNS_EVENT_MIN_SIZE + 20]),
        Err(DecodeError::FieldBeyondRecord {
            field: "payload",
            ..
        })
    ));
    ev.payload_len = DW_DNS_PAYLOAD_MAX as u16 + 1;
    ev.hdr.len = DNS_EVENT_SIZE as u32;
    assert!(matches!(
        decode(&ev.to_bytes()),
        Err(DecodeError::LengthExceedsArray {
            field: "payload",
            ..
        })
    ));
    ev.hdr.len = DNS_EVENT_SIZE as u32 + 1;
    let mut long = ev.to_bytes().to_vec();
    long.push(0);
    assert!(matches!(
        decode(&long),
        Err(DecodeError::BadLength {
            kind: DW_EV_DNS,
            ..
        })
    ));
}
