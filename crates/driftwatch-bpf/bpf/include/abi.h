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
 * On the wire (version 2) an exec record is packed: the fixed part of struct dw_exec_event
 * (everything before `filename`), then filename_len bytes of filename, path_len bytes of path
 * and argv_len bytes of argv, back to back; hdr.len = offsetof(filename) + the three lengths.
 * The struct below is the kernel's scratch layout (and the maximum record size).
 */
#ifndef DRIFTWATCH_ABI_H
#define DRIFTWATCH_ABI_H

#define DW_ABI_VERSION 2

#define DW_COMM_LEN 16
#define DW_FILENAME_MAX 512
#define DW_PATH_MAX 4096
#define DW_PATH_MAX_COMPONENTS 64
#define DW_ARGV_MAX 2048

enum dw_event_kind {
    DW_EV_EXEC = 1,
    DW_EV_FORK = 2,
    DW_EV_EXIT = 3,
};

/* struct dw_exec_event.flags */
#define DW_EXEC_F_OVL_UPPER (1u << 0)          /* overlay inode has an upper dentry */
#define DW_EXEC_F_MEMFD (1u << 1)              /* executable is a memfd ("memfd:" on shmem) */
#define DW_EXEC_F_ON_ROOT_MNT (1u << 2)        /* exe's vfsmount is the task's root mount */
#define DW_EXEC_F_PATH_TRUNCATED (1u << 3)     /* dentry walk ran out of components/space */
#define DW_EXEC_F_PATH_OUTSIDE_ROOT (1u << 4)  /* walk reached the namespace top, not the root */
#define DW_EXEC_F_ARGV_TRUNCATED (1u << 5)     /* argv longer than DW_ARGV_MAX */
#define DW_EXEC_F_FILENAME_TRUNCATED (1u << 6) /* bprm->filename longer than DW_FILENAME_MAX */
#define DW_EXEC_F_KILLED (1u << 7)             /* SIGKILL sent in the kernel (enforce policy) */
#define DW_EXEC_F_IN_POLICY (1u << 8)          /* cgroup found in dw_policy (a known container) */

/* dw_policy map value flags (key: u64 cgroup id) */
#define DW_POLICY_F_TRACKED (1u << 0) /* a container cgroup the agent knows */
#define DW_POLICY_F_ENFORCE (1u << 1) /* kill drifted execs in this cgroup */

/* dw_stats per-CPU array indexes */
enum dw_stat {
    DW_STAT_RINGBUF_LOST_EXEC = 0,
    DW_STAT_RINGBUF_LOST_FORK = 1,
    DW_STAT_RINGBUF_LOST_EXIT = 2,
    DW_STAT_KILLS = 3,
    DW_STAT_MAX = 8,
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
};

struct dw_exec_event {
    struct dw_event_header hdr;
    struct dw_task task;
    __u64 exe_ino;
    __u64 exe_ctime_sec;
    __u64 exe_mtime_sec;
    __u32 exe_ctime_nsec;
    __u32 exe_mtime_nsec;
    __u32 exe_dev; /* inode->i_sb->s_dev (kernel dev_t encoding: major << 20 | minor) */
    __u32 exe_nlink;
    __u64 exe_size;
    __u64 exe_s_magic; /* inode->i_sb->s_magic */
    __u32 exe_mode;
    __u32 flags;   /* DW_EXEC_F_* */
    __u32 old_pid; /* tracepoint old_pid (thread that called exec) */
    __u16 filename_len;
    __u16 path_len;
    __u16 path_components;
    __u16 argv_len;
    __u32 _pad1;
    /* bprm->filename as given to exec, not NUL-terminated within filename_len */
    __u8 filename[DW_FILENAME_MAX];
    /* resolved path of the executable, leaf component first, each component followed by one
     * NUL byte; path_len bytes used. Userspace reverses the components. */
    __u8 path[DW_PATH_MAX];
    /* argv as in the process memory: arguments separated by NUL; argv_len bytes used */
    __u8 argv[DW_ARGV_MAX];
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
    __u32 _pad0;
};

#endif /* DRIFTWATCH_ABI_H */
