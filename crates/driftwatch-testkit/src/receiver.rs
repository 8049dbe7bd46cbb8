//! A real HTTP/1.1 receiver on 127.0.0.1 for the HTTP output's tests: it records every request
//! (method, path, headers, body) and answers with scripted statuses (200 once the script is
//! used up). Plain HTTP or TLS with a certificate from a test-made CA ([`TestCa`]). One request
//! per connection (`Connection: close`).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
    /// When it was read.
    pub at: Instant,
}

impl Request {
    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Request>,
    script: VecDeque<u16>,
    /// `Retry-After` seconds sent with 429 and 503 answers.
    retry_after: Option<u64>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A CA made for one test and a certificate it signed for `localhost` and `127.0.0.1`.
#[derive(Debug)]
pub struct TestCa {
    /// The CA's certificate (PEM): what a client trusts.
    pub ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "driftwatch test CA");
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .expect("leaf certificate");
        TestCa {
            ca_pem: ca.pem(),
            cert_der: leaf.der().to_vec(),
            key_der: leaf_key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        #[allow(
            deprecated,
            reason = "ring is the provider the HTTP output's ureq uses; post-quantum key exchange does not matter on loopback"
        )]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("server certificate");
        Arc::new(cfg)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// The receiver; stops (closes its port) when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Plain HTTP on a free port of 127.0.0.1.
    pub fn start() -> Receiver {
        Receiver::start_on(0)
    }

    /// Plain HTTP on 127.0.0.1:`port` (0: any free port). Retries for a few seconds while the
    /// port is still taken (a receiver just stopped).
    pub fn start_on(port: u16) -> Receiver {
        Receiver::bind(port, None)
    }

    /// HTTPS on a free port of 127.0.0.1 with `ca`'s certificate.
    pub fn start_tls(ca: &TestCa) -> Receiver {
        Receiver::bind(0, Some(ca.server_config()))
    }

    fn bind(port: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("bind 127.0.0.1:{port}: {e}"),
            }
        };
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::spawn(move || accept_loop(&listener, &s, tls.as_ref()));
        Receiver {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>/` (or `https://localhost:<port>/` for TLS: the certificate's
    /// name).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port())
    }

    /// The next requests are answered with these statuses, in order (then 200).
    pub fn respond_with(&self, statuses: &[u16]) {
        self.shared.state().script.extend(statuses.iter().copied());
    }

    /// 429 and 503 answers carry `Retry-After: secs`.
    pub fn retry_after(&self, secs: u64) {
        self.shared.state().retry_after = Some(secs);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The requests answered 2xx so far.
    pub fn accepted(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until at least `n` requests were answered 2xx (panics after `timeout`).
    pub fn wait_accepted(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state();
        loop {
            let ok: Vec<Request> = st
                .requests
                .iter()
                .filter(|r| (200..300).contains(&r.status))
                .cloned()
                .collect();
            if ok.len() >= n {
                return ok;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "{} of {n} requests accepted in {timeout:?}; all requests: {:?}",
                ok.len(),
                st.requests
                    .iter()
                    .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
                    .collect::<Vec<_>>()
            );
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Stops listening (the port is closed when this returns).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.halt();
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    tls: Option<&Arc<rustls::ServerConfig>>,
) {
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                // One connection at a time: requests are recorded in the order they came.
                let r = match tls {
                    Some(cfg) => match rustls::ServerConnection::new(cfg.clone()) {
                        Ok(conn) => serve(rustls::StreamOwned::new(conn, stream), shared),
                        Err(e) => Err(io::Error::other(e)),
                    },
                    None => serve(stream, shared),
                };
                if let Err(e) = r {
                    eprintln!("receiver: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                eprintln!("receiver: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Reads one request, records it, answers it, closes.
fn serve<S: Read + Write>(stream: S, shared: &Shared) -> io::Result<()> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(());
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let (status, retry_after) = {
        let mut st = shared.state();
        let status = st.script.pop_front().unwrap_or(200);
        let retry_after = st
            .retry_after
            .filter(|_| matches!(status, 429 | 503))
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        st.requests.push(Request {
            method,
            path,
            headers,
            body,
            status,
            at: Instant::now(),
        });
        (status, retry_after)
    };
    let mut s = r.into_inner();
    let text = format!("{{\"status\":{status}}}");
    write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry_after}Connection: close\r\n\r\n{text}",
        text.len()
    )?;
    s.flush()?;
    shared.changed.notify_all();
    Ok(())
}
