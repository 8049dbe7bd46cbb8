//! Builds and imports a small demo/bench image and prints its reference.
//!
//! ```text
//! cargo run -p driftwatch-testkit --example build-demo-image -- \
//!     [--name driftwatch-demo/busybox:1] [--namespace default] [--oci-tar PATH]
//! ```
//! The image holds busybox (+ applet links), `/bin/noop` (exits 0, for exec benchmarks),
//! `/bin/marker` (creates the file named by its argument), and for the library-heavy workload a
//! dynamic loader, libc, `/bin/dynload` and the four libraries it loads. stdout gets exactly one line, the
//! image reference; details go to stderr.

use std::process::ExitCode;

use driftwatch_testkit::{ensure_containerd, ImageBuilder, MARKER_HELPER_C, NOOP_HELPER_C};

/// `dynload`: a dynamically linked program that dlopens /usr/lib/libbench{1..4}.so.
const DYNLOAD_C: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    char name[64];
    for (int i = 1; i <= 4; i++) {
        snprintf(name, sizeof name, "/usr/lib/libbench%d.so", i);
        if (!dlopen(name, RTLD_NOW)) return 1;
    }
    return 0;
}
"#;

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
    let mut builder = ImageBuilder::new(&name)
        .busybox()
        .static_helper("/bin/noop", NOOP_HELPER_C)
        .static_helper("/bin/marker", MARKER_HELPER_C)
        // The library-heavy workload: a dynamic program that loads four image libraries, so each
        // exec maps libc and four more libraries executable.
        .dynamic_runtime()
        .dynamic_helper("/bin/dynload", DYNLOAD_C);
    for i in 1..=4 {
        builder = builder.shared_library(
            &format!("/usr/lib/libbench{i}.so"),
            &format!("int bench{i}(int x) {{ return x + {i}; }}\n"),
        );
    }
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
