/* SPDX-License-Identifier: Apache-2.0 */
/*
 * driftwatch kernel/user ABI: the single source of truth for every record the BPF programs
 * write to the ring buffer and every map value userspace writes for them.
 *
 * Rules (checked by crates/driftwatch-abi tests against the BTF of the compiled object):
 *  - fixed-width fields only, explicit padding, no implicit holes;
 *  - every record starts with struct dw_event_header; userspace rejects unknown kinds and
 *    versions and any record whose hdr.len is shorter than the kind's fixed part;
 *  - bump DW_ABI_VERSION whenever a layout below changes.
 *
 * On the wire (version 3) an exec record is packed: the fixed part of struct dw_exec_event
 * (everything before `filename`), then filename_len bytes of filename, interp_len bytes of
 * interp, path_len bytes of path, argv_len bytes of argv and cwd_len bytes of cwd, back to back;
 * hdr.len = offsetof(filename) + the five lengths. A map record is packed the same way: the
 * fixed part of struct dw_map_event, then path_len bytes of path. A file record (version 4) is
 * the fixed part of struct dw_file_event, then path, name1, dir1, name2 and dir2 (their *_len
 * bytes each), back to back. A network record (version 5) is struct dw_net_event, whole.
 * Version 6 added struct dw_task.start_ns (every record). A DNS record (version 7) is the fixed
 * part of struct dw_dns_event, then payload_len bytes of payload. The structs below are the
 * kernel's scratch layouts (and the maximum record sizes).
 */
#ifndef DRIFTWATCH_ABI_H
#define DRIFTWATCH_ABI_H

#define DW_ABI_VERSION 7

#define DW_COMM_LEN 16
#define DW_FILENAME_MAX 512
#define DW_PATH_MAX 4096
#define DW_PATH_MAX_COMPONENTS 64
#define DW_ARGV_MAX 2048
#define DW_INTERP_MAX 256
#define DW_CWD_MAX DW_PATH_MAX

enum dw_event_kind {
    DW_EV_EXEC = 1,
    DW_EV_FORK = 2,
    DW_EV_EXIT = 3,
    DW_EV_MAP = 4,
    DW_EV_FILE = 5,
    DW_EV_NET = 6,
    DW_EV_DNS = 7,
};

/*
 * struct dw_exec_event.flags, and struct dw_map_event.flags for the bits that describe a file,
 * its path or the kill (OVL_UPPER, MEMFD, ON_ROOT_MNT, PATH_*, KILLED, IN_POLICY).
 */
#define DW_EXEC_F_OVL_UPPER (1u << 0)          /* overlay inode has an upper dentry */
#define DW_EXEC_F_MEMFD (1u << 1)              /* executable is a memfd ("memfd:" on shmem) */
#define DW_EXEC_F_ON_ROOT_MNT (1u << 2)        /* exe's vfsmount is the task's root mount */
#define DW_EXEC_F_PATH_TRUNCATED (1u << 3)     /* dentry walk ran out of components/space */
#define DW_EXEC_F_PATH_OUTSIDE_ROOT (1u << 4)  /* walk reached the namespace top, not the root */
#define DW_EXEC_F_ARGV_TRUNCATED (1u << 5)     /* argv longer than DW_ARGV_MAX */
#define DW_EXEC_F_FILENAME_TRUNCATED (1u << 6) /* bprm->filename longer than DW_FILENAME_MAX */
#define DW_EXEC_F_KILLED (1u << 7)             /* SIGKILL sent in the kernel (enforce policy) */
#define DW_EXEC_F_IN_POLICY (1u << 8)          /* cgroup found in dw_policy (a known container) */
#define DW_EXEC_F_SCRIPT (1u << 9)             /* a binfmt handler (shebang, binfmt_misc) ran */
#define DW_EXEC_F_INTERP_TRUNCATED (1u << 10)  /* bprm->interp longer than DW_INTERP_MAX */
#define DW_EXEC_F_CWD_TRUNCATED (1u << 11)     /* cwd walk ran out of components/space */
#define DW_EXEC_F_CWD_OUTSIDE_ROOT (1u << 12)  /* cwd walk reached the namespace top */
#define DW_EXEC_F_ALLOWED (1u << 13) /* upper-layer file whose verdict in dw_allow let it run */
#define DW_EXEC_F_DOOMED (1u << 14)  /* killed because dw_doom named the task (its script) */

