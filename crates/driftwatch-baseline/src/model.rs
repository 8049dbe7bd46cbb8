//! A workload's baseline: the listeners and the outbound peers it is expected to have, and the
//! file it is written to (YAML, one per workload, written by [`Baseline::to_yaml`] and read by
//! [`Baseline::from_yaml`], which names the line and column of any mistake).

use driftwatch_event::{format_rfc3339_secs, parse_rfc3339_secs, IpNet};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The version of the file format.
pub const FORMAT_VERSION: u32 = 1;

/// The transport of a listener or a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Result<Proto, String> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(format!("proto: {s:?} is not tcp or udp")),
        }
    }
}

/// A port, or any port (`port: any`, written by a user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    Any,
    One(u16),
}

impl Port {
    pub fn matches(self, port: u16) -> bool {
        match self {
            Port::Any => true,
            Port::One(p) => p == port,
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Any => f.write_str("any"),
            Port::One(p) => write!(f, "{p}"),
        }
    }
}

/// Who put an entry in the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The image declares it (`ExposedPorts` of the image config).
    Image,
    /// The agent saw it while the workload was learning.
    Learned,
    /// Written by hand (an entry without `source`).
    User,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Image => "image",
            Source::Learned => "learned",
            Source::User => "user",
        }
    }

    fn parse(s: Option<&str>) -> Result<Source, String> {
        match s {
            None | Some("user") => Ok(Source::User),
            Some("image") => Ok(Source::Image),
            Some("learned") => Ok(Source::Learned),
            Some(s) => Err(format!("source: {s:?} is not image, learned or user")),
        }
    }
}

/// The other end of an outbound connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// An address or a CIDR (`address: 10.0.0.5`, `address: 10.0.0.0/8`).
    Address(IpNet),
    /// A network named in the configuration (`[network.networks]`).
    Network(String),
    /// A DNS name the container resolved (`name: api.example.com`, or `*.example.com` for any
    /// name under it).
    Name(String),
}

/// A listening port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub proto: Proto,
    pub port: Port,
    pub source: Source,
    /// When it was learned (seconds since the epoch).
    pub since: Option<u64>,
}

/// An outbound peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub proto: Proto,
    pub port: Port,
    pub peer: Peer,
    pub source: Source,
    pub since: Option<u64>,
}

/// When the workload learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learning {
    /// When the workload was first seen (seconds since the epoch).
    pub started: u64,
    /// When learning ends; nothing is learned from then on.
    pub until: u64,
}

/// The named networks of the configuration, most specific first when several contain an
/// address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(BTreeMap<String, Vec<IpNet>>);

impl Networks {
    /// From name → CIDRs (already validated).
    pub fn new(map: BTreeMap<String, Vec<IpNet>>) -> Networks {
        Networks(map)
    }

    /// The network an address is in (the one with the longest prefix containing it).
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.0
            .iter()
            .flat_map(|(name, nets)| nets.iter().map(move |n| (name, n)))
            .filter(|(_, n)| n.contains(ip))
            .max_by_key(|(_, n)| n.prefix())
            .map(|(name, _)| name.as_str())
    }

    /// Whether `ip` is in the network called `name`.
    pub fn contains(&self, name: &str, ip: IpAddr) -> bool {
        self.0
            .get(name)
            .is_some_and(|nets| nets.iter().any(|n| n.contains(ip)))
    }

    /// The CIDRs of a named network.
    pub fn get(&self, name: &str) -> Option<&[IpNet]> {
        self.0.get(name).map(Vec::as_slice)
    }
}

/// Whether a DNS name matches a baseline name (`*.example.com` matches any name under it).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.len() > suffix.len() + 1
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// The baseline of one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub workload: String,
    pub learning: Learning,
    /// The image digests it was learned on (and seen running since).
    pub images: Vec<String>,
    pub listen: Vec<Listener>,
    pub connect: Vec<Outbound>,
}

