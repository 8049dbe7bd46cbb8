// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * driftwatch process sensor: exec / fork / exit of thread-group leaders, with the identity of
 * the executed file, its path as the process sees it, and in-kernel SIGKILL of drifted execs in
 * cgroups whose dw_policy entry says ENFORCE. Executable file mappings (mmap / mprotect with
 * PROT_EXEC) in containers get the same verdict: only suspicious ones are reported (and killed
 * under enforce), so the image's libraries cost the program and never a record.
 *
 * File-changing syscalls of container tasks are in file.bpf.h (included at the end: one object,
 * shared maps).
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
#define DW_PROT_EXEC 0x4
#define DW_MAP_ANONYMOUS 0x20
#define DW_PAGE_SHIFT 12

/*
 * One scratch record per CPU: too big for the 512-byte BPF stack. Its value type holds a union of
 * every ABI record so that all of them are in the object's BTF (the abi_layout test reads it),
 * and room for one more name: the path walk writes a name at an offset the verifier only knows
 * to be below DW_PATH_MAX, and exec's cwd is the last array of the record.
 */
union dw_any_event {
    struct dw_exec_event exec;
    struct dw_fork_event fork;
    struct dw_exit_event exit;
    struct dw_map_event map;
    struct dw_file_event file;
};

struct dw_scratch_value {
    union dw_any_event ev;
    __u8 slack[DW_NAME_MAX + 1];
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
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct dw_allow_key);
    __type(value, struct dw_allow_value);
} dw_allow SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, __u64);
} dw_doom SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, struct dw_exec_args);
} dw_exec_args SEC(".maps");

/* The record dw_exec_args entries are assembled in (too big for the stack). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct dw_exec_args);
} dw_exec_args_scratch SEC(".maps");

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
    __type(value, struct dw_scratch_value);
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

static __always_inline void fill_times(struct dw_file_id *f, struct inode *inode) {
    if (bpf_core_field_exists(inode->i_ctime_sec)) {
        f->ctime_sec = BPF_CORE_READ(inode, i_ctime_sec);
        f->ctime_nsec = BPF_CORE_READ(inode, i_ctime_nsec) & DW_NSEC_MASK;
        f->mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
        f->mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec) & DW_NSEC_MASK;
    } else if (bpf_core_field_exists(((struct inode___pre611 *)inode)->__i_ctime)) {
        struct inode___pre611 *i = (void *)inode;
        f->ctime_sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
        f->ctime_nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
        /* 6.6 renamed only i_ctime; i_mtime became __i_mtime in 6.7. */
        if (bpf_core_field_exists(i->__i_mtime)) {
            f->mtime_sec = BPF_CORE_READ(i, __i_mtime.tv_sec);
            f->mtime_nsec = BPF_CORE_READ(i, __i_mtime.tv_nsec);
        } else {
            struct inode___pre66 *o = (void *)inode;
            f->mtime_sec = BPF_CORE_READ(o, i_mtime.tv_sec);
            f->mtime_nsec = BPF_CORE_READ(o, i_mtime.tv_nsec);
        }
    } else {
        struct inode___pre66 *o = (void *)inode;
        f->ctime_sec = BPF_CORE_READ(o, i_ctime.tv_sec);
        f->ctime_nsec = BPF_CORE_READ(o, i_ctime.tv_nsec);
        f->mtime_sec = BPF_CORE_READ(o, i_mtime.tv_sec);
        f->mtime_nsec = BPF_CORE_READ(o, i_mtime.tv_nsec);
    }
}

/* The identity of a file; s_magic and nlink are passed in, the caller has read them already. */
static __always_inline void fill_file(struct dw_file_id *f, struct inode *inode, __u64 s_magic,
                                      __u32 nlink) {
    f->ino = BPF_CORE_READ(inode, i_ino);
    f->dev = BPF_CORE_READ(inode, i_sb, s_dev);
    f->nlink = nlink;
    f->size = BPF_CORE_READ(inode, i_size);
    f->mode = BPF_CORE_READ(inode, i_mode);
    f->s_magic = s_magic;
    f->_pad0 = 0;
    fill_times(f, inode);
}

