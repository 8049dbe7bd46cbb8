/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch network sensor, included by exec.bpf.c so that it shares its maps (maps.bpf.h:
 * dw_events, dw_config, dw_policy, dw_stats) and helpers (task.bpf.h: is_agent,
 * in_host_mntns). The task, its fds and its filter are read through bpf_get_current_task_btf()
 * here (direct loads, not a helper call per field): every network call of every task passes.
 *
 * Programs: dw_net_enter on syscalls:sys_enter_<call> and dw_net_exit on sys_exit_<call> of
 * socket, connect, accept, accept4, bind, listen, sendto, sendmsg, dup, dup2 and dup3 (the
 * x86_64 syscall number tells them apart). The enter program keeps, per thread in dw_net_args,
 * the arguments of the calls that matter and the sockaddr the caller passed; the exit program
 * reads the kernel socket (struct sock) and writes one struct dw_net_event.
 *
 * Filters, cheapest first, as the file sensor's: the syscall number; the agent's own tgid, the
 * host's mount namespace and the task's cgroup in dw_policy (containers the agent knows); then
 * per call: connect/bind need an AF_INET/AF_INET6 sockaddr, sendto/sendmsg a destination
 * address, listen/accept/dup an AF_INET/AF_INET6 socket as their fd. Host activity never
 * reaches the ring buffer; the exit program only looks its thread up in dw_net_args.
 *
 * sendto/sendmsg: the first datagram to each peer per socket only, deduplicated here in
 * dw_net_peers (LRU hash keyed by the socket and the peer), so a DNS client or a UDP sender
 * costs one record per new peer.
 *
 * Enforcement (net_sock_addr_hook, at the end): cgroup/connect4|6 and cgroup/sendmsg4|6 refuse
 * the connects and datagrams of a DW_POLICY_F_NET_ENFORCE cgroup's tasks to peers outside
 * dw_net_allow, and every one of a process in dw_net_drifted (loopback and the unspecified
 * address excepted); a refusal marks the thread's dw_net_args entry, so the exit record carries
 * DW_NET_F_DENIED.
 */
#ifndef DRIFTWATCH_NET_BPF_H
#define DRIFTWATCH_NET_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "maps.bpf.h"
#include "task.bpf.h"

/* x86_64 syscall numbers (the BPF object is built for __TARGET_ARCH_x86). */
#define DW_NR_dup 32
#define DW_NR_dup2 33
#define DW_NR_socket 41
#define DW_NR_connect 42
#define DW_NR_accept 43
#define DW_NR_sendto 44
#define DW_NR_sendmsg 46
#define DW_NR_bind 49
#define DW_NR_listen 50
#define DW_NR_accept4 288
#define DW_NR_dup3 292

#define DW_AF_INET 2
#define DW_AF_INET6 10
#define DW_S_IFMT 0170000
#define DW_S_IFSOCK 0140000
#define DW_SOCKFS_MAGIC 0x534F434B
/* sizeof(struct sockaddr_in6), the longest sockaddr kept */
#define DW_SOCKADDR_MAX 28

/* A network syscall's arguments, kept from its entry to its exit. */
struct dw_net_args {
    __u64 args[6];
    __u8 sa[DW_SOCKADDR_MAX]; /* connect/bind's address, sendto/sendmsg's destination */
    __u16 op;
    __u16 sa_len; /* bytes of sa read (0: none) */
    __u32 flags;  /* DW_NET_F_DENIED: a cgroup hook refused the call (set by it) */
    __u32 _pad0;
};

/* Per-CPU LRU lists (no common list and its lock): an update costs a local list pop. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __uint(map_flags, BPF_F_NO_COMMON_LRU);
    __type(key, __u64); /* pid_tgid */
    __type(value, struct dw_net_args);
} dw_net_args SEC(".maps");

/* A datagram peer of one socket: the socket (its struct sock and its inode number, so that a
 * socket allocated where a closed one was is a new socket), the peer's family, port and address. */
struct dw_net_peer {
    __u64 sk;
    __u64 ino;
    __u8 addr[16];
    __u16 port;
    __u16 family;
    __u32 _pad0;
};

