//! Discovery against the real containerd: inventory, events, resolve_unknown, /proc fallback.

mod common;

use common::{cgroup_dir_of, ensure_containerd, ino, kernel_cgroup_id, TestNamespace, IMAGE};
use driftwatch_runtime::{
    start, ContainerInfo, DiscoverySource, RegistryUpdate, RuntimeConfig, SourceMode,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "driftwatch_runtime=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Wait for an update about `id` that satisfies `want`.
async fn wait_for(
    rx: &mut Receiver<RegistryUpdate>,
    id: &str,
    want: impl Fn(&RegistryUpdate) -> bool,
) -> Arc<ContainerInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let u = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching update for {id} within 20 s"))
            .expect("update channel open");
        if u.info().id == id && want(&u) {
            return Arc::clone(u.info());
        }
    }
}

/// The process facts of a container must match what procfs says about its init pid.
fn check_process_facts(info: &ContainerInfo, pid: u32) {
    assert_eq!(info.init_pid, Some(pid));
    let cgdir = cgroup_dir_of(pid);
    assert_eq!(
        info.cgroup_id,
        Some(ino(&cgdir)),
        "cgroup id = inode of {cgdir:?}"
    );
    assert_eq!(info.mntns, Some(ino(format!("/proc/{pid}/ns/mnt"))));
    let rootfs = info.rootfs.as_ref().expect("overlay rootfs");
    assert_eq!(rootfs.lowerdirs.len(), 2, "two image layers: {rootfs:?}");
    for dir in &rootfs.lowerdirs {
        assert!(dir.is_dir(), "lowerdir {dir:?} exists");
    }
    // The topmost lower layer is the marker layer.
    assert!(rootfs.lowerdirs[0].join("etc/dwtest").is_file());
    assert!(rootfs.lowerdirs[1].join("bin/busybox").is_file());
    assert!(rootfs.upperdir.as_ref().is_some_and(|d| d.is_dir()));
    assert!(rootfs.workdir.as_ref().is_some_and(|d| d.is_dir()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_inventory_events_and_resolve() {
    init_tracing();
    ensure_containerd();
    let mut ns = TestNamespace::new("dwtest-runtime");
    let labels = [
        ("io.kubernetes.container.name", "web"),
        ("io.kubernetes.pod.name", "web-0"),
        ("io.kubernetes.pod.namespace", "shop"),
        (
            "io.kubernetes.pod.uid",
            "0b7a4d3e-1111-2222-3333-444455556666",
        ),
        ("team", "drift"),
    ];
    let pid1 = ns.run("dw-c1", &labels);

    let (registry, mut rx, source) = start(RuntimeConfig {
        source: SourceMode::Containerd,
        ..RuntimeConfig::default()
    })
    .await
    .expect("start");
    assert_eq!(source, DiscoverySource::Containerd);
    assert_eq!(registry.source(), DiscoverySource::Containerd);

    // Initial inventory.
    let c1 = registry
        .get("dwtest-runtime", "dw-c1")
        .expect("dw-c1 in the inventory");
    assert!(registry.all().iter().any(|c| c.id == "dw-c1"));
    assert!(!registry.is_empty());
    assert_eq!(c1.namespace, "dwtest-runtime");
    assert_eq!(c1.name, "web");
    assert_eq!(c1.pod_name.as_deref(), Some("web-0"));
    assert_eq!(c1.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(
        c1.pod_uid.as_deref(),
        Some("0b7a4d3e-1111-2222-3333-444455556666")
    );
    assert_eq!(c1.labels.get("team").map(String::as_str), Some("drift"));
    assert_eq!(c1.image_ref, IMAGE);
    assert_eq!(c1.image_repository, "docker.io/dwtest/busybox");
    assert_eq!(c1.image_tag, "1");
    assert_eq!(
        c1.image_digest.as_deref(),
        Some(ns.manifest_digest.as_str())
    );
    assert_eq!(c1.cgroup_path.as_deref(), Some("/dwtest-runtime/dw-c1"));
    check_process_facts(&c1, pid1);
    let cgid = c1.cgroup_id.expect("cgroup id");
    assert_eq!(
        registry.by_cgroup(cgid).map(|c| c.id.clone()).as_deref(),
        Some("dw-c1")
    );
    let mntns = c1.mntns.expect("mntns");
    assert_eq!(
        registry.by_mntns(mntns).map(|c| c.id.clone()).as_deref(),
        Some("dw-c1")
    );
    // What bpf_get_current_cgroup_id() returns for the container's processes.
    match kernel_cgroup_id(&cgroup_dir_of(pid1)) {
        Some(kernel) => assert_eq!(kernel, cgid, "cgroup inode = kernel cgroup id"),
        None => eprintln!("no C compiler: kernel cgroup id not compared"),
    }

    // A host process is not a container, and the miss is cached.
    let me = std::process::id();
    let my_cg = ino(cgroup_dir_of(me));
    let my_mnt = ino(format!("/proc/{me}/ns/mnt"));
    assert!(registry.resolve_unknown(my_cg, my_mnt, me).await.is_none());
    assert!(registry.resolve_unknown(my_cg, my_mnt, me).await.is_none());

    // A container started now arrives as an update with full info.
    let pid2 = ns.run("dw-c2", &[("io.kubernetes.container.name", "worker")]);
    let c2 = wait_for(&mut rx, "dw-c2", |u| matches!(u, RegistryUpdate::Added(_))).await;
    assert_eq!(c2.name, "worker");
    assert_eq!(
        c2.image_digest.as_deref(),
        Some(ns.manifest_digest.as_str())
    );
    check_process_facts(&c2, pid2);
    assert!(registry
        .by_cgroup(c2.cgroup_id.expect("cgroup id"))
        .is_some());

    // Deleting it announces the removal and drops the indexes.
    ns.remove("dw-c2");
    let gone = wait_for(&mut rx, "dw-c2", |u| {
        matches!(u, RegistryUpdate::Removed(_))
    })
    .await;
    assert_eq!(gone.init_pid, Some(pid2));
    assert!(registry.get("dwtest-runtime", "dw-c2").is_none());
    assert!(registry
        .by_cgroup(c2.cgroup_id.expect("cgroup id"))
        .is_none());
    assert!(registry.by_mntns(c2.mntns.expect("mntns")).is_none());

    // Without the event stream, an unknown cgroup is resolved by a one-shot containerd query.
    registry.shutdown();
    let pid3 = ns.run("dw-c3", &[]);
    let cg3 = ino(cgroup_dir_of(pid3));
    let mnt3 = ino(format!("/proc/{pid3}/ns/mnt"));
    assert!(registry.by_cgroup(cg3).is_none());
    let c3 = registry
        .resolve_unknown(cg3, mnt3, pid3)
        .await
        .expect("dw-c3 resolved");
    assert_eq!(c3.id, "dw-c3");
    assert_eq!(c3.name, "dw-c3");
    check_process_facts(&c3, pid3);
    assert_eq!(
        registry.by_cgroup(cg3).map(|c| c.id.clone()).as_deref(),
        Some("dw-c3")
    );
    wait_for(&mut rx, "dw-c3", |u| matches!(u, RegistryUpdate::Added(_))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proc_fallback_finds_the_same_containers() {
    init_tracing();
    ensure_containerd();
    let mut ns = TestNamespace::new("dwtest-runtime-proc");
    let pid = ns.run("dw-p1", &[]);

    let (registry, mut rx, source) = start(RuntimeConfig {
        containerd_socket: "/nonexistent/containerd.sock".into(),
        proc_rescan_ms: 200,
        ..RuntimeConfig::default()
    })
    .await
    .expect("start");
    assert_eq!(source, DiscoverySource::Proc);

    let p1 = registry.get("", "dw-p1").expect("dw-p1 found in /proc");
    assert_eq!(p1.namespace, "");
    assert_eq!(p1.name, "dw-p1");
    assert_eq!(
        p1.cgroup_path.as_deref(),
        Some("/dwtest-runtime-proc/dw-p1")
    );
    check_process_facts(&p1, pid);
    assert_eq!(
        registry
            .by_cgroup(p1.cgroup_id.expect("cgroup id"))
            .map(|c| c.id.clone())
            .as_deref(),
        Some("dw-p1")
    );
    let host =
        std::fs::metadata("/proc/1/ns/mnt").or_else(|_| std::fs::metadata("/proc/self/ns/mnt"));
    let host = std::os::unix::fs::MetadataExt::ino(&host.expect("host mntns"));
    assert!(!registry.all().iter().any(|c| c.mntns == Some(host)));

    let pid2 = ns.run("dw-p2", &[]);
    let p2 = wait_for(&mut rx, "dw-p2", |u| matches!(u, RegistryUpdate::Added(_))).await;
    check_process_facts(&p2, pid2);
    ns.remove("dw-p2");
    wait_for(&mut rx, "dw-p2", |u| {
        matches!(u, RegistryUpdate::Removed(_))
    })
    .await;

    // A required containerd that is not there is an error, not a fallback.
    let err = start(RuntimeConfig {
        source: SourceMode::Containerd,
        containerd_socket: "/nonexistent/containerd.sock".into(),
        connect_timeout_ms: 500,
        ..RuntimeConfig::default()
    })
    .await
    .expect_err("containerd required");
    assert!(err.to_string().contains("not reachable"), "{err}");
}
