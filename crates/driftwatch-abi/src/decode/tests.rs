use std::format;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::{
    ExecEvent, ExitEvent, ForkEvent, Task, DW_EV_EXEC, EXEC_F_ON_ROOT_MNT, EXEC_F_OVL_UPPER,
};

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
    }
}

/// A well-formed exec record for `/usr/bin/true a b` as the kernel would emit it.
fn sample_exec() -> Vec<u8> {
    let mut ev = ExecEvent::zeroed();
    ev.task = sample_task(42);
    ev.exe_ino = 1_311_000;
    ev.exe_ctime_sec = 1_700_000_000;
    ev.exe_ctime_nsec = 123;
    ev.exe_mtime_sec = 1_600_000_000;
    ev.exe_mtime_nsec = 456;
    ev.exe_dev = (8 << 20) | 1;
    ev.exe_nlink = 1;
    ev.exe_size = 43_000;
    ev.exe_s_magic = 0xef53;
    ev.exe_mode = 0o100_755;
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
    assert_eq!(rec.task().pid, 44);
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
        (
            "path_components",
            offset_of!(ExecEvent, path_components),
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
        _pad0: 0,
    };
    let b = c.to_bytes();
    assert_eq!(&b[..4], &0x0102_0304u32.to_ne_bytes());
    assert_eq!(&b[4..8], &1u32.to_ne_bytes());
    assert_eq!(&b[8..12], &0x0a0b_0c0du32.to_ne_bytes());
    assert_eq!(&b[12..], &[0u8; 4]);
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..8000)) {
        let _ = decode(&bytes);
    }

    /// Valid headers with random bodies exercise the per-kind paths, not just header rejection.
    #[test]
    fn decode_never_panics_with_valid_header(
        kind in 0u16..5,
        len in 0u32..8000,
        body in proptest::collection::vec(any::<u8>(), 0..8000),
    ) {
        let mut buf = vec![0u8; 16];
        buf[0..2].copy_from_slice(&kind.to_ne_bytes());
        buf[2..4].copy_from_slice(&DW_ABI_VERSION.to_ne_bytes());
        buf[4..8].copy_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&body);
        if let Ok(Record::Exec(e)) = decode(&buf) {
            let _ = e.path().to_string();
            let _ = e.args().count();
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
}
