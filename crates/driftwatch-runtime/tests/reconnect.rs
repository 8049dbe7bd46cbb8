//! containerd restarts: the registry reconnects with backoff and re-lists.

mod common;

use common::{PrivateContainerd, TestNamespace};
use driftwatch_runtime::{start, DiscoverySource, RegistryUpdate, RuntimeConfig, SourceMode};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_and_relists_after_a_containerd_restart() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("driftwatch_runtime=debug")
        .with_test_writer()
        .try_init();
    let mut daemon = PrivateContainerd::start();
    let mut ns = TestNamespace::at(&daemon.socket, "dwtest-runtime-reconnect");
    let pid1 = ns.run("dw-r1", &[]);

    let (registry, mut rx, source) = start(RuntimeConfig {
        source: SourceMode::Containerd,
        containerd_socket: daemon.socket.clone().into(),
        reconnect_min_ms: 100,
        reconnect_max_ms: 400,
        ..RuntimeConfig::default()
    })
    .await
    .expect("start");
    assert_eq!(source, DiscoverySource::Containerd);
    assert_eq!(
        registry
            .get("dwtest-runtime-reconnect", "dw-r1")
            .and_then(|c| c.init_pid),
        Some(pid1)
    );

    // containerd goes away; the container keeps running and stays in the registry.
    daemon.kill();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(registry.get("dwtest-runtime-reconnect", "dw-r1").is_some());

    // While it is down, nothing can be announced; once it is back, a container started then
    // must show up (through the re-list or the new subscription).
    daemon.restart();
    let pid2 = ns.run("dw-r2", &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let added = loop {
        let u = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("dw-r2 announced after the restart")
            .expect("channel open");
        if let RegistryUpdate::Added(info) = u {
            if info.id == "dw-r2" {
                break info;
            }
        }
    };
    assert_eq!(added.init_pid, Some(pid2));
    assert!(added.cgroup_id.is_some());
    assert!(registry.get("dwtest-runtime-reconnect", "dw-r1").is_some());
    drop(ns);
}
