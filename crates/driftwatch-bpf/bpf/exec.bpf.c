// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * driftwatch process sensor: exec / fork / exit of thread-group leaders, with the identity of
 * the executed file, its path as the process sees it, and in-kernel SIGKILL of drifted execs in
 * cgroups whose dw_policy entry says ENFORCE.
 *
 * Records are laid out as in abi.h; userspace decodes them with driftwatch-abi.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define DW_SIGKILL 9
#define DW_OVERLAYFS_SUPER_MAGIC 0x794c7630
#define DW_TMPFS_MAGIC 0x01021994
#define DW_HUGETLBFS_MAGIC 0x958458f6
#define DW_NAME_MAX 255
/* Mount crossings cost a loop iteration too: allow as many as there are components. */
#define DW_PATH_WALK_STEPS (2 * DW_PATH_MAX_COMPONENTS)
/* Multigrain timestamps (6.13+) keep a flag in the top bit of i_ctime_nsec. */
#define DW_NSEC_MASK 0x3fffffff

/*
 * One scratch record per CPU: too big for the 512-byte BPF stack. Its value type is a union of
 * every ABI record so that all of them are in the object's BTF (the abi_layout test reads it).
 */
union dw_any_event {
    struct dw_exec_event exec;
    struct dw_fork_event fork;
    struct dw_exit_event exit;
};

/* 4 MiB: a packed exec record is ~300-600 bytes, so this holds several seconds of a container
 * exec storm. The reader maps the data area twice, which counts in its RSS: keep it small. */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4 * 1024 * 1024);
} dw_events SEC(".maps");

/* Userspace drains the ring on a short timer; the kernel only wakes it up early when this much
 * is waiting. One wakeup per record (the default) cost more than everything else together. */
#define DW_WAKEUP_BYTES (256 * 1024)

static __always_inline __u64 dw_wakeup_flags(void) {
    return bpf_ringbuf_query(&dw_events, BPF_RB_AVAIL_DATA) >= DW_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP
                                                                               : BPF_RB_NO_WAKEUP;
}

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u32);
} dw_policy SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct dw_config);
} dw_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, DW_STAT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} dw_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, union dw_any_event);
} dw_scratch SEC(".maps");

/* The packed exec record is assembled here from the scratch record. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct dw_exec_event);
} dw_packed SEC(".maps");

/* Kernel layouts that differ from the vmlinux.h we build against (CO-RE flavours). */
struct inode___pre66 { /* < 6.6 */
    struct timespec64 i_ctime;
    struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

struct inode___pre611 { /* 6.6 .. 6.10 */
    struct timespec64 __i_ctime;
    struct timespec64 __i_mtime;
} __attribute__((preserve_access_index));

static __always_inline void stat_inc(__u32 idx) {
    __u64 *v = bpf_map_lookup_elem(&dw_stats, &idx);
    if (v)
        *v += 1;
}

static __always_inline struct dw_config *dw_get_config(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&dw_config, &zero);
}

/* True if events of this tgid must not be reported (the agent itself). */
static __always_inline bool is_agent(struct dw_config *cfg, __u32 tgid) {
    return cfg && cfg->agent_tgid != 0 && cfg->agent_tgid == tgid;
}

static __always_inline __u32 pidns_inum(struct task_struct *task) {
    struct pid *pid = BPF_CORE_READ(task, thread_pid);
    unsigned int level = BPF_CORE_READ(pid, level);
    struct upid up = {};

    /* numbers[] is a flexible array of struct upid; level is the task's own namespace. */
    bpf_core_read(&up, sizeof(up), &pid->numbers[level & 31]);
    return BPF_CORE_READ(up.ns, ns.inum);
}

static __always_inline void fill_task(struct dw_task *t, struct task_struct *task,
                                      __u64 cgroup_id) {
    const struct cred *cred = BPF_CORE_READ(task, real_cred);

    t->pid = BPF_CORE_READ(task, pid);
    t->tgid = BPF_CORE_READ(task, tgid);
    t->ppid = BPF_CORE_READ(task, real_parent, tgid);
    t->uid = BPF_CORE_READ(cred, uid.val);
    t->gid = BPF_CORE_READ(cred, gid.val);
    t->euid = BPF_CORE_READ(cred, euid.val);
    t->egid = BPF_CORE_READ(cred, egid.val);
    t->mntns_ino = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
    t->cgroup_id = cgroup_id;
    t->pidns_ino = pidns_inum(task);
    t->_pad0 = 0;
    bpf_core_read_str(&t->comm, sizeof(t->comm), &task->comm);
}

