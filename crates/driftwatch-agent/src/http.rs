//! The agent's listener: `/healthz`, `/readyz`, `/metrics`, and the per-container drift
//! summaries `/containers` (JSON array) and `/containers/{id}` (one object; a unique id prefix
//! is accepted; 404 with `{"error": …}` when no container matches), and the responder's
//! incidents `/incidents` (newest first) and `/incidents/{id}`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use driftwatch_output::Summaries;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// State shared with the HTTP handlers.
#[derive(Debug, Clone)]
pub struct HttpState {
    /// Every metric of the agent and its components (encoded per request).
    pub registry: Arc<Registry>,
    /// Set once the BPF programs are attached and the initial container inventory is loaded.
    pub ready: Arc<AtomicBool>,
    pub summaries: Arc<Summaries>,
    /// The responder's incidents (`None`: no playbooks).
    pub incidents: Option<Arc<std::sync::Mutex<driftwatch_respond::incident::Incidents>>>,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/containers", get(containers))
        .route("/containers/{id}", get(container))
        .route("/incidents", get(incidents))
        .route("/incidents/{id}", get(incident))
        .with_state(state)
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&s.registry),
    )
}

/// A JSON response (axum's `json` feature is not built in).
fn json(status: StatusCode, body: &impl serde::Serialize) -> axum::response::Response {
    match serde_json::to_string(body) {
        Ok(text) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            text + "\n",
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn incidents(State(s): State<HttpState>) -> axum::response::Response {
    match &s.incidents {
        Some(i) => {
            let i = i.lock().unwrap_or_else(|e| e.into_inner());
            json(StatusCode::OK, &i.list())
        }
        None => json(StatusCode::OK, &Vec::<()>::new()),
    }
}

async fn incident(State(s): State<HttpState>, Path(id): Path<String>) -> axum::response::Response {
    let found = s.incidents.as_ref().and_then(|i| {
        let i = i.lock().unwrap_or_else(|e| e.into_inner());
        i.get(&id).cloned()
    });
    match found {
        Some(i) => json(StatusCode::OK, &i),
        None => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": format!("no incident {id:?}") }),
        ),
    }
}

async fn containers(State(s): State<HttpState>) -> axum::response::Response {
    json(StatusCode::OK, &s.summaries.snapshot())
}

async fn container(State(s): State<HttpState>, Path(id): Path<String>) -> axum::response::Response {
    let all = s.summaries.snapshot();
    let exact = all.iter().position(|c| c.id == id);
    let mut prefixed = all
        .iter()
        .filter(|c| !id.is_empty() && c.id.starts_with(&id));
    let found = match (exact, prefixed.next(), prefixed.next()) {
        (Some(i), _, _) => all.get(i),
        (None, Some(c), None) => Some(c),
        _ => None,
    };
    match found {
        Some(c) => json(StatusCode::OK, c),
        None => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": format!("no container {id:?}") }),
        ),
    }
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
