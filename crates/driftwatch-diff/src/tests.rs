//! Unit tests on generated layer trees: every whiteout / opaque / type-change case, copy-ups,
//! hostile names, packages, and the renderings.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on a broken fixture")]

use crate::engine::{diff, ContainerMeta, DiffInput, DiffOptions, ReportSink};
use crate::model::*;
use crate::render::{JsonReport, TableReport};
use crate::runtime_config::RuntimeSummary;
use crate::walk::{HashMode, WalkStats};
use crate::DiffError;
use driftwatch_event::OverlayLayers;
use rustix::fs::{FileType as RFileType, Mode};
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

struct Tree {
    _dir: tempfile::TempDir,
    upper: PathBuf,
    lowers: Vec<PathBuf>,
}

impl Tree {
    fn new(n_lowers: usize) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        let lowers = (0..n_lowers)
            .map(|i| {
                let p = dir.path().join(format!("lower{i}"));
                std::fs::create_dir(&p).unwrap();
                p
            })
            .collect();
        Tree {
            _dir: dir,
            upper,
            lowers,
        }
    }
    fn layers(&self) -> OverlayLayers {
        OverlayLayers {
            lowerdirs: self.lowers.clone(),
            upperdir: Some(self.upper.clone()),
            workdir: None,
        }
    }
}

fn write(root: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}
fn mkdir(root: &Path, rel: &str) {
    std::fs::create_dir_all(root.join(rel)).unwrap();
}
fn whiteout(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &p,
        RFileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
}
fn opaque(root: &Path, rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    rustix::fs::setxattr(
        &p,
        "user.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

#[derive(Default)]
struct Collect {
    files: BTreeMap<String, FileEntry>,
    packages: PackageReport,
    config: Vec<ConfigFinding>,
    summary: Summary,
}

impl ReportSink for Collect {
    fn begin(&mut self, _: &ContainerMeta) -> Result<(), DiffError> {
        Ok(())
    }
    fn file(&mut self, e: &FileEntry) -> Result<(), DiffError> {
        assert!(
            self.files.insert(e.path.clone(), e.clone()).is_none(),
            "reported twice: {}",
            e.path
        );
        Ok(())
    }
    fn packages(&mut self, r: &PackageReport) -> Result<(), DiffError> {
        self.packages = r.clone();
        Ok(())
    }
    fn runtime(&mut self, _: Option<&RuntimeSummary>) -> Result<(), DiffError> {
        Ok(())
    }
    fn config(&mut self, f: &[ConfigFinding]) -> Result<(), DiffError> {
        self.config = f.to_vec();
        Ok(())
    }
    fn finish(&mut self, s: &Summary) -> Result<(), DiffError> {
        self.summary = s.clone();
        Ok(())
    }
    fn progress(&mut self, _: &WalkStats) {}
}

fn run(t: &Tree) -> Collect {
    run_with(t, &DiffOptions::default(), None, None)
}

fn run_with(t: &Tree, opts: &DiffOptions, spec: Option<&str>, config: Option<&str>) -> Collect {
    let input = DiffInput {
        layers: t.layers(),
        runtime_spec: spec.map(|s| s.as_bytes().to_vec()),
        image_config: config.map(|s| s.as_bytes().to_vec()),
        ..DiffInput::default()
    };
    let mut c = Collect::default();
    diff(&input, opts, &mut c).unwrap();
    c
}

fn get<'a>(c: &'a Collect, p: &str) -> &'a FileEntry {
    c.files.get(p).unwrap_or_else(|| {
        panic!(
            "{p} not reported; got {:#?}",
            c.files.keys().collect::<Vec<_>>()
        )
    })
}

const ELF: &[u8] = b"\x7fELF\x02\x01\x01rest-of-binary";