/* The cgroup v2 id of any task (bpf_get_current_cgroup_id() only covers current). */
static __always_inline __u64 task_cgroup_id(struct task_struct *task) {
    return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline void fill_times(struct dw_exec_event *e, struct inode *inode) {
    if (bpf_core_field_exists(inode->i_ctime_sec)) {
        e->exe_ctime_sec = BPF_CORE_READ(inode, i_ctime_sec);
        e->exe_ctime_nsec = BPF_CORE_READ(inode, i_ctime_nsec) & DW_NSEC_MASK;
        e->exe_mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
        e->exe_mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec) & DW_NSEC_MASK;
    } else if (bpf_core_field_exists(((struct inode___pre611 *)inode)->__i_ctime)) {
        struct inode___pre611 *i = (void *)inode;
        e->exe_ctime_sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
        e->exe_ctime_nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
        /* 6.6 renamed only i_ctime; i_mtime became __i_mtime in 6.7. */
        if (bpf_core_field_exists(i->__i_mtime)) {
            e->exe_mtime_sec = BPF_CORE_READ(i, __i_mtime.tv_sec);
            e->exe_mtime_nsec = BPF_CORE_READ(i, __i_mtime.tv_nsec);
        } else {
            struct inode___pre66 *o = (void *)inode;
            e->exe_mtime_sec = BPF_CORE_READ(o, i_mtime.tv_sec);
            e->exe_mtime_nsec = BPF_CORE_READ(o, i_mtime.tv_nsec);
        }
    } else {
        struct inode___pre66 *o = (void *)inode;
        e->exe_ctime_sec = BPF_CORE_READ(o, i_ctime.tv_sec);
        e->exe_ctime_nsec = BPF_CORE_READ(o, i_ctime.tv_nsec);
        e->exe_mtime_sec = BPF_CORE_READ(o, i_mtime.tv_sec);
        e->exe_mtime_nsec = BPF_CORE_READ(o, i_mtime.tv_nsec);
    }
}

/* Appends one dentry name plus NUL at *off; false (and PATH_TRUNCATED) if it does not fit. */
static __always_inline bool path_push(struct dw_exec_event *e, __u32 *off, struct dentry *d) {
    __u32 len = BPF_CORE_READ(d, d_name.len);
    const unsigned char *name = BPF_CORE_READ(d, d_name.name);
    __u32 o = *off;

    if (len == 0 || len > DW_NAME_MAX || o + len + 1 > DW_PATH_MAX) {
        e->flags |= DW_EXEC_F_PATH_TRUNCATED;
        return false;
    }
    /*
     * The masks only convince the verifier (o < DW_PATH_MAX, len <= DW_NAME_MAX keeps the write
     * inside the record); the check above is what keeps it inside path[].
     */
    o &= DW_PATH_MAX - 1;
    len &= DW_NAME_MAX;
    if (bpf_probe_read_kernel(&e->path[o], len, name) != 0) {
        e->flags |= DW_EXEC_F_PATH_TRUNCATED;
        return false;
    }
    o = (o + len) & (DW_PATH_MAX - 1);
    e->path[o] = 0;
    *off = o + 1;
    e->path_components++;
    return true;
}

struct path_walk {
    struct dw_exec_event *e;
    struct dentry *dentry;
    struct vfsmount *vfsmnt;
    struct dentry *root_dentry;
    struct vfsmount *root_mnt;
    __u32 off;
    bool done;
};

/*
 * One step of the walk, as a bpf_loop() callback: the verifier checks the body once instead of
 * once per iteration (an unrolled or bounded-loop walk blows the 1M instruction budget).
 * Returns 1 to stop.
 */
static long path_walk_step(__u32 index, struct path_walk *w) {
    struct dw_exec_event *e = w->e;
    struct dentry *dentry = w->dentry;
    struct vfsmount *vfsmnt = w->vfsmnt;

    if (dentry == w->root_dentry && vfsmnt == w->root_mnt) {
        w->done = true;
        return 1;
    }
    struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
    struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
    if (dentry == mnt_root) {
        struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
        struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
        if (mnt_parent == mnt) {
            /* Top of the mount tree, and the task's root was not on the way. */
            e->flags |= DW_EXEC_F_PATH_OUTSIDE_ROOT;
            w->done = true;
            return 1;
        }
        w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
        w->vfsmnt = (struct vfsmount *)__builtin_preserve_access_index(&mnt_parent->mnt);
        return 0;
    }
    if (dentry == parent) {
        /* Disconnected dentry (memfd, deleted root): keep its name, stop here. */
        path_push(e, &w->off, dentry);
        e->flags |= DW_EXEC_F_PATH_OUTSIDE_ROOT;
        w->done = true;
        return 1;
    }
    if (e->path_components >= DW_PATH_MAX_COMPONENTS || !path_push(e, &w->off, dentry)) {
        e->flags |= DW_EXEC_F_PATH_TRUNCATED;
        w->done = true;
        return 1;
    }
    w->dentry = parent;
    return 0;
}

