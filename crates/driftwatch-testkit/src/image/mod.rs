//! Deterministic OCI images built by code: layers, whiteouts, static helpers, import.
//!
//! ```no_run
//! use driftwatch_testkit::{ensure_containerd, ImageBuilder, MARKER_HELPER_C};
//! let containerd = ensure_containerd()?;
//! let image = ImageBuilder::new("driftwatch-test/busybox:1")
//!     .busybox()
//!     .static_helper("/bin/marker", MARKER_HELPER_C)
//!     .layer()
//!     .file("/etc/motd", "hello\n", 0o644)
//!     .whiteout("/bin/wc")
//!     .import(&containerd, "driftwatch-test")?;
//! println!("{} {}", image.reference, image.manifest_digest);
//! # Ok::<(), driftwatch_testkit::TestkitError>(())
//! ```

mod busybox;
mod debian;
mod helper;
mod layer;
mod layout;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

pub use busybox::{APPLETS, HOST_BUSYBOX};
pub use debian::{
    build_deb, debian_image, debian_mirror, debian_rootfs, DEBIAN_IMAGE, DEBIAN_SUITE,
};
pub use helper::{
    cache_dir, compile_dynamic_helper, compile_helper, compile_shared_library,
    compile_static_helper, MARKER_HELPER_C, NOOP_HELPER_C,
};
pub use layer::{Compression, LayerBlob, FIXED_MTIME};
pub use layout::{BuiltImage, ImportedImage};

use crate::error::{Result, TestkitError};
use layer::{Entry, LayerSpec};

/// `PATH` set in the image config.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds a (multi-layer) OCI image in memory; see the module docs.
///
/// Methods chain by value. Failures while collecting content (busybox missing, helper does not
/// compile, bad path) are remembered and returned by [`build`](Self::build),
/// [`build_oci_tar`](Self::build_oci_tar) or [`import`](Self::import).
#[derive(Debug)]
pub struct ImageBuilder {
    name: String,
    layers: Vec<LayerSpec>,
    compression: Compression,
    env: Vec<String>,
    cmd: Vec<String>,
    labels: BTreeMap<String, String>,
    exposed_ports: Vec<String>,
    error: Option<TestkitError>,
}