/// An address as it is compared: an IPv4-mapped IPv6 address is its IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Baseline {
    /// A new baseline, learning from `now` for `learn_for` seconds.
    pub fn new(workload: &str, now: u64, learn_for: u64) -> Baseline {
        Baseline {
            workload: workload.to_string(),
            learning: Learning {
                started: now,
                until: now.saturating_add(learn_for),
            },
            images: Vec::new(),
            listen: Vec::new(),
            connect: Vec::new(),
        }
    }

    /// Whether the workload is still learning at `now`.
    pub fn is_learning(&self, now: u64) -> bool {
        now < self.learning.until
    }

    /// Whether a listener on `port` is expected.
    pub fn expects_listen(&self, proto: Proto, port: u16) -> bool {
        self.listen
            .iter()
            .any(|l| l.proto == proto && l.port.matches(port))
    }

    /// Whether an outbound connection to `ip`:`port` is expected; `name` is the DNS name the
    /// container resolved for `ip`, when it did.
    pub fn expects_peer(
        &self,
        proto: Proto,
        ip: IpAddr,
        port: u16,
        name: Option<&str>,
        networks: &Networks,
    ) -> bool {
        let ip = canonical(ip);
        self.connect.iter().any(|o| {
            o.proto == proto
                && o.port.matches(port)
                && match &o.peer {
                    Peer::Address(net) => net.contains(ip),
                    Peer::Network(n) => networks.contains(n, ip),
                    Peer::Name(pattern) => name.is_some_and(|n| name_matches(pattern, n)),
                }
        })
    }

    /// Records a listener; false when it was already expected.
    pub fn learn_listen(&mut self, proto: Proto, port: u16, source: Source, now: u64) -> bool {
        if self.expects_listen(proto, port) {
            return false;
        }
        self.listen.push(Listener {
            proto,
            port: Port::One(port),
            source,
            since: Some(now),
        });
        true
    }

    /// Records an outbound peer as the most general thing known of it: its named network, else
    /// the DNS name the container resolved for it, else its address. False when it was already
    /// expected.
    pub fn learn_peer(
        &mut self,
        proto: Proto,
        ip: IpAddr,
        port: u16,
        name: Option<&str>,
        networks: &Networks,
        now: u64,
    ) -> bool {
        if self.expects_peer(proto, ip, port, name, networks) {
            return false;
        }
        let ip = canonical(ip);
        let peer = match (networks.name_of(ip), name) {
            (Some(n), _) => Peer::Network(n.to_string()),
            (None, Some(n)) => Peer::Name(n.to_ascii_lowercase()),
            (None, None) => Peer::Address(IpNet::host(ip)),
        };
        self.connect.push(Outbound {
            proto,
            port: Port::One(port),
            peer,
            source: Source::Learned,
            since: Some(now),
        });
        true
    }

    /// Records an image digest; false when it was known.
    pub fn saw_image(&mut self, digest: &str) -> bool {
        if digest.is_empty() || self.images.iter().any(|d| d == digest) {
            return false;
        }
        self.images.push(digest.to_string());
        true
    }

    /// The file's text.
    pub fn to_yaml(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        let t = |secs: u64| q(&format_rfc3339_secs(secs));
        let mut out = String::new();
        out.push_str(
            "# driftwatch network baseline: what this workload is expected to do on the network.\n\
             # Review, edit and commit it (`driftwatch baseline show|edit`). Until learning.until the\n\
             # agent adds what the workload does; it reads the file again when it changes.\n\
             # listen: {proto: tcp|udp, port: N|any}; connect: {proto, port: N|any, and one of\n\
             # address: IP or CIDR, network: a name from [network.networks], name: DNS name or *.domain}.\n",
        );
        let _ = writeln!(out, "version: {FORMAT_VERSION}");
        let _ = writeln!(out, "workload: {}", q(&self.workload));
        let _ = writeln!(
            out,
            "learning:\n  started: {}\n  until: {}",
            t(self.learning.started),
            t(self.learning.until)
        );
        out.push_str("images:");
        if self.images.is_empty() {
            out.push_str(" []");
        }
        out.push('\n');
        for d in &self.images {
            let _ = writeln!(out, "  - {}", q(d));
        }
        let tail = |source: Source, since: Option<u64>| {
            let mut s = String::new();
            if source != Source::User {
                let _ = write!(s, ", source: {}", source.as_str());
            }
            if let Some(since) = since {
                let _ = write!(s, ", since: {}", t(since));
            }
            s
        };
        out.push_str("listen:");
        if self.listen.is_empty() {
            out.push_str(" []");
        }
        out.push('\n');
        for l in &self.listen {
            let _ = writeln!(
                out,
                "  - {{proto: {}, port: {}{}}}",
                l.proto.as_str(),
                l.port,
                tail(l.source, l.since)
            );
        }
        out.push_str("connect:");
        if self.connect.is_empty() {
            out.push_str(" []");
        }
        out.push('\n');
        for o in &self.connect {
            let peer = match &o.peer {
                Peer::Address(n) => format!("address: {}", q(&n.to_string())),
                Peer::Network(n) => format!("network: {}", q(n)),
                Peer::Name(n) => format!("name: {}", q(n)),
            };
            let _ = writeln!(
                out,
                "  - {{proto: {}, port: {}, {peer}{}}}",
                o.proto.as_str(),
                o.port,
                tail(o.source, o.since)
            );
        }
        out
    }

    /// Parses a baseline file; the error names the line and column.
    pub fn from_yaml(text: &str) -> Result<Baseline, ParseError> {
        let raw: RawFile = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            ParseError {
                line,
                column,
                message: strip_location(&e.to_string()),
            }
        })?;
        let at_start = |message: String| ParseError {
            line: 1,
            column: 1,
            message,
        };
        if raw.version != FORMAT_VERSION {
            return Err(at_start(format!(
                "version {} is not supported (this driftwatch writes version {FORMAT_VERSION})",
                raw.version
            )));
        }
        if raw.workload.trim().is_empty() {
            return Err(at_start("workload: must not be empty".into()));
        }
        let (started, until) = (raw.learning.started, raw.learning.until);
        if until < started {
            return Err(at_start("learning.until is before learning.started".into()));
        }
        Ok(Baseline {
            workload: raw.workload,
            learning: Learning { started, until },
            images: raw.images,
            listen: raw.listen,
            connect: raw.connect,
        })
    }
}

