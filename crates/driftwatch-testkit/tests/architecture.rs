//! The code map's invariants that the compiler cannot see, checked against the workspace as
//! cargo resolves it (`cargo metadata`) and against the crates' sources:
//!
//! * the crate order of ARCHITECTURE.md: a crate depends only on crates listed before it (no
//!   arrow points back up);
//! * the crates that must do no IO do not depend on one that does;
//! * `#![forbid(unsafe_code)]` in every crate but `driftwatch-bpf` (whose few `unsafe` blocks
//!   are allowed one by one, each with a `SAFETY:` comment);
//! * every crate inherits the workspace's `rust-version`, and that MSRV is true: no dependency
//!   declares a newer one (the standard library's items are checked by clippy's
//!   `incompatible_msrv` lint, which reads the same `rust-version`);
//! * ARCHITECTURE.md's crate list is this order; only `driftwatch-bpf` knows aya; the ABI crate
//!   is `no_std` with no dependencies; the rules crate touches files only in `files.rs`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// ARCHITECTURE.md's crate order, lowest first.
const ORDER: &[&str] = &[
    "driftwatch-abi",
    "driftwatch-event",
    "driftwatch-rule-lang",
    "driftwatch-bpf",
    "driftwatch-runtime",
    "driftwatch-image",
    "driftwatch-origin",
    "driftwatch-rules",
    "driftwatch-baseline",
    "driftwatch-diff",
    "driftwatch-audit",
    "driftwatch-verify",
    "driftwatch-output",
    "driftwatch-respond",
    "driftwatch-agent",
    "driftwatch",
];

/// Crates that do no IO of their own (the rules crate reads only the rule files it is given).
const NO_IO: &[&str] = &[
    "driftwatch-abi",
    "driftwatch-event",
    "driftwatch-rule-lang",
    "driftwatch-rules",
    "driftwatch-audit",
];

/// Dependencies that mean IO: async runtimes, syscall crates, network and the crates of the
/// workspace that touch the kernel, containers or files.
const IO_CRATES: &[&str] = &[
    "tokio",
    "rustix",
    "nix",
    "libc",
    "aya",
    "axum",
    "ureq",
    "tonic",
    "containerd-client",
    "driftwatch-bpf",
    "driftwatch-runtime",
    "driftwatch-image",
    "driftwatch-origin",
    "driftwatch-output",
    "driftwatch-respond",
    "driftwatch-diff",
];

