//! The HTTP output: each alert POSTed to a Falcosidekick-compatible receiver (Falco's JSON
//! alert, the default) or to any webhook (the alert shaped by a [`Template`]), through an
//! on-disk [`Spool`].
//!
//! Nothing lost, nothing blocking: the sink's `write` only renders the alert and appends it to
//! the spool (one `write` per batch); a delivery thread per output POSTs from the spool, oldest
//! first, one alert per request, and moves the spool's cursor past what the receiver took
//! (2xx). Connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff
//! (`retry_backoff` doubled up to `retry_backoff_max`, or the receiver's `Retry-After` seconds
//! when longer, up to the same bound; without end unless `max_retries`); any
//! other status (3xx, the other 4xx) is permanent: the alert is dropped, counted
//! (`driftwatch_output_http_dropped_total{reason="rejected"}`) and logged. A receiver that is
//! down keeps the alerts in the spool, across agent restarts; a full spool drops its oldest,
//! which the writer turns into a `Driftwatch Output Alerts Dropped` alert on the other outputs.
//!
//! [`HttpHandle`] is a cheap, cloneable way for other components (the playbooks) to put one
//! alert in a named output's spool.

use crate::config::{HttpFormat, HttpOutputConfig};
use crate::sink::Sink;
use crate::spool::{Spool, SpoolError};
use crate::template::{Template, TemplateError};
use crate::writer::OutputMetrics;
use driftwatch_event::{Alert, Priority};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How long a stopping output keeps delivering what its spool holds (the rest waits for the
/// next start).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// An HTTP output that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum HttpOpenError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("ca_file {}: {message}", path.display())]
    Ca { path: PathBuf, message: String },
    #[error("bearer_token_file {}: {error}", path.display())]
    Token { path: PathBuf, error: io::Error },
    #[error("cannot start the delivery thread: {0}")]
    Thread(io::Error),
}

/// The certificates of PEM text (at least one); the message says what is wrong.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c.to_owned()),
            Ok(_) => {}
            Err(e) => return Err(format!("not PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate".to_string());
    }
    Ok(certs)
}

/// TLS that trusts exactly `roots` (`None`: the bundled Mozilla roots): the one way
/// driftwatch's HTTP clients (the HTTP outputs, the Kubernetes API) take a CA.
pub fn tls_trusting(roots: Option<Vec<ureq::tls::Certificate<'static>>>) -> ureq::tls::TlsConfig {
    match roots {
        Some(certs) => ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)))
            .build(),
        None => ureq::tls::TlsConfig::default(),
    }
}

