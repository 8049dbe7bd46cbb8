/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch file sensor, included by exec.bpf.c so that it shares its maps (maps.bpf.h:
 * dw_events, dw_config, dw_policy, dw_stats) and helpers (task.bpf.h: fill_task, map_task,
 * fd_file; inode.bpf.h: fill_file; path.bpf.h: resolve_path).
 *
 * Programs: dw_file_enter_open and dw_file_enter_openat on sys_enter_open/openat (the flags
 * straight from the context), dw_file_enter on sys_enter_<call> of every other file-changing
 * call (the x86_64 syscall number tells them apart), and dw_file_exit on sys_exit_<call> of all.
 * The enter program keeps the arguments of calls that matter (per thread, in dw_file_args); the
 * exit program turns them and the return value into a dw_file_event.
 *
 * Filters, cheapest first: the syscall number and, for opens, the flags (read-only opens end
 * here without a map lookup); then the agent's own tgid, the host's mount namespace and the
 * task's cgroup in dw_policy (containers the agent knows). Host activity never reaches the ring
 * buffer; the exit program only looks its thread up in dw_file_args.
 */
#ifndef DRIFTWATCH_FILE_BPF_H
#define DRIFTWATCH_FILE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "maps.bpf.h"
#include "inode.bpf.h"
#include "task.bpf.h"
#include "path.bpf.h"
#include "verdict.bpf.h"

#define DW_AT_FDCWD (-100)
#define DW_O_WRONLY 01
#define DW_O_RDWR 02
#define DW_O_CREAT 0100
#define DW_O_TRUNC 01000
#define DW_OPEN_WRITE_FLAGS (DW_O_WRONLY | DW_O_RDWR | DW_O_CREAT | DW_O_TRUNC)

/* x86_64 syscall numbers (the BPF object is built for __TARGET_ARCH_x86). */
#define DW_NR_open 2
#define DW_NR_rename 82
#define DW_NR_mkdir 83
#define DW_NR_rmdir 84
#define DW_NR_creat 85
#define DW_NR_link 86
#define DW_NR_unlink 87
#define DW_NR_symlink 88
#define DW_NR_chmod 90
#define DW_NR_fchmod 91
#define DW_NR_chown 92
#define DW_NR_fchown 93
#define DW_NR_lchown 94
#define DW_NR_openat 257
#define DW_NR_mkdirat 258
#define DW_NR_fchownat 260
#define DW_NR_unlinkat 263
#define DW_NR_renameat 264
#define DW_NR_linkat 265
#define DW_NR_symlinkat 266
#define DW_NR_fchmodat 268
#define DW_NR_renameat2 316
#define DW_NR_openat2 437

/* A file syscall's arguments, kept from its entry to its exit. */
struct dw_file_args {
    __u64 args[6];
    __u32 op_flags; /* open flags (openat2: read from struct open_how at entry) */
    __u32 mode;
    __u16 op;
    __u16 _pad[3];
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64); /* pid_tgid */
    __type(value, struct dw_file_args);
} dw_file_args SEC(".maps");

/* The packed file record is assembled here from the scratch record. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct dw_file_event);
} dw_file_packed SEC(".maps");

/* Maps a syscall number to its dw_file_op, 0 if not one of ours. */
static __always_inline __u16 file_op_of(long nr) {
    switch (nr) {
    case DW_NR_open:
        return DW_FILE_OP_OPEN;
    case DW_NR_openat:
        return DW_FILE_OP_OPENAT;
    case DW_NR_openat2:
        return DW_FILE_OP_OPENAT2;
    case DW_NR_creat:
        return DW_FILE_OP_CREAT;
    case DW_NR_unlink:
        return DW_FILE_OP_UNLINK;
    case DW_NR_unlinkat:
        return DW_FILE_OP_UNLINKAT;
    case DW_NR_rename:
        return DW_FILE_OP_RENAME;
    case DW_NR_renameat:
        return DW_FILE_OP_RENAMEAT;
    case DW_NR_renameat2:
        return DW_FILE_OP_RENAMEAT2;
    case DW_NR_link:
        return DW_FILE_OP_LINK;
    case DW_NR_linkat:
        return DW_FILE_OP_LINKAT;
    case DW_NR_symlink:
        return DW_FILE_OP_SYMLINK;
    case DW_NR_symlinkat:
        return DW_FILE_OP_SYMLINKAT;
    case DW_NR_chmod:
        return DW_FILE_OP_CHMOD;
    case DW_NR_fchmod:
        return DW_FILE_OP_FCHMOD;
    case DW_NR_fchmodat:
        return DW_FILE_OP_FCHMODAT;
    case DW_NR_chown:
        return DW_FILE_OP_CHOWN;
    case DW_NR_fchown:
        return DW_FILE_OP_FCHOWN;
    case DW_NR_lchown:
        return DW_FILE_OP_LCHOWN;
    case DW_NR_fchownat:
        return DW_FILE_OP_FCHOWNAT;
    case DW_NR_mkdir:
        return DW_FILE_OP_MKDIR;
    case DW_NR_mkdirat:
        return DW_FILE_OP_MKDIRAT;
    case DW_NR_rmdir:
        return DW_FILE_OP_RMDIR;
    default:
        return 0;
    }
}

