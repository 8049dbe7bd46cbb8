//! The compiled BPF objects, embedded at build time.

/// `bpf/exec.bpf.c` compiled by `build.rs` (ELF, with `.BTF` and `.BTF.ext`), 8-byte aligned
/// as aya requires.
pub static EXEC_BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/exec.bpf.o"));

/// `bpf/isolate.bpf.c` compiled by `build.rs`: the isolation programs and their pinned map
/// (no CO-RE relocation: loaded without the kernel's BTF).
pub static ISOLATE_BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/isolate.bpf.o"));
