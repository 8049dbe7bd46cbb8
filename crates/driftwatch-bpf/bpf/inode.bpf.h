/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch file identity: struct dw_file_id from an inode (number, device, links, size, mode,
 * filesystem magic and the ctime/mtime, read through the CO-RE flavours of the kernel's three
 * timestamp layouts). Included by exec.bpf.c.
 */
#ifndef DRIFTWATCH_INODE_BPF_H
#define DRIFTWATCH_INODE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "abi.h"

/* Multigrain timestamps (6.13+) keep a flag in the top bit of i_ctime_nsec. */
#define DW_NSEC_MASK 0x3fffffff

/* Kernel layouts that differ from the vmlinux.h we build against (CO-RE flavours). */
struct inode___pre66 { /* < 6.6 */
    struct timespec64 i_ctime;
    struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

struct inode___pre611 { /* 6.6 .. 6.10 */
    struct timespec64 __i_ctime;
    struct timespec64 __i_mtime;
} __attribute__((preserve_access_index));

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

#endif /* DRIFTWATCH_INODE_BPF_H */
