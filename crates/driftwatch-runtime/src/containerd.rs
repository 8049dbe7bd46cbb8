//! containerd over its gRPC API: namespaces, containers, tasks, images, snapshots and the
//! event stream.

use crate::error::RuntimeError;
use crate::procfs::ProcFs;
use crate::{cri, mountinfo, spec};
use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::{
    Container, GetContainerRequest, GetImageRequest, GetRequest, ListContainersRequest,
    ListNamespacesRequest, ListTasksRequest, SubscribeRequest,
};
use containerd_client::types::v1::Process;
use containerd_client::types::Envelope;
use containerd_client::Client;
use driftwatch_event::ContainerInfo;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status as GrpcStatus, Streaming};

/// Event topics followed, as containerd publishes them.
pub const TOPIC_TASK_START: &str = "/tasks/start";
pub const TOPIC_TASK_EXIT: &str = "/tasks/exit";
pub const TOPIC_TASK_DELETE: &str = "/tasks/delete";
pub const TOPIC_CONTAINER_CREATE: &str = "/containers/create";
pub const TOPIC_CONTAINER_DELETE: &str = "/containers/delete";
pub const TOPICS: [&str; 5] = [
    TOPIC_TASK_START,
    TOPIC_TASK_EXIT,
    TOPIC_TASK_DELETE,
    TOPIC_CONTAINER_CREATE,
    TOPIC_CONTAINER_DELETE,
];

/// A connection to containerd.
#[derive(Debug, Clone)]
pub(crate) struct Containerd {
    client_channel: Channel,
    socket: PathBuf,
    call_timeout: Duration,
}

/// The container of a listed task: containerd 1.6 fills only `id` (= the container id for
/// init processes).
pub(crate) fn task_container_id(t: &Process) -> String {
    if t.container_id.is_empty() {
        t.id.clone()
    } else {
        t.container_id.clone()
    }
}

/// True when a task status means its init process exists.
fn has_process(status: i32) -> bool {
    crate::control::TaskState::from_raw(status).has_process()
}

impl Containerd {
    /// Connect and check the connection with a version call.
    pub(crate) async fn connect(
        socket: &Path,
        connect_timeout: Duration,
        call_timeout: Duration,
    ) -> Result<Self, RuntimeError> {
        let timeout_err = || RuntimeError::ConnectTimeout {
            socket: socket.to_path_buf(),
            timeout_ms: u64::try_from(connect_timeout.as_millis()).unwrap_or(u64::MAX),
        };
        let channel = tokio::time::timeout(connect_timeout, containerd_client::connect(socket))
            .await
            .map_err(|_| timeout_err())?
            .map_err(|source| RuntimeError::Connect {
                socket: socket.to_path_buf(),
                source,
            })?;
        let this = Self {
            client_channel: channel,
            socket: socket.to_path_buf(),
            call_timeout,
        };
        let version = this
            .call("version", async {
                this.client().version().version(()).await
            })
            .await?;
        tracing::debug!(
            socket = %socket.display(),
            version = %version.version,
            "connected to containerd"
        );
        Ok(this)
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    pub(crate) fn client(&self) -> Client {
        Client::from(self.client_channel.clone())
    }

    pub(crate) async fn call<T>(
        &self,
        call: &'static str,
        fut: impl Future<Output = Result<tonic::Response<T>, GrpcStatus>>,
    ) -> Result<T, RuntimeError> {
        match tokio::time::timeout(self.call_timeout, fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(source)) => Err(RuntimeError::Call { call, source }),
            Err(_) => Err(RuntimeError::Call {
                call,
                source: GrpcStatus::deadline_exceeded("driftwatch call timeout"),
            }),
        }
    }

    pub(crate) fn request<T>(namespace: &str, msg: T) -> Result<Request<T>, RuntimeError> {
        let value: MetadataValue<_> =
            namespace
                .parse()
                .map_err(|_| RuntimeError::InvalidNamespace {
                    namespace: namespace.to_string(),
                })?;
        let mut req = Request::new(msg);
        req.metadata_mut().insert("containerd-namespace", value);
        Ok(req)
    }

    pub(crate) async fn namespaces(&self) -> Result<Vec<String>, RuntimeError> {
        let resp = self
            .call(
                "namespaces.list",
                self.client()
                    .namespaces()
                    .list(ListNamespacesRequest::default()),
            )
            .await?;
        Ok(resp.namespaces.into_iter().map(|n| n.name).collect())
    }