/* dw_net_peers values: the peer's first datagram was reported, allowed or refused. */
#define DW_NET_PEER_SEEN 1
#define DW_NET_PEER_DENIED 2

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct dw_net_peer);
    __type(value, __u8);
} dw_net_peers SEC(".maps");

/* Network enforcement (abi.h): the allowed peers of each enforced cgroup, and drifted processes. */
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, DW_NET_ALLOW_MAX_ENTRIES);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct dw_net_allow_key);
    __type(value, __u32);
} dw_net_allow SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, DW_NET_DRIFTED_MAX_ENTRIES);
    __type(key, __u32);   /* tgid */
    __type(value, __u64); /* start_ns */
} dw_net_drifted SEC(".maps");

/* Maps a syscall number to its dw_net_op, 0 if not one of ours. */
static __always_inline __u16 net_op_of(long nr) {
    switch (nr) {
    case DW_NR_socket:
        return DW_NET_OP_SOCKET;
    case DW_NR_connect:
        return DW_NET_OP_CONNECT;
    case DW_NR_accept:
        return DW_NET_OP_ACCEPT;
    case DW_NR_accept4:
        return DW_NET_OP_ACCEPT4;
    case DW_NR_bind:
        return DW_NET_OP_BIND;
    case DW_NR_listen:
        return DW_NET_OP_LISTEN;
    case DW_NR_sendto:
        return DW_NET_OP_SENDTO;
    case DW_NR_sendmsg:
        return DW_NET_OP_SENDMSG;
    case DW_NR_dup:
        return DW_NET_OP_DUP;
    case DW_NR_dup2:
        return DW_NET_OP_DUP2;
    case DW_NR_dup3:
        return DW_NET_OP_DUP3;
    default:
        return 0;
    }
}

/*
 * Current's fd, as fd_file() (task.bpf.h) but with direct loads through the BTF task pointer
 * down to the fd array (one bpf_probe_read_kernel for the slot instead of five).
 */
static __always_inline struct file *current_fd_file(int fd) {
    struct task_struct *t = bpf_get_current_task_btf();
    struct fdtable *fdt = t->files->fdt;
    struct file *file = NULL;

    if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
        return NULL;
    struct file **fds = fdt->fd;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    return file;
}

/*
 * struct dw_task of current, as fill_task() (task.bpf.h) but with direct loads through the BTF
 * task pointer and bpf_get_current_comm() (two helper calls instead of sixteen).
 */
static __always_inline void fill_current_task(struct dw_task *d, __u64 cgroup_id) {
    struct task_struct *t = bpf_get_current_task_btf();
    const struct cred *cred = t->real_cred;
    struct pid *pid = t->thread_pid;
    struct upid up = {};

    d->pid = t->pid;
    d->tgid = t->tgid;
    d->ppid = t->real_parent->tgid;
    d->uid = cred->uid.val;
    d->gid = cred->gid.val;
    d->euid = cred->euid.val;
    d->egid = cred->egid.val;
    d->mntns_ino = t->nsproxy->mnt_ns->ns.inum;
    d->cgroup_id = cgroup_id;
    /* numbers[] is a flexible array of struct upid; level is the task's own namespace. */
    bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[pid->level & 31]);
    d->pidns_ino = BPF_CORE_READ(up.ns, ns.inum);
    d->_pad0 = 0;
    bpf_get_current_comm(&d->comm, sizeof(d->comm));
    d->start_ns = t->group_leader->start_boottime;
}

/* The struct sock of a socket file, or NULL when the file is not a socket. */
static __always_inline struct sock *file_sock(struct file *file, __u64 *ino) {
    if (!file)
        return NULL;
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    if ((BPF_CORE_READ(inode, i_mode) & DW_S_IFMT) != DW_S_IFSOCK ||
        BPF_CORE_READ(inode, i_sb, s_magic) != DW_SOCKFS_MAGIC)
        return NULL;
    struct socket *sock = BPF_CORE_READ(file, private_data);
    if (!sock)
        return NULL;
    if (ino)
        *ino = BPF_CORE_READ(inode, i_ino);
    return BPF_CORE_READ(sock, sk);
}

static __always_inline bool is_inet(__u16 family) {
    return family == DW_AF_INET || family == DW_AF_INET6;
}