/* struct dw_map_event.how */
#define DW_MAP_HOW_MMAP 1     /* mmap(2) with PROT_EXEC of a file */
#define DW_MAP_HOW_MPROTECT 2 /* mprotect(2) adding PROT_EXEC to a file mapping */
#define DW_MAP_HOW_INTERP 3   /* the ELF interpreter (PT_INTERP) the kernel mapped at exec */

/* struct dw_file_event.op: the syscall (Falco's event names). */
enum dw_file_op {
    DW_FILE_OP_OPEN = 1,
    DW_FILE_OP_OPENAT = 2,
    DW_FILE_OP_OPENAT2 = 3,
    DW_FILE_OP_CREAT = 4,
    DW_FILE_OP_UNLINK = 5,
    DW_FILE_OP_UNLINKAT = 6,
    DW_FILE_OP_RENAME = 7,
    DW_FILE_OP_RENAMEAT = 8,
    DW_FILE_OP_RENAMEAT2 = 9,
    DW_FILE_OP_LINK = 10,
    DW_FILE_OP_LINKAT = 11,
    DW_FILE_OP_SYMLINK = 12,
    DW_FILE_OP_SYMLINKAT = 13,
    DW_FILE_OP_CHMOD = 14,
    DW_FILE_OP_FCHMOD = 15,
    DW_FILE_OP_FCHMODAT = 16,
    DW_FILE_OP_CHOWN = 17,
    DW_FILE_OP_FCHOWN = 18,
    DW_FILE_OP_LCHOWN = 19,
    DW_FILE_OP_FCHOWNAT = 20,
    DW_FILE_OP_MKDIR = 21,
    DW_FILE_OP_MKDIRAT = 22,
    DW_FILE_OP_RMDIR = 23,
    DW_FILE_OP_MAX = 23,
};

/* struct dw_file_event.flags */
#define DW_FILE_F_OVL_UPPER (1u << 0)      /* the file's overlay inode has an upper dentry */
#define DW_FILE_F_OVL_LOWER (1u << 1)      /* ... and a lower (image) one: with UPPER, copied up */
#define DW_FILE_F_ON_ROOT_MNT (1u << 2)    /* the file's vfsmount is the task's root mount */
#define DW_FILE_F_PATH_TRUNCATED (1u << 3) /* path walk ran out of components/space */
#define DW_FILE_F_PATH_OUTSIDE_ROOT (1u << 4) /* path walk reached the namespace top */
#define DW_FILE_F_HAVE_FILE (1u << 5)         /* file and path come from the kernel's struct file */
#define DW_FILE_F_NAME1_TRUNCATED (1u << 6)   /* name1 longer than DW_PATH_MAX - 1 */
#define DW_FILE_F_NAME2_TRUNCATED (1u << 7)   /* name2 longer than DW_PATH_MAX - 1 */
#define DW_FILE_F_DIR1_INCOMPLETE (1u << 8)   /* dir1 walk truncated, outside the root, or no fd */
#define DW_FILE_F_DIR2_INCOMPLETE (1u << 9)   /* dir2 walk truncated, outside the root, or no fd */
#define DW_FILE_F_IN_POLICY (1u << 10)        /* cgroup found in dw_policy (a known container) */
#define DW_FILE_F_OVERLAY (1u << 11)          /* the file is on overlayfs */

/* struct dw_net_event.op: the syscall (Falco's event names). */
enum dw_net_op {
    DW_NET_OP_SOCKET = 1,
    DW_NET_OP_CONNECT = 2,
    DW_NET_OP_ACCEPT = 3,
    DW_NET_OP_ACCEPT4 = 4,
    DW_NET_OP_BIND = 5,
    DW_NET_OP_LISTEN = 6,
    DW_NET_OP_SENDTO = 7,
    DW_NET_OP_SENDMSG = 8,
    DW_NET_OP_DUP = 9,
    DW_NET_OP_DUP2 = 10,
    DW_NET_OP_DUP3 = 11,
    DW_NET_OP_MAX = 11,
};