/*
 * The filters every kept call passes, then its arguments kept for the exit program. Container
 * tasks only: out of the host's mount namespace, and in a cgroup the agent put in dw_policy (a
 * known container: services with private mounts are not containers).
 */
static __always_inline int file_enter_keep(struct trace_event_raw_sys_enter *ctx, __u16 op,
                                           __u32 op_flags, __u32 mode) {
    struct dw_config *cfg = dw_get_config();
    if (!map_task(cfg) || !dw_policy_has(bpf_get_current_cgroup_id()))
        return 0;
    /*
     * Calls have 1 to 5 arguments: a direct read of args[5] would make the kernel refuse to
     * attach the program to the shorter tracepoints (max_ctx_offset), so they are copied; the
     * ones a call does not have are never used.
     */
    struct dw_file_args a = {.op = op, .op_flags = op_flags, .mode = mode};
    if (bpf_probe_read_kernel(a.args, sizeof(a.args), (void *)ctx->args) != 0)
        return 0;
    __u64 key = bpf_get_current_pid_tgid();
    if (bpf_map_update_elem(&dw_file_args, &key, &a, BPF_ANY) != 0)
        stat_inc(DW_STAT_FILE_ARGS_FULL);
    return 0;
}

/*
 * open and openat, the hot ones (every program start opens libraries read-only): each has its
 * own program, attached to its own tracepoint only, so that the flags are a direct load from the
 * context and a read-only open costs nothing but that load and a test.
 */