/* Whether fd is an AF_INET/AF_INET6 socket of current. */
static __always_inline bool fd_is_inet_sock(int fd) {
    struct sock *sk = file_sock(current_fd_file(fd), NULL);
    return sk && is_inet(BPF_CORE_READ(sk, __sk_common.skc_family));
}

/* Reads the user sockaddr at uaddr (ulen bytes) into a->sa; false unless it is AF_INET/6. */
static __always_inline bool keep_sockaddr(struct dw_net_args *a, __u64 uaddr, __u64 ulen) {
    __u16 family = 0;

    if (!uaddr || ulen < 2)
        return false;
    if (ulen > DW_SOCKADDR_MAX)
        ulen = DW_SOCKADDR_MAX;
    barrier_var(ulen);
    if (ulen > DW_SOCKADDR_MAX || ulen == 0)
        return false;
    if (bpf_probe_read_user(a->sa, ulen, (void *)uaddr) != 0)
        return false;
    __builtin_memcpy(&family, a->sa, sizeof(family));
    if (!is_inet(family))
        return false;
    a->sa_len = ulen;
    return true;
}

/*
 * The dw_net_peers key of a datagram from the socket sk (inode ino) to the sockaddr kept in a:
 * the address as the record carries it (an IPv4 destination of an IPv6 socket v4-mapped).
 * False when the sockaddr does not fit the socket's family.
 */
static __always_inline bool peer_key(struct dw_net_peer *k, struct sock *sk, __u64 ino,
                                     struct dw_net_args *a) {
    __u16 family = 0, port = 0;

    __builtin_memcpy(&family, a->sa, 2);
    __builtin_memcpy(&port, a->sa + 2, 2);
    __builtin_memset(k, 0, sizeof(*k));
    k->sk = (__u64)sk;
    k->ino = ino;
    k->family = sk ? BPF_CORE_READ(sk, __sk_common.skc_family) : family;
    k->port = bpf_ntohs(port);
    if (family == DW_AF_INET && a->sa_len >= 8) {
        if (k->family == DW_AF_INET6) {
            k->addr[10] = 0xff;
            k->addr[11] = 0xff;
            __builtin_memcpy(k->addr + 12, a->sa + 4, 4);
        } else {
            __builtin_memcpy(k->addr, a->sa + 4, 4);
        }
        return true;
    }
    if (family == DW_AF_INET6 && k->family == DW_AF_INET6 && a->sa_len >= 24) {
        __builtin_memcpy(k->addr, a->sa + 8, 16);
        return true;
    }
    return false;
}

/* Whether the socket fd already sent a datagram to the peer kept in a (then nothing is kept). */
static __always_inline bool peer_seen(struct dw_net_args *a) {
    struct dw_net_peer k;
    __u64 ino = 0;
    struct sock *sk = file_sock(current_fd_file((int)a->args[0]), &ino);

    return peer_key(&k, sk, ino, a) && bpf_map_lookup_elem(&dw_net_peers, &k) != NULL;
}

/*
 * map_task() and the dw_policy test with direct loads through the BTF task pointer (no helper
 * call per field): every network call of every task on the host passes here.
 */
static __always_inline struct task_struct *net_container_task(struct dw_config *cfg,
                                                              __u32 *policy) {
    struct task_struct *t = bpf_get_current_task_btf();

    if (is_agent(cfg, t->tgid) || in_host_mntns(cfg, t->nsproxy->mnt_ns->ns.inum))
        return NULL;
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    __u32 *p = bpf_map_lookup_elem(&dw_policy, &cgroup_id);
    if (!p)
        return NULL;
    *policy = *p;
    return t;
}

/* Whether network enforcement applies to a task of a cgroup with these dw_policy flags. */
static __always_inline bool net_enforced(struct dw_config *cfg, __u32 policy) {
    return cfg && cfg->enforce && (policy & DW_POLICY_F_NET_ENFORCE);
}