/* struct dw_net_event.flags */
#define DW_NET_F_IN_POLICY (1u << 0)   /* cgroup found in dw_policy (a known container) */
#define DW_NET_F_HAVE_SOCK (1u << 1)   /* family/type/protocol/local address from the kernel sock */
#define DW_NET_F_REMOTE_SOCK (1u << 2) /* the remote address is the kernel sock's peer */
#define DW_NET_F_REMOTE_ARG (1u << 3)  /* the remote address is the call's sockaddr argument */
/* A connect that did not go through the connect syscall (io_uring), seen by cgroup/connect4|6
 * before it ran: ret is 0 and means "not known", fd is -1. */
#define DW_NET_F_NO_SYSCALL (1u << 4)
/* Refused by network enforcement (cgroup/connect4|6, cgroup/sendmsg4|6 returned 0: the caller got
 * EPERM and nothing left the socket). */
#define DW_NET_F_DENIED (1u << 5)
/* A bind that asked for port 0: the local port is one the kernel chose (a client's source port,
 * not a listener's). */
#define DW_NET_F_PORT_CHOSEN (1u << 6)

/* dw_policy map value flags (key: u64 cgroup id) */
#define DW_POLICY_F_TRACKED (1u << 0) /* a container cgroup the agent knows */
#define DW_POLICY_F_ENFORCE (1u << 1) /* kill drifted execs in this cgroup */
/* Refuse this cgroup's connects and datagrams outside dw_net_allow, and every one by a process in
 * dw_net_drifted (loopback excepted); only with dw_config.enforce. */
#define DW_POLICY_F_NET_ENFORCE (1u << 2)

/* dw_stats per-CPU array indexes */
enum dw_stat {
    DW_STAT_RINGBUF_LOST_EXEC = 0,
    DW_STAT_RINGBUF_LOST_FORK = 1,
    DW_STAT_RINGBUF_LOST_EXIT = 2,
    DW_STAT_KILLS = 3, /* execs and mappings killed */
    DW_STAT_RINGBUF_LOST_MAP = 4,
    DW_STAT_RINGBUF_LOST_FILE = 5,
    DW_STAT_FILE_ARGS_FULL = 6, /* a file syscall's arguments could not be kept until its exit */
    DW_STAT_RINGBUF_LOST_NET = 7,
    DW_STAT_NET_ARGS_FULL = 8, /* a network syscall's arguments could not be kept until its exit */
    DW_STAT_RINGBUF_LOST_DNS = 9,
    DW_STAT_MAX = 10,
};

struct dw_event_header {
    __u16 kind;     /* enum dw_event_kind */
    __u16 version;  /* DW_ABI_VERSION */
    __u32 len;      /* bytes of this record that are meaningful, header included */
    __u64 ktime_ns; /* bpf_ktime_get_boot_ns() */
};

/* The task that caused the event (current, or the child for fork). */
struct dw_task {
    __u32 pid;  /* thread id */
    __u32 tgid; /* process id */
    __u32 ppid; /* real_parent->tgid */
    __u32 uid;
    __u32 gid;
    __u32 euid;
    __u32 egid;
    __u32 mntns_ino;
    __u64 cgroup_id; /* cgroup v2 id (bpf_get_current_cgroup_id semantics) */
    __u32 pidns_ino;
    __u32 _pad0;
    __u8 comm[DW_COMM_LEN];
    /* The process's start (its thread-group leader's start_boottime, boot-time ns; an exec keeps
     * it): with tgid, names one process whatever PIDs are reused (dw_net_drifted). */
    __u64 start_ns;
};

/* Identity of a file (an executable, or a file mapped executable). */
struct dw_file_id {
    __u64 ino;
    __u64 ctime_sec;
    __u64 mtime_sec;
    __u32 ctime_nsec;
    __u32 mtime_nsec;
    __u32 dev; /* inode->i_sb->s_dev (kernel dev_t encoding: major << 20 | minor) */
    __u32 nlink;
    __u64 size;
    __u64 s_magic; /* inode->i_sb->s_magic */
    __u32 mode;
    __u32 _pad0;
};

