//! Builds and imports a small demo/bench image and prints its reference.
//!
//! ```text
//! cargo run -p driftwatch-testkit --example build-demo-image -- \
//!     [--name driftwatch-demo/busybox:1] [--namespace default] [--oci-tar PATH]
//! ```
//! The image holds busybox (+ applet links), `/bin/noop` (exits 0, for exec benchmarks) and
//! `/bin/marker` (creates the file named by its argument). stdout gets exactly one line, the
//! image reference; details go to stderr.

use std::process::ExitCode;

use driftwatch_testkit::{ensure_containerd, ImageBuilder, MARKER_HELPER_C, NOOP_HELPER_C};

fn main() -> ExitCode {
    let mut name = "driftwatch-demo/busybox:1".to_owned();
    let mut namespace = "default".to_owned();
    let mut oci_tar = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        let res = match a.as_str() {
            "--name" => value("--name").map(|v| name = v),
            "--namespace" => value("--namespace").map(|v| namespace = v),
            "--oci-tar" => value("--oci-tar").map(|v| oci_tar = Some(v)),
            "-h" | "--help" => {
                eprintln!("usage: build-demo-image [--name REF] [--namespace NS] [--oci-tar PATH]");
                return ExitCode::SUCCESS;
            }
            other => Err(format!("unknown argument {other:?}")),
        };
        if let Err(e) = res {
            eprintln!("build-demo-image: {e}");
            return ExitCode::from(2);
        }
    }
    let builder = ImageBuilder::new(&name)
        .busybox()
        .static_helper("/bin/noop", NOOP_HELPER_C)
        .static_helper("/bin/marker", MARKER_HELPER_C);
    let result = match oci_tar {
        Some(path) => builder.build_oci_tar(&path).map(|img| {
            eprintln!("wrote {path} (manifest {})", img.manifest_digest);
            img.name
        }),
        None => ensure_containerd()
            .and_then(|c| builder.import(&c, &namespace))
            .map(|img| {
                eprintln!(
                    "imported {} into namespace {namespace} (manifest {})",
                    img.reference, img.manifest_digest
                );
                img.reference
            }),
    };
    match result {
        Ok(reference) => {
            println!("{reference}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("build-demo-image: {e}");
            ExitCode::FAILURE
        }
    }
}
