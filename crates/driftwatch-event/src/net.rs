//! Network syscalls of container processes (issue 10: network drift).

use std::net::{IpAddr, SocketAddr};

use crate::process::TaskInfo;

/// The syscall of a [`NetEvent`], named as Falco names the event (`evt.type`).
///
/// The one definition of the network syscalls: the discriminants are `enum dw_net_op` of
/// `driftwatch-bpf/bpf/include/abi.h` (the `abi_layout` test compares them with the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u16)]
pub enum NetOp {
    #[default]
    Socket = 1,
    Connect = 2,
    Accept = 3,
    Accept4 = 4,
    Bind = 5,
    Listen = 6,
    Sendto = 7,
    Sendmsg = 8,
    Dup = 9,
    Dup2 = 10,
    Dup3 = 11,
}

impl NetOp {
    /// Every op, in `DW_NET_OP_*` order (value = index + 1).
    pub const ALL: [NetOp; 11] = [
        NetOp::Socket,
        NetOp::Connect,
        NetOp::Accept,
        NetOp::Accept4,
        NetOp::Bind,
        NetOp::Listen,
        NetOp::Sendto,
        NetOp::Sendmsg,
        NetOp::Dup,
        NetOp::Dup2,
        NetOp::Dup3,
    ];

    /// From a `DW_NET_OP_*` value.
    pub fn from_raw(op: u16) -> Option<NetOp> {
        NetOp::ALL.get(usize::from(op).checked_sub(1)?).copied()
    }

    /// The `DW_NET_OP_*` value.
    pub fn raw(self) -> u16 {
        self as u16
    }

    /// Falco's `evt.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            NetOp::Socket => "socket",
            NetOp::Connect => "connect",
            NetOp::Accept => "accept",
            NetOp::Accept4 => "accept4",
            NetOp::Bind => "bind",
            NetOp::Listen => "listen",
            NetOp::Sendto => "sendto",
            NetOp::Sendmsg => "sendmsg",
            NetOp::Dup => "dup",
            NetOp::Dup2 => "dup2",
            NetOp::Dup3 => "dup3",
        }
    }

    /// accept, accept4.
    pub fn is_accept(self) -> bool {
        matches!(self, NetOp::Accept | NetOp::Accept4)
    }

    /// dup, dup2, dup3.
    pub fn is_dup(self) -> bool {
        matches!(self, NetOp::Dup | NetOp::Dup2 | NetOp::Dup3)
    }
}

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;
/// `AF_UNIX`.
pub const AF_UNIX: u16 = 1;
/// `AF_PACKET`.
pub const AF_PACKET: u16 = 17;

/// A network syscall of a container task, at its exit.
///
/// Addresses are what the kernel's socket holds after the call (a `bind` to port 0 shows the
/// port the kernel chose, a listener on `0.0.0.0`/`::` shows the unspecified address), except a
/// failed `connect`'s remote and a datagram's destination, which are the call's argument.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetEvent {
    pub time_ns: u64,
    pub task: TaskInfo,
    pub op: NetOp,
    /// The syscall's return value (`evt.rawres`): an fd, 0, bytes sent, or `-errno`
    /// (a non-blocking connect's `-EINPROGRESS` included).
    pub ret: i64,
    /// The socket: connect/bind/listen/sendto/sendmsg's argument, the new fd of socket, accept
    /// and dup (none when the call failed).
    pub fd: Option<i64>,
    /// accept's listening fd, dup's old fd.
    pub fd2: Option<i64>,
    /// `AF_*` (`evt.arg.domain` for socket).
    pub family: u16,
    /// `SOCK_*` without the `SOCK_NONBLOCK`/`SOCK_CLOEXEC` bits.
    pub sock_type: u16,
    /// `IPPROTO_*` (socket's argument, else the kernel socket's protocol).
    pub protocol: u16,
    /// socket's type argument as passed (flags included).
    pub type_arg: Option<u32>,
    /// listen's backlog.
    pub backlog: Option<u32>,
    /// accept4's and dup3's flags.
    pub call_flags: Option<u32>,
    /// The local end, when the kernel socket has one (the bound address and port).
    pub local: Option<SocketAddr>,
    /// The remote end: the peer of a connected or accepted socket, a connect's or datagram's
    /// destination.
    pub remote: Option<SocketAddr>,
    /// Whether `remote` is the caller's argument rather than the kernel socket's peer.
    pub remote_from_arg: bool,
    /// A connect that did not go through the connect syscall (io_uring), seen before it ran:
    /// `ret` (0) and `fd` are not known.
    pub no_syscall: bool,
    /// Refused by network enforcement before anything left the socket (the caller got `EPERM`;
    /// a connect or datagram of an enforced container outside its allowed peers, or by drifted
    /// code).
    pub denied: bool,
    /// A bind that asked for port 0: `local`'s port is the one the kernel chose (a client's
    /// source port, not a listener).
    pub port_chosen: bool,
}

impl NetEvent {
    /// `AF_INET` or `AF_INET6`.
    pub fn is_inet(&self) -> bool {
        matches!(self.family, AF_INET | AF_INET6)
    }
}

/// An address as `dw_net_event` holds it (IPv4 in the first 4 bytes, network order).
pub fn ip_from_raw(family: u16, raw: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::from([raw[0], raw[1], raw[2], raw[3]])),
        AF_INET6 => Some(IpAddr::from(*raw)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_names() {
        for (i, op) in NetOp::ALL.iter().enumerate() {
            assert_eq!(usize::from(op.raw()), i + 1);
            assert_eq!(NetOp::from_raw(op.raw()), Some(*op));
        }
        assert_eq!(NetOp::from_raw(0), None);
        assert_eq!(NetOp::from_raw(12), None);
        assert_eq!(NetOp::Accept4.as_str(), "accept4");
        assert!(NetOp::Dup2.is_dup() && NetOp::Accept.is_accept());
    }

    #[test]
    fn raw_addresses() {
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            ip_from_raw(AF_INET, &raw),
            Some("127.0.0.1".parse().unwrap())
        );
        let v6: std::net::Ipv6Addr = "::1".parse().unwrap();
        assert_eq!(ip_from_raw(AF_INET6, &v6.octets()), Some(IpAddr::V6(v6)));
        assert_eq!(ip_from_raw(AF_UNIX, &raw), None);
    }
}