SEC("tracepoint/syscalls/sys_enter_net")
int dw_net_enter(struct trace_event_raw_sys_enter *ctx) {
    __u16 op = net_op_of(ctx->id);

    if (!op)
        return 0;
    struct dw_config *cfg = dw_get_config();
    __u32 policy = 0;
    struct task_struct *task = net_container_task(cfg, &policy);
    if (!task)
        return 0;
    /* Under network enforcement every datagram is kept: any may be refused (the process became
     * drifted, the peer left dw_net_allow), and the cgroup hook marks the kept entry; the exit
     * program reports the first datagram, and the first refused one, per socket and peer. */
    bool enforced = net_enforced(cfg, policy);
    /* Calls have 1 to 6 arguments: copied, as the file sensor does (a direct read of args[5]
     * would make the kernel refuse to attach the program to the shorter tracepoints). */
    struct dw_net_args a = {.op = op};
    if (bpf_probe_read_kernel(a.args, sizeof(a.args), (void *)ctx->args) != 0)
        return 0;
    switch (op) {
    case DW_NET_OP_CONNECT: /* connect(fd, addr, addrlen) */
    case DW_NET_OP_BIND:    /* bind(fd, addr, addrlen) */
        if (!keep_sockaddr(&a, a.args[1], a.args[2]))
            return 0;
        break;
    case DW_NET_OP_SENDTO: /* sendto(fd, buf, len, flags, dest_addr, addrlen) */
        if (!keep_sockaddr(&a, a.args[4], a.args[5]) || (!enforced && peer_seen(&a)))
            return 0;
        break;
    case DW_NET_OP_SENDMSG: { /* sendmsg(fd, msg, flags): msg->msg_name, msg->msg_namelen */
        struct user_msghdr msg = {};
        if (bpf_probe_read_user(&msg, sizeof(msg), (void *)a.args[1]) != 0)
            return 0;
        if (!keep_sockaddr(&a, (__u64)msg.msg_name, (__u64)(__u32)msg.msg_namelen) ||
            (!enforced && peer_seen(&a)))
            return 0;
        break;
    }
    case DW_NET_OP_LISTEN:  /* listen(fd, backlog) */
    case DW_NET_OP_ACCEPT:  /* accept(fd, addr, addrlen) */
    case DW_NET_OP_ACCEPT4: /* accept4(fd, addr, addrlen, flags) */
    case DW_NET_OP_DUP:     /* dup(oldfd) */
    case DW_NET_OP_DUP2:    /* dup2(oldfd, newfd) */
    case DW_NET_OP_DUP3:    /* dup3(oldfd, newfd, flags) */
        if (!fd_is_inet_sock((int)a.args[0]))
            return 0;
        break;
    default: /* socket: every family */
        break;
    }
    __u64 key = bpf_get_current_pid_tgid();
    if (bpf_map_update_elem(&dw_net_args, &key, &a, BPF_ANY) != 0)
        stat_inc(DW_STAT_NET_ARGS_FULL);
    return 0;
}

/* The kernel socket's family, type, protocol, local end and (if connected) peer. */
static __always_inline void sock_facts(struct dw_net_event *e, struct sock *sk) {
    struct sock_common *c = &sk->__sk_common;

    e->family = BPF_CORE_READ(c, skc_family);
    e->sock_type = BPF_CORE_READ(sk, sk_type);
    e->protocol = BPF_CORE_READ(sk, sk_protocol);
    e->lport = BPF_CORE_READ(c, skc_num);
    e->rport = bpf_ntohs(BPF_CORE_READ(c, skc_dport));
    if (e->family == DW_AF_INET6) {
        BPF_CORE_READ_INTO(&e->laddr, c, skc_v6_rcv_saddr);
        BPF_CORE_READ_INTO(&e->raddr, c, skc_v6_daddr);
    } else {
        BPF_CORE_READ_INTO((__u32 *)e->laddr, c, skc_rcv_saddr);
        BPF_CORE_READ_INTO((__u32 *)e->raddr, c, skc_daddr);
    }
    e->flags |= DW_NET_F_HAVE_SOCK;
    if (e->rport)
        e->flags |= DW_NET_F_REMOTE_SOCK;
}

