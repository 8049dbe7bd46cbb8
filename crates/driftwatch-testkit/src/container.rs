//! Throwaway containers run through `ctr`, removed on drop.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::containerd::Containerd;
use crate::error::{Result, TestkitError};
use crate::subprocess::{self, ExecOutput};

/// Default deadline of [`Container::exec`].
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Directory holding the init process logs of containers (`<namespace>-<id>.log`).
pub const LOG_DIR: &str = "/tmp/driftwatch-testkit-logs";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique in this machine for a while: `<prefix>-<pid>-<counter>`. Valid as a containerd
/// container id and exec id when `prefix` is.
pub fn unique_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// An extra mount for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A tmpfs at `dst`; `exec` decides between `exec` and `noexec`.
    Tmpfs {
        dst: String,
        size_kib: u64,
        exec: bool,
    },
    /// A bind mount of host `src` at `dst`.
    Bind {
        src: PathBuf,
        dst: String,
        read_only: bool,
    },
}

impl MountSpec {
    /// An exec-able 64 MiB tmpfs at `dst` (a writable mount outside the image).
    pub fn tmpfs_exec(dst: &str) -> Self {
        Self::Tmpfs {
            dst: dst.to_owned(),
            size_kib: 65_536,
            exec: true,
        }
    }

    /// A read-write bind mount of host `src` at `dst`.
    pub fn bind(src: impl Into<PathBuf>, dst: &str) -> Self {
        Self::Bind {
            src: src.into(),
            dst: dst.to_owned(),
            read_only: false,
        }
    }

    /// The `ctr run --mount` value.
    pub fn to_ctr_arg(&self) -> String {
        match self {
            Self::Tmpfs {
                dst,
                size_kib,
                exec,
            } => {
                let x = if *exec { "exec" } else { "noexec" };
                format!("type=tmpfs,src=tmpfs,dst={dst},options=rw:{x}:nosuid:size={size_kib}k")
            }
            Self::Bind {
                src,
                dst,
                read_only,
            } => {
                let rw = if *read_only { "ro" } else { "rw" };
                format!(
                    "type=bind,src={},dst={dst},options=rbind:{rw}",
                    src.display()
                )
            }
        }
    }
}

/// How to run a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOpts {
    /// Extra mounts.
    pub mounts: Vec<MountSpec>,
    /// Container labels (`--label k=v`), e.g. CRI's `io.kubernetes.pod.name`.
    pub labels: Vec<(String, String)>,
    /// The init process; default `["sleep", "3600"]`.
    pub args: Vec<String>,
    /// A read-only root filesystem (`ctr run --read-only`, Kubernetes' readOnlyRootFilesystem).
    pub read_only: bool,
}

impl Default for RunOpts {
    fn default() -> Self {
        Self {
            mounts: Vec::new(),
            labels: Vec::new(),
            args: vec!["sleep".to_owned(), "3600".to_owned()],
            read_only: false,
        }
    }
}

/// A running container; killed and removed (task, container, snapshot) when dropped.
#[derive(Debug)]
pub struct Container {
    containerd: Containerd,
    namespace: String,
    id: String,
    image: String,
    init_pid: u32,
    removed: bool,
}

impl Container {
    /// `ctr -n NS run -d --log-uri file://… [--label k=v]… [--mount …]… IMAGE ID ARGS…`, then
    /// looks up the init pid. On failure nothing is left behind.
    pub fn run(
        containerd: &Containerd,
        namespace: &str,
        image_ref: &str,
        id: &str,
        opts: RunOpts,
    ) -> Result<Self> {
        fs::create_dir_all(LOG_DIR).map_err(|e| TestkitError::io(LOG_DIR, e))?;
        let mut c = Self {
            containerd: containerd.clone(),
            namespace: namespace.to_owned(),
            id: id.to_owned(),
            image: image_ref.to_owned(),
            init_pid: 0,
            removed: false,
        };
        let mut cmd = containerd.ctr(namespace);
        cmd.args(["run", "-d", "--log-uri"])
            .arg(format!("file://{}", c.log_path().display()));
        if opts.read_only {
            cmd.arg("--read-only");
        }
        for (k, v) in &opts.labels {
            cmd.arg("--label").arg(format!("{k}={v}"));
        }
        for m in &opts.mounts {
            cmd.arg("--mount").arg(m.to_ctr_arg());
        }
        cmd.arg(image_ref).arg(id).args(&opts.args);
        // On error, Drop of `c` removes whatever part was created.
        subprocess::run_checked(cmd, crate::containerd::CTR_TIMEOUT)?;
        c.init_pid = c.lookup_pid()?;
        Ok(c)
    }