struct dw_exec_event {
    struct dw_event_header hdr;
    struct dw_task task;
    struct dw_file_id exe; /* bprm->file: the interpreter for a script */
    __u32 flags;           /* DW_EXEC_F_* */
    __u32 old_pid;         /* tracepoint old_pid (thread that called exec) */
    __u16 filename_len;
    __u16 interp_len;
    __u16 path_len;
    __u16 path_components;
    __u16 argv_len;
    __u16 cwd_len;
    __u16 cwd_components;
    __u16 _pad1;
    /* bprm->filename as given to exec, not NUL-terminated within filename_len */
    __u8 filename[DW_FILENAME_MAX];
    /* bprm->interp when a binfmt handler replaced it (DW_EXEC_F_SCRIPT: the kernel compares
     * the pointers, bprm_change_interp() is the only writer); interp_len = 0 otherwise */
    __u8 interp[DW_INTERP_MAX];
    /* resolved path of the executable, leaf component first, each component followed by one
     * NUL byte; path_len bytes used. Userspace reverses the components. */
    __u8 path[DW_PATH_MAX];
    /* argv as in the process memory: arguments separated by NUL; argv_len bytes used */
    __u8 argv[DW_ARGV_MAX];
    /* the task's working directory, encoded like path; only for tasks outside the host's mount
     * namespace (dw_config.host_mntns_ino, when set): cwd_len = 0 for host tasks */
    __u8 cwd[DW_CWD_MAX];
};

/*
 * A file mapped executable by a task outside the host's mount namespace, reported only when the
 * file is suspicious: OVL_UPPER, MEMFD, not on the task's root mount, or deleted (nlink 0).
 */
struct dw_map_event {
    struct dw_event_header hdr;
    struct dw_task task;
    struct dw_file_id file;
    __u32 flags;     /* DW_EXEC_F_* (file, path and kill bits) */
    __u32 prot;      /* PROT_* asked for */
    __u32 map_flags; /* mmap flags (MAP_*); 0 for mprotect */
    __u16 how;       /* DW_MAP_HOW_* */
    __u16 path_len;
    __u16 path_components;
    __u16 _pad0;
    __u32 _pad1;
    __u64 addr; /* mmap addr hint / mprotect start */
    __u64 len;
    __u64 off; /* offset in the file of addr (mmap: the offset argument) */
    /* resolved path of the file, encoded as dw_exec_event.path */
    __u8 path[DW_PATH_MAX];
};

/*
 * A file-changing syscall (open for write/create/truncate, unlink, rename, link, symlink, chmod,
 * chown, mkdir, rmdir) by a task outside the host's mount namespace, at its exit.
 *
 * path: the file as the kernel resolved it (DW_FILE_F_HAVE_FILE: a successful open/creat, or the
 * fd of fchmod/fchown), encoded as dw_exec_event.path; `file` is then its identity.
 * name1/name2: the path arguments as the caller gave them (not NUL-terminated), name1 the first
 * (open's name, unlink's path, rename/link's oldpath, symlink's target, chmod's filename…), name2
 * the second (rename/link's newpath, symlink's linkpath). dir1/dir2: for a relative name1/name2
 * (one that does not start with '/'), the directory it is relative to (dirfd, or the working
 * directory for AT_FDCWD), walked like path; empty for absolute names and for symlink targets.
 * A successful open carries path only (name1 is not read).
 */
struct dw_file_event {
    struct dw_event_header hdr;
    struct dw_task task;
    struct dw_file_id file; /* zero unless DW_FILE_F_HAVE_FILE */
    __s64 ret;              /* the syscall's return value (fd, 0, or -errno) */
    __u32 flags;            /* DW_FILE_F_* */
    __u32 op_flags; /* open/openat(2)/creat flags (O_*), unlinkat/renameat2/linkat/fchownat flags */
    __u32 mode;     /* open/creat/mkdir/chmod mode argument */
    __u32 uid;      /* chown uid argument */
    __u32 gid;      /* chown gid argument */
    __s32 fd;       /* fchmod/fchown fd argument; -1 otherwise */
    __s32 dirfd1;   /* dirfd of name1 (AT_FDCWD = -100 for the *at-less calls) */
    __s32 dirfd2;   /* dirfd of name2 */
    __u16 op;       /* enum dw_file_op */
    __u16 path_len;
    __u16 path_components;
    __u16 name1_len;
    __u16 dir1_len;
    __u16 dir1_components;
    __u16 name2_len;
    __u16 dir2_len;
    __u16 dir2_components;
    __u16 _pad0;
    __u32 _pad1;
    __u8 path[DW_PATH_MAX];
    __u8 name1[DW_PATH_MAX];
    __u8 dir1[DW_PATH_MAX];
    __u8 name2[DW_PATH_MAX];
    __u8 dir2[DW_PATH_MAX];
};

