//! End-to-end tests: the real agent binary (real BPF programs) against real containerd containers.
//! Needs root, containerd/runc, clang/bpftool at build time (scripts/install-deps.sh).

mod agent;
mod approvals;
mod audit;
mod cli;
mod containers;
mod diff;
mod dns;
mod files;
mod harness;
mod hiding;
mod http_output;
mod isolate;
mod net;
mod netdrift;
mod respond;
mod rules;
mod verify;
