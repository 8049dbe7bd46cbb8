//! A network probe for isolation tests: a static helper that runs where the test puts it (a
//! test-made cgroup and network namespace, or a container through `ctr task exec`) and answers
//! one command per line ([`net_probe_c`]), driven by [`NetProbe`]; and the peer side of a
//! [`PeerNet`]: a TCP echo server and connects made in the peer namespace.

use crate::PeerNet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The C source of `netprobe` (build it with [`crate::compile_static_helper`]): `hello`; `tcp IP PORT` (a connect, 1 s at most: `err 110` when nothing answers);
/// `udp IP PORT` (one datagram by sendto); `hold IP PORT` (a connect kept open); `ping` (one
/// byte on the held connection, then wait 1 s at most for the echo); `listen PORT` (a
/// dual-stack listener on `[::]:PORT` served by a child that echoes, killed with the helper);
/// `quit`. Answers `ok` or `err ERRNO`.
const NET_PROBE_BODY_C: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>


/* A TCP connect of at most 1 s: the socket, or -errno. */
static int tcp_connect(struct sockaddr_storage *ss, socklen_t len) {
    int s = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0)
        return -errno;
    if (connect(s, (struct sockaddr *)ss, len) != 0) {
        int e = errno;
        if (e != EINPROGRESS) {
            close(s);
            return -e;
        }
        struct pollfd p = {.fd = s, .events = POLLOUT};
        if (poll(&p, 1, 1000) != 1) {
            close(s);
            return -ETIMEDOUT;
        }
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            close(s);
            return -err;
        }
    }
    fcntl(s, F_SETFL, 0);
    return s;
}

static void serve(int l) {
    struct pollfd p[17];
    int n = 1;
    p[0].fd = l;
    p[0].events = POLLIN;
    for (int round = 0; round < 100000; round++) {
        if (poll(p, n, 1000) < 0)
            continue;
        if ((p[0].revents & POLLIN) && n < 17) {
            int c = accept(l, 0, 0);
            if (c >= 0) {
                p[n].fd = c;
                p[n].events = POLLIN;
                n++;
            }
        }
        for (int i = 1; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char b[256];
            ssize_t r = read(p[i].fd, b, sizeof(b));
            if (r <= 0 || write(p[i].fd, b, r) != r) {
                close(p[i].fd);
                p[i] = p[--n];
                i--;
            }
        }
    }
    _exit(0);
}


int main(void) {
    char line[256], cmd[16], ip[64];
    int port, held = -1;
    while (fgets(line, sizeof(line), stdin)) {
        ip[0] = 0;
        port = 0;
        if (sscanf(line, "%15s %63s %d", cmd, ip, &port) < 1)
            continue;
        if (!strcmp(cmd, "quit"))
            return 0;
        if (!strcmp(cmd, "hello")) {
            reply(0);
        } else if (!strcmp(cmd, "listen")) {
            int l = socket(AF_INET6, SOCK_STREAM, 0), zero = 0, one = 1;
            struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(ip))};
            setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
            setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 16)) {
                reply(errno);
                continue;
            }
            pid_t pid = fork();
            if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                serve(l);
            }
            close(l);
            reply(pid < 0 ? errno : 0);
        } else if (!strcmp(cmd, "ping")) {
            if (held < 0 || write(held, "x", 1) != 1) {
                reply(held < 0 ? EBADF : errno);
                continue;
            }
            struct pollfd p = {.fd = held, .events = POLLIN};
            char b[256];
            if (poll(&p, 1, 1000) != 1)
                reply(ETIMEDOUT);
            else
                reply(read(held, b, sizeof(b)) > 0 ? 0 : EPIPE);
        } else {
            struct sockaddr_storage ss;
            socklen_t len = sa_of(ip, port, &ss);
            if (!len) {
                printf("bad %s", line);
                fflush(stdout);
                continue;
            }
            if (!strcmp(cmd, "udp")) {
                int s = socket(ss.ss_family, SOCK_DGRAM, 0);
                int r = s < 0 ? -1 : sendto(s, "u", 1, 0, (struct sockaddr *)&ss, len);
                reply(r == 1 ? 0 : errno);
                if (s >= 0)
                    close(s);
            } else {
                int s = tcp_connect(&ss, len);
                if (s >= 0 && !strcmp(cmd, "hold")) {
                    if (held >= 0)
                        close(held);
                    held = s;
                } else if (s >= 0) {
                    close(s);
                }
                reply(s < 0 ? -s : 0);
            }
        }
    }
    return 0;
}
"#;