/*
 * A network syscall of a container task (outside the host's mount namespace, in a dw_policy
 * cgroup), at its exit; a fixed-size record. Addresses: IPv4 in the first 4 bytes of laddr/raddr
 * (network byte order), IPv6 in all 16; ports in host byte order. What each op carries:
 *  - socket: family/sock_type/protocol are the domain/type/protocol arguments (arg: the type
 *    argument with its SOCK_NONBLOCK/SOCK_CLOEXEC bits), fd = ret;
 *  - connect, bind, listen, sendto, sendmsg: fd is the socket argument; the local address and
 *    family/type/protocol come from the kernel socket at exit (HAVE_SOCK), so bind(port 0) and
 *    listen show the real port and 0.0.0.0/:: is seen; connect's remote is the socket's peer
 *    (REMOTE_SOCK) or, when the kernel has none (a failed connect), the sockaddr argument
 *    (REMOTE_ARG); sendto/sendmsg (unconnected datagram sockets with a destination only, the
 *    first datagram to each peer per socket) carry the destination argument; listen's arg is
 *    the backlog;
 *  - accept, accept4: fd = ret (the new socket), fd2 the listening socket; local and remote from
 *    the new socket; accept4's arg is its flags;
 *  - dup, dup2, dup3 of a socket: fd = ret (the new fd), fd2 the old fd, addresses from the
 *    socket; dup3's arg is its flags.
 * Only AF_INET and AF_INET6 sockets are reported, except by socket (every family).
 */
struct dw_net_event {
    struct dw_event_header hdr;
    struct dw_task task;
    __s64 ret;       /* the syscall's return value (fd, 0, bytes sent, or -errno) */
    __s32 fd;        /* see above */
    __s32 fd2;       /* accept: the listening fd; dup*: the old fd; -1 otherwise */
    __u16 op;        /* enum dw_net_op */
    __u16 family;    /* AF_* */
    __u16 sock_type; /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, ... */
    __u16 protocol;  /* IPPROTO_* (0 for socket's default) */
    __u32 flags;     /* DW_NET_F_* */
    __u32 arg;       /* socket: type argument; listen: backlog; accept4/dup3: flags; 0 otherwise */
    __u16 lport;
    __u16 rport;
    __u32 _pad0;
    __u8 laddr[16];
    __u8 raddr[16];
};

/* struct dw_dns_event.flags */
#define DW_DNS_F_TRUNCATED (1u << 0) /* the UDP payload was longer than DW_DNS_PAYLOAD_MAX */

/* Bytes of a DNS answer kept (the classic UDP DNS message limit without EDNS). */
#define DW_DNS_PAYLOAD_MAX 512

/*
 * A UDP datagram from source port 53 received by a socket of a dw_policy TRACKED cgroup (a DNS
 * answer a container received), seen by cgroup_skb/ingress at the root of the cgroup v2
 * hierarchy. No task: the packet is delivered in softirq context; cgroup_id is the receiving
 * socket's cgroup (bpf_skb_cgroup_id). Addresses as in struct dw_net_event (IPv4 in the first 4
 * bytes, network byte order); ports in host byte order. On the wire: the fixed part (everything
 * before payload), then payload_len bytes of the UDP payload (hdr.len = offsetof(payload) +
 * payload_len).
 */
struct dw_dns_event {
    struct dw_event_header hdr;
    __u64 cgroup_id;   /* the receiving socket's cgroup v2 id */
    __u16 family;      /* AF_INET, AF_INET6 */
    __u16 sport;       /* the server's port (53) */
    __u16 dport;       /* the receiving socket's port */
    __u16 payload_len; /* bytes of payload kept (<= DW_DNS_PAYLOAD_MAX) */
    __u32 flags;       /* DW_DNS_F_* */
    __u32 udp_len;     /* the UDP payload's length as the datagram says */
    __u8 saddr[16];    /* the server that answered */
    __u8 daddr[16];    /* the receiving end */
    __u8 payload[DW_DNS_PAYLOAD_MAX];
};

struct dw_fork_event {
    struct dw_event_header hdr;
    struct dw_task child; /* ppid is the parent's tgid */
};

struct dw_exit_event {
    struct dw_event_header hdr;
    struct dw_task task;
    __u32 exit_code; /* task->exit_code */
    __u32 _pad0;
};