#[test]
fn added_modified_copied_up_and_metadata() {
    let t = Tree::new(1);
    let l = &t.lowers[0];
    write(l, "usr/bin/tool", ELF, 0o755);
    write(l, "etc/app.conf", b"a=1\n", 0o644);
    write(l, "etc/same.conf", b"same\n", 0o644);
    write(l, "etc/chmod.conf", b"x\n", 0o644);
    write(l, "data/big", &[7u8; 300_000], 0o644);
    let u = &t.upper;
    write(u, "usr/bin/tool", b"\x7fELF-other!!!!!!!!!!!!", 0o755); // same size? no: differs
    write(u, "etc/app.conf", b"a=2\n", 0o644); // same size, other bytes
    write(u, "etc/same.conf", b"same\n", 0o644); // touch
    write(u, "etc/chmod.conf", b"x\n", 0o600); // chmod
    let mut big = vec![7u8; 300_000];
    big[299_999] = 8;
    write(u, "data/big", &big, 0o644);
    write(u, "tmp/dropped", ELF, 0o755);
    write(u, "var/log/app.log", b"log\n", 0o644);
    let c = run(&t);
    let e = get(&c, "/usr/bin/tool");
    assert_eq!(
        (e.change, e.category, e.content_changed),
        (ChangeKind::Modified, Category::Binary, Some(true))
    );
    let e = get(&c, "/etc/app.conf");
    assert_eq!(
        (e.change, e.category, e.content_changed),
        (ChangeKind::Modified, Category::Config, Some(true))
    );
    assert_eq!(
        e.container
            .as_ref()
            .unwrap()
            .sha256
            .as_deref()
            .map(str::len),
        Some(64)
    );
    let e = get(&c, "/etc/same.conf");
    assert_eq!(
        (e.change, e.drift, e.content_changed),
        (ChangeKind::CopiedUp, false, Some(false))
    );
    let e = get(&c, "/etc/chmod.conf");
    assert_eq!(
        (e.change, e.content_changed, e.changed.clone()),
        (ChangeKind::Metadata, Some(false), vec!["mode".to_owned()])
    );
    assert_eq!(
        get(&c, "/data/big").change,
        ChangeKind::Modified,
        "difference in the last block"
    );
    let e = get(&c, "/tmp/dropped");
    assert_eq!(
        (e.change, e.category, e.drift),
        (ChangeKind::Added, Category::Binary, true),
        "a binary in /tmp is a binary"
    );
    let e = get(&c, "/var/log/app.log");
    assert_eq!((e.category, e.drift), (Category::Log, false));
    assert!(
        !c.files.contains_key("/etc"),
        "unchanged copied-up parent directories are not listed"
    );
    assert!(c.summary.drift);
    assert!(c
        .config
        .iter()
        .any(|f| f.field == "file" && f.message.contains("/etc/app.conf")));
    assert!(c
        .config
        .iter()
        .any(|f| f.field == "file" && f.message.contains("/etc/chmod.conf")));
    assert!(!c
        .config
        .iter()
        .any(|f| f.message.contains("/etc/same.conf")));
}

#[test]
fn whiteouts_of_every_type() {
    let t = Tree::new(2);
    let (top, bottom) = (&t.lowers[0], &t.lowers[1]);
    write(bottom, "a/file", b"x", 0o644);
    mkdir(bottom, "a/dir/sub");
    write(bottom, "a/dir/sub/f", b"y", 0o644);
    symlink("file", bottom.join("a/link")).unwrap();
    write(top, "a/top-only", b"z", 0o755);
    // Already deleted in a lower layer: a whiteout over nothing is not reported.
    whiteout(top, "a/gone");
    write(bottom, "a/gone", b"old", 0o644);
    for n in [
        "a/file",
        "a/dir",
        "a/link",
        "a/top-only",
        "a/gone",
        "a/never",
    ] {
        whiteout(&t.upper, n);
    }
    let c = run(&t);
    for (p, ty) in [
        ("/a/file", FileType::File),
        ("/a/dir", FileType::Dir),
        ("/a/link", FileType::Symlink),
        ("/a/top-only", FileType::File),
    ] {
        let e = get(&c, p);
        assert_eq!(e.change, ChangeKind::Deleted, "{p}");
        assert_eq!(e.image.as_ref().unwrap().file_type, Some(ty), "{p}");
        assert!(e.container.is_none());
    }
    assert!(!c.files.contains_key("/a/gone"));
    assert!(!c.files.contains_key("/a/never"));
    assert!(
        !c.files.contains_key("/a/dir/sub/f"),
        "one entry for a deleted directory"
    );
}