/*
 * Path walk state. `buf` is a DW_PATH_MAX array in a map value followed by at least
 * DW_NAME_MAX + 1 more bytes of the value (the verifier only sees the masked bounds below).
 */
struct path_walk {
    __u8 *buf;
    struct dentry *dentry;
    struct vfsmount *vfsmnt;
    struct dentry *root_dentry;
    struct vfsmount *root_mnt;
    __u32 off;
    __u32 components;
    bool done;
    bool truncated;
    bool outside;
};

/* Appends one dentry name plus NUL at w->off; false (and truncated) if it does not fit. */
static __always_inline bool path_push(struct path_walk *w, struct dentry *d) {
    __u32 len = BPF_CORE_READ(d, d_name.len);
    const unsigned char *name = BPF_CORE_READ(d, d_name.name);
    __u8 *buf = w->buf;
    __u32 o = w->off;

    if (len == 0 || len > DW_NAME_MAX || o + len + 1 > DW_PATH_MAX) {
        w->truncated = true;
        return false;
    }
    /*
     * The masks only convince the verifier (o < DW_PATH_MAX, len <= DW_NAME_MAX keeps the write
     * inside the map value); the check above is what keeps it inside the array.
     */
    o &= DW_PATH_MAX - 1;
    len &= DW_NAME_MAX;
    if (bpf_probe_read_kernel(&buf[o], len, name) != 0) {
        w->truncated = true;
        return false;
    }
    o = (o + len) & (DW_PATH_MAX - 1);
    buf[o] = 0;
    w->off = o + 1;
    w->components++;
    return true;
}

/*
 * One step of the walk, as a bpf_loop() callback: the verifier checks the body once instead of
 * once per iteration (an unrolled or bounded-loop walk blows the 1M instruction budget).
 * Returns 1 to stop.
 */
static long path_walk_step(__u32 index, struct path_walk *w) {
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
            w->outside = true;
            w->done = true;
            return 1;
        }
        w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
        w->vfsmnt = (struct vfsmount *)__builtin_preserve_access_index(&mnt_parent->mnt);
        return 0;
    }
    if (dentry == parent) {
        /* Disconnected dentry (memfd, deleted root): keep its name, stop here. */
        path_push(w, dentry);
        w->outside = true;
        w->done = true;
        return 1;
    }
    if (w->components >= DW_PATH_MAX_COMPONENTS || !path_push(w, dentry)) {
        w->truncated = true;
        w->done = true;
        return 1;
    }
    w->dentry = parent;
    return 0;
}

/*
 * Resolves (dentry, mnt) as the task sees it into buf: walk d_parent up to the task's root,
 * hopping to the mountpoint in the parent mount at each mount root. Leaf first, NUL after each
 * name. Returns f_truncated / f_outside (flag bits of the caller's record) as they apply.
 */
