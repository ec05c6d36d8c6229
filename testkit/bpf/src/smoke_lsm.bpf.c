// SPDX-License-Identifier: GPL-2.0
// VM smoke test program: a BPF-LSM socket_connect hook that denies connect() with EPERM for
// tasks whose cgroup id is in smoke_managed. Proves the kernel runs BPF-LSM programs the
// project builds; the real enforcement programs live in their own files.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EPERM 1

// cgroup id → 1; a handful of test cgroups at most.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} smoke_managed SEC(".maps");

// [0] connects seen from managed cgroups (denied), [1] all connects seen: lets the test tell
// "hook never ran" (bpf not in the LSM list) from "hook ran and allowed".
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} smoke_hits SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&smoke_hits, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("lsm/socket_connect")
int BPF_PROG(smoke_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	__u64 cgid;

	// Never override an earlier LSM's denial.
	if (ret)
		return ret;
	count(1);
	cgid = bpf_get_current_cgroup_id();
	if (!bpf_map_lookup_elem(&smoke_managed, &cgid))
		return 0;
	count(0);
	return -EPERM;
}

char LICENSE[] SEC("license") = "GPL";