/// A baseline file that cannot be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// serde_yaml ends its messages with " at line L column C": the location is given apart.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    workload: String,
    learning: RawLearning,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    listen: Vec<Listener>,
    #[serde(default)]
    connect: Vec<Outbound>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLearning {
    #[serde(deserialize_with = "utc")]
    started: u64,
    #[serde(deserialize_with = "utc")]
    until: u64,
}

fn utc<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    parse_rfc3339_secs(&s).map_err(serde::de::Error::custom)
}

/// `port: 8080` or `port: any`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawPort {
    N(i64),
    S(String),
}

impl RawPort {
    fn port(self) -> Result<Port, String> {
        match self {
            RawPort::N(n) => u16::try_from(n)
                .ok()
                .filter(|p| *p != 0)
                .map(Port::One)
                .ok_or_else(|| format!("port: {n} is not a port (1-65535, or any)")),
            RawPort::S(s) if s == "any" => Ok(Port::Any),
            RawPort::S(s) => Err(format!("port: {s:?} is not a port (1-65535, or any)")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    proto: String,
    port: RawPort,
    address: Option<String>,
    network: Option<String>,
    name: Option<String>,
    source: Option<String>,
    since: Option<String>,
}

impl RawEntry {
    fn common(self) -> Result<(Proto, Port, Source, Option<u64>, RawPeer), String> {
        let proto = Proto::parse(&self.proto)?;
        let port = self.port.port()?;
        let source = Source::parse(self.source.as_deref())?;
        let since = self.since.as_deref().map(parse_rfc3339_secs).transpose()?;
        let peer = RawPeer {
            address: self.address,
            network: self.network,
            name: self.name,
        };
        Ok((proto, port, source, since, peer))
    }
}

struct RawPeer {
    address: Option<String>,
    network: Option<String>,
    name: Option<String>,
}

impl<'de> Deserialize<'de> for Listener {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (proto, port, source, since, peer) = RawEntry::deserialize(d)?
            .common()
            .map_err(serde::de::Error::custom)?;
        if peer.address.is_some() || peer.network.is_some() || peer.name.is_some() {
            return Err(serde::de::Error::custom(
                "a listener has only proto and port (address, network and name are for connect)",
            ));
        }
        Ok(Listener {
            proto,
            port,
            source,
            since,
        })
    }
}

impl<'de> Deserialize<'de> for Outbound {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let (proto, port, source, since, p) = RawEntry::deserialize(d)?
            .common()
            .map_err(D::Error::custom)?;
        let peer = match (p.address, p.network, p.name) {
            (Some(a), None, None) => Peer::Address(IpNet::parse(&a).ok_or_else(|| {
                D::Error::custom(format!("address: {a:?} is not an IP address or a CIDR"))
            })?),
            (None, Some(n), None) if !n.is_empty() => Peer::Network(n),
            (None, None, Some(n)) if valid_name(&n) => Peer::Name(n.to_ascii_lowercase()),
            (None, None, Some(n)) => {
                return Err(D::Error::custom(format!("name: {n:?} is not a DNS name")))
            }
            _ => {
                return Err(D::Error::custom(
                    "a connect entry needs exactly one of address, network or name",
                ))
            }
        };
        Ok(Outbound {
            proto,
            port,
            peer,
            source,
            since,
        })
    }
}

/// A DNS name (or `*.` and one): labels of letters, digits, `-` and `_`, at most 253 bytes.
fn valid_name(n: &str) -> bool {
    let n = n.strip_prefix("*.").unwrap_or(n);
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> Networks {
        let mut m = BTreeMap::new();
        m.insert(
            "cluster".to_string(),
            vec![IpNet::parse("10.96.0.0/12").unwrap_or_else(|| panic!("cidr"))],
        );
        m.insert(
            "dns".to_string(),
            vec![IpNet::parse("10.96.0.10").unwrap_or_else(|| panic!("cidr"))],
        );
        Networks::new(m)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn learning_generalises_and_matches() {
        let n = nets();
        let mut b = Baseline::new("k8s:shop/web/app", 100, 3600);
        assert!(b.is_learning(100) && b.is_learning(3699) && !b.is_learning(3700));
        assert!(b.learn_listen(Proto::Tcp, 8080, Source::Image, 100));
        assert!(!b.learn_listen(Proto::Tcp, 8080, Source::Learned, 101));
        assert!(b.expects_listen(Proto::Tcp, 8080));
        assert!(!b.expects_listen(Proto::Udp, 8080));
        // most specific named network
        assert_eq!(n.name_of(ip("10.96.0.10")), Some("dns"));
        assert_eq!(n.name_of(ip("10.100.0.1")), Some("cluster"));
        assert!(b.learn_peer(Proto::Udp, ip("10.96.0.10"), 53, None, &n, 102));
        assert!(b.learn_peer(
            Proto::Tcp,
            ip("192.0.2.7"),
            443,
            Some("API.example.com"),
            &n,
            103
        ));
        assert!(b.learn_peer(Proto::Tcp, ip("192.0.2.8"), 5432, None, &n, 104));
        assert_eq!(b.connect[0].peer, Peer::Network("dns".into()));
        assert_eq!(b.connect[1].peer, Peer::Name("api.example.com".into()));
        // the name, whatever address it resolves to now
        assert!(b.expects_peer(
            Proto::Tcp,
            ip("198.51.100.1"),
            443,
            Some("api.example.com"),
            &n
        ));
        assert!(!b.expects_peer(Proto::Tcp, ip("198.51.100.1"), 443, None, &n));
        assert!(!b.expects_peer(
            Proto::Tcp,
            ip("198.51.100.1"),
            80,
            Some("api.example.com"),
            &n
        ));
        assert!(
            b.expects_peer(Proto::Tcp, ip("::ffff:192.0.2.8"), 5432, None, &n),
            "v4-mapped"
        );
        assert!(!b.expects_peer(Proto::Udp, ip("192.0.2.8"), 5432, None, &n));
        assert!(name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "badexample.com"));
    }

    #[test]
    fn files_round_trip() {
        let n = nets();
        let mut b = Baseline::new(
            "image:docker.io/library/web/app \"quoted\"",
            1_796_605_200,
            3600,
        );
        b.saw_image("sha256:aa");
        b.learn_listen(Proto::Tcp, 80, Source::Image, 1_796_605_200);
        b.learn_peer(Proto::Tcp, ip("fd00::1"), 443, None, &n, 1_796_605_201);
        b.learn_peer(Proto::Udp, ip("10.96.0.10"), 53, None, &n, 1_796_605_202);
        b.learn_peer(
            Proto::Tcp,
            ip("192.0.2.1"),
            443,
            Some("x.example"),
            &n,
            1_796_605_203,
        );
        let text = b.to_yaml();
        assert_eq!(Baseline::from_yaml(&text), Ok(b.clone()), "{text}");
        assert!(text.contains("until: \"2026-12-07T02:00:00Z\""), "{text}");
        let empty = Baseline::new("w", 0, 0);
        assert_eq!(Baseline::from_yaml(&empty.to_yaml()), Ok(empty));
    }

    #[test]
    fn hand_written_entries() {
        let text = "version: 1\nworkload: w\nlearning: {started: 2026-12-07T01:00:00Z, until: 2026-12-07T01:00:00Z}\n\
                    listen:\n  - {proto: udp, port: any}\nconnect:\n  - {proto: tcp, port: any, address: 10.0.0.0/8}\n  - {proto: tcp, port: 443, name: '*.example.com'}\n";
        let b = Baseline::from_yaml(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.listen[0].source, Source::User);
        assert!(b.expects_listen(Proto::Udp, 9));
        assert!(b.expects_peer(Proto::Tcp, ip("10.1.2.3"), 1, None, &Networks::default()));
        assert!(b.expects_peer(
            Proto::Tcp,
            ip("1.1.1.1"),
            443,
            Some("www.example.com"),
            &Networks::default()
        ));
    }

    #[test]
    fn mistakes_name_line_and_column() {
        let base = "version: 1\nworkload: w\nlearning: {started: 2026-12-07T01:00:00Z, until: 2026-12-07T02:00:00Z}\n";
        let cases = [
            (
                "connect:\n  - {proto: tcp, port: 99999, address: 10.0.0.1}\n",
                5,
                "port: 99999",
            ),
            (
                "connect:\n  - {proto: sctp, port: 1, address: 10.0.0.1}\n",
                5,
                "sctp",
            ),
            (
                "connect:\n  - {proto: tcp, port: 1, address: 10.0.0.300}\n",
                5,
                "10.0.0.300",
            ),
            ("connect:\n  - {proto: tcp, port: 1}\n", 5, "exactly one"),
            (
                "connect:\n  - {proto: tcp, port: 1, address: 10.0.0.1, name: a.b}\n",
                5,
                "exactly one",
            ),
            (
                "listen:\n  - {proto: tcp, port: 1, adress: x}\n",
                5,
                "adress",
            ),
            (
                "listen:\n  - {proto: tcp, port: 1, name: x}\n",
                5,
                "only proto and port",
            ),
            ("listen:\n - [\n", 5, ""),
        ];
        for (tail, line, needle) in cases {
            let err = Baseline::from_yaml(&format!("{base}{tail}")).expect_err(tail);
            assert_eq!(err.line, line, "{tail}: {err}");
            assert!(err.column > 0, "{tail}: {err}");
            assert!(err.message.contains(needle), "{tail}: {err}");
        }
        let err = Baseline::from_yaml("version: 1\nworkload: w\nlearning: {started: yesterday, until: 2026-12-07T02:00:00Z}\n")
            .expect_err("bad time");
        assert_eq!(err.line, 3);
        assert!(err.message.contains("yesterday"), "{err}");
        let err = Baseline::from_yaml("version: 2\nworkload: w\nlearning: {started: 2026-12-07T01:00:00Z, until: 2026-12-07T02:00:00Z}\n")
            .expect_err("version");
        assert!(err.message.contains("version 2"), "{err}");
    }
}
