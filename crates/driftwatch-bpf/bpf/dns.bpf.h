/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * driftwatch DNS answers, included by exec.bpf.c so that it shares its maps (maps.bpf.h:
 * dw_events, dw_policy, dw_stats).
 *
 * dw_dns_ingress (cgroup_skb/ingress, a bpf link at the root of the cgroup v2 hierarchy) sees
 * every packet delivered to a local socket, before the socket queues it. It keeps a copy of the
 * UDP payload of datagrams from source port 53 whose receiving socket's cgroup is TRACKED in
 * dw_policy: the DNS answers a container received, from which the agent learns the names of the
 * addresses the container connects to (fd.sip.name). Never a lookup by the agent.
 *
 * Filters, cheapest first: the packet's protocol (a context field), one bpf_skb_load_bytes of
 * the IP and UDP headers (IPv4 with or without options; IPv6 without extension headers: the
 * next header must be UDP), the source port, then the socket's cgroup in dw_policy. Host
 * packets stop at one of the first three. DNS over TCP is not seen (out of scope).
 *
 * It always returns 1: it never drops a packet.
 */
#ifndef DRIFTWATCH_DNS_BPF_H
#define DRIFTWATCH_DNS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"
#include "maps.bpf.h"

#define DW_DNS_ETH_P_IP 0x0800
#define DW_DNS_ETH_P_IPV6 0x86DD
#define DW_DNS_IPPROTO_UDP 17
#define DW_DNS_PORT 53
#define DW_DNS_AF_INET 2
#define DW_DNS_AF_INET6 10
/* A DNS message starts with a 12-byte header: anything shorter is not one. */
#define DW_DNS_HEADER_LEN 12

/* The IP header (IPv4 without options, or IPv6) and the UDP header after it, as loaded. */
struct dw_dns_v4 {
    __u8 ip[20];
    __u8 udp[8];
};

struct dw_dns_v6 {
    __u8 ip[40];
    __u8 udp[8];
};

/* What the headers said. */
struct dw_dns_pkt {
    __u8 saddr[16];
    __u8 daddr[16];
    __u32 payload_off;
    __u32 udp_len; /* the UDP header's length field */
    __u16 family;
    __u16 sport;
    __u16 dport;
};

static __always_inline __u16 dw_dns_be16(const __u8 *b) {
    return ((__u16)b[0] << 8) | b[1];
}

/* 1: a UDP datagram from port 53 (p filled); 0: anything else. */
static __always_inline int dw_dns_parse(struct __sk_buff *skb, struct dw_dns_pkt *p) {
    const __u8 *udp;

    if (skb->protocol == bpf_htons(DW_DNS_ETH_P_IP)) {
        struct dw_dns_v4 h;
        if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) != 0)
            return 0;
        if (h.ip[9] != DW_DNS_IPPROTO_UDP)
            return 0;
        /* fragments are reassembled before a socket sees them: MF or an offset is not ours */
        if ((h.ip[6] & 0x3f) != 0 || h.ip[7] != 0)
            return 0;
        __u32 ihl = (h.ip[0] & 0xf) * 4;
        if (ihl < 20)
            return 0;
        if (ihl != 20 && bpf_skb_load_bytes(skb, ihl, h.udp, sizeof(h.udp)) != 0)
            return 0;
        if (dw_dns_be16(h.udp) != DW_DNS_PORT)
            return 0;
        __builtin_memset(p, 0, sizeof(*p));
        __builtin_memcpy(p->saddr, &h.ip[12], 4);
        __builtin_memcpy(p->daddr, &h.ip[16], 4);
        p->payload_off = ihl + 8;
        p->family = DW_DNS_AF_INET;
        udp = h.udp;
        p->sport = dw_dns_be16(udp);
        p->dport = dw_dns_be16(udp + 2);
        p->udp_len = dw_dns_be16(udp + 4);
        return 1;
    }
    if (skb->protocol == bpf_htons(DW_DNS_ETH_P_IPV6)) {
        struct dw_dns_v6 h;
        if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) != 0)
            return 0;
        /* no extension headers: the next header is UDP */
        if (h.ip[6] != DW_DNS_IPPROTO_UDP)
            return 0;
        if (dw_dns_be16(h.udp) != DW_DNS_PORT)
            return 0;
        __builtin_memcpy(p->saddr, &h.ip[8], 16);
        __builtin_memcpy(p->daddr, &h.ip[24], 16);
        p->payload_off = 48;
        p->family = DW_DNS_AF_INET6;
        udp = h.udp;
        p->sport = dw_dns_be16(udp);
        p->dport = dw_dns_be16(udp + 2);
        p->udp_len = dw_dns_be16(udp + 4);
        return 1;
    }
    return 0;
}

SEC("cgroup_skb/ingress")
int dw_dns_ingress(struct __sk_buff *skb) {
    struct dw_dns_pkt p;

    if (!dw_dns_parse(skb, &p))
        return 1;
    __u64 cgroup_id = bpf_skb_cgroup_id(skb);
    __u32 *policy = bpf_map_lookup_elem(&dw_policy, &cgroup_id);
    if (!policy || !(*policy & DW_POLICY_F_TRACKED))
        return 1;

    __u64 payload_off = p.payload_off;
    __u64 skb_len = skb->len;
    if (p.udp_len < 8 || skb_len < payload_off)
        return 1;
    __u64 udp_len = p.udp_len - 8;
    /* what the packet really holds, whatever the UDP header says */
    __u64 avail = skb_len - payload_off;
    __u64 n = udp_len < avail ? udp_len : avail;
    if (n < DW_DNS_HEADER_LEN)
        return 1;
    __u32 flags = 0;
    if (n > DW_DNS_PAYLOAD_MAX) {
        n = DW_DNS_PAYLOAD_MAX;
        flags |= DW_DNS_F_TRUNCATED;
    }

    struct dw_dns_event *e = bpf_ringbuf_reserve(&dw_events, sizeof(*e), 0);
    if (!e) {
        stat_inc(DW_STAT_RINGBUF_LOST_DNS);
        return 1;
    }
    /* the bounds checked in the register the helper gets: 1 <= n <= DW_DNS_PAYLOAD_MAX */
    barrier_var(n);
    if (n < 1 || n > DW_DNS_PAYLOAD_MAX || bpf_skb_load_bytes(skb, payload_off, e->payload, n)) {
        bpf_ringbuf_discard(e, 0);
        return 1;
    }
    e->hdr.kind = DW_EV_DNS;
    e->hdr.version = DW_ABI_VERSION;
    e->hdr.len = offsetof(struct dw_dns_event, payload) + n;
    e->hdr.ktime_ns = bpf_ktime_get_boot_ns();
    e->cgroup_id = cgroup_id;
    e->family = p.family;
    e->sport = p.sport;
    e->dport = p.dport;
    e->payload_len = n;
    e->flags = flags;
    e->udp_len = udp_len;
    __builtin_memcpy(e->saddr, p.saddr, sizeof(e->saddr));
    __builtin_memcpy(e->daddr, p.daddr, sizeof(e->daddr));
    bpf_ringbuf_submit(e, dw_wakeup_flags());
    return 1;
}

#endif /* DRIFTWATCH_DNS_BPF_H */
