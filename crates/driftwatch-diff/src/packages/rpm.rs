//! rpm: the sqlite database (`rpmdb.sqlite`, table `Packages`, one header blob per package).
//! BerkeleyDB (`Packages`) and ndb (`Packages.db`) databases are detected and reported as not
//! read.

use super::{Package, PackageSet, MAX_DB_BYTES};
use crate::view::View;

const DIRS: &[&str] = &["/var/lib/rpm", "/usr/lib/sysimage/rpm"];

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;

/// Fields of one rpm header blob (as stored in rpmdb.sqlite: no magic, `il`, `dl`, index,
/// data). Every offset is bounds-checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub epoch: Option<u32>,
    pub arch: Option<String>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub fn parse_header(blob: &[u8]) -> Option<Header> {
    let il = usize::try_from(be32(blob, 0)?).ok()?;
    let dl = usize::try_from(be32(blob, 4)?).ok()?;
    let data_start = il.checked_mul(16)?.checked_add(8)?;
    let data = blob.get(data_start..data_start.checked_add(dl)?)?;
    let mut h = Header::default();
    for i in 0..il {
        let at = 8 + i * 16;
        let (tag, ty, off) = (
            be32(blob, at)?,
            be32(blob, at + 4)?,
            usize::try_from(be32(blob, at + 8)?).ok()?,
        );
        let string = || -> Option<String> {
            let rest = data.get(off..)?;
            let end = rest.iter().position(|b| *b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        let is_str = ty == TYPE_STRING || ty == TYPE_I18NSTRING;
        match tag {
            TAG_NAME if is_str => h.name = string(),
            TAG_VERSION if is_str => h.version = string(),
            TAG_RELEASE if is_str => h.release = string(),
            TAG_ARCH if is_str => h.arch = string(),
            TAG_EPOCH if ty == TYPE_INT32 => h.epoch = be32(data, off),
            _ => {}
        }
    }
    Some(h)
}

impl Header {
    /// `[epoch:]version-release`.
    pub fn evr(&self) -> String {
        let mut s = String::new();
        if let Some(e) = self.epoch {
            s.push_str(&format!("{e}:"));
        }
        s.push_str(self.version.as_deref().unwrap_or(""));
        if let Some(r) = &self.release {
            s.push('-');
            s.push_str(r);
        }
        s
    }
}

fn read_sqlite(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(&path, flags).map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages")
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| e.to_string())?;
    rows.map(|r| r.map_err(|e| e.to_string())).collect()
}

pub fn read(view: &View) -> PackageSet {
    let mut set = PackageSet::default();
    for dir in DIRS {
        let sqlite = format!("{dir}/rpmdb.sqlite");
        if let Some(bytes) = view.read_file(sqlite.as_bytes(), MAX_DB_BYTES) {
            set.present = true;
            match read_sqlite(&bytes) {
                Ok(blobs) => {
                    for b in blobs {
                        let Some(h) = parse_header(&b) else {
                            set.notes
                                .push(format!("{sqlite}: an unreadable package header"));
                            continue;
                        };
                        let Some(name) = h.name.clone() else { continue };
                        let key = match &h.arch {
                            Some(a) if set.packages.contains_key(&name) => format!("{name}.{a}"),
                            _ => name.clone(),
                        };
                        set.insert(
                            key,
                            Package {
                                name,
                                version: h.evr(),
                                location: None,
                            },
                        );
                    }
                }
                Err(e) => set.notes.push(format!("{sqlite}: cannot read ({e})")),
            }
            return set;
        }
        for (file, kind) in [("Packages", "BerkeleyDB"), ("Packages.db", "ndb")] {
            let p = format!("{dir}/{file}");
            if view.exists(p.as_bytes()) {
                set.present = true;
                set.notes.push(format!(
                    "rpm database {p} is {kind}: not read (only rpmdb.sqlite is supported)"
                ));
                return set;
            }
        }
    }
    set
}

#[cfg(test)]
pub(crate) fn make_header(fields: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (tag, ty, value) in fields {
        index.extend_from_slice(&tag.to_be_bytes());
        index.extend_from_slice(&ty.to_be_bytes());
        index.extend_from_slice(&(data.len() as u32).to_be_bytes());
        index.extend_from_slice(&1u32.to_be_bytes());
        data.extend_from_slice(value);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&index);
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_and_hostile_blobs() {
        let blob = make_header(&[
            (TAG_NAME, TYPE_STRING, b"bash\0"),
            (TAG_VERSION, TYPE_STRING, b"5.1.8\0"),
            (TAG_RELEASE, TYPE_STRING, b"9.el9\0"),
            (TAG_EPOCH, TYPE_INT32, &1u32.to_be_bytes()),
            (TAG_ARCH, TYPE_STRING, b"x86_64\0"),
        ]);
        let h = parse_header(&blob).unwrap();
        assert_eq!(h.name.as_deref(), Some("bash"));
        assert_eq!(h.evr(), "1:5.1.8-9.el9");
        for cut in 0..blob.len() {
            let _ = parse_header(&blob[..cut]);
        }
        assert!(parse_header(&[0xff; 8]).is_none());
        let mut bad = blob.clone();
        bad[8 + 8..8 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_header(&bad).unwrap().name, None);
    }

    #[test]
    fn sqlite_db_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("db");
        let conn = rusqlite::Connection::open(&p).unwrap();
        conn.execute(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)",
            [],
        )
        .unwrap();
        let blob = make_header(&[
            (TAG_NAME, TYPE_STRING, b"zlib\0"),
            (TAG_VERSION, TYPE_STRING, b"1.2\0"),
        ]);
        conn.execute("INSERT INTO Packages (blob) VALUES (?1)", [&blob])
            .unwrap();
        drop(conn);
        let blobs = read_sqlite(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(
            parse_header(&blobs[0]).unwrap().name.as_deref(),
            Some("zlib")
        );
    }
}
