/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch path walk: a (dentry, vfsmount) resolved to its path as a task sees it, by walking
 * d_parent up to the task's root and hopping mount roots to their mountpoints, in a bpf_loop()
 * callback. Names are written leaf first into a map value (see DW_NAME_MAX in maps.bpf.h).
 * Included by exec.bpf.c.
 */
#ifndef DRIFTWATCH_PATH_BPF_H
#define DRIFTWATCH_PATH_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"
#include "maps.bpf.h"

/* Mount crossings cost a loop iteration too: allow as many as there are components. */
#define DW_PATH_WALK_STEPS (2 * DW_PATH_MAX_COMPONENTS)

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

#endif /* DRIFTWATCH_PATH_BPF_H */