    /// Subscribe to the followed topics, in all namespaces.
    ///
    /// containerd (grpc-go) sends the response headers only with the first event, so this
    /// future completes at the first event: run it in its own task, without a timeout.
    pub(crate) fn subscribe(
        &self,
    ) -> impl Future<Output = Result<Streaming<Envelope>, RuntimeError>> + Send + 'static {
        let mut events = self.client().events();
        let filters = TOPICS.iter().map(|t| format!("topic=={t:?}")).collect();
        async move {
            events
                .subscribe(SubscribeRequest { filters })
                .await
                .map(tonic::Response::into_inner)
                .map_err(|source| RuntimeError::Call {
                    call: "events.subscribe",
                    source,
                })
        }
    }

    pub(crate) async fn container(
        &self,
        ns: &str,
        id: &str,
    ) -> Result<Option<Container>, RuntimeError> {
        let req = Self::request(ns, GetContainerRequest { id: id.to_string() })?;
        match self
            .call("containers.get", self.client().containers().get(req))
            .await
        {
            Ok(resp) => Ok(resp.container),
            Err(RuntimeError::Call { source, .. }) if source.code() == Code::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn task(&self, ns: &str, id: &str) -> Result<Option<Process>, RuntimeError> {
        let req = Self::request(
            ns,
            GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            },
        )?;
        match self.call("tasks.get", self.client().tasks().get(req)).await {
            Ok(resp) => Ok(resp.process),
            Err(RuntimeError::Call { source, .. }) if source.code() == Code::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Manifest digest of an image (`target.digest`); `None` when unknown.
    pub(crate) async fn image_digest(&self, ns: &str, name: &str) -> Option<String> {
        if name.is_empty() {
            return None;
        }
        let req = Self::request(
            ns,
            GetImageRequest {
                name: name.to_string(),
            },
        )
        .ok()?;
        match self
            .call("images.get", self.client().images().get(req))
            .await
        {
            Ok(resp) => resp
                .image
                .and_then(|i| i.target)
                .map(|t| t.digest)
                .filter(|d| !d.is_empty()),
            Err(e) => {
                tracing::debug!(namespace = ns, image = name, error = %crate::error::chain(&e), "no image digest");
                None
            }
        }
    }

    /// The listening ports the image config declares (`ExposedPorts` keys, `8080/tcp`); none
    /// when the config cannot be read.
    pub(crate) async fn exposed_ports(&self, ns: &str, name: &str) -> Vec<String> {
        match crate::inspect::image_config(self, ns, name).await {
            Ok(Some(blob)) => exposed_ports(&blob),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::debug!(namespace = ns, image = name, error = %crate::error::chain(&e), "no image config");
                Vec::new()
            }
        }
    }

    /// Overlay layers from the snapshotter's `Mounts` for the container's snapshot.
    pub(crate) async fn snapshot_layers(
        &self,
        ns: &str,
        container: &Container,
    ) -> Option<driftwatch_event::OverlayLayers> {
        if container.snapshot_key.is_empty() {
            return None;
        }
        let req = Self::request(
            ns,
            MountsRequest {
                snapshotter: container.snapshotter.clone(),
                key: container.snapshot_key.clone(),
            },
        )
        .ok()?;
        let resp = match self
            .call("snapshots.mounts", self.client().snapshots().mounts(req))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(namespace = ns, container = %container.id, error = %crate::error::chain(&e), "no snapshot mounts");
                return None;
            }
        };
        let mount = resp.mounts.into_iter().find(|m| m.r#type == "overlay")?;
        // API options are plain strings (no kernel escaping).
        let options = mount.options.iter().map(|o| match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o.as_str(), None),
        });
        Some(mountinfo::overlay_from_options(options))
    }

    /// Metadata of a container from containerd (no process facts).
    async fn metadata(
        &self,
        ns: &str,
        c: &Container,
        images: &mut HashMap<String, ImageFacts>,
    ) -> ContainerInfo {
        let mut info = ContainerInfo {
            id: c.id.clone(),
            namespace: ns.to_string(),
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..ContainerInfo::default()
        };
        cri::apply_labels(&mut info);
        cri::apply_image_ref(&mut info, &c.image);
        if !c.image.is_empty() {
            let facts = match images.get(&c.image) {
                Some(f) => f.clone(),
                None => {
                    let f = ImageFacts {
                        digest: self.image_digest(ns, &c.image).await,
                        exposed_ports: self.exposed_ports(ns, &c.image).await,
                    };
                    images.insert(c.image.clone(), f.clone());
                    f
                }
            };
            info.image_digest = facts.digest;
            info.exposed_ports = facts.exposed_ports;
        }
        if let Some(any) = &c.spec {
            match spec::parse(&any.value) {
                Ok(s) => {
                    if info.kind == driftwatch_event::ContainerKind::Unknown {
                        info.kind = cri::kind_of(&info.labels, &s.annotations, &info.name);
                    }
                    info.cgroup_path = s.cgroup_fs_path;
                }
                Err(e) => {
                    tracing::debug!(namespace = ns, container = %c.id, error = %crate::error::chain(&e), "unreadable runtime spec");
                }
            }
        }
        info
    }

    /// Fill process facts for a running task; layers fall back to the snapshotter.
    async fn complete(
        &self,
        ns: &str,
        c: &Container,
        info: &mut ContainerInfo,
        pid: u32,
        proc: &ProcFs,
    ) {
        complete_from_proc(info, pid, proc);
        let usable = info
            .rootfs
            .as_ref()
            .is_some_and(mountinfo::layers_are_absolute);
        if !usable {
            if let Some(layers) = self.snapshot_layers(ns, c).await {
                info.rootfs = Some(layers);
            }
        }
    }

    /// Metadata of one container without process facts (for a created, not started one).
    pub(crate) async fn get_metadata(
        &self,
        ns: &str,
        id: &str,
    ) -> Result<Option<ContainerInfo>, RuntimeError> {
        let Some(c) = self.container(ns, id).await? else {
            return Ok(None);
        };
        Ok(Some(self.metadata(ns, &c, &mut HashMap::new()).await))
    }

    /// One container with its task's facts; `None` when it does not exist or has no process.
    pub(crate) async fn get_running(
        &self,
        ns: &str,
        id: &str,
        proc: &ProcFs,
    ) -> Result<Option<ContainerInfo>, RuntimeError> {
        let Some(c) = self.container(ns, id).await? else {
            return Ok(None);
        };
        let Some(task) = self.task(ns, id).await? else {
            return Ok(None);
        };
        if task.pid == 0 || !has_process(task.status) {
            return Ok(None);
        }
        let mut info = self.metadata(ns, &c, &mut HashMap::new()).await;
        self.complete(ns, &c, &mut info, task.pid, proc).await;
        Ok(Some(info))
    }

    /// Every container with a live task, in every namespace.
    pub(crate) async fn list_running(
        &self,
        proc: &ProcFs,
    ) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let mut out = Vec::new();
        for ns in self.namespaces().await? {
            let req = Self::request(&ns, ListTasksRequest::default())?;
            let tasks = self
                .call("tasks.list", self.client().tasks().list(req))
                .await?;
            let pids: HashMap<String, u32> = tasks
                .tasks
                .into_iter()
                .filter(|t| t.pid != 0 && has_process(t.status))
                .map(|t| (task_container_id(&t), t.pid))
                .collect();
            tracing::trace!(namespace = %ns, tasks = pids.len(), "containerd tasks");
            if pids.is_empty() {
                continue;
            }
            let req = Self::request(&ns, ListContainersRequest::default())?;
            let containers = self
                .call("containers.list", self.client().containers().list(req))
                .await?;
            let mut images = HashMap::new();
            for c in containers.containers {
                let Some(&pid) = pids.get(&c.id) else {
                    continue;
                };
                let mut info = self.metadata(&ns, &c, &mut images).await;
                self.complete(&ns, &c, &mut info, pid, proc).await;
                out.push(info);
            }
        }
        Ok(out)
    }
}

