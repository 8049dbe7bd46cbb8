//! The network fields of a [`NetEvent`], with Falco's semantics and formats (libsinsp's
//! `fd.*` of a socket): a connection has a client (the side that connected) and a server (the
//! side that accepted), a bound or listening socket has one address; `fd.name` is
//! `cip:cport->sip:sport` or `ip:port`, addresses as `inet_ntop` writes them (IPv6 without
//! brackets).

use driftwatch_event::{NetEvent, NetOp, AF_INET, AF_INET6, AF_UNIX};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

/// `AF_NETLINK`.
const AF_NETLINK: u16 = 16;
/// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_RAW`.
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;
const SOCK_RAW: u16 = 3;

/// What the event's socket is, as Falco's fd table would hold it after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sock {
    /// A connection (or a datagram's destination): its two ends, and whether this process is
    /// the server end.
    Conn {
        client: SocketAddr,
        server: SocketAddr,
        local_is_server: bool,
    },
    /// A bound or listening socket (Falco's server socket): its address.
    Server(SocketAddr),
    /// No address (a new socket, another family).
    None,
}

/// An address as Falco shows it: IPv4-mapped IPv6 addresses as IPv4 (Falco turns an IPv6
/// socket whose ends are IPv4-mapped into an IPv4 one).
fn shown(a: SocketAddr, as_v4: bool) -> SocketAddr {
    match (a.ip(), as_v4) {
        (IpAddr::V6(v6), true) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        _ => a,
    }
}

/// Whether an IPv6 socket's addresses are all IPv4-mapped (at least one present).
fn all_v4_mapped(ev: &NetEvent) -> bool {
    let mapped = |a: &SocketAddr| match a.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
        IpAddr::V4(_) => true,
    };
    ev.family == AF_INET6
        && (ev.local.is_some() || ev.remote.is_some())
        && ev.local.iter().chain(ev.remote.iter()).all(mapped)
}

