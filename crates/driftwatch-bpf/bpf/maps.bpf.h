/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch sensor maps: the ring buffer, the per-CPU scratch records, the maps userspace writes
 * (dw_config, dw_policy, dw_allow, dw_doom) and reads (dw_stats, dw_exec_args), and the small
 * accessors every program uses (dw_get_config, scratch, stat_inc, dw_wakeup_flags,
 * dw_policy_has). Included by exec.bpf.c; there is one object, so every program shares them.
 */
#ifndef DRIFTWATCH_MAPS_BPF_H
#define DRIFTWATCH_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "abi.h"

/* The longest file name (the kernel's NAME_MAX): the path walk's bound per name. */
#define DW_NAME_MAX 255

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
    struct dw_net_event net;
    struct dw_dns_event dns;
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

static __always_inline void stat_inc(__u32 idx) {
    __u64 *v = bpf_map_lookup_elem(&dw_stats, &idx);
    if (v)
        *v += 1;
}

static __always_inline struct dw_config *dw_get_config(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&dw_config, &zero);
}

static __always_inline struct dw_scratch_value *scratch(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&dw_scratch, &zero);
}

/* Whether current's cgroup is a container the agent put in dw_policy. */
static __always_inline bool dw_policy_has(__u64 cgroup_id) {
    return bpf_map_lookup_elem(&dw_policy, &cgroup_id) != NULL;
}

#endif /* DRIFTWATCH_MAPS_BPF_H */