/// The certificates of a PEM file (at least one).
pub(crate) fn read_ca_file(
    path: &Path,
) -> Result<Vec<ureq::tls::Certificate<'static>>, HttpOpenError> {
    let ca = |message: String| HttpOpenError::Ca {
        path: path.to_path_buf(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
    pem_certificates(&pem).map_err(ca)
}

/// How alerts become request bodies.
#[derive(Debug)]
enum Render {
    Falco,
    Template(Template),
}

impl Render {
    /// One JSON document on one line (serde_json escapes every line break).
    fn body(&self, alert: &Alert) -> Vec<u8> {
        match self {
            Render::Falco => alert.to_json_line().into_bytes(),
            Render::Template(t) => serde_json::to_vec(&t.render(alert)).unwrap_or_default(),
        }
    }
}

/// What the sink, the handles and the delivery thread share.
#[derive(Debug)]
struct Shared {
    name: String,
    render: Render,
    spool: Mutex<Spool>,
    /// Signalled when records were written or the output stops.
    wake: Condvar,
    stop: AtomicBool,
    metrics: Arc<OutputMetrics>,
}

impl Shared {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gauges(&self, spool: &Spool) {
        let m = &self.metrics;
        m.http_spool_bytes(&self.name)
            .set(i64::try_from(spool.bytes()).unwrap_or(i64::MAX));
        m.http_spool_alerts(&self.name)
            .set(i64::try_from(spool.len()).unwrap_or(i64::MAX));
    }

    /// Writes what was pushed and wakes the delivery thread.
    fn written(&self, spool: &mut Spool) -> io::Result<()> {
        let r = spool.flush();
        self.gauges(spool);
        self.wake.notify_all();
        r
    }
}

/// A cheap, cloneable handle that puts alerts in one HTTP output's spool (for the playbooks).
/// [`HttpHandle::send`] renders the alert in the output's format and appends it to the spool —
/// a small file write, never a network wait; the output's delivery thread sends it. The output's
/// `minimum_priority` and `tags` do not apply: the caller chose to send it.
#[derive(Debug, Clone)]
pub struct HttpHandle {
    shared: Arc<Shared>,
}

impl HttpHandle {
    /// The output's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Enqueues one alert.
    pub fn send(&self, alert: &Alert) -> io::Result<()> {
        let body = self.shared.render.body(alert);
        let mut spool = self.shared.spool();
        spool.push(&body);
        self.shared.written(&mut spool)
    }
}

/// The sink side of one HTTP output.
#[derive(Debug)]
pub struct HttpSink {
    shared: Arc<Shared>,
    minimum: Priority,
    tags: Vec<String>,
    thread: Option<JoinHandle<()>>,
}

impl HttpSink {
    /// Opens the output's spool and starts its delivery thread (which sends what an earlier
    /// run left in the spool first).
    pub fn open(
        cfg: &HttpOutputConfig,
        metrics: Arc<OutputMetrics>,
    ) -> Result<HttpSink, HttpOpenError> {
        let render = match (&cfg.format, &cfg.template) {
            (HttpFormat::Template, Some(path)) => Render::Template(Template::load(path)?),
            _ => Render::Falco,
        };
        let client = Client::new(cfg)?;
        let spool = Spool::open(&cfg.spool_dir(), cfg.spool_max_bytes)?;
        let left = spool.len();
        let shared = Arc::new(Shared {
            name: cfg.name.clone(),
            render,
            spool: Mutex::new(spool),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            metrics,
        });
        {
            let spool = shared.spool();
            shared.gauges(&spool);
        }
        // The series exist from the start.
        for reason in ["spool_full", "rejected", "retries_exhausted", "corrupt"] {
            shared.metrics.http_dropped(&cfg.name, reason);
        }
        shared.metrics.http_delivered(&cfg.name);
        shared.metrics.http_retries(&cfg.name);
        let (first, max) = cfg.backoff();
        let delivery = Delivery {
            shared: shared.clone(),
            client,
            first_backoff: first,
            max_backoff: max,
            max_retries: cfg.max_retries,
        };
        let thread = std::thread::Builder::new()
            .name(format!("dw-http-{}", cfg.name))
            .spawn(move || delivery.run())
            .map_err(HttpOpenError::Thread)?;
        tracing::info!(output = %cfg.name, url = %crate::config::url_for_logs(&cfg.url), spool = %cfg.spool_dir().display(), spooled = left, "HTTP output open");
        Ok(HttpSink {
            shared,
            minimum: cfg.minimum_priority(),
            tags: cfg.tags.clone(),
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> HttpHandle {
        HttpHandle {
            shared: self.shared.clone(),
        }
    }

    fn wanted(&self, alert: &Alert) -> bool {
        // Priorities are ordered most severe first.
        alert.priority <= self.minimum
            && (self.tags.is_empty() || alert.tags.iter().any(|t| self.tags.contains(t)))
    }

    /// Stops the delivery thread (after at most [`SHUTDOWN_GRACE`] and one request).
    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(output = %self.shared.name, "the HTTP delivery thread panicked");
            }
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn write(&mut self, alert: &Alert) -> io::Result<()> {
        if !self.wanted(alert) {
            return Ok(());
        }
        let body = self.shared.render.body(alert);
        self.shared.spool().push(&body);
        Ok(())
    }

    fn end_batch(&mut self) -> io::Result<()> {
        let mut spool = self.shared.spool();
        self.shared.written(&mut spool)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = {
            let mut spool = self.shared.spool();
            let r = self.shared.written(&mut spool);
            r.and(spool.sync())
        };
        self.stop();
        r
    }

    fn take_dropped(&mut self) -> u64 {
        let (dropped, corrupt) = {
            let mut spool = self.shared.spool();
            (spool.take_dropped(), spool.take_corrupt())
        };
        let m = &self.shared.metrics;
        m.http_dropped(&self.shared.name, "spool_full")
            .inc_by(dropped);
        m.http_dropped(&self.shared.name, "corrupt").inc_by(corrupt);
        if dropped > 0 {
            tracing::warn!(output = %self.shared.name, dropped, "HTTP output spool full: the oldest alerts were dropped");
        }
        dropped
    }
}

/// What one POST came to.
#[derive(Debug)]
enum Outcome {
    Delivered,
    /// Worth trying again (connection, timeout, 408, 429, 5xx), with the receiver's
    /// `Retry-After` (seconds) when it gave one.
    Retry(String, Option<Duration>),
    /// Refused for good (any other status).
    Rejected(u16),
}

/// The bearer token: none, given, or read from a file (again when it changes).
#[derive(Debug)]
enum Bearer {
    None,
    Token(String),
    File {
        path: PathBuf,
        token: String,
        modified: Option<SystemTime>,
    },
}

impl Bearer {
    fn read(path: &Path) -> Result<(String, Option<SystemTime>), io::Error> {
        let modified = std::fs::metadata(path)?.modified().ok();
        let token = std::fs::read_to_string(path)?.trim().to_string();
        Ok((token, modified))
    }

    fn current(&mut self) -> Option<&str> {
        match self {
            Bearer::None => None,
            Bearer::Token(t) => Some(t),
            Bearer::File {
                path,
                token,
                modified,
            } => {
                let now = std::fs::metadata(&*path)
                    .ok()
                    .and_then(|m| m.modified().ok());
                if now != *modified {
                    match Bearer::read(path) {
                        Ok((t, m)) => {
                            *token = t;
                            *modified = m;
                        }
                        Err(e) => {
                            tracing::warn!(file = %path.display(), error = %e, "cannot re-read the bearer token; the last one is used")
                        }
                    }
                }
                Some(token)
            }
        }
    }
}

/// The blocking HTTP client of one output.
#[derive(Debug)]
struct Client {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    bearer: Bearer,
}

impl Client {
    fn new(cfg: &HttpOutputConfig) -> Result<Client, HttpOpenError> {
        let tls = tls_trusting(cfg.ca_file.as_deref().map(read_ca_file).transpose()?);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout()))
            .http_status_as_error(false)
            .max_redirects(0)
            // No proxy from the environment: alerts go where the url says.
            .proxy(None)
            .user_agent(concat!("driftwatch/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .new_agent();
        let bearer = match (&cfg.bearer_token, &cfg.bearer_token_file) {
            (Some(t), _) => Bearer::Token(t.trim().to_string()),
            (None, Some(path)) => {
                let (token, modified) =
                    Bearer::read(path).map_err(|error| HttpOpenError::Token {
                        path: path.clone(),
                        error,
                    })?;
                Bearer::File {
                    path: path.clone(),
                    token,
                    modified,
                }
            }
            (None, None) => Bearer::None,
        };
        Ok(Client {
            agent,
            url: cfg.url.clone(),
            headers: cfg
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            bearer,
        })
    }

    fn post(&mut self, body: &[u8]) -> Outcome {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(t) = self.bearer.current() {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        match req.send(body) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                // Read (a little of) the answer so that the connection can be reused.
                let _ = resp.body_mut().with_config().limit(64 * 1024).read_to_vec();
                match status {
                    200..=299 => Outcome::Delivered,
                    408 | 429 | 500..=599 => {
                        Outcome::Retry(format!("status {status}"), retry_after)
                    }
                    _ => Outcome::Rejected(status),
                }
            }
            Err(e) => Outcome::Retry(e.to_string(), None),
        }
    }
}

/// The delivery thread of one output.
struct Delivery {
    shared: Arc<Shared>,
    client: Client,
    first_backoff: Duration,
    max_backoff: Duration,
    max_retries: Option<u32>,
}

impl Delivery {
    fn run(mut self) {
        let shared = self.shared.clone();
        let name = shared.name.as_str();
        let mut backoff = self.first_backoff;
        let mut retries = 0u32;
        let mut stopping_since: Option<Instant> = None;
        loop {
            // The oldest record, or wait for one.
            let next = {
                let mut spool = shared.spool();
                loop {
                    if shared.stop.load(Ordering::Acquire) {
                        let since = *stopping_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= SHUTDOWN_GRACE {
                            return;
                        }
                    }
                    match spool.oldest() {
                        Ok(Some(r)) => break r,
                        Ok(None) if stopping_since.is_some() => return,
                        Ok(None) => {
                            spool = shared
                                .wake
                                .wait_timeout(spool, Duration::from_secs(1))
                                .unwrap_or_else(|p| p.into_inner())
                                .0;
                        }
                        Err(e) => {
                            tracing::error!(output = name, error = %e, "cannot read the spool");
                            if stopping_since.is_some() {
                                return;
                            }
                            spool = self.pause(spool, backoff);
                            backoff = (backoff * 2).min(self.max_backoff);
                        }
                    }
                }
            };
            let (pos, body) = next;
            let outcome = self.client.post(&body);
            let mut spool = shared.spool();
            match outcome {
                Outcome::Delivered => {
                    shared.metrics.http_delivered(name).inc();
                    backoff = self.first_backoff;
                    retries = 0;
                    if let Err(e) = spool.ack(pos) {
                        tracing::error!(output = name, error = %e, "cannot update the spool's cursor");
                    }
                }
                Outcome::Rejected(status) => {
                    shared.metrics.http_dropped(name, "rejected").inc();
                    tracing::warn!(
                        output = name,
                        status,
                        "the receiver refused an alert: dropped"
                    );
                    retries = 0;
                    if let Err(e) = spool.ack(pos) {
                        tracing::error!(output = name, error = %e, "cannot update the spool's cursor");
                    }
                }
                Outcome::Retry(why, retry_after) => {
                    retries += 1;
                    if self.max_retries.is_some_and(|m| retries > m) {
                        shared.metrics.http_dropped(name, "retries_exhausted").inc();
                        tracing::warn!(output = name, error = %why, retries = retries - 1, "an alert was not delivered after its retries: dropped");
                        retries = 0;
                        backoff = self.first_backoff;
                        if let Err(e) = spool.ack(pos) {
                            tracing::error!(output = name, error = %e, "cannot update the spool's cursor");
                        }
                    } else {
                        shared.metrics.http_retries(name).inc();
                        if stopping_since.is_some() {
                            return;
                        }
                        if retries == 1 {
                            tracing::warn!(output = name, error = %why, spooled = spool.len(), "HTTP output delivery failed; retrying with backoff");
                        } else {
                            tracing::debug!(output = name, error = %why, retries, "HTTP output delivery failed again");
                        }
                        // The receiver's Retry-After, up to retry_backoff_max, when longer.
                        let wait =
                            retry_after.map_or(backoff, |r| r.min(self.max_backoff).max(backoff));
                        spool = self.pause(spool, wait);
                        backoff = (backoff * 2).min(self.max_backoff);
                    }
                }
            }
            shared.gauges(&spool);
        }
    }

    /// Waits `d` (or until the output stops) with the spool unlocked.
    fn pause<'a>(&self, spool: MutexGuard<'a, Spool>, d: Duration) -> MutexGuard<'a, Spool> {
        let shared = &*self.shared;
        shared
            .wake
            .wait_timeout_while(spool, d, |_| !shared.stop.load(Ordering::Acquire))
            .unwrap_or_else(|p| p.into_inner())
            .0
    }
}