/// A network (`10.0.0.0/8`): an address and a prefix length, for Falco's ipnet fields
/// (`fd.net = "10.0.0.0/8"`) and the named networks of the baselines. An IPv4 network never contains an IPv6 address, nor the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network's address as written (host bits are not cleared).
    pub fn addr(&self) -> std::net::IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// `addr/prefix`; `None` when the prefix is longer than the address.
    pub fn new(addr: std::net::IpAddr, prefix: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// The canonical form: an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4
    /// network it maps, the address's bits past the prefix cleared (`10.1.2.3/16` is
    /// `10.1.0.0/16`).
    #[must_use]
    pub fn canonical(&self) -> IpNet {
        use std::net::{IpAddr as A, Ipv4Addr, Ipv6Addr};
        let (addr, prefix) = match self.addr {
            A::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if self.prefix >= 96 => (A::V4(v4), self.prefix - 96),
                _ => (A::V6(v6), self.prefix),
            },
            v4 => (v4, self.prefix),
        };
        let addr = match addr {
            A::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                A::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            A::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                A::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        IpNet { addr, prefix }
    }

    /// A single address (`/32`, `/128`).
    pub fn host(addr: std::net::IpAddr) -> IpNet {
        IpNet {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Parses `addr/len` or a single address (`/32`, `/128`); `None` when it is neither or
    /// the length is longer than the address.
    pub fn parse(text: &str) -> Option<IpNet> {
        let text = text.trim();
        let (a, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match len {
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => l.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether the address written as `text` (as a field gives it) is in the network.
    pub fn contains_text(&self, text: &[u8]) -> bool {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<std::net::IpAddr>().ok())
            .is_some_and(|a| self.contains(a))
    }

    /// Whether `addr` is in the network.
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        use std::net::IpAddr as A;
        let keep = |bits: u32, width: u32| -> u128 {
            if bits == 0 {
                0
            } else {
                (u128::MAX >> (128 - width)) & !((1u128 << (width - bits)) - 1)
            }
        };
        match (self.addr, addr) {
            (A::V4(n), A::V4(a)) => {
                let m = keep(u32::from(self.prefix), 32);
                u128::from(u32::from(n)) & m == u128::from(u32::from(a)) & m
            }
            (A::V6(n), A::V6(a)) => {
                let m = if self.prefix == 128 {
                    u128::MAX
                } else {
                    keep(u32::from(self.prefix), 128)
                };
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    /// `addr/len`, or the bare address for a single host.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == IpNet::host(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

#[cfg(test)]
mod ipnet_tests {
    use super::IpNet;

    #[test]
    fn cidr_membership() {
        let n = IpNet::parse("10.0.0.0/8").unwrap_or_else(|| panic!("parse"));
        assert!(n.contains_text(b"10.1.2.3"));
        assert!(!n.contains_text(b"11.0.0.1"));
        assert!(!n.contains_text(b"::ffff:10.0.0.1"), "no family mixing");
        assert!(!n.contains_text(b"not an address"));
        let n = IpNet::parse("192.168.0.0/16").unwrap_or_else(|| panic!("parse"));
        assert!(n.contains_text(b"192.168.255.1") && !n.contains_text(b"192.169.0.1"));
        let all = IpNet::parse("0.0.0.0/0").unwrap_or_else(|| panic!("parse"));
        assert!(all.contains_text(b"8.8.8.8") && !all.contains_text(b"::1"));
        let one = IpNet::parse("127.0.0.1").unwrap_or_else(|| panic!("parse"));
        assert!(one.contains_text(b"127.0.0.1") && !one.contains_text(b"127.0.0.2"));
        let v6 = IpNet::parse("fd00::/8").unwrap_or_else(|| panic!("parse"));
        assert!(v6.contains_text(b"fd12:3456::1") && !v6.contains_text(b"fe80::1"));
        let host6 = IpNet::parse("::1/128").unwrap_or_else(|| panic!("parse"));
        assert!(host6.contains_text(b"::1") && !host6.contains_text(b"::2"));
        let all6 = IpNet::parse("::/0").unwrap_or_else(|| panic!("parse"));
        assert!(all6.contains_text(b"2001:db8::1"));
        let odd = IpNet::parse("10.0.0.0/9").unwrap_or_else(|| panic!("parse"));
        assert!(odd.contains_text(b"10.127.0.1") && !odd.contains_text(b"10.128.0.1"));
        let c = |t: &str| IpNet::parse(t).unwrap_or_else(|| panic!("{t}")).canonical();
        assert_eq!(c("10.1.2.3/16"), c("10.1.0.0/16"));
        assert_eq!(c("10.1.2.3/16").to_string(), "10.1.0.0/16");
        assert_eq!(c("::ffff:10.1.2.3/112"), c("10.1.0.0/16"), "IPv4-mapped");
        assert_eq!(c("::ffff:10.1.2.3").to_string(), "10.1.2.3");
        assert_eq!(c("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(c("fd00::1/8").to_string(), "fd00::/8");
        assert!(IpNet::new("10.0.0.1".parse().unwrap_or_else(|_| panic!("ip")), 33).is_none());
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert_eq!(IpNet::parse(bad), None, "{bad}");
        }
    }
}
