//! Following containerd's event stream: task start/exit/delete and container create/delete
//! keep the registry current; a broken stream is re-established with backoff and followed by
//! a full re-list so nothing stays stale.

use crate::config::RuntimeConfig;
use crate::containerd::{
    Containerd, TOPIC_CONTAINER_CREATE, TOPIC_CONTAINER_DELETE, TOPIC_TASK_DELETE, TOPIC_TASK_EXIT,
    TOPIC_TASK_START,
};
use crate::error::RuntimeError;
use crate::registry::{lock, ContainerKey, Inner, Resolver};
use containerd_client::events::{
    ContainerCreate, ContainerDelete, TaskDelete, TaskExit, TaskStart,
};
use containerd_client::types::Envelope;
use prost_types::Any;
use std::sync::Weak;
use std::time::Duration;
use tokio::task::JoinHandle;
use tonic::Streaming;

/// A subscription whose stream arrives with the first event (see `Containerd::subscribe`);
/// its task is aborted when this is dropped.
#[derive(Debug)]
pub(crate) struct Subscription(JoinHandle<Result<Streaming<Envelope>, RuntimeError>>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Time given to the subscribe request to reach containerd before listing.
const SUBSCRIBE_SETTLE: Duration = Duration::from_millis(25);

/// Decode an event payload. containerd's type URLs lack the leading `/` (or carry a host
/// part); only the message name after the last `/` is compared.
fn decode<M: prost::Name + Default>(any: &Any) -> Option<M> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let normalized = Any {
        type_url: format!("/{name}"),
        value: any.value.clone(),
    };
    normalized.to_msg().ok()
}

/// What an event means for the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// A task started: fetch the container with its task and upsert it.
    Started { key: ContainerKey },
    /// A container was created: remember its metadata for early execs.
    Created { key: ContainerKey },
    /// The init process exited or the task/container is gone.
    Gone { key: ContainerKey, pid: Option<u32> },
}

/// Map an envelope to an action; `None` for events that do not concern the registry.
pub(crate) fn action(env: &Envelope) -> Option<Action> {
    let any = env.event.as_ref()?;
    let ns = env.namespace.clone();
    match env.topic.as_str() {
        TOPIC_TASK_START => {
            let e: TaskStart = decode(any)?;
            Some(Action::Started {
                key: ContainerKey::new(ns, e.container_id),
            })
        }
        TOPIC_TASK_EXIT => {
            let e: TaskExit = decode(any)?;
            // Exec'd processes exit too; only the init process (exec id = container id)
            // ends the container.
            (e.id.is_empty() || e.id == e.container_id).then(|| Action::Gone {
                key: ContainerKey::new(ns, e.container_id),
                pid: Some(e.pid),
            })
        }
        TOPIC_TASK_DELETE => {
            let e: TaskDelete = decode(any)?;
            (e.id.is_empty() || e.id == e.container_id).then(|| Action::Gone {
                key: ContainerKey::new(ns, e.container_id),
                pid: None,
            })
        }
        TOPIC_CONTAINER_CREATE => {
            let e: ContainerCreate = decode(any)?;
            Some(Action::Created {
                key: ContainerKey::new(ns, e.id),
            })
        }
        TOPIC_CONTAINER_DELETE => {
            let e: ContainerDelete = decode(any)?;
            Some(Action::Gone {
                key: ContainerKey::new(ns, e.id),
                pid: None,
            })
        }
        _ => None,
    }
}

