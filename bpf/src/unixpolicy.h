/* The AF_UNIX verdict shared by the LSM unix hooks and the cgroup
 * connect_unix/sendmsg_unix programs: a managed task may reach a unix socket
 * only by an address in the allowlist (lil_unix_ok), and only while the
 * heartbeat is fresh and the task is classified. */
#ifndef LILITH_UNIXPOLICY_H
#define LILITH_UNIXPOLICY_H

#include "common.h"

#define AF_UNIX 1

/* Builds the allowlist key from a kernel copy of sun_path of n bytes (n is
 * the sockaddr length minus sun_family). Pathname: up to the first NUL
 * within n. Abstract (leading NUL): all n bytes. False when n is out of
 * range or the memory cannot be read. */
static __always_inline bool unix_key(struct lilith_unix_key *k, const char *sun_path, int n)
{
	char first = 0;
	long r;

	if (n < 1 || n > UNIX_PATH_MAX)
		return false;
	if (bpf_probe_read_kernel(&first, 1, sun_path))
		return false;
	if (first == 0) {
		if (bpf_probe_read_kernel(k->path, n & 0x7f, sun_path))
			return false;
		k->len = n;
		return true;
	}
	/* A string read of n + 1 stops at the first NUL or writes one at n:
	 * either way path holds exactly what the kernel takes as the name. */
	r = bpf_probe_read_kernel_str(k->path, (n + 1) & 0x7f, sun_path);
	if (r < 1)
		return false;
	k->len = r - 1;
	return true;
}

/* Denial event carrying the address (abstract names shown with a leading '@'). */
static __always_inline void deny_unix_event(__u32 hook, __u32 reason, const struct lilith_ident *id,
					    const struct lilith_unix_key *k)
{
	struct lilith_event *e = event_reserve(EV_DENY, hook, reason, id);

	if (!e)
		return;
	e->family = AF_UNIX;
	if (k) {
		__builtin_memcpy(e->path, k->path, sizeof(e->path) - 1);
		if (k->len && e->path[0] == 0)
			e->path[0] = '@';
	}
	bpf_ringbuf_submit(e, 0);
}

/* 0 (allowed) or the reason for denying a managed task's unix connect/send. */
static __always_inline __u32 unix_reason(const struct lilith_ident *id, const struct lilith_unix_key *k)
{
	struct lilith_config *cfg = lil_cfg();

	if (heartbeat_stale(cfg))
		return R_HEARTBEAT_STALE;
	if (!(id->flags & ID_CLASSIFIED))
		return R_UNCLASSIFIED;
	if (!k || !bpf_map_lookup_elem(&lil_unix_ok, k))
		return R_UNIX_PATH;
	return 0;
}

#endif