static __always_inline __u32 resolve_path(__u8 *buf, struct dentry *dentry, struct vfsmount *mnt,
                                          struct path *root, __u16 *len, __u16 *components,
                                          __u32 f_truncated, __u32 f_outside) {
    struct path_walk w = {
        .buf = buf,
        .dentry = dentry,
        .vfsmnt = mnt,
        .root_dentry = root->dentry,
        .root_mnt = root->mnt,
    };
    __u32 flags = 0;

    bpf_loop(DW_PATH_WALK_STEPS, path_walk_step, &w, 0);
    if (!w.done || w.truncated)
        flags |= f_truncated;
    if (w.outside)
        flags |= f_outside;
    *len = w.off;
    *components = w.components;
    return flags;
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

/* Where a file's code comes from, as DW_EXEC_F_OVL_UPPER | _MEMFD | _ON_ROOT_MNT. */
static __always_inline __u32 file_verdict(struct inode *inode, __u64 s_magic, struct path *fpath,
                                          struct vfsmount *root_mnt) {
    __u32 flags = 0;

    if (s_magic == DW_OVERLAYFS_SUPER_MAGIC && ovl_has_upper(inode))
        flags |= DW_EXEC_F_OVL_UPPER;
    if (is_memfd(fpath->dentry, s_magic))
        flags |= DW_EXEC_F_MEMFD;
    if (fpath->mnt == root_mnt)
        flags |= DW_EXEC_F_ON_ROOT_MNT;
    return flags;
}

/*
 * An upper-layer file the agent judged to hold unchanged image bytes (dw_allow), with the upper
 * inode's ctime unchanged since. Only asked for overlay files with an upper dentry.
 */
static __always_inline bool upper_allowed(struct inode *inode) {
    struct ovl_inode *oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
    struct dentry *upper = BPF_CORE_READ(oi, __upperdentry);
    struct inode *ui = BPF_CORE_READ(upper, d_inode);
    if (!ui)
        return false;
    struct dw_allow_key key = {
        .dev = BPF_CORE_READ(ui, i_sb, s_dev),
        .ino = BPF_CORE_READ(ui, i_ino),
    };
    struct dw_allow_value *v = bpf_map_lookup_elem(&dw_allow, &key);
    if (!v)
        return false;
    struct dw_file_id times = {};
    fill_times(&times, ui);
    return times.ctime_sec == v->ctime_sec && times.ctime_nsec == v->ctime_nsec;
}

/* DW_EXEC_F_ALLOWED for an upper-layer file on the task's root mount that dw_allow lets run. */
static __always_inline __u32 allowed_flag(struct inode *inode, __u32 flags) {
    if ((flags & (DW_EXEC_F_OVL_UPPER | DW_EXEC_F_MEMFD | DW_EXEC_F_ON_ROOT_MNT)) ==
            (DW_EXEC_F_OVL_UPPER | DW_EXEC_F_ON_ROOT_MNT) &&
        upper_allowed(inode))
        return DW_EXEC_F_ALLOWED;
    return 0;
}

/* True (and the entry consumed) if the exec gate named this process within DW_DOOM_TTL_NS. */
static __always_inline bool doomed(__u32 tgid) {
    __u64 *at = bpf_map_lookup_elem(&dw_doom, &tgid);
    if (!at)
        return false;
    bool fresh = bpf_ktime_get_boot_ns() - *at < DW_DOOM_TTL_NS;
    bpf_map_delete_elem(&dw_doom, &tgid);
    return fresh;
}

/* Code that is not the image's: written in the container, in memory, or on another mount. */
static __always_inline bool is_drift(__u32 flags) {
    if (flags & DW_EXEC_F_ALLOWED)
        return false;
    return (flags & (DW_EXEC_F_OVL_UPPER | DW_EXEC_F_MEMFD)) || !(flags & DW_EXEC_F_ON_ROOT_MNT);
}

static __always_inline bool in_host_mntns(struct dw_config *cfg, __u32 mntns_ino) {
    return cfg && cfg->host_mntns_ino && mntns_ino == cfg->host_mntns_ino;
}

/*
 * The policy decision for current: DW_EXEC_F_IN_POLICY if its cgroup is in dw_policy, plus
 * DW_EXEC_F_KILLED if `drift` in an ENFORCE cgroup, enforcement on, not in the host's mount
 * namespace, and SIGKILL was sent (pending before current returns to user space).
 */
static __always_inline __u32 apply_policy(struct dw_config *cfg, __u64 cgroup_id, bool drift,
                                          bool host) {
    __u32 *policy = bpf_map_lookup_elem(&dw_policy, &cgroup_id);
    __u32 flags;

    if (!policy)
        return 0;
    flags = DW_EXEC_F_IN_POLICY;
    if (drift && !host && cfg && cfg->enforce && (*policy & DW_POLICY_F_ENFORCE)) {
        if (bpf_send_signal(DW_SIGKILL) == 0) {
            flags |= DW_EXEC_F_KILLED;
            stat_inc(DW_STAT_KILLS);
        }
    }
    return flags;
}

/*
 * Copies the kernel string src into buf (size bytes, a constant after inlining) and returns its
 * length without the NUL; *truncated if it did not fit (then the length is size - 1).
 */
static __always_inline __u16 read_kstr(__u8 *buf, __u32 size, const char *src, bool *truncated) {
    long n = bpf_probe_read_kernel_str(buf, size, src);

    if (n <= 0)
        return 0;
    if (n == size) {
        /* Filled the buffer: truncated unless the string ends exactly there. */
        char next = 0;
        bpf_probe_read_kernel(&next, 1, src + size - 1);
        if (next != 0) {
            *truncated = true;
            return size - 1;
        }
    }
    return n - 1; /* without the NUL */
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

static __always_inline struct dw_scratch_value *scratch(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&dw_scratch, &zero);
}

/* What an executable-mapping syscall asked for. */
struct map_req {
    __u64 addr;
    __u64 len;
    __u64 off;
    __u32 prot;
    __u32 map_flags;
    __u16 how;
};

/*
 * The first filter of every executable mapping, before its file is looked at: not the agent, not
 * in the host's mount namespace. Returns current, or NULL to ignore the mapping.
 */
static __always_inline struct task_struct *map_task(struct dw_config *cfg) {
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;

    if (is_agent(cfg, tgid))
        return NULL;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    if (in_host_mntns(cfg, BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum)))
        return NULL;
    return task;
}

