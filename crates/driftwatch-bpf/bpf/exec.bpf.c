// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * driftwatch process sensor: exec / fork / exit of thread-group leaders, with the identity of
 * the executed file, its path as the process sees it, and in-kernel SIGKILL of drifted execs in
 * cgroups whose dw_policy entry says ENFORCE. Executable file mappings (mmap / mprotect with
 * PROT_EXEC) in containers get the same verdict: only suspicious ones are reported (and killed
 * under enforce), so the image's libraries cost the program and never a record.
 *
 * This file holds the programs. The maps are in maps.bpf.h, the helpers they share in
 * inode.bpf.h (file identity), task.bpf.h (task fields and filters), path.bpf.h (the path walk)
 * and verdict.bpf.h (verdict and policy). File-changing syscalls of container tasks are in
 * file.bpf.h, network syscalls in net.bpf.h, the DNS answers containers receive in dns.bpf.h
 * (all included at the end: one object, shared maps).
 *
 * Records are laid out as in abi.h; userspace decodes them with driftwatch-abi.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "maps.bpf.h"
#include "inode.bpf.h"
#include "task.bpf.h"
#include "path.bpf.h"
#include "verdict.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define DW_PROT_EXEC 0x4
#define DW_MAP_ANONYMOUS 0x20
#define DW_PAGE_SHIFT 12

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
#include "net.bpf.h"
#include "dns.bpf.h"
