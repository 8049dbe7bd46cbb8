//! `/proc/<pid>/mountinfo` parsing: the root mount of a process and its overlay layers.
//!
//! Line format (proc(5)):
//! `id parent major:minor root mount_point mount_options [optional fields...] - fstype source super_options`.
//! The kernel escapes space, tab, newline and backslash in paths as `\ooo` octal; in super
//! options (`seq_show_option`) also `,` and `=`.

use driftwatch_event::OverlayLayers;
use std::path::PathBuf;

/// One parsed mountinfo line (only the fields driftwatch uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Root of the mount inside its filesystem (unescaped).
    pub root: String,
    /// Mount point relative to the process's root (unescaped).
    pub mount_point: String,
    pub fstype: String,
    /// Mount source (unescaped).
    pub source: String,
    /// Raw (still escaped) super options; split them with [`split_super_options`].
    pub super_options: String,
}

/// Undo the kernel's `\ooo` octal escapes. Anything malformed is kept as written.
pub fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = u32::from(oct[0] - b'0') * 64
                    + u32::from(oct[1] - b'0') * 8
                    + u32::from(oct[2] - b'0');
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse one mountinfo line; `None` when it is malformed.
pub fn parse_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let _id = fields.next()?;
    let _parent = fields.next()?;
    let _dev = fields.next()?;
    let root = fields.next()?;
    let mount_point = fields.next()?;
    let _options = fields.next()?;
    // Optional fields run until the lone "-" separator.
    loop {
        if fields.next()? == "-" {
            break;
        }
    }
    let fstype = fields.next()?;
    let source = fields.next()?;
    let super_options = fields.next().unwrap_or("");
    Some(MountEntry {
        root: unescape(root),
        mount_point: unescape(mount_point),
        fstype: unescape(fstype),
        source: unescape(source),
        super_options: super_options.to_string(),
    })
}

/// All well-formed lines of a mountinfo file, in order.
pub fn parse(content: &str) -> Vec<MountEntry> {
    content.lines().filter_map(parse_line).collect()
}

/// The mount visible at `/` for the process: the last entry whose mount point is `/` (a later
/// mount on the same point hides the earlier ones).
pub fn root_mount(content: &str) -> Option<MountEntry> {
    content
        .lines()
        .rev()
        .filter_map(parse_line)
        .find(|m| m.mount_point == "/")
}

/// Split super options on `,` into `(key, value)` pairs with escapes undone (the kernel
/// escapes `,` and `=` inside values, so the raw split is safe).
pub fn split_super_options(raw: &str) -> Vec<(String, Option<String>)> {
    raw.split(',')
        .filter(|o| !o.is_empty())
        .map(|o| match o.split_once('=') {
            Some((k, v)) => (unescape(k), Some(unescape(v))),
            None => (unescape(o), None),
        })
        .collect()
}