async fn handle(inner: &Inner, conn: &Containerd, env: Envelope) {
    let Some(action) = action(&env) else {
        tracing::trace!(topic = %env.topic, "ignored containerd event");
        return;
    };
    tracing::debug!(?action, "containerd event");
    match action {
        Action::Started { key } => {
            match conn.get_running(&key.namespace, &key.id, &inner.proc).await {
                Ok(Some(info)) => {
                    let update = inner.upsert(info);
                    inner.publish(update.into_iter().collect()).await;
                }
                Ok(None) => {
                    tracing::debug!(namespace = %key.namespace, id = %key.id, "started task is already gone");
                }
                Err(e) => {
                    tracing::warn!(namespace = %key.namespace, id = %key.id, error = %crate::error::chain(&e), "cannot fetch started container");
                }
            }
        }
        Action::Created { key } => match conn.get_metadata(&key.namespace, &key.id).await {
            Ok(Some(info)) => inner.set_pending(info),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(namespace = %key.namespace, id = %key.id, error = %crate::error::chain(&e), "cannot fetch created container");
            }
        },
        Action::Gone { key, pid } => {
            // An exit for another pid than the one we know (a restarted task) is not ours.
            let current = inner.get(&key);
            if let (Some(pid), Some(info)) = (pid, &current) {
                if info.init_pid.is_some_and(|p| p != pid) {
                    return;
                }
            }
            let update = inner.remove(&key);
            inner.publish(update.into_iter().collect()).await;
        }
    }
}

/// Connect, subscribe, re-list everything and apply the differences; `announce` sends them
/// as updates (not for the initial inventory, which is read through `Registry::all`).
pub(crate) async fn resync(
    inner: &Inner,
    announce: bool,
) -> Result<(Containerd, Subscription), RuntimeError> {
    let cfg = &inner.cfg;
    let conn = Containerd::connect(
        &cfg.containerd_socket,
        RuntimeConfig::dur(cfg.connect_timeout_ms),
        RuntimeConfig::dur(cfg.call_timeout_ms),
    )
    .await?;
    // Subscribe before listing so that what happens in between is not missed. The request
    // cannot be confirmed before the first event; give it a moment to reach containerd.
    // (A container whose start falls into that gap is still found by `resolve_unknown`.)
    let subscription = Subscription(tokio::spawn(conn.subscribe()));
    tokio::time::sleep(SUBSCRIBE_SETTLE).await;
    let infos = match conn.list_running(&inner.proc).await {
        Ok(infos) => infos,
        Err(e) => return Err(e),
    };
    let updates = inner.replace_all(infos);
    if let Resolver::Containerd(slot) = &inner.resolver {
        *lock(slot) = Some(conn.clone());
    }
    if announce {
        inner.publish(updates).await;
    }
    Ok((conn, subscription))
}