#[test]
fn opaque_directories_and_lower_whiteouts() {
    let t = Tree::new(2);
    let (top, bottom) = (&t.lowers[0], &t.lowers[1]);
    write(bottom, "opt/app/old", b"old", 0o644);
    write(bottom, "opt/app/kept", b"kept", 0o644);
    opaque(&t.upper, "opt/app");
    write(&t.upper, "opt/app/kept", b"kept", 0o644);
    write(&t.upper, "opt/app/new", b"new", 0o644);
    // A lower layer's opaque dir hides the layer below it for the walk too.
    write(bottom, "srv/x", b"1", 0o644);
    opaque(top, "srv");
    write(&t.upper, "srv/x", b"1", 0o644);
    // A whiteout in a lower layer: the path is not in the image.
    write(bottom, "var/w", b"w", 0o644);
    whiteout(top, "var/w");
    write(&t.upper, "var/w", b"w", 0o644);
    let c = run(&t);
    let e = get(&c, "/opt/app");
    assert_eq!(e.change, ChangeKind::Replaced);
    assert_eq!(
        get(&c, "/opt/app/kept").change,
        ChangeKind::Added,
        "below an opaque dir nothing of the image shows"
    );
    assert_eq!(get(&c, "/opt/app/new").change, ChangeKind::Added);
    assert_eq!(
        get(&c, "/srv/x").change,
        ChangeKind::Added,
        "hidden by the lower opaque dir"
    );
    assert_eq!(
        get(&c, "/var/w").change,
        ChangeKind::Added,
        "hidden by the lower whiteout"
    );
}

#[test]
fn type_changes() {
    let t = Tree::new(1);
    let l = &t.lowers[0];
    write(l, "x/file-to-dir", b"f", 0o644);
    mkdir(l, "x/dir-to-file/inner");
    write(l, "x/file-to-link", b"f", 0o644);
    symlink("t", l.join("x/link-to-file")).unwrap();
    mkdir(l, "x/dir-to-link");
    symlink("old", l.join("x/retarget")).unwrap();
    symlink("same", l.join("x/same-link")).unwrap();
    let u = &t.upper;
    write(u, "x/file-to-dir/child", b"c", 0o644);
    write(u, "x/dir-to-file", b"f", 0o644);
    symlink("/etc/shadow", u.join("x/file-to-link")).unwrap();
    write(u, "x/link-to-file", b"now a file", 0o644);
    symlink("/", u.join("x/dir-to-link")).unwrap();
    symlink("new", u.join("x/retarget")).unwrap();
    symlink("same", u.join("x/same-link")).unwrap();
    let c = run(&t);
    let tc = |p: &str, from: FileType, to: FileType| {
        let e = get(&c, p);
        assert_eq!(e.change, ChangeKind::TypeChanged, "{p}");
        assert_eq!(e.image.as_ref().unwrap().file_type, Some(from), "{p}");
        assert_eq!(e.container.as_ref().unwrap().file_type, Some(to), "{p}");
    };
    tc("/x/file-to-dir", FileType::File, FileType::Dir);
    tc("/x/dir-to-file", FileType::Dir, FileType::File);
    tc("/x/file-to-link", FileType::File, FileType::Symlink);
    tc("/x/link-to-file", FileType::Symlink, FileType::File);
    tc("/x/dir-to-link", FileType::Dir, FileType::Symlink);
    assert_eq!(get(&c, "/x/file-to-dir/child").change, ChangeKind::Added);
    let e = get(&c, "/x/retarget");
    assert_eq!(e.change, ChangeKind::Modified);
    assert_eq!(
        e.image.as_ref().unwrap().link_target.as_deref(),
        Some("old")
    );
    assert_eq!(
        e.container.as_ref().unwrap().link_target.as_deref(),
        Some("new")
    );
    assert_eq!(get(&c, "/x/same-link").change, ChangeKind::CopiedUp);
}

