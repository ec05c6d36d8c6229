/* Helpers shared by every Lilith program: config, heartbeat, managed-cgroup
 * ancestry, events, address helpers. */
#ifndef LILITH_COMMON_H
#define LILITH_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"

/* uapi macros vmlinux.h does not carry. */
#define EPERM 1
#define AF_UNSPEC 0
#define AF_INET 2
#define AF_INET6 10
#define AF_PACKET 17
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define PROT_WRITE 0x2
#define PROT_EXEC 0x4
#define MSG_FASTOPEN 0x20000000
#define DNS_PORT 53
#define IPPROTO_ICMPV6 58

/* Deepest cgroup level checked for a managed ancestor. */
#define MAX_CGROUP_LEVEL 16

static __always_inline struct lilith_config *lil_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&lil_config, &zero);
}

/* Fail closed: no config, no heartbeat, or a heartbeat older than the TTL. */
static __always_inline bool heartbeat_stale(const struct lilith_config *cfg)
{
	__u32 zero = 0;
	__u64 *hb, now;

	if (!cfg || !cfg->hb_ttl_ns)
		return true;
	hb = bpf_map_lookup_elem(&lil_heartbeat, &zero);
	if (!hb || !*hb)
		return true;
	now = bpf_ktime_get_ns();
	return now > *hb && now - *hb > cfg->hb_ttl_ns;
}

/* Whether the cgroup redirection covers the current task (the cgroup programs
 * run for tasks in the subtree they are attached to, and only those). */
static __always_inline bool intercepted(const struct lilith_config *cfg)
{
	if (!(cfg->flags & CFG_INTERCEPT))
		return false;
	return bpf_get_current_ancestor_cgroup_id(cfg->intercept_level) == cfg->intercept_cgid;
}

/* Identity of the current task's managed cgroup (nearest managed ancestor
 * wins), or false when no ancestor is managed. */
static __always_inline bool cgroup_ident(struct lilith_ident *out)
{
	struct lilith_ident *found = NULL, *v;
	__u64 id;
	int lvl;

	for (lvl = 1; lvl <= MAX_CGROUP_LEVEL; lvl++) {
		id = bpf_get_current_ancestor_cgroup_id(lvl);
		if (!id)
			break;
		v = bpf_map_lookup_elem(&lil_cgroups, &id);
		if (v)
			found = v;
	}
	if (!found)
		return false;
	out->identity = found->identity;
	out->flags = found->flags | ID_MANAGED;
	if (out->identity)
		out->flags |= ID_CLASSIFIED;
	return true;
}

/* Whether a managed task of identity `identity` may exec or map PROT_EXEC the
 * inode `k` (pad 0): allowlisted for everyone, for its identity, or a
 * registered agent binary. Unclassified tasks (identity 0) get the shared list only. */
static __always_inline bool exec_allowed(const struct lilith_inode_key *k, __u32 identity)
{
	struct lilith_inode_key ik = *k;

	if (bpf_map_lookup_elem(&lil_exec_ok, k) || bpf_map_lookup_elem(&lil_exec_reg, k))
		return true;
	if (!identity)
		return false;
	ik.pad = identity;
	return bpf_map_lookup_elem(&lil_exec_id, &ik) != NULL;
}

/* Common fields of an event; callers fill the rest. */
static __always_inline struct lilith_event *event_reserve(__u32 kind, __u32 hook, __u32 reason,
							 const struct lilith_ident *id)
{
	struct lilith_event *e = bpf_ringbuf_reserve(&lil_events, sizeof(*e), 0);
	__u64 pt, ug;

	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	pt = bpf_get_current_pid_tgid();
	ug = bpf_get_current_uid_gid();
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->kind = kind;
	e->hook = hook;
	e->reason = reason;
	e->pid = (__u32)pt;
	e->tgid = pt >> 32;
	e->uid = (__u32)ug;
	e->gid = ug >> 32;
	if (id) {
		e->identity = id->identity;
		e->flags = id->flags;
	}
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

/* Denial with an optional destination; returns -EPERM for the LSM hooks. */
static __always_inline int deny_addr(__u32 hook, __u32 reason, const struct lilith_ident *id,
				     __u16 family, const __u8 *addr16, __u16 port)
{
	struct lilith_event *e = event_reserve(EV_DENY, hook, reason, id);

	if (e) {
		e->family = family;
		e->port = port;
		if (addr16)
			__builtin_memcpy(e->addr, addr16, 16);
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

static __always_inline int deny(__u32 hook, __u32 reason, const struct lilith_ident *id)
{
	return deny_addr(hook, reason, id, 0, NULL, 0);
}

/* 16-byte address helpers (IPv4 is handled as ::ffff:a.b.c.d). */
static __always_inline void v4_mapped(__u8 *out16, __u32 addr_be)
{
	__builtin_memset(out16, 0, 10);
	out16[10] = 0xff;
	out16[11] = 0xff;
	__builtin_memcpy(out16 + 12, &addr_be, 4);
}

static __always_inline bool is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline bool addr6_eq(const __u32 *a, const __u8 *b16)
{
	__u32 b[4];

	__builtin_memcpy(b, b16, 16);
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

#endif
