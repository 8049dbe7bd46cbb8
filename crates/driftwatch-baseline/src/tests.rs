use super::*;
use std::net::IpAddr;

fn cfg(dir: &Path) -> NetworkConfig {
    NetworkConfig {
        baseline_dir: dir.to_path_buf(),
        learn_for: "10m".into(),
        ..NetworkConfig::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn connect(s: &str, port: u16) -> Activity<'static> {
    Activity::Connect {
        proto: Proto::Tcp,
        ip: ip(s),
        port,
        name: None,
    }
}

fn w(key: &str) -> Workload {
    Workload { key: key.into() }
}

#[test]
fn learns_then_judges_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let t0 = 1_796_605_200;
    let mut b = Baselines::open(&cfg(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    assert!(b.is_empty());
    b.seen(
        &w("k8s:shop/web/app"),
        Some("sha256:aa"),
        &[(Proto::Tcp, 8080)],
        t0,
    );
    let key = "k8s:shop/web/app";
    let listen = |port| Activity::Listen {
        proto: Proto::Tcp,
        port,
        loopback: false,
    };
    assert_eq!(
        b.judge(key, &listen(8080), t0),
        Verdict::Expected,
        "seeded from the image"
    );
    assert_eq!(b.judge(key, &listen(9090), t0), Verdict::Learning);
    assert!(b.learn(key, &listen(9090), t0 + 1));
    assert!(b.learn(key, &connect("192.0.2.1", 443), t0 + 2));
    assert!(
        !b.learn(key, &connect("127.0.0.1", 5000), t0 + 3),
        "loopback is never learned"
    );
    assert!(!b.learn(key, &connect("::ffff:127.0.0.1", 5000), t0 + 3));
    assert!(b.flush().is_empty());
    let file = b
        .path(key)
        .unwrap_or_else(|| panic!("a file"))
        .to_path_buf();
    assert_eq!(file, dir.path().join("k8s_shop_web_app.yaml"));

    // A restart: what was learned is there, and learning still ends at t0 + 10 min.
    let mut b = Baselines::open(&cfg(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    b.seen(&w(key), Some("sha256:aa"), &[(Proto::Tcp, 8080)], t0 + 500);
    assert!(b.flush().is_empty());
    let after = t0 + 600;
    assert_eq!(b.judge(key, &listen(9090), after), Verdict::Expected);
    assert_eq!(b.judge(key, &listen(9091), after), Verdict::Unexpected);
    assert_eq!(
        b.judge(key, &connect("192.0.2.1", 443), after),
        Verdict::Expected
    );
    assert_eq!(
        b.judge(key, &connect("192.0.2.2", 443), after),
        Verdict::Unexpected
    );
    assert_eq!(
        b.judge(key, &connect("127.0.0.9", 1), after),
        Verdict::Expected
    );
    assert!(
        !b.learn(key, &connect("192.0.2.2", 443), after),
        "nothing after learning"
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("until: \"2026-12-07T01:10:00Z\""), "{text}");
    // A second image of the workload is recorded, learning is not extended.
    b.seen(&w(key), Some("sha256:bb"), &[], after + 5);
    assert!(b.flush().is_empty());
    let again = Store::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.baseline.images, ["sha256:aa", "sha256:bb"]);
    assert_eq!(again.baseline.learning.until, t0 + 600);
}

#[test]
fn a_broken_file_is_an_error_with_its_location_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let t0 = 1_796_605_200;
    let mut b = Baselines::open(&cfg(dir.path())).unwrap_or_else(|e| panic!("{e}"));
    b.seen(&w("image:app/c"), None, &[], t0);
    assert!(b.flush().is_empty());
    let file = b
        .path("image:app/c")
        .unwrap_or_else(|| panic!("file"))
        .to_path_buf();

    // An edit that parses takes effect without a restart.
    let mut text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    text = text.replace(
        "connect: []",
        "connect:\n  - {proto: tcp, port: any, address: 10.0.0.0/8}",
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(b.reload_changed().is_empty());
    assert_eq!(
        b.judge("image:app/c", &connect("10.2.3.4", 22), t0 + 601),
        Verdict::Expected
    );

    // A mistake: reported once with file:line:col, the version in memory is kept, the file is
    // left as the user wrote it.
    let broken = text.replace("port: any", "port: anything");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, &broken).unwrap_or_else(|e| panic!("{e}"));
    let errs = b.reload_changed();
    assert_eq!(errs.len(), 1, "{errs:?}");
    let msg = errs[0].to_string();
    let line = broken
        .lines()
        .position(|l| l.contains("anything"))
        .unwrap_or(0)
        + 1;
    assert!(
        msg.starts_with(&format!("{}:{line}:", file.display())),
        "{msg}"
    );
    assert!(msg.contains("anything"), "{msg}");
    assert!(b.reload_changed().is_empty(), "reported once");
    assert!(b.learn("image:app/c", &connect("192.0.2.1", 1), t0 + 1));
    assert!(b.flush().is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), broken);
    assert_eq!(
        b.judge("image:app/c", &connect("10.2.3.4", 22), t0 + 601),
        Verdict::Expected
    );

    // At start the broken file is the error.
    let err = Baselines::open(&cfg(dir.path())).expect_err("broken file");
    assert!(
        err.to_string()
            .starts_with(&format!("{}:{line}:", file.display())),
        "{err}"
    );
}

#[test]
fn two_files_for_one_workload_are_an_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let b = Baseline::new("image:x/y", 0, 0);
    for name in ["a.yaml", "b.yaml"] {
        write_atomic(&dir.path().join(name), b.to_yaml().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let err = Baselines::open(&cfg(dir.path())).expect_err("duplicate");
    assert!(matches!(err, BaselineError::Duplicate { .. }), "{err}");
}

#[test]
fn names_and_networks_in_learning() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = cfg(dir.path());
    c.networks
        .insert("cluster".into(), vec!["10.96.0.0/12".into()]);
    let mut b = Baselines::open(&c).unwrap_or_else(|e| panic!("{e}"));
    let key = "image:a/b";
    b.seen(&w(key), None, &[], 0);
    let named = Activity::Connect {
        proto: Proto::Tcp,
        ip: ip("203.0.113.5"),
        port: 443,
        name: Some("api.drift.test"),
    };
    assert!(b.learn(key, &named, 1));
    assert!(b.learn(key, &connect("10.96.3.4", 5432), 2));
    let moved = Activity::Connect {
        proto: Proto::Tcp,
        ip: ip("203.0.113.99"),
        port: 443,
        name: Some("api.drift.test"),
    };
    assert_eq!(
        b.judge(key, &moved, 10_000),
        Verdict::Expected,
        "the name, not the address"
    );
    assert_eq!(
        b.judge(key, &connect("203.0.113.99", 443), 10_000),
        Verdict::Unexpected
    );
    assert_eq!(
        b.judge(key, &connect("10.100.0.1", 5432), 10_000),
        Verdict::Expected
    );
    assert_eq!(
        b.judge(key, &connect("10.100.0.1", 5433), 10_000),
        Verdict::Unexpected
    );
}