/// The unspecified address and port 0 of the family of `like` (a client end the kernel had
/// not bound yet: a connect that failed before the socket got a local address).
fn unspecified_like(like: SocketAddr) -> SocketAddr {
    let ip = match like.ip() {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Which end of its connections the process is, learnt from the connects and accepts seen, so
/// that a later `dup` of the socket (which says nothing of how it was made) names its client
/// and server as Falco's fd table would. Keyed by mount namespace (the container) and the two
/// ends; bounded: emptied when [`SocketRoles::MAX`] is reached.
#[derive(Debug, Default)]
pub struct SocketRoles {
    map: HashMap<(u64, SocketAddr, SocketAddr), bool>,
}

impl SocketRoles {
    /// Most connections remembered.
    pub const MAX: usize = 4096;

    /// Remember the role of a connect's or accept's socket.
    pub fn learn(&mut self, ev: &NetEvent) {
        let server = match ev.op {
            NetOp::Accept | NetOp::Accept4 => true,
            // a connect made or under way (EINPROGRESS)
            NetOp::Connect if ev.ret == 0 || ev.ret == -115 => false,
            _ => return,
        };
        let (Some(local), Some(remote)) = (ev.local, ev.remote) else {
            return;
        };
        if self.map.len() >= SocketRoles::MAX {
            self.map.clear();
        }
        self.map.insert((ev.task.mntns, local, remote), server);
    }

    /// Whether the process is the server end of a dup'ed socket, when its connect or accept
    /// was seen.
    pub fn local_is_server(&self, ev: &NetEvent) -> Option<bool> {
        if !ev.op.is_dup() {
            return None;
        }
        let key = (ev.task.mntns, ev.local?, ev.remote?);
        self.map.get(&key).copied()
    }

    /// Connections remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no connection is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Sock {
    /// The socket of `ev`; `local_is_server` is what [`SocketRoles`] knows of a dup'ed one.
    pub(super) fn of(ev: &NetEvent, local_is_server: Option<bool>) -> Sock {
        if !ev.is_inet() {
            return Sock::None;
        }
        let as_v4 = all_v4_mapped(ev);
        let local = ev.local.map(|a| shown(a, as_v4));
        let remote = ev.remote.map(|a| shown(a, as_v4));
        match (ev.op, local, remote) {
            (NetOp::Socket, ..) => Sock::None,
            (_, local, Some(remote)) => {
                let local = local.unwrap_or_else(|| unspecified_like(remote));
                let local_is_server = match ev.op {
                    NetOp::Accept | NetOp::Accept4 => true,
                    NetOp::Connect | NetOp::Sendto | NetOp::Sendmsg => false,
                    // a dup: as its connect or accept said, else the client is the end on
                    // the higher (ephemeral) port
                    _ => local_is_server.unwrap_or(local.port() < remote.port()),
                };
                let (client, server) = if local_is_server {
                    (remote, local)
                } else {
                    (local, remote)
                };
                Sock::Conn {
                    client,
                    server,
                    local_is_server,
                }
            }
            (_, Some(local), None) => Sock::Server(local),
            (_, None, None) => Sock::None,
        }
    }

    /// (local, remote) ends of a connection.
    fn ends(self) -> Option<(SocketAddr, SocketAddr)> {
        match self {
            Sock::Conn {
                client,
                server,
                local_is_server,
            } => Some(if local_is_server {
                (server, client)
            } else {
                (client, server)
            }),
            _ => None,
        }
    }

    pub(super) fn client(self) -> Option<SocketAddr> {
        match self {
            Sock::Conn { client, .. } => Some(client),
            _ => None,
        }
    }

    /// The server end, or a server socket's address.
    pub(super) fn server(self) -> Option<SocketAddr> {
        match self {
            Sock::Conn { server, .. } | Sock::Server(server) => Some(server),
            Sock::None => None,
        }
    }

    /// This process's end (a server socket's address).
    pub(super) fn local(self) -> Option<SocketAddr> {
        match self {
            Sock::Server(a) => Some(a),
            s => s.ends().map(|(l, _)| l),
        }
    }

    pub(super) fn remote(self) -> Option<SocketAddr> {
        self.ends().map(|(_, r)| r)
    }

    /// Both ends (client first), or a server socket's one address (`fd.ip`, `fd.port`).
    pub(super) fn either(self) -> impl Iterator<Item = SocketAddr> {
        let (a, b) = match self {
            Sock::Conn { client, server, .. } => (Some(client), Some(server)),
            Sock::Server(a) => (Some(a), None),
            Sock::None => (None, None),
        };
        a.into_iter().chain(b)
    }

    /// `fd.is_server`.
    pub(super) fn is_server(self) -> bool {
        match self {
            Sock::Conn {
                local_is_server, ..
            } => local_is_server,
            Sock::Server(_) => true,
            Sock::None => false,
        }
    }

    /// Falco's `fd.name` of a socket.
    pub(super) fn write_name(self, out: &mut Vec<u8>) -> bool {
        match self {
            Sock::Conn { client, server, .. } => {
                let _ = write!(
                    out,
                    "{}:{}->{}:{}",
                    client.ip(),
                    client.port(),
                    server.ip(),
                    server.port()
                );
                true
            }
            Sock::Server(a) => {
                let _ = write!(out, "{}:{}", a.ip(), a.port());
                true
            }
            Sock::None => false,
        }
    }
}

/// `fd.type` and `fd.typechar` of a socket.
pub(super) fn fd_type(ev: &NetEvent) -> Option<(&'static str, &'static str)> {
    match ev.family {
        AF_INET => Some(("ipv4", "4")),
        AF_INET6 if all_v4_mapped(ev) => Some(("ipv4", "4")),
        AF_INET6 => Some(("ipv6", "6")),
        AF_UNIX => Some(("unix", "u")),
        AF_NETLINK => Some(("netlink", "n")),
        _ => None,
    }
}

/// `fd.sockfamily`.
pub(super) fn sock_family(ev: &NetEvent) -> Option<&'static str> {
    match ev.family {
        AF_INET | AF_INET6 => Some("ip"),
        AF_UNIX => Some("unix"),
        _ => None,
    }
}

/// `fd.l4proto` of an IP socket.
pub(super) fn l4proto(ev: &NetEvent) -> Option<&'static str> {
    if !ev.is_inet() {
        return None;
    }
    if ev.sock_type == SOCK_RAW {
        return Some("raw");
    }
    match (ev.protocol, ev.sock_type) {
        // IPPROTO_TCP, IPPROTO_MPTCP
        (6 | 262, _) | (0, SOCK_STREAM) => Some("tcp"),
        // IPPROTO_UDP, IPPROTO_UDPLITE
        (17 | 136, _) | (0, SOCK_DGRAM) => Some("udp"),
        // IPPROTO_ICMP, IPPROTO_ICMPV6 (ping sockets)
        (1 | 58, _) => Some("icmp"),
        _ => None,
    }
}