SEC("tracepoint/syscalls/sys_enter_open")
int dw_file_enter_open(struct trace_event_raw_sys_enter *ctx) {
    __u32 flags = ctx->args[1]; /* open(filename, flags, mode) */

    if (!(flags & DW_OPEN_WRITE_FLAGS))
        return 0;
    return file_enter_keep(ctx, DW_FILE_OP_OPEN, flags, ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int dw_file_enter_openat(struct trace_event_raw_sys_enter *ctx) {
    __u32 flags = ctx->args[2]; /* openat(dfd, filename, flags, mode) */

    if (!(flags & DW_OPEN_WRITE_FLAGS))
        return 0;
    return file_enter_keep(ctx, DW_FILE_OP_OPENAT, flags, ctx->args[3]);
}

/* Every other file call (the syscall number tells which). */
SEC("tracepoint/syscalls/sys_enter_file")
int dw_file_enter(struct trace_event_raw_sys_enter *ctx) {
    __u16 op = file_op_of(ctx->id);
    __u32 op_flags = 0, mode = 0;

    switch (op) {
    case 0:
        return 0;
    case DW_FILE_OP_OPENAT2: {
        /* openat2(dfd, filename, struct open_how *how, size): flags and mode are in *how. */
        __u64 uhow = 0;
        __u64 how[2] = {}; /* struct open_how: flags, mode, resolve */
        if (bpf_probe_read_kernel(&uhow, sizeof(uhow), (void *)&ctx->args[2]) != 0 ||
            bpf_probe_read_user(how, sizeof(how), (void *)uhow) != 0)
            return 0;
        if (!(how[0] & DW_OPEN_WRITE_FLAGS))
            return 0;
        op_flags = how[0];
        mode = how[1];
        break;
    }
    case DW_FILE_OP_CREAT:
        op_flags = DW_O_CREAT | DW_O_WRONLY | DW_O_TRUNC;
        /* the mode (args[1]) is taken from the kept arguments at exit */
        break;
    default:
        break;
    }
    return file_enter_keep(ctx, op, op_flags, mode);
}

/*
 * Copies the user string at src into buf (DW_PATH_MAX bytes) and returns its length without the
 * NUL; *truncated when it did not fit.
 */
static __always_inline __u16 read_ustr(__u8 *buf, const char *src, bool *truncated) {
    long n = bpf_probe_read_user_str(buf, DW_PATH_MAX, src);

    if (n <= 0)
        return 0;
    if (n == DW_PATH_MAX) {
        char next = 0;
        bpf_probe_read_user(&next, 1, src + DW_PATH_MAX - 1);
        if (next != 0) {
            *truncated = true;
            return DW_PATH_MAX - 1;
        }
    }
    return n - 1;
}

/*
 * The directory a relative name is relative to: dirfd's file, or the working directory for
 * AT_FDCWD, walked into buf. Returns 0, or DW_FILE_F_DIR*_INCOMPLETE in `incomplete` when the walk
 * did not reach the task's root (or dirfd is not open).
 */
static __always_inline __u32 resolve_dir(__u8 *buf, struct task_struct *task, int dirfd,
                                         struct path *root, __u16 *len, __u16 *components,
                                         __u32 incomplete) {
    struct path dir = {};

    *len = 0;
    *components = 0;
    if (dirfd == DW_AT_FDCWD) {
        BPF_CORE_READ_INTO(&dir, task, fs, pwd);
    } else {
        struct file *f = fd_file(task, dirfd);
        if (!f)
            return incomplete;
        BPF_CORE_READ_INTO(&dir, f, f_path);
    }
    if (!dir.dentry || !dir.mnt)
        return incomplete;
    __u32 fl = resolve_path(buf, dir.dentry, dir.mnt, root, len, components, 1, 2);
    return fl ? incomplete : 0;
}

/* Where to find each argument of an op (-1: absent). */
struct file_argmap {
    __s8 name1;
    __s8 dir1;
    __s8 name2;
    __s8 dir2;
    __s8 fd;
    __s8 mode;
    __s8 uid;
    __s8 gid;
    __s8 flags;
    bool resolve1; /* name1 is a path to resolve (not a symlink target) */
};

static __always_inline struct file_argmap file_argmap_of(__u16 op) {
    struct file_argmap m = {-1, -1, -1, -1, -1, -1, -1, -1, -1, true};
    switch (op) {
    case DW_FILE_OP_OPEN:
    case DW_FILE_OP_CREAT:
        m.name1 = 0;
        break;
    case DW_FILE_OP_OPENAT:
    case DW_FILE_OP_OPENAT2:
        m.dir1 = 0;
        m.name1 = 1;
        break;
    case DW_FILE_OP_UNLINK:
    case DW_FILE_OP_RMDIR:
        m.name1 = 0;
        break;
    case DW_FILE_OP_UNLINKAT:
        m.dir1 = 0;
        m.name1 = 1;
        m.flags = 2;
        break;
    case DW_FILE_OP_RENAME:
    case DW_FILE_OP_LINK:
        m.name1 = 0;
        m.name2 = 1;
        break;
    case DW_FILE_OP_RENAMEAT:
    case DW_FILE_OP_RENAMEAT2:
    case DW_FILE_OP_LINKAT:
        m.dir1 = 0;
        m.name1 = 1;
        m.dir2 = 2;
        m.name2 = 3;
        if (op != DW_FILE_OP_RENAMEAT)
            m.flags = 4;
        break;
    case DW_FILE_OP_SYMLINK:
        m.name1 = 0;
        m.name2 = 1;
        m.resolve1 = false;
        break;
    case DW_FILE_OP_SYMLINKAT:
        m.name1 = 0;
        m.dir2 = 1;
        m.name2 = 2;
        m.resolve1 = false;
        break;
    case DW_FILE_OP_CHMOD:
    case DW_FILE_OP_MKDIR:
        m.name1 = 0;
        m.mode = 1;
        break;
    case DW_FILE_OP_FCHMOD:
        m.fd = 0;
        m.mode = 1;
        break;
    case DW_FILE_OP_FCHMODAT:
    case DW_FILE_OP_MKDIRAT:
        m.dir1 = 0;
        m.name1 = 1;
        m.mode = 2;
        break;
    case DW_FILE_OP_CHOWN:
    case DW_FILE_OP_LCHOWN:
        m.name1 = 0;
        m.uid = 1;
        m.gid = 2;
        break;
    case DW_FILE_OP_FCHOWN:
        m.fd = 0;
        m.uid = 1;
        m.gid = 2;
        break;
    case DW_FILE_OP_FCHOWNAT:
        m.dir1 = 0;
        m.name1 = 1;
        m.uid = 2;
        m.gid = 3;
        m.flags = 4;
        break;
    default:
        break;
    }
    return m;
}

static __always_inline __u64 arg_at(struct dw_file_args *a, __s8 i) {
    if (i < 0 || i > 5)
        return 0;
    return a->args[i & 7];
}

/* Identity, layer and path of a file the kernel resolved (an opened fd). */
static __always_inline __u32 file_facts(struct dw_file_event *e, struct file *file,
                                        struct path *root) {
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    struct path fpath = {};
    BPF_CORE_READ_INTO(&fpath, file, f_path);
    if (!inode || !fpath.dentry || !fpath.mnt)
        return 0;
    __u64 s_magic = BPF_CORE_READ(inode, i_sb, s_magic);
    fill_file(&e->file, inode, s_magic, BPF_CORE_READ(inode, __i_nlink));
    __u32 flags = DW_FILE_F_HAVE_FILE;
    if (s_magic == DW_OVERLAYFS_SUPER_MAGIC) {
        struct ovl_inode *oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
        flags |= DW_FILE_F_OVERLAY;
        if (BPF_CORE_READ(oi, __upperdentry))
            flags |= DW_FILE_F_OVL_UPPER;
        if (bpf_core_field_exists(oi->oe)) {
            struct ovl_entry *oe = BPF_CORE_READ(oi, oe);
            if (oe && BPF_CORE_READ(oe, __numlower) > 0)
                flags |= DW_FILE_F_OVL_LOWER;
        }
    }
    if (fpath.mnt == root->mnt)
        flags |= DW_FILE_F_ON_ROOT_MNT;
    flags |= resolve_path(e->path, fpath.dentry, fpath.mnt, root, &e->path_len, &e->path_components,
                          DW_FILE_F_PATH_TRUNCATED, DW_FILE_F_PATH_OUTSIDE_ROOT);
    return flags;
}

SEC("tracepoint/syscalls/sys_exit_file")
int dw_file_exit(struct trace_event_raw_sys_exit *ctx) {
    __u64 key = bpf_get_current_pid_tgid();
    struct dw_file_args *found = bpf_map_lookup_elem(&dw_file_args, &key);

    if (!found)
        return 0;
    struct dw_file_args a = *found;
    bpf_map_delete_elem(&dw_file_args, &key);

    struct dw_scratch_value *s = scratch();
    if (!s)
        return 0;
    struct dw_file_event *e = &s->ev.file;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    __u64 cgroup_id = bpf_get_current_cgroup_id();
    struct file_argmap m = file_argmap_of(a.op);
    struct path root = {};
    long ret = ctx->ret;
    __u32 flags = 0;

    BPF_CORE_READ_INTO(&root, task, fs, root);
    e->hdr.kind = DW_EV_FILE;
    e->hdr.version = DW_ABI_VERSION;
    e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
    fill_task(&e->task, task, cgroup_id);
    __builtin_memset(&e->file, 0, sizeof(e->file));
    e->ret = ret;
    e->op = a.op;
    e->op_flags = a.op <= DW_FILE_OP_CREAT ? a.op_flags : (__u32)arg_at(&a, m.flags);
    e->mode = a.op == DW_FILE_OP_CREAT   ? (__u32)a.args[1]
              : a.op <= DW_FILE_OP_CREAT ? a.mode
                                         : (__u32)arg_at(&a, m.mode);
    e->uid = m.uid >= 0 ? (__u32)arg_at(&a, m.uid) : (__u32)-1;
    e->gid = m.gid >= 0 ? (__u32)arg_at(&a, m.gid) : (__u32)-1;
    e->fd = m.fd >= 0 ? (__s32)arg_at(&a, m.fd) : -1;
    e->dirfd1 = m.dir1 >= 0 ? (__s32)arg_at(&a, m.dir1) : DW_AT_FDCWD;
    e->dirfd2 = m.dir2 >= 0 ? (__s32)arg_at(&a, m.dir2) : DW_AT_FDCWD;
    e->path_len = 0;
    e->path_components = 0;
    e->name1_len = 0;
    e->dir1_len = 0;
    e->dir1_components = 0;
    e->name2_len = 0;
    e->dir2_len = 0;
    e->dir2_components = 0;
    e->_pad0 = 0;
    e->_pad1 = 0;

    if (dw_policy_has(cgroup_id))
        flags |= DW_FILE_F_IN_POLICY;

    /* The file itself, when the kernel has it: the new fd of an open, the fd of fchmod/fchown. */
    struct file *file = NULL;
    if (a.op <= DW_FILE_OP_CREAT && ret >= 0)
        file = fd_file(task, (int)ret);
    else if (m.fd >= 0)
        file = fd_file(task, e->fd);
    if (file)
        flags |= file_facts(e, file, &root);

    /* Path arguments, unless the open already gave the file. */
    if (!(a.op <= DW_FILE_OP_CREAT && (flags & DW_FILE_F_HAVE_FILE))) {
        bool truncated = false;
        if (m.name1 >= 0) {
            const char *n1 = (const char *)arg_at(&a, m.name1);
            e->name1_len = read_ustr(e->name1, n1, &truncated);
            if (truncated)
                flags |= DW_FILE_F_NAME1_TRUNCATED;
            if (m.resolve1 && (e->name1_len == 0 || e->name1[0] != '/'))
                flags |= resolve_dir(e->dir1, task, e->dirfd1, &root, &e->dir1_len,
                                     &e->dir1_components, DW_FILE_F_DIR1_INCOMPLETE);
        }
        if (m.name2 >= 0) {
            truncated = false;
            const char *n2 = (const char *)arg_at(&a, m.name2);
            e->name2_len = read_ustr(e->name2, n2, &truncated);
            if (truncated)
                flags |= DW_FILE_F_NAME2_TRUNCATED;
            if (e->name2_len == 0 || e->name2[0] != '/')
                flags |= resolve_dir(e->dir2, task, e->dirfd2, &root, &e->dir2_len,
                                     &e->dir2_components, DW_FILE_F_DIR2_INCOMPLETE);
        }
    }
    e->flags = flags;

    __u32 zero = 0;
    struct dw_file_event *out = bpf_map_lookup_elem(&dw_file_packed, &zero);
    if (!out)
        return 0;
    __u32 pl = e->path_len, n1 = e->name1_len, d1 = e->dir1_len, n2 = e->name2_len,
          d2 = e->dir2_len;
    if (pl > DW_PATH_MAX)
        pl = DW_PATH_MAX;
    if (n1 > DW_PATH_MAX)
        n1 = DW_PATH_MAX;
    if (d1 > DW_PATH_MAX)
        d1 = DW_PATH_MAX;
    if (n2 > DW_PATH_MAX)
        n2 = DW_PATH_MAX;
    if (d2 > DW_PATH_MAX)
        d2 = DW_PATH_MAX;
    barrier_var(pl);
    barrier_var(n1);
    barrier_var(d1);
    barrier_var(n2);
    barrier_var(d2);
    if (pl > DW_PATH_MAX || n1 > DW_PATH_MAX || d1 > DW_PATH_MAX || n2 > DW_PATH_MAX ||
        d2 > DW_PATH_MAX)
        return 0;
    __u32 fixed = offsetof(struct dw_file_event, path);
    __u8 *data = (__u8 *)out + fixed;
    __u64 size = fixed + pl + n1 + d1 + n2 + d2;
    e->hdr.len = size;
    bpf_probe_read_kernel(out, fixed, e);
    if (pl)
        bpf_probe_read_kernel(data, pl, e->path);
    data += pl;
    if (n1)
        bpf_probe_read_kernel(data, n1, e->name1);
    data += n1;
    if (d1)
        bpf_probe_read_kernel(data, d1, e->dir1);
    data += d1;
    if (n2)
        bpf_probe_read_kernel(data, n2, e->name2);
    data += n2;
    if (d2)
        bpf_probe_read_kernel(data, d2, e->dir2);
    barrier_var(size);
    if (size > sizeof(*out))
        size = sizeof(*out);
    if (bpf_ringbuf_output(&dw_events, out, size, dw_wakeup_flags()) != 0)
        stat_inc(DW_STAT_RINGBUF_LOST_FILE);
    return 0;
}

#endif /* DRIFTWATCH_FILE_BPF_H */