async fn next_event(
    stream: &mut Option<Streaming<Envelope>>,
    subscription: &mut Subscription,
) -> Result<Option<Envelope>, String> {
    if stream.is_none() {
        match (&mut subscription.0).await {
            Ok(Ok(s)) => *stream = Some(s),
            Ok(Err(e)) => return Err(crate::error::chain(&e)),
            Err(e) => return Err(format!("subscription task failed: {e}")),
        }
    }
    match stream.as_mut() {
        Some(s) => s.message().await.map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

/// The background task: follow events until the registry is dropped.
pub(crate) async fn follow(
    weak: Weak<Inner>,
    mut conn: Containerd,
    mut subscription: Subscription,
) {
    let mut stream: Option<Streaming<Envelope>> = None;
    loop {
        let msg = next_event(&mut stream, &mut subscription).await;
        let Some(inner) = weak.upgrade() else { return };
        match msg {
            Ok(Some(env)) => {
                handle(&inner, &conn, env).await;
                continue;
            }
            Ok(None) => tracing::warn!(
                socket = %conn.socket().display(),
                "containerd event stream ended; reconnecting"
            ),
            Err(error) => tracing::warn!(
                socket = %conn.socket().display(),
                %error,
                "containerd event stream failed; reconnecting"
            ),
        }
        let (min, max) = (inner.cfg.reconnect_min_ms, inner.cfg.reconnect_max_ms);
        drop(inner);
        let mut delay = min.max(1);
        loop {
            tokio::time::sleep(RuntimeConfig::dur(delay)).await;
            let Some(inner) = weak.upgrade() else { return };
            match resync(&inner, true).await {
                Ok((c, s)) => {
                    tracing::info!(containers = inner.len(), "reconnected to containerd");
                    (conn, subscription, stream) = (c, s, None);
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %crate::error::chain(&e), retry_ms = delay, "containerd still unreachable");
                }
            }
            delay = delay.saturating_mul(2).min(max.max(min));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<M: prost::Name>(topic: &str, ns: &str, m: &M) -> Envelope {
        Envelope {
            timestamp: None,
            namespace: ns.into(),
            topic: topic.into(),
            // As containerd 1.6 sends it: no leading slash.
            event: Some(Any {
                type_url: M::full_name(),
                value: m.encode_to_vec(),
            }),
        }
    }

    #[test]
    fn events_map_to_actions() {
        let key = ContainerKey::new("default", "c1");
        let start = TaskStart {
            container_id: "c1".into(),
            pid: 42,
        };
        assert_eq!(
            action(&env(TOPIC_TASK_START, "default", &start)),
            Some(Action::Started { key: key.clone() })
        );
        let exit = TaskExit {
            container_id: "c1".into(),
            id: "c1".into(),
            pid: 42,
            ..TaskExit::default()
        };
        assert_eq!(
            action(&env(TOPIC_TASK_EXIT, "default", &exit)),
            Some(Action::Gone {
                key: key.clone(),
                pid: Some(42)
            })
        );
        let exec_exit = TaskExit {
            container_id: "c1".into(),
            id: "exec-1".into(),
            pid: 43,
            ..TaskExit::default()
        };
        assert_eq!(action(&env(TOPIC_TASK_EXIT, "default", &exec_exit)), None);
        let del = TaskDelete {
            container_id: "c1".into(),
            id: String::new(),
            pid: 42,
            ..TaskDelete::default()
        };
        assert_eq!(
            action(&env(TOPIC_TASK_DELETE, "default", &del)),
            Some(Action::Gone {
                key: key.clone(),
                pid: None
            })
        );
        let create = ContainerCreate {
            id: "c1".into(),
            image: "img".into(),
            runtime: None,
        };
        assert_eq!(
            action(&env(TOPIC_CONTAINER_CREATE, "default", &create)),
            Some(Action::Created { key: key.clone() })
        );
        let cdel = ContainerDelete { id: "c1".into() };
        assert_eq!(
            action(&env(TOPIC_CONTAINER_DELETE, "default", &cdel)),
            Some(Action::Gone { key, pid: None })
        );
    }

    #[test]
    fn undecodable_or_unknown_events_are_ignored() {
        let mut e = env(
            TOPIC_TASK_START,
            "default",
            &TaskStart {
                container_id: "c".into(),
                pid: 1,
            },
        );
        e.event = Some(Any {
            type_url: "containerd.events.TaskStart".into(),
            value: vec![0xff, 0xff, 0xff],
        });
        assert_eq!(action(&e), None);
        // Wrong payload type for the topic.
        let e = env(
            TOPIC_TASK_START,
            "default",
            &ContainerDelete { id: "c".into() },
        );
        assert_eq!(action(&e), None);
        let e = env(
            "/images/create",
            "default",
            &ContainerDelete { id: "c".into() },
        );
        assert_eq!(action(&e), None);
        let mut e = env(TOPIC_TASK_START, "default", &TaskStart::default());
        e.event = None;
        assert_eq!(action(&e), None);
        // A URL with a host part decodes too.
        let mut e = env(
            TOPIC_CONTAINER_DELETE,
            "ns",
            &ContainerDelete { id: "c".into() },
        );
        if let Some(a) = e.event.as_mut() {
            a.type_url = "types.containerd.io/containerd.events.ContainerDelete".into();
        }
        assert!(action(&e).is_some());
    }
}