/// `fd.connected`: the socket has a peer it is connected to.
pub(super) fn connected(ev: &NetEvent, sock: Sock) -> bool {
    if !matches!(sock, Sock::Conn { .. }) || ev.remote_from_arg || ev.no_syscall {
        return false;
    }
    match ev.op {
        // EINPROGRESS: the kernel has the peer, the connection is not made yet
        NetOp::Connect => ev.ret == 0,
        _ => true,
    }
}

/// `fd.name_changed`: the call gave the socket its name (or a new peer, for a datagram).
pub(super) fn name_changed(ev: &NetEvent) -> bool {
    matches!(
        ev.op,
        NetOp::Connect
            | NetOp::Accept
            | NetOp::Accept4
            | NetOp::Bind
            | NetOp::Sendto
            | NetOp::Sendmsg
    )
}

/// `fd.num`: the socket the call worked on (dup: its old fd, as Falco's event fd).
pub(super) fn fd_num(ev: &NetEvent) -> Option<i64> {
    if ev.op.is_dup() {
        ev.fd2
    } else {
        ev.fd
    }
}

/// Falco's names of the address families (`socket_families`, in its order: the first name
/// of a value is the one shown, so 1 is `AF_LOCAL` and 16 `AF_ROUTE`).
const FAMILIES: &[(&str, u16)] = &[
    ("AF_NFC", 39),
    ("AF_ALG", 38),
    ("AF_CAIF", 37),
    ("AF_IEEE802154", 36),
    ("AF_PHONET", 35),
    ("AF_ISDN", 34),
    ("AF_RXRPC", 33),
    ("AF_IUCV", 32),
    ("AF_BLUETOOTH", 31),
    ("AF_TIPC", 30),
    ("AF_CAN", 29),
    ("AF_LLC", 26),
    ("AF_WANPIPE", 25),
    ("AF_PPPOX", 24),
    ("AF_IRDA", 23),
    ("AF_SNA", 22),
    ("AF_RDS", 21),
    ("AF_ATMSVC", 20),
    ("AF_ECONET", 19),
    ("AF_ASH", 18),
    ("AF_PACKET", 17),
    ("AF_ROUTE", 16),
    ("AF_NETLINK", 16),
    ("AF_KEY", 15),
    ("AF_SECURITY", 14),
    ("AF_NETBEUI", 13),
    ("AF_DECnet", 12),
    ("AF_ROSE", 11),
    ("AF_INET6", 10),
    ("AF_X25", 9),
    ("AF_ATMPVC", 8),
    ("AF_BRIDGE", 7),
    ("AF_NETROM", 6),
    ("AF_APPLETALK", 5),
    ("AF_IPX", 4),
    ("AF_AX25", 3),
    ("AF_INET", 2),
    ("AF_LOCAL", 1),
    ("AF_UNIX", 1),
    ("AF_UNSPEC", 0),
];

/// socket's `evt.arg.domain`: Falco's name of the family, else the number.
pub(super) fn write_domain(family: u16, out: &mut Vec<u8>) {
    match FAMILIES.iter().find(|(_, v)| *v == family) {
        Some((name, _)) => out.extend_from_slice(name.as_bytes()),
        None => {
            let _ = write!(out, "{family}");
        }
    }
}

/// Network error names, for `evt.res`.
pub(super) fn errno_name(ret: i64) -> Option<&'static str> {
    Some(match -ret {
        4 => "EINTR",
        11 => "EAGAIN",
        32 => "EPIPE",
        88 => "ENOTSOCK",
        89 => "EDESTADDRREQ",
        90 => "EMSGSIZE",
        91 => "EPROTOTYPE",
        92 => "ENOPROTOOPT",
        93 => "EPROTONOSUPPORT",
        94 => "ESOCKTNOSUPPORT",
        97 => "EAFNOSUPPORT",
        98 => "EADDRINUSE",
        99 => "EADDRNOTAVAIL",
        100 => "ENETDOWN",
        101 => "ENETUNREACH",
        103 => "ECONNABORTED",
        104 => "ECONNRESET",
        105 => "ENOBUFS",
        106 => "EISCONN",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        112 => "EHOSTDOWN",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        115 => "EINPROGRESS",
        _ => return None,
    })
}
