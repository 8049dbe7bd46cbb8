//! Which network events a baseline judges, and as what ([`Activity`]).

use crate::model::Proto;
use crate::Activity;
use driftwatch_event::{NetEvent, NetOp};

/// `EINPROGRESS`: a non-blocking connect under way.
const EINPROGRESS: i64 = 115;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;

/// The transport of an inet socket (none for raw sockets and others).
pub fn proto_of(ev: &NetEvent) -> Option<Proto> {
    match (ev.protocol, ev.sock_type) {
        (IPPROTO_TCP, _) | (0, SOCK_STREAM) => Some(Proto::Tcp),
        (IPPROTO_UDP, _) | (0, SOCK_DGRAM) => Some(Proto::Udp),
        _ => None,
    }
}

/// What a network event is for a baseline, and whether it may be learned (it succeeded).
///
/// - `listen` (TCP), a successful `bind` of a UDP socket to a port, and `accept`/`accept4`
///   (the listener a connection came in on): a listener, its local port.
/// - `connect` (TCP or UDP; refused and failed attempts are judged but never learned; a
///   non-blocking connect under way and an io_uring connect are learned) and the first datagram
///   to a new peer (`sendto`/`sendmsg`): an outbound peer — unless `udp_listener` says the
///   datagram leaves a UDP listener's socket, then it is that listener answering.
/// - Anything else (`socket`, `dup*`, a failed `listen`, a TCP `bind`): not judged.
///
/// A UDP `bind` to port 0 (the kernel chooses the port: a client's source port) is not a
/// listener.
pub fn activity_of(
    ev: &NetEvent,
    udp_listener: impl Fn(u16) -> bool,
) -> Option<(Activity<'static>, bool)> {
    if !ev.is_inet() {
        return None;
    }
    let proto = proto_of(ev)?;
    let ok = ev.ret >= 0;
    let loopback = ev
        .local
        .is_some_and(|l| crate::canonical(l.ip()).is_loopback());
    let listen = |port: u16| Activity::Listen {
        proto,
        port,
        loopback,
    };
    match ev.op {
        NetOp::Listen if ok && proto == Proto::Tcp => {
            Some((listen(ev.local?.port()).filter_port()?, true))
        }
        NetOp::Bind if ok && proto == Proto::Udp && !ev.port_chosen => {
            Some((listen(ev.local?.port()).filter_port()?, true))
        }
        NetOp::Accept | NetOp::Accept4 if ok => {
            Some((listen(ev.local?.port()).filter_port()?, true))
        }
        NetOp::Connect => {
            let r = ev.remote?;
            let learnable = ev.no_syscall || ev.ret == 0 || ev.ret == -EINPROGRESS;
            Some((connect(proto, r), learnable))
        }
        NetOp::Sendto | NetOp::Sendmsg => {
            let r = ev.remote?;
            match ev.local.map(|l| l.port()) {
                Some(p) if p != 0 && proto == Proto::Udp && udp_listener(p) => {
                    Some((listen(p), ok))
                }
                _ => Some((connect(proto, r), ok)),
            }
        }
        _ => None,
    }
}

fn connect(proto: Proto, r: std::net::SocketAddr) -> Activity<'static> {
    Activity::Connect {
        proto,
        ip: r.ip(),
        port: r.port(),
        name: None,
    }
}

trait FilterPort: Sized {
    fn filter_port(self) -> Option<Self>;
}

impl FilterPort for Activity<'static> {
    /// A listener with no port yet is nothing to judge.
    fn filter_port(self) -> Option<Self> {
        match self {
            Activity::Listen { port: 0, .. } => None,
            a => Some(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftwatch_event::AF_INET;

    fn ev(
        op: NetOp,
        ret: i64,
        sock_type: u16,
        local: Option<&str>,
        remote: Option<&str>,
    ) -> NetEvent {
        let sa = |s: &str| s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        NetEvent {
            op,
            ret,
            family: AF_INET,
            sock_type,
            protocol: if sock_type == SOCK_STREAM {
                IPPROTO_TCP
            } else {
                IPPROTO_UDP
            },
            local: local.map(sa),
            remote: remote.map(sa),
            ..NetEvent::default()
        }
    }

    #[test]
    fn events_as_activities() {
        let none = |_| false;
        let l = ev(NetOp::Listen, 0, SOCK_STREAM, Some("0.0.0.0:8080"), None);
        assert_eq!(
            activity_of(&l, none),
            Some((
                Activity::Listen {
                    proto: Proto::Tcp,
                    port: 8080,
                    loopback: false
                },
                true
            ))
        );
        assert_eq!(
            activity_of(
                &ev(NetOp::Listen, -98, SOCK_STREAM, Some("0.0.0.0:8080"), None),
                none
            ),
            None
        );
        assert_eq!(
            activity_of(
                &ev(NetOp::Bind, 0, SOCK_STREAM, Some("0.0.0.0:8080"), None),
                none
            ),
            None,
            "TCP bind: judged at listen"
        );
        let ub = ev(NetOp::Bind, 0, SOCK_DGRAM, Some("0.0.0.0:53"), None);
        assert_eq!(
            activity_of(&ub, none).map(|a| a.0),
            Some(Activity::Listen {
                proto: Proto::Udp,
                port: 53,
                loopback: false
            })
        );
        let mut any = ub.clone();
        any.port_chosen = true;
        assert_eq!(
            activity_of(&any, none),
            None,
            "bind to port 0: a client's port"
        );
        let refused = ev(
            NetOp::Connect,
            -111,
            SOCK_STREAM,
            None,
            Some("10.0.0.1:5432"),
        );
        assert!(matches!(
            activity_of(&refused, none),
            Some((Activity::Connect { port: 5432, .. }, false))
        ));
        let pending = ev(
            NetOp::Connect,
            -115,
            SOCK_STREAM,
            Some("10.0.0.2:40000"),
            Some("10.0.0.1:5432"),
        );
        assert!(matches!(
            activity_of(&pending, none),
            Some((Activity::Connect { .. }, true))
        ));
        let dgram = ev(
            NetOp::Sendto,
            5,
            SOCK_DGRAM,
            Some("0.0.0.0:53"),
            Some("10.0.0.9:40000"),
        );
        assert!(matches!(
            activity_of(&dgram, none),
            Some((Activity::Connect { port: 40000, .. }, true))
        ));
        assert_eq!(
            activity_of(&dgram, |p| p == 53),
            Some((
                Activity::Listen {
                    proto: Proto::Udp,
                    port: 53,
                    loopback: false
                },
                true
            )),
            "a UDP listener answering"
        );
        let lo = ev(NetOp::Listen, 0, SOCK_STREAM, Some("127.0.0.1:6000"), None);
        assert!(activity_of(&lo, none).is_some_and(|(a, _)| a.is_loopback()));
        assert_eq!(
            activity_of(&ev(NetOp::Socket, 3, SOCK_STREAM, None, None), none),
            None
        );
        assert_eq!(
            activity_of(
                &ev(NetOp::Dup2, 0, SOCK_STREAM, None, Some("10.0.0.1:1")),
                none
            ),
            None
        );
    }
}
