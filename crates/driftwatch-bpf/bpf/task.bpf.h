/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch task helpers: struct dw_task from a task_struct, its cgroup and namespaces, the
 * filters that leave out the agent and the host (is_agent, in_host_mntns, map_task), an fd's
 * file, and strings and argv read from kernel and user memory. Included by exec.bpf.c.
 */
#ifndef DRIFTWATCH_TASK_BPF_H
#define DRIFTWATCH_TASK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"

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
    t->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
}

/* The cgroup v2 id of any task (bpf_get_current_cgroup_id() only covers current). */
static __always_inline __u64 task_cgroup_id(struct task_struct *task) {
    return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline bool in_host_mntns(struct dw_config *cfg, __u32 mntns_ino) {
    return cfg && cfg->host_mntns_ino && mntns_ino == cfg->host_mntns_ino;
}

/*
 * The first filter of every executable mapping, before its file is looked at: not the agent, not
 * in the host's mount namespace. Returns current, or NULL to ignore the mapping. The file and
 * exec-argument programs filter with it too.
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

#endif /* DRIFTWATCH_TASK_BPF_H */