/* The sockaddr the caller passed as the remote end (an IPv4 one on an IPv6 socket mapped). */
static __always_inline void remote_from_arg(struct dw_net_event *e, struct dw_net_args *a) {
    __u16 family = 0, port = 0;

    __builtin_memcpy(&family, a->sa, 2);
    __builtin_memcpy(&port, a->sa + 2, 2);
    if (!e->family)
        e->family = family;
    __builtin_memset(e->raddr, 0, sizeof(e->raddr));
    if (family == DW_AF_INET && a->sa_len >= 8) {
        if (e->family == DW_AF_INET6) {
            e->raddr[10] = 0xff;
            e->raddr[11] = 0xff;
            __builtin_memcpy(e->raddr + 12, a->sa + 4, 4);
        } else {
            __builtin_memcpy(e->raddr, a->sa + 4, 4);
        }
    } else if (family == DW_AF_INET6 && e->family == DW_AF_INET6 && a->sa_len >= 24) {
        __builtin_memcpy(e->raddr, a->sa + 8, 16);
    } else {
        return;
    }
    e->rport = bpf_ntohs(port);
    e->flags = (e->flags & ~DW_NET_F_REMOTE_SOCK) | DW_NET_F_REMOTE_ARG;
}

SEC("tracepoint/syscalls/sys_exit_net")
int dw_net_exit(struct trace_event_raw_sys_exit *ctx) {
    __u64 key = bpf_get_current_pid_tgid();
    struct dw_net_args *found = bpf_map_lookup_elem(&dw_net_args, &key);

    if (!found)
        return 0;
    struct dw_net_args a = *found;
    bpf_map_delete_elem(&dw_net_args, &key);

    __u64 cgroup_id = bpf_get_current_cgroup_id();
    long ret = ctx->ret;
    struct dw_net_event e = {};
    struct sock *sk = NULL;
    __u64 ino = 0;

    e.ret = ret;
    e.op = a.op;
    e.fd = -1;
    e.fd2 = -1;
    switch (a.op) {
    case DW_NET_OP_SOCKET: /* socket(domain, type, protocol) */
        e.family = a.args[0];
        e.arg = a.args[1];
        e.sock_type = a.args[1] & 0xf;
        e.protocol = a.args[2];
        if (ret >= 0)
            e.fd = ret;
        break;
    case DW_NET_OP_ACCEPT:
    case DW_NET_OP_ACCEPT4:
        /* A failed accept (EAGAIN of a non-blocking listener, above all) says nothing. */
        if (ret < 0)
            return 0;
        e.fd = ret;
        e.fd2 = a.args[0];
        if (a.op == DW_NET_OP_ACCEPT4)
            e.arg = a.args[3];
        sk = file_sock(current_fd_file((int)ret), NULL);
        break;
    case DW_NET_OP_DUP:
    case DW_NET_OP_DUP2:
    case DW_NET_OP_DUP3:
        if (ret < 0)
            return 0;
        e.fd = ret;
        e.fd2 = a.args[0];
        if (a.op == DW_NET_OP_DUP3)
            e.arg = a.args[2];
        sk = file_sock(current_fd_file((int)ret), NULL);
        break;
    default: /* connect, bind, listen, sendto, sendmsg: the socket is the first argument */
        e.fd = a.args[0];
        if (a.op == DW_NET_OP_LISTEN)
            e.arg = a.args[1];
        sk = file_sock(current_fd_file(e.fd), &ino);
        break;
    }
    struct dw_net_peer peer;
    bool datagram = a.op == DW_NET_OP_SENDTO || a.op == DW_NET_OP_SENDMSG;
    /* Under network enforcement the entry program keeps every datagram: one to a peer this
     * socket already reported, and not refused, stops here (before the socket's reads). */
    if (datagram && !(a.flags & DW_NET_F_DENIED) &&
        (!peer_key(&peer, sk, ino, &a) || bpf_map_lookup_elem(&dw_net_peers, &peer)))
        return 0;
    if (sk)
        sock_facts(&e, sk);
    if (a.op != DW_NET_OP_SOCKET && !is_inet(e.family) && !a.sa_len)
        return 0;
    /* sin_port and sin6_port are both at offset 2 */
    if (a.op == DW_NET_OP_BIND && a.sa_len >= 4 && a.sa[2] == 0 && a.sa[3] == 0)
        e.flags |= DW_NET_F_PORT_CHOSEN;
    if (a.op == DW_NET_OP_CONNECT && !(e.flags & DW_NET_F_REMOTE_SOCK))
        remote_from_arg(&e, &a);
    if (datagram) {
        remote_from_arg(&e, &a);
        /* The first datagram to this peer from this socket only (the entry program left out
         * the peers already seen; this insert settles a race between two threads), and the
         * first one refused. */
        __u8 seen = DW_NET_PEER_SEEN, denied = DW_NET_PEER_DENIED;
        if (!peer_key(&peer, sk, ino, &a))
            return 0;
        if (a.flags & DW_NET_F_DENIED) {
            __u8 *v = bpf_map_lookup_elem(&dw_net_peers, &peer);
            if ((v && *v == DW_NET_PEER_DENIED) ||
                bpf_map_update_elem(&dw_net_peers, &peer, &denied, BPF_ANY) != 0)
                return 0;
        } else if (bpf_map_update_elem(&dw_net_peers, &peer, &seen, BPF_NOEXIST) != 0) {
            return 0;
        }
    }
    e.flags |= a.flags & DW_NET_F_DENIED;

    e.hdr.kind = DW_EV_NET;
    e.hdr.version = DW_ABI_VERSION;
    e.hdr.len = sizeof(e);
    e.hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_current_task(&e.task, cgroup_id);
    if (dw_policy_has(cgroup_id))
        e.flags |= DW_NET_F_IN_POLICY;
    if (bpf_ringbuf_output(&dw_events, &e, sizeof(e), dw_wakeup_flags()) != 0)
        stat_inc(DW_STAT_RINGBUF_LOST_NET);
    return 0;
}

