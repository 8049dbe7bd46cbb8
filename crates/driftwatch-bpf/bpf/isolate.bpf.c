// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * driftwatch isolation: cut one container's network at the node, in the kernel, without a CNI.
 *
 * A separate object from exec.bpf.c: isolation must outlive the agent (and be made or undone by
 * the CLI with no agent running), so its programs are attached by bpf links pinned in bpffs,
 * and its one map is pinned too. The sensor's programs go with the agent (fail-open); these
 * stay until released or expired. It uses no kernel type (only the uapi contexts), so it needs
 * no CO-RE relocation and loads without parsing the kernel's BTF.
 *
 * Attached to the container's own cgroup v2 directory only (so nobody else pays for them):
 *  - cgroup_skb/egress and cgroup_skb/ingress drop (return 0) every packet of the cgroup's
 *    sockets, established connections included (a socket carries the cgroup of the task that
 *    made it), except packets on the loopback device (ifindex 1 in every network namespace)
 *    or with both ends loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104), and IPv6 neighbour
 *    discovery;
 *  - cgroup/connect4|6 and cgroup/sendmsg4|6 refuse (return 0: EPERM) every connect and every
 *    datagram with a destination, except to loopback or the unspecified address.
 *
 * dw_isolated (pinned: cgroup id -> since/until in boot-time ns, until 0 = no end) holds the
 * TTL in the kernel: a cgroup whose entry has expired passes everything, with or without an
 * agent. A task in a cgroup below the isolated one (a nested cgroup) is judged by its
 * ancestors' entries. A task with no entry at all is isolated (fail closed: the programs run
 * only under an isolated cgroup, and userspace writes the entry before it attaches the links
 * and removes it after it has detached them).
 */
/* The uapi contexts only, read as they are: no CO-RE relocation (see above). */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define DW_ISO_MAX_ENTRIES 4096
/* cgroup levels looked at for a nested task (the root is level 0) */
#define DW_ISO_MAX_LEVEL 16
#define DW_ISO_LOOPBACK_IFINDEX 1
#define DW_ISO_ETH_P_IP 0x0800
#define DW_ISO_ETH_P_IPV6 0x86DD

/* The value of dw_isolated; userspace (driftwatch_bpf::isolate) mirrors it: 16 bytes. */
struct dw_isolation {
    __u64 since_ns; /* boot-time ns */
    __u64 until_ns; /* boot-time ns; 0 = until released */
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, DW_ISO_MAX_ENTRIES);
    __type(key, __u64);
    __type(value, struct dw_isolation);
    __uint(pinning, LIBBPF_PIN_BY_NAME);
} dw_isolated SEC(".maps");

enum dw_iso_state { DW_ISO_NONE = 0, DW_ISO_EXPIRED = 1, DW_ISO_IN_FORCE = 2 };

static __always_inline enum dw_iso_state iso_state(__u64 cgroup_id) {
    struct dw_isolation *v = bpf_map_lookup_elem(&dw_isolated, &cgroup_id);
    if (!v)
        return DW_ISO_NONE;
    __u64 until = v->until_ns;
    if (until == 0 || bpf_ktime_get_boot_ns() < until)
        return DW_ISO_IN_FORCE;
    return DW_ISO_EXPIRED;
}

/*
 * Whether isolation is in force for a task or socket of cgroup `own`: its own entry, else
 * (a nested cgroup) any ancestor's in force; no entry anywhere is in force (fail closed: these
 * programs run only under an isolated cgroup). `ancestor(level)` is the helper for the context.
 */
#define ISO_IN_FORCE(own, ancestor)                                                                \
    ({                                                                                             \
        enum dw_iso_state st = iso_state(own);                                                     \
        bool force = st == DW_ISO_IN_FORCE;                                                        \
        if (st == DW_ISO_NONE) {                                                                   \
            bool seen = false;                                                                     \
            for (int level = 1; level < DW_ISO_MAX_LEVEL; level++) {                               \
                __u64 a = ancestor(level);                                                         \
                if (a == 0 || a == (own))                                                          \
                    break;                                                                         \
                enum dw_iso_state s = iso_state(a);                                                \
                if (s == DW_ISO_IN_FORCE) {                                                        \
                    force = true;                                                                  \
                    break;                                                                         \
                }                                                                                  \
                if (s == DW_ISO_EXPIRED)                                                           \
                    seen = true;                                                                   \
            }                                                                                      \
            if (!force && !seen)                                                                   \
                force = true;                                                                      \
        }                                                                                          \
        force;                                                                                     \
    })

static __always_inline bool v4_loopback(__u32 be) {
    return (bpf_ntohl(be) >> 24) == 127;
}