/// Split an overlayfs `lowerdir=` value into its layers, topmost first. `\` escapes the next
/// character (so `\:` is a colon inside a path); layers after `::` are data-only layers
/// (not part of the merged namespace) and are left out.
pub fn split_lowerdir(value: &str) -> Vec<String> {
    let mut layers = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ':' => {
                if cur.is_empty() {
                    // "::" starts the data-only layers.
                    return layers;
                }
                layers.push(std::mem::take(&mut cur));
                if chars.peek() == Some(&':') {
                    return layers;
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        layers.push(cur);
    }
    layers
}

/// Overlay layers from overlayfs options given as `(key, value)` pairs: handles both the
/// classic `lowerdir=a:b` and the 6.x `lowerdir+=a,lowerdir+=b` forms.
pub fn overlay_from_options<'a>(
    options: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> OverlayLayers {
    let mut layers = OverlayLayers::default();
    for (key, value) in options {
        let Some(value) = value else { continue };
        match key {
            "lowerdir" => layers
                .lowerdirs
                .extend(split_lowerdir(value).into_iter().map(PathBuf::from)),
            "lowerdir+" => layers.lowerdirs.push(PathBuf::from(value)),
            "upperdir" => layers.upperdir = Some(PathBuf::from(value)),
            "workdir" => layers.workdir = Some(PathBuf::from(value)),
            _ => {}
        }
    }
    layers
}

/// The overlay layers of a mount, `None` when it is not an overlay.
pub fn overlay_layers(entry: &MountEntry) -> Option<OverlayLayers> {
    if entry.fstype != "overlay" {
        return None;
    }
    let options = split_super_options(&entry.super_options);
    Some(overlay_from_options(
        options.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
    ))
}

/// Overlay layers of the root mount described by a mountinfo file's content.
pub fn root_overlay(content: &str) -> Option<OverlayLayers> {
    root_mount(content).as_ref().and_then(overlay_layers)
}

/// True when every layer path is absolute (containerd may mount with relative lowerdirs
/// after a `chdir` when the option string is too long; those cannot be used from here).
pub fn layers_are_absolute(layers: &OverlayLayers) -> bool {
    layers.lowerdirs.iter().all(|p| p.is_absolute())
        && layers.upperdir.as_ref().is_none_or(|p| p.is_absolute())
        && layers.workdir.as_ref().is_none_or(|p| p.is_absolute())
}

/// The mount point of the first cgroup2 filesystem whose root is `/`.
pub fn cgroup2_mount(content: &str) -> Option<PathBuf> {
    content
        .lines()
        .filter_map(parse_line)
        .find(|m| m.fstype == "cgroup2" && m.root == "/")
        .map(|m| PathBuf::from(m.mount_point))
}

/// The mount point of the cgroup v1 hierarchy of `controller` (`freezer`), root `/`: the
/// super options name the controllers it holds.
pub fn cgroup1_mount(content: &str, controller: &str) -> Option<PathBuf> {
    content
        .lines()
        .filter_map(parse_line)
        .find(|m| {
            m.fstype == "cgroup"
                && m.root == "/"
                && split_super_options(&m.super_options)
                    .iter()
                    .any(|(k, v)| v.is_none() && k == controller)
        })
        .map(|m| PathBuf::from(m.mount_point))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cgroup1_mount_of_a_controller() {
        let info =
            "30 25 0:26 / /sys/fs/cgroup/freezer rw,relatime shared:9 - cgroup cgroup rw,freezer\n\
                    31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                    32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup1_mount(info, "freezer"),
            Some(PathBuf::from("/sys/fs/cgroup/freezer"))
        );
        assert_eq!(
            cgroup1_mount(info, "cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(cgroup1_mount(info, "memory"), None);
    }

    const SNAP: &str = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots";

    fn line(mount_point: &str, fstype: &str, opts: &str) -> String {
        format!(
            "69 46 0:39 / {mount_point} rw,relatime shared:1 master:2 - {fstype} {fstype} {opts}"
        )
    }

    #[test]
    fn unescape_handles_octal_and_leaves_malformed_alone() {
        assert_eq!(unescape(r"/a\040b\011c\012d\134e"), "/a b\tc\nd\\e");
        assert_eq!(unescape(r"/x\04"), r"/x\04");
        assert_eq!(unescape(r"/x\9zz"), r"/x\9zz");
        assert_eq!(unescape(r"trailing\"), r"trailing\");
        assert_eq!(unescape(r"\777"), r"\777");
    }

    #[test]
    fn parses_overlay_root_with_multiple_lowerdirs() {
        let content = format!(
            "{}\n{}\n{}\n",
            line("/proc", "proc", "rw"),
            line(
                "/",
                "overlay",
                &format!(
                    "rw,lowerdir={SNAP}/3/fs:{SNAP}/2/fs:{SNAP}/1/fs,upperdir={SNAP}/4/fs,workdir={SNAP}/4/work,index=off"
                )
            ),
            line("/dev", "tmpfs", "rw,size=65536k"),
        );
        let layers = root_overlay(&content).unwrap();
        assert_eq!(
            layers.lowerdirs,
            vec![
                PathBuf::from(format!("{SNAP}/3/fs")),
                PathBuf::from(format!("{SNAP}/2/fs")),
                PathBuf::from(format!("{SNAP}/1/fs")),
            ]
        );
        assert_eq!(layers.upperdir, Some(PathBuf::from(format!("{SNAP}/4/fs"))));
        assert_eq!(
            layers.workdir,
            Some(PathBuf::from(format!("{SNAP}/4/work")))
        );
        assert!(layers_are_absolute(&layers));
    }

    #[test]
    fn handles_escaped_characters_in_layer_paths() {
        // A space, a comma and a colon (user-escaped as `\:`, whose backslash the kernel
        // escapes again as \134) inside paths.
        let opts = r"rw,lowerdir=/l\040one:/l\054two:/l\134:three,upperdir=/u\040p,workdir=/w";
        let content = line("/", "overlay", opts);
        let layers = root_overlay(&content).unwrap();
        assert_eq!(
            layers.lowerdirs,
            vec![
                PathBuf::from("/l one"),
                PathBuf::from("/l,two"),
                PathBuf::from("/l:three")
            ]
        );
        assert_eq!(layers.upperdir.as_deref(), Some(Path::new("/u p")));
    }

    #[test]
    fn handles_lowerdir_plus_style_and_data_only_layers() {
        let content = line(
            "/",
            "overlay",
            "rw,lowerdir+=/a,lowerdir+=/b,datadir+=/d,upperdir=/u,workdir=/w,redirect_dir=on",
        );
        let layers = root_overlay(&content).unwrap();
        assert_eq!(
            layers.lowerdirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(split_lowerdir("/a:/b::/data1::/data2"), vec!["/a", "/b"]);
        assert_eq!(split_lowerdir("/only"), vec!["/only"]);
        assert!(split_lowerdir("").is_empty());
    }

    #[test]
    fn read_only_overlay_has_no_upperdir() {
        let layers = root_overlay(&line("/", "overlay", "ro,lowerdir=/a:/b")).unwrap();
        assert_eq!(layers.lowerdirs.len(), 2);
        assert_eq!(layers.upperdir, None);
    }

    #[test]
    fn non_overlay_root_is_none() {
        let content = format!(
            "{}\n{}",
            line("/", "ext4", "rw,errors=remount-ro"),
            line("/boot", "vfat", "rw")
        );
        assert_eq!(root_mount(&content).unwrap().fstype, "ext4");
        assert_eq!(root_overlay(&content), None);
    }

    #[test]
    fn last_mount_on_root_wins_and_paths_are_unescaped() {
        let content = format!(
            "{}\n{}\n",
            line("/", "ext4", "rw"),
            line("/", "overlay", "rw,lowerdir=/a,upperdir=/u,workdir=/w")
        );
        assert_eq!(root_mount(&content).unwrap().fstype, "overlay");
        let e = parse_line(r"1 2 0:3 /r\040x /mnt\040point rw - tmpfs my\040src rw").unwrap();
        assert_eq!(e.root, "/r x");
        assert_eq!(e.mount_point, "/mnt point");
        assert_eq!(e.source, "my src");
    }

    #[test]
    fn relative_lowerdirs_are_detected() {
        let layers = root_overlay(&line(
            "/",
            "overlay",
            "rw,lowerdir=5/fs:4/fs,upperdir=/u,workdir=/w",
        ))
        .unwrap();
        assert!(!layers_are_absolute(&layers));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("1 2 0:3 / /x rw no-separator-here"), None);
        assert_eq!(parse("garbage\n\n1 2 3").len(), 0);
    }

    #[test]
    fn finds_cgroup2_mount_in_hybrid_and_unified_layouts() {
        let hybrid = "30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                      42 31 0:39 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "30 25 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            cgroup2_mount("30 25 0:26 / /x rw - ext4 /dev/sda rw\n"),
            None
        );
    }
}
