use crate::{sha256_file, ImageError};

#[test]
fn sha256_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, b"abc").unwrap();
    let digest = sha256_file(&p).unwrap();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let big = dir.path().join("big");
    std::fs::write(&big, vec![7u8; 100_000]).unwrap();
    assert_ne!(sha256_file(&big).unwrap(), digest);
}

#[test]
fn sha256_refuses_symlinks_fifos_and_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    std::fs::write(&target, b"abc").unwrap();
    let link = dir.path().join("l");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        0,
    )
    .unwrap();
    for p in [
        &link,
        &fifo,
        &dir.path().to_path_buf(),
        &dir.path().join("missing"),
    ] {
        match sha256_file(p) {
            Err(ImageError::Hash { path, .. }) => assert_eq!(&path, p),
            other => panic!("{}: {other:?}", p.display()),
        }
    }
}
