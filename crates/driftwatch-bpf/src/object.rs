//! The compiled BPF objects, embedded at build time.

/// `bpf/exec.bpf.c` compiled by `build.rs` (ELF, with `.BTF` and `.BTF.ext`), 8-byte aligned
/// as aya requires.
pub static EXEC_BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/exec.bpf.o"));