/* Single-entry array map dw_config, written by userspace before attach. */
struct dw_config {
    __u32 agent_tgid; /* events of the agent itself are not reported */
    __u32 enforce;    /* global switch: 0 = never kill, whatever dw_policy says */
    /* The host's mount namespace: a task still in it is not inside a container yet (runc's
     * set-up, including its memfd self-clone, runs in the container's cgroup before it enters
     * the container's mount namespace) and is never killed. 0 = unknown. */
    __u32 host_mntns_ino;
    /* The kernel's FMODE_BACKING bit (it moved between releases: 1 << 25 in 6.5 .. 6.13,
     * 1 << 24 since 6.14), set by the loader from the kernel release; 0 = no backing files.
     * overlayfs maps its real (backing) file in the vma; its user_path is the overlay path. */
    __u32 fmode_backing;
};

/*
 * Hash map dw_allow: upper-layer files the agent judged unchanged image content
 * (copied-up-unchanged), so that enforcement lets them run. The key is the upper layer's own
 * inode (not overlayfs' inode); the value is that inode's ctime when the agent compared the
 * bytes: any later write or chmod changes the ctime and the entry no longer matches.
 */
struct dw_allow_key {
    __u64 dev; /* kernel dev_t of the upper layer's filesystem (MKDEV(major, minor)) */
    __u64 ino;
};

struct dw_allow_value {
    __s64 ctime_sec;
    __u32 ctime_nsec;
    __u32 _pad0;
};

/*
 * Hash map dw_doom: tgid -> boot-time ns when the agent named it. The exec gate (fanotify) saw
 * this process open a drifted script for exec; its next exec within DW_DOOM_TTL_NS is killed
 * before the interpreter runs an instruction.
 */
#define DW_DOOM_TTL_NS (5ull * 1000 * 1000 * 1000)

/*
 * LRU hash map dw_exec_args: tgid -> the argv an enforced container task passed to execve /
 * execveat, kept at syscall entry for the exec gate. While the gate holds the exec of an
 * interpreter (the new program's argv is not visible anywhere else yet), it reads the script
 * argument here, judges the script, and dooms the process if the script is drift.
 */
#define DW_EXEC_ARGS_MAX 8  /* arguments kept */
#define DW_EXEC_ARG_LEN 256 /* bytes per argument, NUL included */

struct dw_exec_args {
    __u64 ktime_ns;  /* boot time of the execve entry */
    __u32 argc;      /* arguments kept (<= DW_EXEC_ARGS_MAX) */
    __u32 truncated; /* an argument was cut or more than DW_EXEC_ARGS_MAX were passed */
    __u8 args[DW_EXEC_ARGS_MAX][DW_EXEC_ARG_LEN]; /* NUL-terminated each */
};

/*
 * LPM trie map dw_net_allow: the peers a DW_POLICY_F_NET_ENFORCE cgroup may connect or send
 * datagrams to. The trie matches the longest prefix of the bits after prefixlen, in order:
 * protocol, family, port and cgroup id always whole (DW_NET_ALLOW_FIXED_BITS), then the first
 * bits of the address (its prefix length: a single address or a CIDR). The programs look up the
 * destination with its port, then with port 0 (any port). Value: DW_NET_ALLOW_VALUE (reserved).
 */
#define DW_NET_ALLOW_FIXED_BITS 96
#define DW_NET_ALLOW_MAX_ENTRIES 65536
#define DW_NET_ALLOW_VALUE 1

struct dw_net_allow_key {
    __u32 prefixlen; /* DW_NET_ALLOW_FIXED_BITS + the address's prefix length */
    __u8 protocol;   /* IPPROTO_* of the socket (TCP 6, UDP 17) */
    __u8 family;     /* AF_INET or AF_INET6; an IPv4-mapped IPv6 peer is AF_INET */
    __u16 port;      /* destination port, network byte order; 0 = any port */
    __u64 cgroup_id; /* cgroup v2 id */
    __u8 addr[16];   /* network byte order; IPv4 in the first 4 bytes, the rest 0 */
};

/*
 * Hash map dw_net_drifted: tgid -> start_ns (struct dw_task.start_ns) of a process whose code is
 * drift. In a DW_POLICY_F_NET_ENFORCE cgroup its connects and datagrams are refused (loopback
 * excepted) when the start time matches: a reused PID is another process.
 */
#define DW_NET_DRIFTED_MAX_ENTRIES 16384

#endif /* DRIFTWATCH_ABI_H */
