//! Compiles `bpf/*.bpf.c` with clang into `$OUT_DIR` (embedded by `src/object.rs`).
//!
//! `vmlinux.h` comes from `$DRIFTWATCH_VMLINUX_H` if set, else from
//! `bpftool btf dump file /sys/kernel/btf/vmlinux format c` into `$OUT_DIR`.
//! `$DRIFTWATCH_CLANG` / `$DRIFTWATCH_BPFTOOL` override the tool names.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const PROGRAMS: &[&str] = &["exec", "isolate"];
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: driftwatch-bpf build: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let bpf_dir = manifest_dir.join("bpf");
    let include_dir = bpf_dir.join("include");

    println!("cargo:rerun-if-env-changed=DRIFTWATCH_VMLINUX_H");
    println!("cargo:rerun-if-env-changed=DRIFTWATCH_CLANG");
    println!("cargo:rerun-if-env-changed=DRIFTWATCH_BPFTOOL");
    // The programs and every header they include (bpf/*.bpf.h, bpf/include/abi.h): for a
    // directory cargo reruns this script when any file under it changes, a new header included.
    println!("cargo:rerun-if-changed={}", bpf_dir.display());

    let vmlinux_dir = vmlinux_header(&out_dir)?;
    let clang = env::var("DRIFTWATCH_CLANG").unwrap_or_else(|_| "clang".to_owned());

    for prog in PROGRAMS {
        let src = bpf_dir.join(format!("{prog}.bpf.c"));
        let obj = out_dir.join(format!("{prog}.bpf.o"));
        let output = Command::new(&clang)
            .args([
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-D__TARGET_ARCH_x86",
                "-Wall",
            ])
            .arg("-I")
            .arg(&include_dir)
            .arg("-I")
            .arg(&vmlinux_dir)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run `{clang}` ({e}): install clang (Debian/Ubuntu: \
                     `apt-get install clang llvm libbpf-dev`) or set DRIFTWATCH_CLANG"
                )
            })?;
        if !output.status.success() {
            return Err(format!(
                "clang failed on {}:\n{}{}\n(are the libbpf headers installed? \
                 Debian/Ubuntu: `apt-get install libbpf-dev`)",
                src.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        for line in stderr.lines().filter(|l| l.contains("warning:")) {
            println!("cargo:warning={line}");
        }
    }
    Ok(())
}

/// Returns the directory holding `vmlinux.h`.
fn vmlinux_header(out_dir: &Path) -> Result<PathBuf, String> {
    if let Some(given) = env::var_os("DRIFTWATCH_VMLINUX_H") {
        let given = PathBuf::from(given);
        println!("cargo:rerun-if-changed={}", given.display());
        if !given.is_file() {
            return Err(format!(
                "DRIFTWATCH_VMLINUX_H={} is not a file",
                given.display()
            ));
        }
        if given.file_name().is_some_and(|n| n == "vmlinux.h") {
            return given
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| format!("DRIFTWATCH_VMLINUX_H={} has no parent", given.display()));
        }
        // Any other name: copy it so `#include "vmlinux.h"` finds it.
        let dst = out_dir.join("vmlinux.h");
        fs::copy(&given, &dst).map_err(|e| format!("copy {}: {e}", given.display()))?;
        return Ok(out_dir.to_path_buf());
    }

    let dst = out_dir.join("vmlinux.h");
    if dst.is_file() {
        return Ok(out_dir.to_path_buf());
    }
    if !Path::new(KERNEL_BTF).exists() {
        return Err(format!(
            "{KERNEL_BTF} is missing (kernel built without CONFIG_DEBUG_INFO_BTF): \
             set DRIFTWATCH_VMLINUX_H to a vmlinux.h generated on a kernel with BTF"
        ));
    }
    let bpftool = env::var("DRIFTWATCH_BPFTOOL").unwrap_or_else(|_| "bpftool".to_owned());
    let output = Command::new(&bpftool)
        .args(["btf", "dump", "file", KERNEL_BTF, "format", "c"])
        .output()
        .map_err(|e| {
            format!(
                "cannot run `{bpftool}` ({e}): install bpftool (Debian: `apt-get install \
                 bpftool`; Ubuntu: `linux-tools-common`), set DRIFTWATCH_BPFTOOL, or set \
                 DRIFTWATCH_VMLINUX_H to an existing vmlinux.h"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "`{bpftool} btf dump file {KERNEL_BTF} format c` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Write via a temporary file so an interrupted build never leaves a partial header behind.
    let tmp = out_dir.join("vmlinux.h.tmp");
    fs::write(&tmp, &output.stdout).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, &dst).map_err(|e| format!("rename to {}: {e}", dst.display()))?;
    Ok(out_dir.to_path_buf())
}