/* Whether current's cgroup is a container the agent put in dw_policy. */
static __always_inline bool dw_policy_has(__u64 cgroup_id) {
    return bpf_map_lookup_elem(&dw_policy, &cgroup_id) != NULL;
}

/*
 * The verdict on a file current maps executable; a record (and, under enforce, SIGKILL) only if
 * it is suspicious. Image files end here after a dozen reads.
 */
static __always_inline void handle_map(struct dw_config *cfg, struct task_struct *task,
                                       struct file *file, struct map_req *req) {
    if (!file)
        return;
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    struct path fpath = {}, root = {};
    BPF_CORE_READ_INTO(&fpath, file, f_path);
    /*
     * A vma of an overlay file holds overlayfs' backing file (the upper or lower layer's file on
     * an internal mount): judge the file the task opened, the backing file's user_path.
     */
    __u32 fmode_backing = cfg ? cfg->fmode_backing : 0;
    if (fmode_backing && (BPF_CORE_READ(file, f_mode) & fmode_backing) &&
        bpf_core_type_exists(struct backing_file)) {
        struct backing_file *bf = container_of(file, struct backing_file, file);
        struct path user = {};
        BPF_CORE_READ_INTO(&user, bf, user_path);
        if (user.dentry && user.mnt) {
            fpath = user;
            inode = BPF_CORE_READ(user.dentry, d_inode);
        }
    }
    BPF_CORE_READ_INTO(&root, task, fs, root);
    __u64 s_magic = BPF_CORE_READ(inode, i_sb, s_magic);
    __u32 nlink = BPF_CORE_READ(inode, __i_nlink);
    __u32 flags = file_verdict(inode, s_magic, &fpath, root.mnt);
    flags |= allowed_flag(inode, flags);

    if (!is_drift(flags) && nlink != 0)
        return;

    __u64 cgroup_id = bpf_get_current_cgroup_id();
    /* map_task() already left out the host's mount namespace. */
    flags |= apply_policy(cfg, cgroup_id, true, false);

    struct dw_scratch_value *s = scratch();
    if (!s)
        return;
    struct dw_map_event *m = &s->ev.map;
    m->hdr.kind = DW_EV_MAP;
    m->hdr.version = DW_ABI_VERSION;
    m->hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_task(&m->task, task, cgroup_id);
    fill_file(&m->file, inode, s_magic, nlink);
    m->prot = req->prot;
    m->map_flags = req->map_flags;
    m->how = req->how;
    m->_pad0 = 0;
    m->_pad1 = 0;
    m->addr = req->addr;
    m->len = req->len;
    m->off = req->off;
    flags |=
        resolve_path(m->path, fpath.dentry, fpath.mnt, &root, &m->path_len, &m->path_components,
                     DW_EXEC_F_PATH_TRUNCATED, DW_EXEC_F_PATH_OUTSIDE_ROOT);
    m->flags = flags;

    /* The path is the last array: the scratch record is already packed. */
    __u32 pl = m->path_len;
    if (pl > DW_PATH_MAX)
        pl = DW_PATH_MAX;
    barrier_var(pl);
    if (pl > DW_PATH_MAX)
        return;
    __u64 size = offsetof(struct dw_map_event, path) + pl;
    m->hdr.len = size;
    if (bpf_ringbuf_output(&dw_events, m, size, dw_wakeup_flags()) != 0)
        stat_inc(DW_STAT_RINGBUF_LOST_MAP);
}