fn metadata() -> Value {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

struct Workspace {
    /// Workspace crate → its normal (non-dev, non-build) dependencies, by name.
    deps: BTreeMap<String, BTreeSet<String>>,
    /// Workspace crate → its declared `rust-version`.
    rust_version: BTreeMap<String, Option<String>>,
    /// Workspace crate → its directory.
    dirs: BTreeMap<String, PathBuf>,
    /// The newest `rust-version` any package in the resolved graph declares: (version, name).
    newest_dependency_msrv: Option<((u32, u32, u32), String)>,
}

fn version(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

fn workspace() -> Workspace {
    let m = metadata();
    let members: BTreeSet<&str> = m["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let resolved: BTreeSet<&str> = m["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut ws = Workspace {
        deps: BTreeMap::new(),
        rust_version: BTreeMap::new(),
        dirs: BTreeMap::new(),
        newest_dependency_msrv: None,
    };
    for p in m["packages"].as_array().expect("packages") {
        let id = p["id"].as_str().unwrap_or_default();
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let rv = p["rust_version"].as_str().map(str::to_string);
        if members.contains(id) {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str().map(str::to_string))
                .collect();
            ws.deps.insert(name.clone(), deps);
            ws.rust_version.insert(name.clone(), rv);
            let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
            ws.dirs
                .insert(name, manifest.parent().expect("crate dir").to_path_buf());
        } else if resolved.contains(id) {
            if let Some(rv) = rv {
                let v = version(&rv);
                if ws
                    .newest_dependency_msrv
                    .as_ref()
                    .is_none_or(|(n, _)| v > *n)
                {
                    ws.newest_dependency_msrv = Some((v, format!("{name} {rv}")));
                }
            }
        }
    }
    ws
}

#[test]
fn no_crate_depends_on_a_crate_below_it_in_the_code_map() {
    let ws = workspace();
    let rank = |n: &str| ORDER.iter().position(|o| *o == n);
    for (krate, deps) in &ws.deps {
        if krate == "driftwatch-testkit" {
            continue;
        }
        let Some(r) = rank(krate) else {
            panic!("{krate} is not in ARCHITECTURE.md's crate order (and this test's ORDER)");
        };
        for d in deps.iter().filter(|d| d.starts_with("driftwatch")) {
            let dr = rank(d).unwrap_or(usize::MAX);
            assert!(
                dr < r,
                "{krate} depends on {d}, which comes after it in the code map: an arrow back up"
            );
        }
    }
    for base in ["driftwatch-abi", "driftwatch-event", "driftwatch-rule-lang"] {
        let ws_deps: Vec<&String> = ws.deps[base]
            .iter()
            .filter(|d| d.starts_with("driftwatch"))
            .collect();
        assert!(
            ws_deps.is_empty(),
            "{base} must depend on nothing in the workspace: {ws_deps:?}"
        );
    }
}

#[test]
fn crates_that_do_no_io_do_not_depend_on_one_that_does() {
    let ws = workspace();
    for krate in NO_IO {
        let io: Vec<&String> = ws.deps[*krate]
            .iter()
            .filter(|d| IO_CRATES.contains(&d.as_str()))
            .collect();
        assert!(io.is_empty(), "{krate} must do no IO but depends on {io:?}");
    }
}

#[test]
fn every_crate_but_the_bpf_loader_forbids_unsafe_code() {
    let ws = workspace();
    for (krate, dir) in &ws.dirs {
        let roots = ["src/lib.rs", "src/main.rs"].map(|r| dir.join(r));
        let mut saw_root = false;
        for root in roots.iter().filter(|r| r.exists()) {
            saw_root = true;
            let text = std::fs::read_to_string(root).expect("read crate root");
            let forbids = text.contains("#![forbid(unsafe_code)]");
            if krate == "driftwatch-bpf" {
                assert!(
                    !forbids,
                    "driftwatch-bpf allows its unsafe blocks one by one; update this test"
                );
            } else {
                assert!(
                    forbids,
                    "{} lacks #![forbid(unsafe_code)] (only driftwatch-bpf may use unsafe)",
                    root.display()
                );
            }
        }
        assert!(saw_root, "{krate} has neither src/lib.rs nor src/main.rs");
    }
}

#[test]
fn the_declared_msrv_is_inherited_everywhere_and_true() {
    let ws = workspace();
    let declared: BTreeSet<&Option<String>> = ws.rust_version.values().collect();
    assert_eq!(
        declared.len(),
        1,
        "every crate inherits one rust-version: {:?}",
        ws.rust_version
    );
    let msrv = ws
        .rust_version
        .values()
        .next()
        .and_then(Option::as_deref)
        .expect("the workspace declares a rust-version");
    if let Some((newest, who)) = &ws.newest_dependency_msrv {
        assert!(
            version(msrv) >= *newest,
            "the workspace declares rust-version {msrv}, but the dependency {who} needs newer"
        );
    }
}

/// The code map in ARCHITECTURE.md lists exactly the crates of [`ORDER`], in that order: the
/// document and this test cannot drift apart.
#[test]
fn the_code_map_in_architecture_md_is_this_order() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ARCHITECTURE.md");
    let text = std::fs::read_to_string(&doc).expect("read ARCHITECTURE.md");
    let start = text
        .find("## Code map")
        .expect("ARCHITECTURE.md has a code map");
    let block = text[start..]
        .split("```")
        .nth(1)
        .expect("the code map has a crate list in a code block");
    let listed: Vec<&str> = block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("driftwatch") && *n != "driftwatch-testkit")
        .collect();
    assert_eq!(
        listed, ORDER,
        "ARCHITECTURE.md's crate list and ORDER differ"
    );
}

/// Only the sensor knows aya and the kernel's layouts; the ABI mirrors are `no_std` and depend
/// on nothing at all.
#[test]
fn only_the_sensor_knows_aya_and_the_abi_depends_on_nothing() {
    let ws = workspace();
    for (krate, deps) in &ws.deps {
        if krate != "driftwatch-bpf" {
            assert!(
                !deps.iter().any(|d| d.starts_with("aya")),
                "{krate} depends on aya: only driftwatch-bpf may"
            );
        }
    }
    assert!(
        ws.deps["driftwatch-abi"].is_empty(),
        "driftwatch-abi must have no dependencies: {:?}",
        ws.deps["driftwatch-abi"]
    );
    let lib = ws.dirs["driftwatch-abi"].join("src/lib.rs");
    let text = std::fs::read_to_string(lib).expect("read driftwatch-abi's lib.rs");
    assert!(
        text.contains("#![no_std]"),
        "driftwatch-abi must be #![no_std]"
    );
}

/// The rules crate reads only the rule files it is given, and only in `files.rs`.
#[test]
fn the_rules_crate_touches_files_only_in_files_rs() {
    let ws = workspace();
    let src = ws.dirs["driftwatch-rules"].join("src");
    let mut stack = vec![src];
    let mut offenders = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read rules src") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") || p.ends_with("files.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read source");
            // Test modules may build fixtures on disk; the library code may not.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            // Address types (`std::net::IpAddr`) are data; sockets and files are IO.
            if [
                "std::fs",
                "File::open",
                "std::process",
                "TcpStream",
                "TcpListener",
                "UdpSocket",
                "ToSocketAddrs",
            ]
            .iter()
            .any(|needle| code.contains(needle))
            {
                offenders.push(p.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "IO outside driftwatch-rules' files.rs: {offenders:?}"
    );
}
