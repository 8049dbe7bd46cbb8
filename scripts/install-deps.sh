#!/usr/bin/env bash
# Installs and starts what driftwatch needs on a fresh Debian 12 machine (run as root).
# Idempotent: a rerun on a prepared machine only checks (no apt-get at all).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $EUID -eq 0 ]] || die "run as root (apt-get, mounts, containerd and BPF need it)"

PACKAGES=(clang llvm libbpf-dev bpftool containerd runc protobuf-compiler busybox-static
    pkg-config gcc g++ libc6-dev curl clang-format-14 debootstrap shellcheck iproute2 python3)

missing=()
for p in "${PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y "${missing[@]}"
else
    log "packages: all ${#PACKAGES[@]} already installed"
fi

if [[ -d /sys/kernel/tracing ]] && [[ ! -e /sys/kernel/tracing/events ]]; then
    log "mounting tracefs at /sys/kernel/tracing"
    mount -t tracefs tracefs /sys/kernel/tracing
else
    log "tracefs: already mounted"
fi
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
    log "mounting bpffs at /sys/fs/bpf"
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf
else
    log "bpffs: already mounted"
fi

ensure_containerd

if command -v cargo >/dev/null; then
    log "cargo: $(cargo --version)"
elif [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    warn "cargo is in $HOME/.cargo/bin but not on PATH: export PATH=\"\$HOME/.cargo/bin:\$PATH\""
else
    warn "cargo not found: install Rust (>= 1.88) with rustup (https://rustup.rs), e.g."
    warn "  curl --proto '=https' -sSf https://sh.rustup.rs | sh -s -- -y && . \$HOME/.cargo/env"
fi
log "dependencies ready"
