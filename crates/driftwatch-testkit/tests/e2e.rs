//! Needs root, containerd/ctr/runc, busybox-static and gcc (static libc).
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failure should stop the test"
)]

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;

use driftwatch_testkit::{
    ensure_containerd, unique_id, BuiltImage, Compression, Container, Containerd, ImageBuilder,
    ImportedImage, MountSpec, RunOpts, MARKER_HELPER_C,
};
use sha2::{Digest, Sha256};

const NS: &str = "driftwatch-testkit-test";

fn containerd() -> Containerd {
    static CLEAN: OnceLock<Containerd> = OnceLock::new();
    CLEAN
        .get_or_init(|| {
            let c = ensure_containerd().unwrap();
            c.cleanup_namespace(NS).unwrap();
            c
        })
        .clone()
}

fn two_layer_builder(name: &str) -> ImageBuilder {
    ImageBuilder::new(name)
        .busybox()
        .static_helper("/bin/marker", MARKER_HELPER_C)
        .file("/etc/lower-only", "lower\n", 0o644)
        .file("/data/a", "a\n", 0o644)
        .file("/data/b", "b\n", 0o644)
        .layer()
        .whiteout("/etc/lower-only")
        .opaque("/data")
        .file("/data/c", "c\n", 0o644)
        .file("/tmp/upper-file", "u\n", 0o600)
}

fn image() -> &'static ImportedImage {
    static IMG: OnceLock<ImportedImage> = OnceLock::new();
    IMG.get_or_init(|| {
        two_layer_builder("driftwatch-test/testkit:1")
            .import(&containerd(), NS)
            .unwrap()
    })
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn untar(bytes: &[u8]) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut a = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, (data, mode));
    }
    out
}

fn check_layout(img: &BuiltImage, tar_bytes: &[u8]) {
    let files = untar(tar_bytes);
    assert!(files.contains_key("oci-layout"));
    let blob = |d: &str| {
        let (data, _) = files
            .get(&format!("blobs/sha256/{}", d.trim_start_matches("sha256:")))
            .unwrap_or_else(|| panic!("missing blob {d}"));
        assert_eq!(sha(data), d, "blob content matches its digest");
        data.clone()
    };
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"].0).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["org.opencontainers.image.ref.name"],
        img.name.rsplit(':').next().unwrap()
    );
    assert_eq!(m["annotations"]["io.containerd.image.name"], img.name);
    let manifest_bytes = blob(m["digest"].as_str().unwrap());
    assert_eq!(m["size"].as_u64().unwrap(), manifest_bytes.len() as u64);
    assert_eq!(m["digest"], img.manifest_digest);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_bytes = blob(manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(
        manifest["config"]["size"].as_u64().unwrap(),
        config_bytes.len() as u64
    );
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(diff_ids.len(), layers.len());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let data = blob(layer["digest"].as_str().unwrap());
        assert_eq!(layer["size"].as_u64().unwrap(), data.len() as u64);
        let plain = if layer["mediaType"].as_str().unwrap().ends_with("+gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data.as_slice())
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            data
        };
        assert_eq!(&sha(&plain), diff_id.as_str().unwrap());
    }
}