/*
 * Resolves bprm->file's path as the task sees it: walk d_parent up to the task's root, hopping
 * to the mountpoint in the parent mount at each mount root. Leaf first, NUL after each name.
 */
static __always_inline void resolve_path(struct dw_exec_event *e, struct path *fpath,
                                         struct path *root) {
    struct path_walk w = {
        .e = e,
        .dentry = fpath->dentry,
        .vfsmnt = fpath->mnt,
        .root_dentry = root->dentry,
        .root_mnt = root->mnt,
    };

    bpf_loop(DW_PATH_WALK_STEPS, path_walk_step, &w, 0);
    if (!w.done)
        e->flags |= DW_EXEC_F_PATH_TRUNCATED;
    e->path_len = w.off;
}

static __always_inline bool is_memfd(struct dentry *d, __u64 s_magic) {
    char prefix[6] = {};

    if (s_magic != DW_TMPFS_MAGIC && s_magic != DW_HUGETLBFS_MAGIC)
        return false;
    if (bpf_probe_read_kernel(prefix, sizeof(prefix), BPF_CORE_READ(d, d_name.name)) != 0)
        return false;
    return prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
           prefix[4] == 'd' && prefix[5] == ':';
}

static __always_inline bool ovl_has_upper(struct inode *inode) {
    struct ovl_inode *oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
    return BPF_CORE_READ(oi, __upperdentry) != NULL;
}

static __always_inline void read_filename(struct dw_exec_event *e, struct linux_binprm *bprm) {
    const char *filename = BPF_CORE_READ(bprm, filename);
    long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);

    if (n <= 0) {
        e->filename_len = 0;
        return;
    }
    if (n == sizeof(e->filename)) {
        /* Filled the buffer: truncated unless the string ends exactly there. */
        char next = 0;
        bpf_probe_read_kernel(&next, 1, filename + sizeof(e->filename) - 1);
        if (next != 0) {
            e->flags |= DW_EXEC_F_FILENAME_TRUNCATED;
            e->filename_len = sizeof(e->filename);
            return;
        }
    }
    e->filename_len = n - 1; /* without the NUL */
}