static __always_inline bool v6_loopback(const __u32 a[4]) {
    if (a[0] != 0 || a[1] != 0)
        return false;
    if (a[2] == 0)
        return a[3] == bpf_htonl(1);
    return a[2] == bpf_htonl(0xffff) && v4_loopback(a[3]);
}

#define DW_ISO_IPPROTO_ICMPV6 58
#define DW_ISO_ND_FIRST 133 /* router solicitation */
#define DW_ISO_ND_LAST 137  /* redirect */

/*
 * An IPv6 neighbour discovery message (ICMPv6 133-137, no extension header: RFC 4861 sends
 * them bare). The network namespace's own ND socket belongs to the cgroup that made the
 * namespace, the container's: dropping its solicitations and advertisements would leave the
 * neighbours' caches failed for seconds after a release. They carry no data; IPv4's ARP does not
 * pass here at all.
 */
static __always_inline bool skb_neighbour_discovery(struct __sk_buff *skb) {
    if (skb->protocol != bpf_htons(DW_ISO_ETH_P_IPV6))
        return false;
    __u8 next = 0, type = 0;
    if (bpf_skb_load_bytes(skb, 6, &next, 1) != 0 || next != DW_ISO_IPPROTO_ICMPV6)
        return false;
    if (bpf_skb_load_bytes(skb, 40, &type, 1) != 0)
        return false;
    return type >= DW_ISO_ND_FIRST && type <= DW_ISO_ND_LAST;
}

/* Both ends of the packet are loopback addresses (the device is not lo: checked first). */
static __always_inline bool skb_loopback(struct __sk_buff *skb) {
    if (skb->protocol == bpf_htons(DW_ISO_ETH_P_IP)) {
        __u32 addrs[2]; /* saddr, daddr: bytes 12..20 of the IPv4 header */
        if (bpf_skb_load_bytes(skb, 12, addrs, sizeof(addrs)) != 0)
            return false;
        return v4_loopback(addrs[0]) && v4_loopback(addrs[1]);
    }
    if (skb->protocol == bpf_htons(DW_ISO_ETH_P_IPV6)) {
        __u32 addrs[8]; /* saddr, daddr: bytes 8..40 of the IPv6 header */
        if (bpf_skb_load_bytes(skb, 8, addrs, sizeof(addrs)) != 0)
            return false;
        return v6_loopback(&addrs[0]) && v6_loopback(&addrs[4]);
    }
    return false;
}

static __always_inline __u64 skb_ancestor(struct __sk_buff *skb, int level) {
    return bpf_skb_ancestor_cgroup_id(skb, level);
}

static __always_inline int iso_skb(struct __sk_buff *skb) {
    if (skb->ifindex == DW_ISO_LOOPBACK_IFINDEX || skb_loopback(skb) ||
        skb_neighbour_discovery(skb))
        return 1;
    __u64 own = bpf_skb_cgroup_id(skb);
#define SKB_ANCESTOR(level) skb_ancestor(skb, level)
    bool force = ISO_IN_FORCE(own, SKB_ANCESTOR);
#undef SKB_ANCESTOR
    return force ? 0 : 1;
}

SEC("cgroup_skb/egress")
int dw_iso_egress(struct __sk_buff *skb) {
    return iso_skb(skb);
}

SEC("cgroup_skb/ingress")
int dw_iso_ingress(struct __sk_buff *skb) {
    return iso_skb(skb);
}

/* The destination is this host: loopback or unspecified (which the kernel routes here). */
static __always_inline bool dest_local4(struct bpf_sock_addr *ctx) {
    __u32 ip4 = ctx->user_ip4;
    return ip4 == 0 || v4_loopback(ip4);
}

static __always_inline bool dest_local6(struct bpf_sock_addr *ctx) {
    __u32 ip6[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
    if (ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 && ip6[3] == 0)
        return true;
    if (ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff) && ip6[3] == 0)
        return true;
    return v6_loopback(ip6);
}

static __always_inline int iso_sock_addr(bool local) {
    if (local)
        return 1;
    __u64 own = bpf_get_current_cgroup_id();
    bool force = ISO_IN_FORCE(own, bpf_get_current_ancestor_cgroup_id);
    return force ? 0 : 1;
}

SEC("cgroup/connect4")
int dw_iso_connect4(struct bpf_sock_addr *ctx) {
    return iso_sock_addr(dest_local4(ctx));
}

SEC("cgroup/connect6")
int dw_iso_connect6(struct bpf_sock_addr *ctx) {
    return iso_sock_addr(dest_local6(ctx));
}

SEC("cgroup/sendmsg4")
int dw_iso_sendmsg4(struct bpf_sock_addr *ctx) {
    return iso_sock_addr(dest_local4(ctx));
}

SEC("cgroup/sendmsg6")
int dw_iso_sendmsg6(struct bpf_sock_addr *ctx) {
    return iso_sock_addr(dest_local6(ctx));
}