#[test]
fn layout_is_valid_and_deterministic() {
    for compression in [Compression::Gzip, Compression::None] {
        let b = two_layer_builder("driftwatch-test/layout:1").compression(compression);
        let img = b.build().unwrap();
        let bytes = img.oci_tar_bytes().unwrap();
        check_layout(&img, &bytes);
        let again = b.build().unwrap().oci_tar_bytes().unwrap();
        assert_eq!(bytes, again, "byte-identical rebuild");
        // The upper layer carries the whiteout markers and keeps /tmp's mode.
        let files = untar(&bytes);
        let upper = &files[&format!(
            "blobs/sha256/{}",
            img.layers[1].digest.trim_start_matches("sha256:")
        )]
            .0;
        let plain = match compression {
            Compression::None => upper.clone(),
            Compression::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(upper.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
        };
        let entries = untar(&plain);
        assert!(entries.contains_key("etc/.wh.lower-only"), "{entries:?}");
        assert!(entries.contains_key("data/.wh..wh..opq"));
        assert_eq!(entries["tmp/"].1, 0o1777);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img.tar");
    let img = two_layer_builder("driftwatch-test/layout:1")
        .build_oci_tar(&out)
        .unwrap();
    check_layout(&img, &std::fs::read(&out).unwrap());
}

#[test]
fn import_lists_the_image_and_reimport_is_a_noop() {
    let c = containerd();
    let img = image();
    assert_eq!(img.reference, "driftwatch-test/testkit:1");
    let again = two_layer_builder("driftwatch-test/testkit:1")
        .import(&c, NS)
        .unwrap();
    assert_eq!(&again, img);
    assert!(c.images(NS).unwrap().contains(&img.reference));
}

#[test]
fn uncompressed_layers_import() {
    let img = ImageBuilder::new("driftwatch-test/plain:1")
        .compression(Compression::None)
        .busybox()
        .import(&containerd(), NS)
        .unwrap();
    let c = Container::run(
        &containerd(),
        NS,
        &img.reference,
        &unique_id("plain"),
        RunOpts::default(),
    )
    .unwrap();
    assert_eq!(
        c.exec(&["cat", "/etc/group"])
            .unwrap()
            .stdout
            .lines()
            .next(),
        Some("root:x:0:")
    );
}

#[test]
fn container_exec_whiteouts_and_upper_dir() {
    let c = containerd();
    let ctr = Container::run(
        &c,
        NS,
        &image().reference,
        &unique_id("exec"),
        RunOpts::default(),
    )
    .unwrap();
    assert!(ctr.init_pid() > 1);
    let out = ctr.exec(&["echo", "hi"]).unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "hi\n");

    // Whiteout hides the lower file; opaque dir keeps only the upper entries.
    let lower = ctr.exec(&["test", "-e", "/etc/lower-only"]).unwrap();
    assert_eq!(lower.code(), Some(1));
    let data = ctr.exec(&["ls", "/data"]).unwrap();
    assert_eq!(data.stdout.split_whitespace().collect::<Vec<_>>(), ["c"]);
    let tmp = ctr.exec(&["stat", "-c", "%a", "/tmp"]).unwrap();
    assert_eq!(tmp.stdout.trim(), "1777");
    let false_ = ctr.exec(&["false"]).unwrap();
    assert_eq!(false_.code(), Some(1));

    // A file written in the container lands in the overlay upper dir.
    let w = ctr
        .exec(&["sh", "-c", "echo drift > /root/dropped"])
        .unwrap();
    assert!(w.success(), "{w:?}");
    let upper = ctr.upper_dir().unwrap();
    assert_eq!(
        std::fs::read_to_string(upper.join("root/dropped")).unwrap(),
        "drift\n"
    );
    assert!(!ctr.lower_dirs().unwrap().is_empty());
    assert!(ctr.cgroup_v2_path().unwrap().contains(ctr.id()));
    let id = ctr.id().to_owned();
    drop(ctr);
    assert!(
        !c.containers(NS).unwrap().contains(&id),
        "dropped container removed"
    );
}

#[test]
fn marker_helper_creates_its_file_and_tmpfs_is_exec() {
    let c = containerd();
    let opts = RunOpts {
        mounts: vec![MountSpec::tmpfs_exec("/scratch")],
        labels: vec![("io.kubernetes.pod.name".into(), "demo".into())],
        ..RunOpts::default()
    };
    let ctr = Container::run(&c, NS, &image().reference, &unique_id("marker"), opts).unwrap();
    let r = ctr.exec(&["/bin/marker", "/tmp/ran"]).unwrap();
    assert!(r.success(), "{r:?}");
    assert!(ctr.exec(&["test", "-f", "/tmp/ran"]).unwrap().success());
    // A dropped copy on an exec-able tmpfs runs too.
    let cp = ctr.exec(&["cp", "/bin/marker", "/scratch/m"]).unwrap();
    assert!(cp.success(), "{cp:?}");
    assert!(ctr.exec(&["/scratch/m", "/scratch/ran"]).unwrap().success());
    assert!(ctr.exec(&["test", "-f", "/scratch/ran"]).unwrap().success());
    let info = c
        .ctr_checked(NS, &["containers", "info", ctr.id()])
        .unwrap();
    assert!(info.stdout.contains("io.kubernetes.pod.name"));
}

#[test]
fn exec_times_out() {
    let ctr = Container::run(
        &containerd(),
        NS,
        &image().reference,
        &unique_id("timeout"),
        RunOpts::default(),
    )
    .unwrap();
    let err = ctr
        .exec_with_timeout(&["sleep", "30"], std::time::Duration::from_millis(500))
        .unwrap_err();
    assert!(
        matches!(err, driftwatch_testkit::TestkitError::Timeout { .. }),
        "{err}"
    );
}

#[test]
fn bad_paths_are_errors_not_panics() {
    let err = ImageBuilder::new("x/y:1")
        .file("../etc", "x", 0o644)
        .build();
    assert!(err.is_err());
    assert!(ImageBuilder::new("x/y:1").build().is_err());
    let err = ImageBuilder::new("x/y:1")
        .static_helper("/bin/bad", "this is not C")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("compiling"), "{err}");
}
