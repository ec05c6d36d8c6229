/* cgroup sock_addr programs for AF_UNIX (Linux >= 6.7): connect_unix and
 * sendmsg_unix deny a managed task's connect/sendto to a unix address that is
 * not allowlisted. This is the cgroup-only mode's answer to the admin-socket
 * escape (BPF-LSM mode uses lsm_unix instead). It sees the address the caller
 * passed, before the kernel resolves it: a relative path or a symlink does
 * not match an allowlist entry and is denied (fail closed).
 *
 * Debian's libbpf 1.1 does not know these section names: the loader sets the
 * program type (CGROUP_SOCK_ADDR) and attach type (BPF_CGROUP_UNIX_CONNECT /
 * _SENDMSG) by number before load (bpf/programs.ts). */
#include "unixpolicy.h"

char LICENSE[] SEC("license") = "GPL";

#define ALLOW 1
#define REFUSE 0

extern void *bpf_cast_to_kern_ctx(void *) __ksym;

static __always_inline int judge(struct bpf_sock_addr *ctx, __u32 hook)
{
	struct bpf_sock_addr_kern *kctx;
	struct lilith_unix_key k = {};
	struct lilith_ident id;
	struct sockaddr *ua;
	bool named;
	__u32 reason;
	int len;

	if (!cgroup_ident(&id))
		return ALLOW;
	kctx = bpf_cast_to_kern_ctx(ctx);
	ua = kctx->uaddr;
	len = kctx->uaddrlen;
	named = ua && unix_key(&k, (const char *)ua + 2, len - 2);
	reason = unix_reason(&id, named ? &k : NULL);
	if (!reason)
		return ALLOW;
	deny_unix_event(hook, reason, &id, named ? &k : NULL);
	return REFUSE;
}

SEC("cgroup/connect_unix")
int lil_conn_unix(struct bpf_sock_addr *ctx)
{
	return judge(ctx, HOOK_CONNECT_UNIX);
}

SEC("cgroup/sendmsg_unix")
int lil_send_unix(struct bpf_sock_addr *ctx)
{
	return judge(ctx, HOOK_SENDMSG_UNIX);
}