    fn lookup_pid(&self) -> Result<u32> {
        self.containerd
            .tasks(&self.namespace)?
            .into_iter()
            .find(|(id, _, _)| *id == self.id)
            .map(|(_, pid, _)| pid)
            .ok_or_else(|| TestkitError::Parse {
                what: "ctr tasks ls".into(),
                detail: format!("no task for container {}", self.id),
            })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The containerd namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The image it was started from.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Host pid of the init process.
    pub fn init_pid(&self) -> u32 {
        self.init_pid
    }

    /// File receiving the init process's stdout/stderr.
    pub fn log_path(&self) -> PathBuf {
        PathBuf::from(LOG_DIR).join(format!("{}-{}.log", self.namespace, self.id))
    }

    /// Host path of the task rootfs (the overlay mount point).
    pub fn rootfs_dir(&self) -> PathBuf {
        PathBuf::from(format!(
            "/run/containerd/io.containerd.runtime.v2.task/{}/{}/rootfs",
            self.namespace, self.id
        ))
    }

    /// Overlay `upperdir` of the container's root, from the init process's mountinfo.
    pub fn upper_dir(&self) -> Result<PathBuf> {
        self.overlay_option("upperdir").map(PathBuf::from)
    }

    /// Overlay `lowerdir`s of the container's root (topmost first), from mountinfo.
    pub fn lower_dirs(&self) -> Result<Vec<PathBuf>> {
        Ok(self
            .overlay_option("lowerdir")?
            .split(':')
            .map(PathBuf::from)
            .collect())
    }

    fn overlay_option(&self, key: &str) -> Result<String> {
        let path = format!("/proc/{}/mountinfo", self.init_pid);
        let text = fs::read_to_string(&path).map_err(|e| TestkitError::io(&path, e))?;
        root_overlay_option(&text, key).ok_or_else(|| TestkitError::Parse {
            what: path,
            detail: format!("no overlay root mount with {key}="),
        })
    }

    /// The init process's cgroup v2 path (the `0::` line of `/proc/<pid>/cgroup`).
    pub fn cgroup_v2_path(&self) -> Result<String> {
        let path = format!("/proc/{}/cgroup", self.init_pid);
        let text = fs::read_to_string(&path).map_err(|e| TestkitError::io(&path, e))?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_owned)
            .ok_or_else(|| TestkitError::Parse {
                what: path,
                detail: "no 0:: line".into(),
            })
    }

    /// Runs `args` in the container (`ctr task exec`), waiting up to [`EXEC_TIMEOUT`].
    ///
    /// A non-zero exit inside the container is not an error: check [`ExecOutput::status`].
    pub fn exec<S: AsRef<str>>(&self, args: &[S]) -> Result<ExecOutput> {
        self.exec_with_timeout(args, EXEC_TIMEOUT)
    }

    /// [`exec`](Self::exec) with a custom deadline; on timeout the process is killed.
    pub fn exec_with_timeout<S: AsRef<str>>(
        &self,
        args: &[S],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let exec_id = unique_id("x");
        let mut cmd = self.containerd.ctr(&self.namespace);
        cmd.args(["task", "exec", "--exec-id", &exec_id, &self.id]);
        cmd.args(args.iter().map(AsRef::as_ref));
        let res = subprocess::run(cmd, timeout);
        if matches!(res, Err(TestkitError::Timeout { .. })) {
            let _ = self.containerd.ctr_checked(
                &self.namespace,
                &[
                    "task",
                    "kill",
                    "--exec-id",
                    &exec_id,
                    "-s",
                    "SIGKILL",
                    &self.id,
                ],
            );
        }
        res
    }

    /// Kills and removes the task and the container (with its snapshot) now.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        self.remove_inner()
    }

    fn remove_inner(&self) -> Result<()> {
        let task = self
            .containerd
            .ctr_checked(&self.namespace, &["tasks", "rm", "-f", &self.id]);
        let container = self
            .containerd
            .ctr_checked(&self.namespace, &["containers", "rm", &self.id]);
        // A missing task is fine (it may never have started); the container must go.
        drop(task);
        match container {
            Ok(_) => Ok(()),
            Err(e)
                if self
                    .containerd
                    .containers(&self.namespace)
                    .is_ok_and(|c| !c.contains(&self.id)) =>
            {
                drop(e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove_inner();
        }
    }
}

/// Finds `key=` in the super options of the overlay mounted at `/` in `mountinfo` text.
pub(crate) fn root_overlay_option(mountinfo: &str, key: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mount_point = left.split_whitespace().nth(4)?;
        let mut r = right.split_whitespace();
        let fstype = r.next()?;
        let _source = r.next()?;
        let opts = r.next()?;
        if mount_point != "/" || fstype != "overlay" {
            return None;
        }
        opts.split(',')
            .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_upperdir_of_root_overlay() {
        let mi = "1 0 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/a/1/fs:/a/2/fs,upperdir=/a/3/fs,workdir=/a/3/work\n\
                  2 1 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(
            root_overlay_option(mi, "upperdir").as_deref(),
            Some("/a/3/fs")
        );
        assert_eq!(
            root_overlay_option(mi, "lowerdir").as_deref(),
            Some("/a/1/fs:/a/2/fs")
        );
        assert_eq!(root_overlay_option(mi, "nope"), None);
    }

    #[test]
    fn mount_args() {
        assert_eq!(
            MountSpec::tmpfs_exec("/scratch").to_ctr_arg(),
            "type=tmpfs,src=tmpfs,dst=/scratch,options=rw:exec:nosuid:size=65536k"
        );
        assert_eq!(
            MountSpec::bind("/host", "/data").to_ctr_arg(),
            "type=bind,src=/host,dst=/data,options=rbind:rw"
        );
    }
}