impl ImageBuilder {
    /// Starts an image named `name` (`repository:tag`, kept verbatim as the containerd image
    /// name) with one empty layer.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            layers: vec![LayerSpec::default()],
            compression: Compression::default(),
            env: vec![format!("PATH={DEFAULT_PATH}")],
            cmd: vec!["sh".to_owned()],
            labels: BTreeMap::new(),
            exposed_ports: Vec::new(),
            error: None,
        }
    }

    /// The image name given to [`new`](Self::new).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn fail(&mut self, e: TestkitError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn put(mut self, path: &str, entry: Entry) -> Self {
        match layer::normalize(path) {
            Ok(p) => {
                if let Some(top) = self.layers.last_mut() {
                    top.entries.insert(p, entry);
                }
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Adds a regular file with `mode` (permission bits, e.g. `0o755`) to the current layer.
    pub fn file(self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.put(
            path,
            Entry::File {
                bytes: bytes.into(),
                mode,
            },
        )
    }

    /// Adds a copy of a host file (read now) with `mode` to the current layer.
    pub fn host_file(mut self, path: &str, host_path: impl AsRef<Path>, mode: u32) -> Self {
        let host_path = host_path.as_ref();
        match fs::read(host_path) {
            Ok(bytes) => self.file(path, bytes, mode),
            Err(e) => {
                self.fail(TestkitError::io(host_path, e));
                self
            }
        }
    }

    /// Adds a directory with `mode` (e.g. `0o1777`) to the current layer.
    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.put(path, Entry::Dir { mode })
    }

    /// Adds a symbolic link `path -> target` to the current layer.
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.put(
            path,
            Entry::Symlink {
                target: target.to_owned(),
            },
        )
    }

    /// Adds the host's busybox-static as `/bin/busybox`, `/bin/<applet>` symlinks for the
    /// [`APPLETS`] it provides, the usual top-level directories (`/tmp` mode 1777, `/root` 0700),
    /// and minimal `/etc/passwd` and `/etc/group`.
    pub fn busybox(self) -> Self {
        let mut b = self
            .dir("/bin", 0o755)
            .dir("/dev", 0o755)
            .dir("/etc", 0o755)
            .dir("/proc", 0o555)
            .dir("/root", 0o700)
            .dir("/run", 0o755)
            .dir("/sys", 0o555)
            .dir("/tmp", 0o1777)
            .dir("/usr/bin", 0o755)
            .dir("/var/tmp", 0o1777)
            .file("/etc/passwd", busybox::PASSWD, 0o644)
            .file("/etc/group", busybox::GROUP, 0o644)
            .host_file("/bin/busybox", HOST_BUSYBOX, 0o755);
        for applet in busybox::available_applets() {
            b = b.symlink(&format!("/bin/{applet}"), "busybox");
        }
        b
    }

    /// Compiles `c_source` with `gcc -static -O2` (cached, see [`compile_static_helper`]) and
    /// adds the binary at `path` with mode 0755.
    /// Adds the host's dynamic loader and libc, so dynamically linked helpers run in the image
    /// (`/lib64/ld-linux-x86-64.so.2`, `/lib/x86_64-linux-gnu/{ld-linux-x86-64.so.2,libc.so.6}`).
    pub fn dynamic_runtime(self) -> Self {
        const LIBDIR: &str = "/lib/x86_64-linux-gnu";
        self.dir("/lib64", 0o755)
            .dir("/lib", 0o755)
            .dir(LIBDIR, 0o755)
            .host_file(
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                0o755,
            )
            .symlink(
                "/lib64/ld-linux-x86-64.so.2",
                "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            )
            .host_file(
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libc.so.6",
                0o755,
            )
    }

    /// Compiles `c_source` into a dynamically linked executable at `path` (add
    /// [`Self::dynamic_runtime`] too).
    pub fn dynamic_helper(mut self, path: &str, c_source: &str) -> Self {
        match helper::compile_dynamic_helper(c_source) {
            Ok(bin) => self.host_file(path, bin, 0o755),
            Err(e) => {
                self.fail(e);
                self
            }
        }
    }

    /// Compiles `c_source` into a shared library at `path`.
    pub fn shared_library(mut self, path: &str, c_source: &str) -> Self {
        match helper::compile_shared_library(c_source) {
            Ok(lib) => self.host_file(path, lib, 0o755),
            Err(e) => {
                self.fail(e);
                self
            }
        }
    }

    pub fn static_helper(mut self, path: &str, c_source: &str) -> Self {
        match compile_static_helper(c_source) {
            Ok(bin) => self.host_file(path, bin, 0o755),
            Err(e) => {
                self.fail(e);
                self
            }
        }
    }

    /// Starts a new layer; following additions go into it.
    pub fn layer(mut self) -> Self {
        self.layers.push(LayerSpec::default());
        self
    }

    /// Hides `path` of lower layers (a `.wh.<name>` entry in the current layer).
    pub fn whiteout(mut self, path: &str) -> Self {
        match layer::normalize(path) {
            Ok(p) => {
                if let Some(top) = self.layers.last_mut() {
                    top.whiteouts.insert(p);
                }
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Makes directory `dir` opaque in the current layer (a `.wh..wh..opq` entry): lower-layer
    /// contents of `dir` disappear, entries added to `dir` in this layer stay.
    pub fn opaque(mut self, dir: &str) -> Self {
        match layer::normalize(dir) {
            Ok(p) => {
                if let Some(top) = self.layers.last_mut() {
                    top.opaques.insert(p);
                }
            }
            Err(e) => self.fail(e),
        }
        self
    }

    /// Chooses how layer blobs are stored (default gzip).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Adds `KEY=VALUE` to the config's environment (after `PATH`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Sets the config's default command (default `["sh"]`).
    pub fn cmd<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd = args.into_iter().map(Into::into).collect();
        self
    }

    /// Declares a listening port in the config's `ExposedPorts` (`8080/tcp`, `53/udp`).
    pub fn expose(mut self, port: &str) -> Self {
        self.exposed_ports.push(port.to_owned());
        self
    }

    /// Adds an image config label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Renders layers, config, manifest and index in memory. Deterministic: the same builder
    /// calls give byte-identical blobs and digests.
    pub fn build(&self) -> Result<BuiltImage> {
        if let Some(e) = &self.error {
            return Err(TestkitError::InvalidImage {
                reason: e.to_string(),
            });
        }
        let layers: Vec<&LayerSpec> = self.layers.iter().filter(|l| !l.is_empty()).collect();
        if layers.is_empty() {
            return Err(TestkitError::InvalidImage {
                reason: format!("image {} has no content", self.name),
            });
        }
        let mut dir_modes = BTreeMap::new();
        let mut blobs = Vec::new();
        for l in layers {
            for (p, e) in &l.entries {
                if let Entry::Dir { mode } = e {
                    dir_modes.insert(p.clone(), *mode);
                }
            }
            let tar = l.render_tar(&dir_modes)?;
            blobs.push(layer::encode(tar, self.compression)?);
        }
        layout::assemble(
            &self.name,
            blobs,
            &self.env,
            &self.cmd,
            &self.labels,
            &self.exposed_ports,
        )
    }

    /// Writes the image as an OCI image layout tar to `out` and returns what it contains.
    pub fn build_oci_tar(&self, out: impl AsRef<Path>) -> Result<BuiltImage> {
        let image = self.build()?;
        image.write_oci_tar(out.as_ref())?;
        Ok(image)
    }

    /// Builds the image and imports it with `ctr -n NAMESPACE images import`; see
    /// [`BuiltImage::import`].
    pub fn import(&self, containerd: &crate::Containerd, namespace: &str) -> Result<ImportedImage> {
        self.build()?.import(containerd, namespace)
    }
}