static __always_inline void read_argv(struct dw_exec_event *e, struct task_struct *task) {
    struct mm_struct *mm = BPF_CORE_READ(task, mm);
    unsigned long start = BPF_CORE_READ(mm, arg_start);
    unsigned long end = BPF_CORE_READ(mm, arg_end);
    __u64 len = end > start ? end - start : 0;

    if (len > DW_ARGV_MAX) {
        len = DW_ARGV_MAX;
        e->flags |= DW_EXEC_F_ARGV_TRUNCATED;
    }
    /* Keep the bound visible to the verifier whatever clang does with the clamp above. */
    barrier_var(len);
    if (len > DW_ARGV_MAX)
        len = 0;
    if (len && bpf_probe_read_user(e->argv, len, (void *)start) != 0)
        len = 0;
    e->argv_len = len;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(dw_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) {
    struct dw_config *cfg = dw_get_config();
    __u32 zero = 0;
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;

    if (is_agent(cfg, tgid))
        return 0;
    union dw_any_event *any = bpf_map_lookup_elem(&dw_scratch, &zero);
    if (!any)
        return 0;
    struct dw_exec_event *e = &any->exec;
    __u64 cgroup_id = bpf_get_current_cgroup_id();

    e->hdr.kind = DW_EV_EXEC;
    e->hdr.version = DW_ABI_VERSION;
    e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_task(&e->task, p, cgroup_id);
    e->old_pid = old_pid;
    e->flags = 0;
    e->path_components = 0;
    e->_pad1 = 0;

    struct file *file = BPF_CORE_READ(bprm, file);
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    struct path fpath = {}, root = {};
    BPF_CORE_READ_INTO(&fpath, file, f_path);
    BPF_CORE_READ_INTO(&root, p, fs, root);

    __u64 s_magic = BPF_CORE_READ(inode, i_sb, s_magic);
    e->exe_ino = BPF_CORE_READ(inode, i_ino);
    e->exe_dev = BPF_CORE_READ(inode, i_sb, s_dev);
    e->exe_nlink = BPF_CORE_READ(inode, __i_nlink);
    e->exe_size = BPF_CORE_READ(inode, i_size);
    e->exe_mode = BPF_CORE_READ(inode, i_mode);
    e->exe_s_magic = s_magic;
    fill_times(e, inode);

    if (s_magic == DW_OVERLAYFS_SUPER_MAGIC && ovl_has_upper(inode))
        e->flags |= DW_EXEC_F_OVL_UPPER;
    if (is_memfd(fpath.dentry, s_magic))
        e->flags |= DW_EXEC_F_MEMFD;
    if (fpath.mnt == root.mnt)
        e->flags |= DW_EXEC_F_ON_ROOT_MNT;

    /* Enforcement first: the signal is pending before the new image runs an instruction. */
    __u32 *policy = bpf_map_lookup_elem(&dw_policy, &cgroup_id);
    if (policy) {
        e->flags |= DW_EXEC_F_IN_POLICY;
        bool drift = (e->flags & (DW_EXEC_F_OVL_UPPER | DW_EXEC_F_MEMFD)) ||
                     !(e->flags & DW_EXEC_F_ON_ROOT_MNT);
        bool in_host_mntns = cfg && cfg->host_mntns_ino && e->task.mntns_ino == cfg->host_mntns_ino;
        if (drift && !in_host_mntns && cfg && cfg->enforce && (*policy & DW_POLICY_F_ENFORCE)) {
            if (bpf_send_signal(DW_SIGKILL) == 0) {
                e->flags |= DW_EXEC_F_KILLED;
                stat_inc(DW_STAT_KILLS);
            }
        }
    }

    read_filename(e, bprm);
    resolve_path(e, &fpath, &root);
    read_argv(e, p);

    struct dw_exec_event *out = bpf_map_lookup_elem(&dw_packed, &zero);
    if (!out)
        return 0;
    /* Pack: fixed part, then the used bytes of filename, path and argv back to back. */
    __u32 fl = e->filename_len, pl = e->path_len, al = e->argv_len;
    /* Clamp, then re-check after a barrier so clang cannot fold the bound away from the
     * verifier's sight (the re-checks never fire). */
    if (fl > DW_FILENAME_MAX)
        fl = DW_FILENAME_MAX;
    if (pl > DW_PATH_MAX)
        pl = DW_PATH_MAX;
    if (al > DW_ARGV_MAX)
        al = DW_ARGV_MAX;
    barrier_var(fl);
    barrier_var(pl);
    barrier_var(al);
    if (fl > DW_FILENAME_MAX || pl > DW_PATH_MAX || al > DW_ARGV_MAX)
        return 0;
    __u32 fixed = offsetof(struct dw_exec_event, filename);
    __u8 *data = (__u8 *)out + fixed;
    __u64 size = fixed + fl + pl + al;
    e->hdr.len = size;
    bpf_probe_read_kernel(out, fixed, e);
    if (fl)
        bpf_probe_read_kernel(data, fl, e->filename);
    if (pl)
        bpf_probe_read_kernel(data + fl, pl, e->path);
    if (al)
        bpf_probe_read_kernel(data + fl + pl, al, e->argv);
    barrier_var(size);
    if (size > sizeof(*out))
        size = sizeof(*out);
    if (bpf_ringbuf_output(&dw_events, out, size, dw_wakeup_flags()) != 0)
        stat_inc(DW_STAT_RINGBUF_LOST_EXEC);
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(dw_fork, struct task_struct *parent, struct task_struct *child) {
    __u32 pid = BPF_CORE_READ(child, pid);
    __u32 tgid = BPF_CORE_READ(child, tgid);

    if (pid != tgid || is_agent(dw_get_config(), tgid))
        return 0;
    struct dw_fork_event *e = bpf_ringbuf_reserve(&dw_events, sizeof(*e), 0);
    if (!e) {
        stat_inc(DW_STAT_RINGBUF_LOST_FORK);
        return 0;
    }
    e->hdr.kind = DW_EV_FORK;
    e->hdr.version = DW_ABI_VERSION;
    e->hdr.len = sizeof(*e);
    e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_task(&e->child, child, task_cgroup_id(child));
    /* real_parent of a CLONE_PARENT child is not `parent`; the brief wants the forking tgid. */
    e->child.ppid = BPF_CORE_READ(parent, tgid);
    bpf_ringbuf_submit(e, dw_wakeup_flags());
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(dw_exit, struct task_struct *p) {
    __u32 pid = BPF_CORE_READ(p, pid);
    __u32 tgid = BPF_CORE_READ(p, tgid);

    if (pid != tgid || is_agent(dw_get_config(), tgid))
        return 0;
    struct dw_exit_event *e = bpf_ringbuf_reserve(&dw_events, sizeof(*e), 0);
    if (!e) {
        stat_inc(DW_STAT_RINGBUF_LOST_EXIT);
        return 0;
    }
    e->hdr.kind = DW_EV_EXIT;
    e->hdr.version = DW_ABI_VERSION;
    e->hdr.len = sizeof(*e);
    e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_task(&e->task, p, bpf_get_current_cgroup_id());
    e->exit_code = BPF_CORE_READ(p, exit_code);
    e->_pad0 = 0;
    bpf_ringbuf_submit(e, dw_wakeup_flags());
    return 0;
}
