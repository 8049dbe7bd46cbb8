//! Builds and imports a small demo/bench image and prints its reference.
//!
//! ```text
//! cargo run -p driftwatch-testkit --example build-demo-image -- \
//!     [--name driftwatch-demo/busybox:1] [--namespace default] [--oci-tar PATH]
//! ```
//! The image holds busybox (+ applet links), `/bin/noop` (exits 0, for exec benchmarks),
//! `/bin/marker` (creates the file named by its argument), and for the library-heavy workload a
//! dynamic loader, libc, `/bin/dynload` and the four libraries it loads, and `/bin/netloop` (the
//! network benchmark's workload). stdout gets exactly one line, the image reference; details go
//! to stderr.

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

/// `netloop tcp N` / `netloop udp N [PEERS]`: N loopback TCP connect+accept+close pairs, or N UDP
/// datagrams sent round-robin to PEERS loopback receivers (each received, so no buffer fills).
/// Prints "WALL_NS CPU_NS" of the loop (CPU: this process's user+system time, which includes
/// what the kernel's BPF programs cost it). Loopback only; exits non-zero on any failure.
const NETLOOP_C: &str = r#"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
static long long cpu(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000000LL +
           (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1000LL;
}
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long n = atol(argv[2]);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long long t0, c0;
    if (!strcmp(argv[1], "tcp")) {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 64) ||
            getsockname(l, (void *)&a, &len))
            return 1;
        t0 = now(), c0 = cpu();
        for (long i = 0; i < n; i++) {
            int c = socket(AF_INET, SOCK_STREAM, 0);
            if (c < 0 || connect(c, (void *)&a, sizeof a)) return 1;
            int s = accept(l, 0, 0);
            if (s < 0) return 1;
            close(s);
            close(c);
        }
    } else if (!strcmp(argv[1], "udp")) {
        int peers = argc > 3 ? atoi(argv[3]) : 16;
        if (peers < 1 || peers > 256) return 2;
        struct sockaddr_in p[256];
        int ps[256];
        for (int i = 0; i < peers; i++) {
            p[i] = a;
            len = sizeof p[i];
            ps[i] = socket(AF_INET, SOCK_DGRAM, 0);
            if (ps[i] < 0 || bind(ps[i], (void *)&p[i], sizeof p[i]) ||
                getsockname(ps[i], (void *)&p[i], &len))
                return 1;
        }
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        char buf[64] = {0};
        if (s < 0) return 1;
        t0 = now(), c0 = cpu();
        for (long i = 0; i < n; i++) {
            int k = (int)(i % peers);
            if (sendto(s, buf, sizeof buf, 0, (void *)&p[k], sizeof p[k]) < 0) return 1;
            if (recv(ps[k], buf, sizeof buf, 0) < 0) return 1;
        }
    } else {
        return 2;
    }
    printf("%lld %lld\n", now() - t0, cpu() - c0);
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
        .static_helper("/bin/netloop", NETLOOP_C)
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
