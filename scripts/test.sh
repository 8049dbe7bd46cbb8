#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the end-to-end tests that run the real
# agent (real BPF) against real containerd containers. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: the end-to-end tests load BPF programs and run containers: run as root" >&2
    exit 2
fi
# Idempotent: installs clang/libbpf/containerd/... on a fresh machine, starts containerd if needed.
./scripts/install-deps.sh
cargo fmt --all -- --check
clang-format-14 --dry-run -Werror crates/driftwatch-bpf/bpf/*.bpf.c crates/driftwatch-bpf/bpf/*.bpf.h crates/driftwatch-bpf/bpf/include/abi.h
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
shellcheck -x scripts/*.sh bench/exec-overhead bench/file-overhead bench/net-overhead bench/response bench/response-calls bench/diff/run.sh bench/audit/run.sh
# The fuzz targets are built and each runs briefly (hostile input must never crash the parsers).
./scripts/fuzz.sh 20
# Tests share one containerd; the e2e binaries serialise what must not overlap themselves.
cargo test --workspace --locked -- --test-threads=2