/// C, the probe protocol, to put in front of test programs: `sa_of(ip, port, &ss)`, a textual
/// IPv4 or IPv6 address (one with a `:`) and a port as a `struct sockaddr_storage` (its length,
/// 0 for a bad address); `reply(err)`, the answer line, `ok` or `err ERRNO`, flushed.
pub const PROBE_PRELUDE_C: &str = r#"
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
static socklen_t sa_of(const char *ip, int port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof(*ss));
    if (!strchr(ip, ':')) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        return inet_pton(AF_INET, ip, &s->sin_addr) == 1 ? sizeof(*s) : 0;
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    return inet_pton(AF_INET6, ip, &s->sin6_addr) == 1 ? sizeof(*s) : 0;
}

static void reply(int err) {
    if (err)
        printf("err %d\n", err);
    else
        printf("ok\n");
    fflush(stdout);
}
"#;

/// The C source of the probe ([`PROBE_PRELUDE_C`] and its commands, above).
pub fn net_probe_c() -> String {
    format!("{PROBE_PRELUDE_C}{NET_PROBE_BODY_C}")
}

/// A running probe ([`net_probe_c`], or any helper that answers one line per command line),
/// told to quit on drop and killed if it does not.
#[derive(Debug)]
pub struct NetProbe {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl NetProbe {
    /// Spawns `cmd` (which ends by exec'ing the helper) with piped stdin and stdout.
    pub fn spawn(mut cmd: Command) -> std::io::Result<NetProbe> {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(std::io::Error::other("no pipes to the probe"));
        };
        Ok(NetProbe {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// The pid of the spawned command.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line; the answer line as it came.
    pub fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("write a probe command");
        self.stdin.flush().expect("flush a probe command");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read a probe answer");
        line
    }

    /// Runs one command: `Ok` or `Err(errno)`; panics on an answer that is neither (a broken
    /// probe is a broken test).
    pub fn call(&mut self, cmd: &str) -> Result<(), i32> {
        let line = self.ask(cmd);
        let line = line.trim();
        match line.split_once(' ') {
            _ if line == "ok" => Ok(()),
            Some(("err", e)) => Err(e.parse().expect("errno")),
            _ => panic!("{cmd}: unexpected probe answer {line:?}"),
        }
    }
}

impl Drop for NetProbe {
    /// `quit`, then up to 2 s for the probe to exit before it is killed.
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Moves this thread into the network namespace `netns` (an `ip netns` name).
fn enter(netns: &str) -> std::io::Result<()> {
    let ns = std::fs::File::open(format!("/run/netns/{netns}"))?;
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(std::io::Error::from)
}

impl PeerNet {
    /// Serves TCP echo on `[::]:port` (IPv4 too) in the peer namespace, from a thread of this
    /// process, for `secs` seconds at most; returns once it listens.
    pub fn echo_server(&self, port: u16, secs: u64) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let netns = self.netns.clone();
        std::thread::spawn(move || {
            let l = enter(&netns).and_then(|()| {
                let l = TcpListener::bind(("::", port))?;
                l.set_nonblocking(true)?;
                Ok(l)
            });
            let l = match l {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                match l.accept() {
                    Ok((c, _)) => {
                        std::thread::spawn(move || echo_connection(c, end));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| std::io::Error::other("echo server did not start"))?
    }

    /// A TCP connect from the peer namespace to the container's address (IPv6 or IPv4) on
    /// `port`, within one second; the stream reads with a timeout of one second.
    pub fn connect_container(&self, v6: bool, port: u16) -> std::io::Result<TcpStream> {
        let ip: std::net::IpAddr = if v6 {
            self.container_v6.into()
        } else {
            self.container_v4.into()
        };
        self.connect(SocketAddr::new(ip, port), Duration::from_secs(1))
    }

    /// A TCP connect from the peer namespace to `to` (at most `timeout`); the stream reads
    /// with a timeout of one second.
    pub fn connect(&self, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        let netns = self.netns.clone();
        std::thread::spawn(move || {
            enter(&netns)?;
            let s = TcpStream::connect_timeout(&to, timeout)?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            Ok(s)
        })
        .join()
        .map_err(|_| std::io::Error::other("peer connect thread panicked"))?
    }
}

/// Echoes what arrives on `c` until it closes or `end`.
fn echo_connection(mut c: TcpStream, end: Instant) {
    let _ = c.set_nonblocking(false);
    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
    let mut b = [0u8; 256];
    while Instant::now() < end {
        match c.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                if c.write_all(&b[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
}

/// One echo round trip on a connection made by [`PeerNet::connect`] (1 s at most).
pub fn echo_round_trip(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    s.write_all(b"e").is_ok() && matches!(s.read(&mut b), Ok(n) if n > 0)
}