/* Whether current's process is in dw_net_drifted with its own start time (not a reused PID). */
static __always_inline bool current_drifted(struct task_struct *t) {
    __u32 tgid = t->tgid;
    __u64 *start = bpf_map_lookup_elem(&dw_net_drifted, &tgid);

    return start && *start == t->group_leader->start_boottime;
}

/* Whether dw_net_allow has the destination in k (address and prefixlen set) on port_be (network
 * byte order), or on any port. */
static __always_inline bool peer_allowed(struct dw_net_allow_key *k, __u16 port_be) {
    k->port = port_be;
    if (bpf_map_lookup_elem(&dw_net_allow, k))
        return true;
    if (!port_be)
        return false;
    k->port = 0;
    return bpf_map_lookup_elem(&dw_net_allow, k) != NULL;
}

/*
 * The destination of a connect or datagram as a dw_net_allow key (an IPv4-mapped IPv6 address is
 * IPv4); true when it is this host: loopback (127.0.0.0/8, ::1) or unspecified (0.0.0.0, ::,
 * which the kernel routes to this host), never refused.
 */
static __always_inline bool dest_key(struct bpf_sock_addr *ctx, __u16 family,
                                     struct dw_net_allow_key *k) {
    __u32 ip4;

    if (family == DW_AF_INET) {
        ip4 = ctx->user_ip4;
    } else {
        /* family is a constant: connect4 may not read user_ip6, nor connect6 user_ip4 */
        __u32 ip6[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
        if (!(ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff))) {
            k->family = DW_AF_INET6;
            k->prefixlen = DW_NET_ALLOW_FIXED_BITS + 128;
            __builtin_memcpy(k->addr, ip6, 16);
            return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 &&
                   (ip6[3] == 0 || ip6[3] == bpf_htonl(1));
        }
        ip4 = ip6[3];
    }
    k->family = DW_AF_INET;
    k->prefixlen = DW_NET_ALLOW_FIXED_BITS + 32;
    __builtin_memcpy(k->addr, &ip4, 4);
    return ip4 == 0 || (bpf_ntohl(ip4) >> 24) == 127;
}

/*
 * Network enforcement for current, a container task of cgroup_id (NET_ENFORCE, enforcement on):
 * refuse unless the destination is this host, or the process is not drifted and dw_net_allow
 * has the destination.
 */
static __always_inline bool net_refused(struct bpf_sock_addr *ctx, __u16 family,
                                        struct task_struct *t, __u64 cgroup_id) {
    struct dw_net_allow_key k = {};

    if (dest_key(ctx, family, &k))
        return false;
    if (current_drifted(t))
        return true;
    k.protocol = ctx->protocol;
    k.cgroup_id = cgroup_id;
    return !peer_allowed(&k, (__u16)ctx->user_port);
}