#[test]
fn hostile_names_and_trees() {
    use std::os::unix::ffi::OsStrExt;
    let t = Tree::new(1);
    let u = &t.upper;
    let weird = std::ffi::OsStr::from_bytes(b"bad\nname\xff\x1b[2J");
    std::fs::write(u.join(weird), b"x").unwrap();
    // Symlink loops and escapes are recorded, never followed.
    symlink("loop", u.join("loop")).unwrap();
    symlink("../../../../etc", u.join("escape")).unwrap();
    // A deep tree with long names: deeper than max_depth is reported, not walked.
    let mut p = u.clone();
    let long = "d".repeat(200);
    for _ in 0..40 {
        p.push(&long);
    }
    // create_dir_all fails past PATH_MAX; build it relative, level by level.
    let mut fd = rustix::fs::open(
        u,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY,
        Mode::empty(),
    )
    .unwrap();
    for _ in 0..40 {
        rustix::fs::mkdirat(&fd, long.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(
            &fd,
            long.as_str(),
            rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY,
            Mode::empty(),
        )
        .unwrap();
    }
    rustix::fs::mkdirat(&fd, "leaf", Mode::from_raw_mode(0o755)).unwrap();
    let mut opts = DiffOptions::default();
    opts.walk.max_depth = 30;
    let c = run_with(&t, &opts, None, None);
    let bad = c.files.values().find(|e| e.path_hex.is_some()).unwrap();
    assert_eq!(bad.path_bytes(), b"/bad\nname\xff\x1b[2J");
    assert_eq!(
        get(&c, "/loop")
            .container
            .as_ref()
            .unwrap()
            .link_target
            .as_deref(),
        Some("loop")
    );
    assert_eq!(get(&c, "/escape").change, ChangeKind::Added);
    assert!(c.summary.incomplete);
    let deepest = c
        .files
        .values()
        .filter(|e| e.notes.iter().any(|n| n.contains("not walked")))
        .count();
    assert_eq!(deepest, 1);
    assert!(
        c.files.keys().any(|k| k.len() > 4096),
        "paths longer than PATH_MAX are reported"
    );
    // The table keeps one line per entry.
    let mut table = TableReport::new(Vec::new());
    let input = DiffInput {
        layers: t.layers(),
        ..DiffInput::default()
    };
    diff(&input, &opts, &mut table).unwrap();
    let text = String::from_utf8(table.into_inner()).unwrap();
    assert!(text.contains("/bad\\nname\\xff\\x1b[2J"), "{text}");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn packages_and_unmanaged_changes() {
    let t = Tree::new(1);
    let l = &t.lowers[0];
    let status_old = "Package: base\nStatus: install ok installed\nVersion: 1.0\nConffiles:\n /etc/base.conf d41d8cd98f00b204e9800998ecf8427e\n\nPackage: old\nStatus: install ok installed\nVersion: 0.1\n";
    write(l, "var/lib/dpkg/status", status_old.as_bytes(), 0o644);
    // md5("hello\n") = b1946ac92492d2347c6235b4d2611184
    write(
        l,
        "var/lib/dpkg/info/base.md5sums",
        b"b1946ac92492d2347c6235b4d2611184  usr/share/base/hello\n",
        0o644,
    );
    write(
        l,
        "var/lib/dpkg/info/base.list",
        b"/usr/share/base\n/usr/share/base/hello\n/etc/base.conf\n",
        0o644,
    );
    write(l, "usr/share/base/hello", b"hello\n", 0o644);
    write(l, "etc/base.conf", b"", 0o644);
    write(
        l,
        "lib/apk/db/installed",
        b"P:musl\nV:1.2\n\nP:zlib\nV:1.3\n",
        0o644,
    );
    write(
        l,
        "usr/lib/python3.11/site-packages/requests-2.0.dist-info/METADATA",
        b"Name: requests\nVersion: 2.0\n",
        0o644,
    );
    write(
        l,
        "usr/lib/node_modules/left-pad/package.json",
        br#"{"name":"left-pad","version":"1.0.0"}"#,
        0o644,
    );
    write(l, "var/lib/rpm/Packages", b"\0\0\0\0bdb", 0o644);
    let u = &t.upper;
    let status_new = status_old
        .replace(
            "Package: old\nStatus: install ok installed\nVersion: 0.1\n",
            "Package: base2\nStatus: install ok installed\nVersion: 2.0\n",
        )
        .replace("Version: 1.0", "Version: 1.1");
    write(u, "var/lib/dpkg/status", status_new.as_bytes(), 0o644);
    write(u, "usr/share/base/hello", b"HELLO\n", 0o644);
    write(u, "etc/base.conf", b"edited\n", 0o644);
    write(
        u,
        "lib/apk/db/installed",
        b"P:musl\nV:1.2\n\nP:curl\nV:8.0\n",
        0o644,
    );
    write(
        u,
        "usr/lib/python3.11/site-packages/requests-2.0.dist-info/METADATA",
        b"Name: requests\nVersion: 2.1\n",
        0o644,
    );
    write(
        u,
        "usr/lib/python3.11/site-packages/evil-0.1.dist-info/METADATA",
        b"Name: evil\nVersion: 0.1\n",
        0o644,
    );
    whiteout(u, "usr/lib/node_modules/left-pad");
    let c = run(&t);
    let ch = |m: &str, n: &str| {
        c.packages
            .changes
            .iter()
            .find(|x| x.manager == m && x.name == n)
            .map(|x| (x.change, x.old_version.clone(), x.new_version.clone()))
    };
    assert_eq!(
        ch("dpkg", "base"),
        Some((
            PackageChangeKind::Changed,
            Some("1.0".into()),
            Some("1.1".into())
        ))
    );
    assert_eq!(
        ch("dpkg", "old").map(|x| x.0),
        Some(PackageChangeKind::Removed)
    );
    assert_eq!(
        ch("dpkg", "base2").map(|x| x.0),
        Some(PackageChangeKind::Added)
    );
    assert_eq!(
        ch("apk", "zlib").map(|x| x.0),
        Some(PackageChangeKind::Removed)
    );
    assert_eq!(
        ch("apk", "curl").map(|x| x.0),
        Some(PackageChangeKind::Added)
    );
    assert_eq!(
        ch("python", "requests").map(|x| x.0),
        Some(PackageChangeKind::Changed)
    );
    assert_eq!(
        ch("python", "evil").map(|x| x.0),
        Some(PackageChangeKind::Added)
    );
    assert_eq!(
        ch("npm", "left-pad").map(|x| x.0),
        Some(PackageChangeKind::Removed)
    );
    assert!(
        c.packages.notes.iter().any(|n| n.contains("BerkeleyDB")),
        "{:?}",
        c.packages.notes
    );
    let un: Vec<_> = c
        .packages
        .unmanaged
        .iter()
        .map(|u| (u.path.as_str(), u.package.as_str(), u.conffile))
        .collect();
    assert!(
        un.contains(&("/usr/share/base/hello", "base", false)),
        "{un:?}"
    );
    assert!(un.contains(&("/etc/base.conf", "base", true)), "{un:?}");
    assert_eq!(get(&c, "/usr/share/base/hello").category, Category::Package);
    assert_eq!(
        get(&c, "/usr/share/base/hello").package.as_deref(),
        Some("base")
    );
}

#[test]
fn json_report_is_one_document() {
    let t = Tree::new(1);
    write(&t.lowers[0], "etc/x", b"1", 0o644);
    write(&t.upper, "etc/x", b"2", 0o644);
    write(&t.upper, "new", b"n", 0o644);
    let spec = r#"{"process":{"env":["PATH=/bin","LD_PRELOAD=/x.so"],"args":["sh"],"user":{"uid":0,"gid":0}},"linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}]}}"#;
    let config = r#"{"config":{"Env":["PATH=/bin"],"Cmd":["sh"]}}"#;
    let input = DiffInput {
        layers: t.layers(),
        runtime_spec: Some(spec.as_bytes().to_vec()),
        image_config: Some(config.as_bytes().to_vec()),
        ..DiffInput::default()
    };
    let mut opts = DiffOptions::default();
    opts.walk.hash = HashMode::All;
    let mut j = JsonReport::new(Vec::new());
    let s = diff(&input, &opts, &mut j).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&j.into_inner()).unwrap();
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    assert_eq!(v["summary"]["drift"], true);
    assert!(v["config"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["field"] == "env" && f["risk"] == "critical"));
    let e = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/etc/x")
        .unwrap();
    assert_eq!(
        e["image"]["sha256"].as_str().map(str::len),
        Some(64),
        "--hash all hashes the image side"
    );
    assert!(s.drift);
    // A saved report is a baseline: same config, nothing new.
    let saved = serde_json::to_vec(&v).unwrap();
    let b = crate::Baseline::parse(Path::new("saved.json"), &saved, None).unwrap();
    assert_eq!(b.kind, "report");
    let input = DiffInput {
        baseline: Some(b),
        ..input
    };
    let mut c = Collect::default();
    diff(&input, &DiffOptions::default(), &mut c).unwrap();
    assert!(
        !c.config.iter().any(|f| f.against == "baseline"),
        "{:#?}",
        c.config
    );
    assert!(get(&c, "/new").notes.iter().any(|n| n.contains("baseline")));
}

#[test]
fn no_drift_when_nothing_changed() {
    let t = Tree::new(1);
    write(&t.lowers[0], "etc/x", b"1", 0o644);
    write(&t.upper, "etc/x", b"1", 0o644);
    write(&t.upper, "tmp/scratch", b"s", 0o644);
    let c = run(&t);
    assert!(!c.summary.drift, "{:#?}", c.files);
    let mut t2 = Tree::new(0);
    t2.upper = t2.upper.join("missing");
    let input = DiffInput {
        layers: t2.layers(),
        ..DiffInput::default()
    };
    assert!(diff(&input, &DiffOptions::default(), &mut Collect::default()).is_err());
}

fn set_xattr(root: &Path, rel: &str, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(root.join(rel), name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

#[test]
fn overlay_redirect_dir_and_metacopy() {
    let t = Tree::new(1);
    let (u, l) = (&t.upper, &t.lowers[0]);
    // `mv /etc/app /etc/renamed` with redirect_dir: the upper dir names where it came from.
    write(l, "etc/app/conf", b"a=1", 0o644);
    write(l, "etc/app/data", b"x", 0o644);
    write(u, "etc/renamed/conf", b"a=1", 0o644);
    write(u, "etc/renamed/new", b"n", 0o644);
    set_xattr(u, "etc/renamed", "user.overlay.redirect", b"/etc/app");
    whiteout(u, "etc/app");
    // A relative redirect (renamed within its parent).
    write(l, "opt/a/f", b"f", 0o644);
    write(u, "opt/b/f", b"changed", 0o644);
    set_xattr(u, "opt/b", "user.overlay.redirect", b"a");
    whiteout(u, "opt/a");
    // `chmod +x` with metacopy: the upper file has the metadata and no data.
    let data = [ELF, &[7u8; 1000][..]].concat();
    write(l, "usr/local/bin/tool", &data, 0o644);
    mkdir(u, "usr/local/bin");
    let f = std::fs::File::create(u.join("usr/local/bin/tool")).unwrap();
    f.set_len(data.len() as u64).unwrap();
    drop(f);
    std::fs::set_permissions(
        u.join("usr/local/bin/tool"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    set_xattr(u, "usr/local/bin/tool", "user.overlay.metacopy", b"");
    let c = run(&t);

    let e = get(&c, "/etc/renamed");
    assert_eq!(e.change, ChangeKind::Added);
    assert!(
        e.notes
            .iter()
            .any(|n| n.contains("overlay redirect from /etc/app")),
        "{e:?}"
    );
    assert_eq!(
        get(&c, "/etc/renamed/conf").change,
        ChangeKind::CopiedUp,
        "compared with /etc/app/conf"
    );
    assert_eq!(get(&c, "/etc/renamed/new").change, ChangeKind::Added);
    assert!(!c.files.contains_key("/etc/renamed/data"), "unchanged");
    assert_eq!(get(&c, "/etc/app").change, ChangeKind::Deleted);
    let e = get(&c, "/opt/b/f");
    assert_eq!(e.change, ChangeKind::Modified, "compared with /opt/a/f");
    assert_eq!(e.content_changed, Some(true));

    let e = get(&c, "/usr/local/bin/tool");
    assert_eq!(e.change, ChangeKind::Metadata, "{e:?}");
    assert_eq!(e.content_changed, Some(false));
    assert_eq!(e.changed, vec!["mode".to_owned()]);
    assert!(e.notes.iter().any(|n| n.contains("metacopy")), "{e:?}");
    let want = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&data))
    };
    assert_eq!(
        e.container.as_ref().and_then(|s| s.sha256.as_deref()),
        Some(want.as_str()),
        "the data hashed is the image file's"
    );
    assert_eq!(
        e.category,
        Category::Binary,
        "an ELF, from the image's bytes"
    );
}

#[test]
fn parallel_walk_reports_in_walk_order() {
    let t = Tree::new(1);
    let (u, l) = (&t.upper, &t.lowers[0]);
    for d in 0..20 {
        for f in 0..40 {
            let rel = format!("srv/d{d:02}/f{f:02}");
            let body = format!("{d}-{f}");
            write(l, &rel, body.as_bytes(), 0o644);
            match f % 4 {
                0 => write(u, &rel, body.as_bytes(), 0o644),
                1 => write(u, &rel, format!("{f}-{d}").as_bytes(), 0o644),
                2 => write(u, &rel, b"longer content", 0o755),
                _ => {}
            }
        }
        write(u, &format!("srv/d{d:02}/new"), ELF, 0o755);
    }
    let render = |threads| {
        let mut opts = DiffOptions::default();
        opts.walk.threads = Some(threads);
        let input = DiffInput {
            layers: t.layers(),
            ..DiffInput::default()
        };
        let mut r = JsonReport::new(Vec::new());
        diff(&input, &opts, &mut r).unwrap();
        String::from_utf8(r.into_inner()).unwrap()
    };
    let serial = render(0);
    assert!(serial.contains("/srv/d19/new"));
    for threads in [1, 2, 3] {
        assert_eq!(render(threads), serial, "{threads} workers");
    }
}

#[test]
fn hash_all_hashes_each_image_file_right_in_one_pass() {
    use sha2::Digest;
    let sha = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
    let t = Tree::new(1);
    let (u, l) = (&t.upper, &t.lowers[0]);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut late = big.clone();
    late[250_000] ^= 1; // differs in the second 128 KiB chunk
    let mut early = big.clone();
    early[0] ^= 1;
    for (name, image, container) in [
        ("same", &big, &big),
        ("late", &big, &late),
        ("early", &big, &early),
        ("size", &big, &big[..1000].to_vec()),
        ("small", &b"abc".to_vec(), &b"abd".to_vec()),
    ] {
        write(l, &format!("d/{name}"), image, 0o644);
        write(u, &format!("d/{name}"), container, 0o600);
    }
    for threads in [0, 2] {
        let mut opts = DiffOptions::default();
        opts.walk.hash = HashMode::All;
        opts.walk.threads = Some(threads);
        let c = run_with(&t, &opts, None, None);
        for (name, image, container) in [
            ("same", &big[..], &big[..]),
            ("late", &big[..], &late[..]),
            ("early", &big[..], &early[..]),
            ("size", &big[..], &big[..1000]),
            ("small", &b"abc"[..], &b"abd"[..]),
        ] {
            let e = get(&c, &format!("/d/{name}"));
            let img = e.image.as_ref().and_then(|s| s.sha256.clone());
            let ctr = e.container.as_ref().and_then(|s| s.sha256.clone());
            assert_eq!(img, Some(sha(image)), "image side of {name}");
            assert_eq!(ctr, Some(sha(container)), "container side of {name}");
            assert_eq!(e.content_changed, Some(image != container), "{name}");
        }
    }
}
