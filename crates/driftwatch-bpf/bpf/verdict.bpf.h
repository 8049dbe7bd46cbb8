/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch verdict and policy: where an executed or mapped file's code comes from (overlay
 * upper layer, memfd, another mount), whether the agent allowed an upper-layer file (dw_allow) or
 * doomed a process (dw_doom), whether that is drift, and the policy decision with its in-kernel
 * SIGKILL. Included by exec.bpf.c.
 */
#ifndef DRIFTWATCH_VERDICT_BPF_H
#define DRIFTWATCH_VERDICT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "maps.bpf.h"
#include "inode.bpf.h"

#define DW_SIGKILL 9
#define DW_OVERLAYFS_SUPER_MAGIC 0x794c7630
#define DW_TMPFS_MAGIC 0x01021994
#define DW_HUGETLBFS_MAGIC 0x958458f6

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

#endif /* DRIFTWATCH_VERDICT_BPF_H */