/*
 * cgroup/connect4|6 and cgroup/sendmsg4|6, attached at the root of the cgroup v2 hierarchy: every
 * connect of every task, and every datagram with a destination of an unconnected UDP socket,
 * passes here before it runs. A host task (its cgroup not in dw_policy) costs one lookup.
 *
 * Enforcement: in a NET_ENFORCE cgroup (dw_config.enforce on), net_refused() decides; a refusal
 * returns 0 (the caller gets EPERM) and is reported: the thread's dw_net_args entry is marked
 * DW_NET_F_DENIED for the syscall's exit record.
 *
 * Reporting: a connect syscall of a container task has its dw_net_args entry (the tracepoints
 * report it, with its result); a connect without one did not come through the syscall
 * (io_uring's IORING_OP_CONNECT, inline or from an io-wq worker of the same process) and is
 * reported here, without a result; so is a refused datagram without one (io_uring's
 * IORING_OP_SENDMSG). Allowed datagrams are the syscall tracepoints' to report.
 */
static __always_inline int net_sock_addr_hook(struct bpf_sock_addr *ctx, __u16 family, __u16 op) {
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    __u32 *policy = bpf_map_lookup_elem(&dw_policy, &cgroup_id);

    if (!policy)
        return 1;
    __u32 flags = *policy;
    if (op == DW_NET_OP_SENDMSG && !(flags & DW_POLICY_F_NET_ENFORCE))
        return 1;
    struct dw_config *cfg = dw_get_config();
    struct task_struct *t = bpf_get_current_task_btf();
    if (is_agent(cfg, t->tgid) || in_host_mntns(cfg, t->nsproxy->mnt_ns->ns.inum))
        return 1;
    bool deny = net_enforced(cfg, flags) && net_refused(ctx, family, t, cgroup_id);
    __u64 key = bpf_get_current_pid_tgid();
    struct dw_net_args *a = bpf_map_lookup_elem(&dw_net_args, &key);
    if (a) {
        if (deny)
            a->flags |= DW_NET_F_DENIED;
        return !deny;
    }
    if (op != DW_NET_OP_CONNECT && !deny)
        return 1;
    struct dw_net_event e = {};
    e.op = op;
    e.fd = -1;
    e.fd2 = -1;
    e.family = family;
    e.sock_type = ctx->type;
    e.protocol = ctx->protocol;
    e.rport = bpf_ntohs((__u16)ctx->user_port);
    if (family == DW_AF_INET) {
        __u32 ip4 = ctx->user_ip4;
        __builtin_memcpy(e.raddr, &ip4, 4);
    } else {
        __u32 ip6[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
        __builtin_memcpy(e.raddr, ip6, 16);
    }
    e.flags = DW_NET_F_REMOTE_ARG | DW_NET_F_NO_SYSCALL | DW_NET_F_IN_POLICY;
    if (deny)
        e.flags |= DW_NET_F_DENIED;
    e.hdr.kind = DW_EV_NET;
    e.hdr.version = DW_ABI_VERSION;
    e.hdr.len = sizeof(e);
    e.hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_current_task(&e.task, cgroup_id);
    if (bpf_ringbuf_output(&dw_events, &e, sizeof(e), dw_wakeup_flags()) != 0)
        stat_inc(DW_STAT_RINGBUF_LOST_NET);
    return !deny;
}

SEC("cgroup/connect4")
int dw_net_connect4(struct bpf_sock_addr *ctx) {
    return net_sock_addr_hook(ctx, DW_AF_INET, DW_NET_OP_CONNECT);
}

SEC("cgroup/connect6")
int dw_net_connect6(struct bpf_sock_addr *ctx) {
    return net_sock_addr_hook(ctx, DW_AF_INET6, DW_NET_OP_CONNECT);
}

SEC("cgroup/sendmsg4")
int dw_net_sendmsg4(struct bpf_sock_addr *ctx) {
    return net_sock_addr_hook(ctx, DW_AF_INET, DW_NET_OP_SENDMSG);
}

SEC("cgroup/sendmsg6")
int dw_net_sendmsg6(struct bpf_sock_addr *ctx) {
    return net_sock_addr_hook(ctx, DW_AF_INET6, DW_NET_OP_SENDMSG);
}

#endif /* DRIFTWATCH_NET_BPF_H */