/* current->files->fdt->fd[fd], or NULL. */
static __always_inline struct file *fd_file(struct task_struct *task, int fd) {
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = NULL;

    if (fd < 0 || (unsigned int)fd >= max_fds)
        return NULL;
    bpf_core_read(&file, sizeof(file), &fds[fd]);
    return file;
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int dw_mmap(struct trace_event_raw_sys_enter *ctx) {
    __u64 prot = ctx->args[2];
    __u64 map_flags = ctx->args[3];
    int fd = (int)ctx->args[4];

    if (!(prot & DW_PROT_EXEC) || (map_flags & DW_MAP_ANONYMOUS) || fd < 0)
        return 0;
    struct dw_config *cfg = dw_get_config();
    struct task_struct *task = map_task(cfg);
    if (!task)
        return 0;
    struct map_req req = {
        .addr = ctx->args[0],
        .len = ctx->args[1],
        .off = ctx->args[5],
        .prot = prot,
        .map_flags = map_flags,
        .how = DW_MAP_HOW_MMAP,
    };
    handle_map(cfg, task, fd_file(task, fd), &req);
    return 0;
}

struct vma_lookup {
    __u64 addr;
    struct file *file;
    __u64 off;
};

/* bpf_find_vma() callback (mmap lock held): the file and file offset of the vma at addr. */
static long vma_file(struct task_struct *task, struct vm_area_struct *vma, struct vma_lookup *l) {
    __u64 start = BPF_CORE_READ(vma, vm_start);

    /* find_vma() returns the first vma ending above addr, which may start above it too. */
    if (start > l->addr)
        return 0;
    l->file = BPF_CORE_READ(vma, vm_file);
    l->off = (BPF_CORE_READ(vma, vm_pgoff) << DW_PAGE_SHIFT) + (l->addr - start);
    return 0;
}

/* mprotect(2) and pkey_mprotect(2) share their first three arguments. */
static __always_inline int handle_mprotect(struct trace_event_raw_sys_enter *ctx) {
    __u64 prot = ctx->args[2];

    if (!(prot & DW_PROT_EXEC))
        return 0;
    struct dw_config *cfg = dw_get_config();
    struct task_struct *task = map_task(cfg);
    if (!task)
        return 0;
    struct vma_lookup l = {.addr = ctx->args[0]};
    /* Anonymous memory (JIT) has no file: out of scope. */
    bpf_find_vma(bpf_get_current_task_btf(), l.addr, vma_file, &l, 0);
    if (!l.file)
        return 0;
    struct map_req req = {
        .addr = l.addr,
        .len = ctx->args[1],
        .off = l.off,
        .prot = prot,
        .map_flags = 0,
        .how = DW_MAP_HOW_MPROTECT,
    };
    handle_map(cfg, task, l.file, &req);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_mprotect")
int dw_mprotect(struct trace_event_raw_sys_enter *ctx) {
    return handle_mprotect(ctx);
}

SEC("tracepoint/syscalls/sys_enter_pkey_mprotect")
int dw_pkey_mprotect(struct trace_event_raw_sys_enter *ctx) {
    return handle_mprotect(ctx);
}

/* The auxiliary vector's AT_NULL and AT_BASE (the ELF interpreter's load address). */
#define DW_AT_NULL 0
#define DW_AT_BASE 7
#define DW_AUXV_PAIRS 24

/*
 * The ELF interpreter (PT_INTERP) of the program current just exec'd: the kernel opened and
 * mapped it itself (no mmap syscall), so it is judged here, from the file mapped at AT_BASE,
 * before it runs an instruction. A drifted dynamic loader named by an image program would
 * otherwise run unseen.
 */
static __always_inline void check_interp(struct dw_config *cfg, struct task_struct *task) {
    struct mm_struct *mm = BPF_CORE_READ(task, mm);
    __u64 base = 0;

    for (int i = 0; i < DW_AUXV_PAIRS; i++) {
        __u64 pair[2] = {};
        if (bpf_core_read(pair, sizeof(pair), &mm->saved_auxv[2 * i]) != 0 || pair[0] == DW_AT_NULL)
            break;
        if (pair[0] == DW_AT_BASE) {
            base = pair[1];
            break;
        }
    }
    if (!base)
        return; /* a static program */
    struct vma_lookup l = {.addr = base};
    bpf_find_vma(bpf_get_current_task_btf(), base, vma_file, &l, 0);
    if (!l.file)
        return;
    struct map_req req = {
        .addr = base,
        .len = 0,
        .off = l.off,
        .prot = DW_PROT_EXEC,
        .map_flags = 0,
        .how = DW_MAP_HOW_INTERP,
    };
    handle_map(cfg, task, l.file, &req);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(dw_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) {
    struct dw_config *cfg = dw_get_config();
    __u32 zero = 0;
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;

    if (is_agent(cfg, tgid))
        return 0;
    struct dw_scratch_value *s = scratch();
    if (!s)
        return 0;
    struct dw_exec_event *e = &s->ev.exec;
    __u64 cgroup_id = bpf_get_current_cgroup_id();

    e->hdr.kind = DW_EV_EXEC;
    e->hdr.version = DW_ABI_VERSION;
    e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_task(&e->task, p, cgroup_id);
    e->old_pid = old_pid;
    e->_pad1 = 0;

    struct file *file = BPF_CORE_READ(bprm, file);
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    struct path fpath = {}, root = {};
    BPF_CORE_READ_INTO(&fpath, file, f_path);
    BPF_CORE_READ_INTO(&root, p, fs, root);

    __u64 s_magic = BPF_CORE_READ(inode, i_sb, s_magic);
    fill_file(&e->exe, inode, s_magic, BPF_CORE_READ(inode, __i_nlink));
    e->flags = file_verdict(inode, s_magic, &fpath, root.mnt);
    e->flags |= allowed_flag(inode, e->flags);

    /* Enforcement first: the signal is pending before the new image runs an instruction. */
    bool host = in_host_mntns(cfg, e->task.mntns_ino);
    bool drift = is_drift(e->flags);
    if (!host && doomed(tgid)) {
        drift = true;
        e->flags |= DW_EXEC_F_DOOMED;
    }
    e->flags |= apply_policy(cfg, cgroup_id, drift, host);

    bool truncated = false;
    const char *filename = BPF_CORE_READ(bprm, filename);
    e->filename_len = read_kstr(e->filename, DW_FILENAME_MAX, filename, &truncated);
    if (truncated)
        e->flags |= DW_EXEC_F_FILENAME_TRUNCATED;
    /* bprm->interp starts as bprm->filename; only bprm_change_interp() (binfmt_script,
     * binfmt_misc) points it elsewhere. */
    const char *interp = BPF_CORE_READ(bprm, interp);
    e->interp_len = 0;
    if (interp && interp != filename) {
        e->flags |= DW_EXEC_F_SCRIPT;
        truncated = false;
        e->interp_len = read_kstr(e->interp, DW_INTERP_MAX, interp, &truncated);
        if (truncated)
            e->flags |= DW_EXEC_F_INTERP_TRUNCATED;
    }
    e->flags |=
        resolve_path(e->path, fpath.dentry, fpath.mnt, &root, &e->path_len, &e->path_components,
                     DW_EXEC_F_PATH_TRUNCATED, DW_EXEC_F_PATH_OUTSIDE_ROOT);
    read_argv(e, p);
    /* The working directory resolves relative script paths; host execs do not need it. */
    e->cwd_len = 0;
    e->cwd_components = 0;
    if (!host) {
        struct path pwd = {};
        BPF_CORE_READ_INTO(&pwd, p, fs, pwd);
        e->flags |=
            resolve_path(e->cwd, pwd.dentry, pwd.mnt, &root, &e->cwd_len, &e->cwd_components,
                         DW_EXEC_F_CWD_TRUNCATED, DW_EXEC_F_CWD_OUTSIDE_ROOT);
    }

    struct dw_exec_event *out = bpf_map_lookup_elem(&dw_packed, &zero);
    if (!out)
        return 0;
    /* Pack: fixed part, then the used bytes of the five arrays back to back. */
    __u32 fl = e->filename_len, il = e->interp_len, pl = e->path_len, al = e->argv_len,
          cl = e->cwd_len;
    /* Clamp, then re-check after a barrier so clang cannot fold the bound away from the
     * verifier's sight (the re-checks never fire). */
    if (fl > DW_FILENAME_MAX)
        fl = DW_FILENAME_MAX;
    if (il > DW_INTERP_MAX)
        il = DW_INTERP_MAX;
    if (pl > DW_PATH_MAX)
        pl = DW_PATH_MAX;
    if (al > DW_ARGV_MAX)
        al = DW_ARGV_MAX;
    if (cl > DW_CWD_MAX)
        cl = DW_CWD_MAX;
    barrier_var(fl);
    barrier_var(il);
    barrier_var(pl);
    barrier_var(al);
    barrier_var(cl);
    if (fl > DW_FILENAME_MAX || il > DW_INTERP_MAX || pl > DW_PATH_MAX || al > DW_ARGV_MAX ||
        cl > DW_CWD_MAX)
        return 0;
    __u32 fixed = offsetof(struct dw_exec_event, filename);
    __u8 *data = (__u8 *)out + fixed;
    __u64 size = fixed + fl + il + pl + al + cl;
    e->hdr.len = size;
    bpf_probe_read_kernel(out, fixed, e);
    if (fl)
        bpf_probe_read_kernel(data, fl, e->filename);
    data += fl;
    if (il)
        bpf_probe_read_kernel(data, il, e->interp);
    data += il;
    if (pl)
        bpf_probe_read_kernel(data, pl, e->path);
    data += pl;
    if (al)
        bpf_probe_read_kernel(data, al, e->argv);
    data += al;
    if (cl)
        bpf_probe_read_kernel(data, cl, e->cwd);
    barrier_var(size);
    if (size > sizeof(*out))
        size = sizeof(*out);
    if (bpf_ringbuf_output(&dw_events, out, size, dw_wakeup_flags()) != 0)
        stat_inc(DW_STAT_RINGBUF_LOST_EXEC);
    /* After the exec record, so userspace knows the process when the interpreter's comes. */
    if (!host)
        check_interp(cfg, p);
    return 0;
}

/*
 * execve / execveat entry of a task in an enforced container: keep its argv for the exec gate
 * (see dw_exec_args in abi.h). Everything else returns after the policy lookup.
 */
static __always_inline int keep_exec_args(const char *const *argv) {
    struct dw_config *cfg = dw_get_config();
    if (!cfg || !cfg->enforce)
        return 0;
    struct task_struct *task = map_task(cfg);
    if (!task)
        return 0;
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    __u32 *policy = bpf_map_lookup_elem(&dw_policy, &cgroup_id);
    if (!policy || !(*policy & DW_POLICY_F_ENFORCE))
        return 0;
    __u32 zero = 0;
    struct dw_exec_args *a = bpf_map_lookup_elem(&dw_exec_args_scratch, &zero);
    if (!a)
        return 0;
    a->ktime_ns = bpf_ktime_get_boot_ns();
    a->argc = 0;
    a->truncated = 0;
    for (int i = 0; i < DW_EXEC_ARGS_MAX; i++) {
        const char *arg = NULL;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) != 0 || !arg)
            break;
        long n = bpf_probe_read_user_str(a->args[i], DW_EXEC_ARG_LEN, arg);
        if (n < 0)
            break;
        if (n == DW_EXEC_ARG_LEN)
            a->truncated = 1;
        a->argc = i + 1;
        if (i == DW_EXEC_ARGS_MAX - 1) {
            const char *more = NULL;
            if (bpf_probe_read_user(&more, sizeof(more), &argv[i + 1]) == 0 && more)
                a->truncated = 1;
        }
    }
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    bpf_map_update_elem(&dw_exec_args, &tgid, a, BPF_ANY);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int dw_execve_args(struct trace_event_raw_sys_enter *ctx) {
    return keep_exec_args((const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int dw_execveat_args(struct trace_event_raw_sys_enter *ctx) {
    return keep_exec_args((const char *const *)ctx->args[2]);
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

#include "file.bpf.h"