/// What the agent keeps of an image, read once per image per listing.
#[derive(Debug, Clone, Default)]
pub(crate) struct ImageFacts {
    digest: Option<String>,
    exposed_ports: Vec<String>,
}

/// The keys of `config.ExposedPorts` of an image config blob (`["8080/tcp", "53/udp"]`), sorted;
/// at most 1024.
pub(crate) fn exposed_ports(config: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(config) else {
        return Vec::new();
    };
    let mut ports: Vec<String> = v["config"]["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().take(1024).cloned().collect())
        .unwrap_or_default();
    ports.sort();
    ports
}

/// Fill init pid, mntns, cgroup and rootfs layers from /proc. A vanished process leaves the
/// fields it could not read empty.
pub(crate) fn complete_from_proc(info: &mut ContainerInfo, pid: u32, proc: &ProcFs) {
    let facts = proc.facts(pid);
    info.init_pid = Some(pid);
    info.mntns = facts.mntns;
    info.rootfs = facts.rootfs;
    if info.cgroup_path.is_none() {
        info.cgroup_path.clone_from(&facts.cgroup_path);
    }
    info.cgroup_id = facts.cgroup_id.or_else(|| {
        // The process is gone or unreadable: try the spec's path.
        info.cgroup_path.as_deref().and_then(|p| proc.cgroup_id(p))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports_of_an_image_config() {
        let cfg = br#"{"config":{"ExposedPorts":{"8080/tcp":{},"53/udp":{}}}}"#;
        assert_eq!(exposed_ports(cfg), ["53/udp", "8080/tcp"]);
        assert!(exposed_ports(br#"{"config":{}}"#).is_empty());
        assert!(exposed_ports(b"not json").is_empty());
    }

    #[test]
    fn task_states_with_a_process() {
        use containerd_client::types::v1::Status;
        assert!(has_process(Status::Running as i32));
        assert!(has_process(Status::Created as i32));
        assert!(has_process(Status::Paused as i32));
        assert!(!has_process(Status::Stopped as i32));
        assert!(!has_process(Status::Unknown as i32));
        assert!(!has_process(99));
    }

    #[test]
    fn namespace_metadata_is_validated() {
        assert!(Containerd::request("k8s.io", ()).is_ok());
        assert!(matches!(
            Containerd::request("bad\nns", ()),
            Err(RuntimeError::InvalidNamespace { .. })
        ));
    }

    #[test]
    fn topic_filters_are_quoted() {
        assert_eq!(
            format!("topic=={:?}", TOPIC_TASK_START),
            r#"topic=="/tasks/start""#
        );
    }
}
