/* BPF-LSM, AF_UNIX: a managed task may connect or send to a unix socket only
 * if the peer's bound address is allowlisted (lil_unix_ok). Landlock does not
 * mediate connect() to pathname sockets and seccomp cannot read the address,
 * so without this an agent reaches /run/docker.sock, dbus or the enforcer's
 * own admin socket. The address checked is the one the peer bound (its
 * unix_address), so symlinks and relative paths in the connecting process
 * change nothing; peers without an address (socketpair) are not named and
 * pass. */
#include "ident.h"
#include "unixpolicy.h"

char LICENSE[] SEC("license") = "GPL";

/* 0 or -EPERM for a managed task reaching the unix socket `other`. */
static __always_inline int judge_peer(struct sock *other, __u32 hook)
{
	struct lilith_unix_key k = {};
	struct lilith_ident id = {};
	struct unix_address *a;
	bool named;
	__u32 reason;
	int len;

	if (!task_ident(&id))
		return 0;
	a = BPF_CORE_READ((struct unix_sock *)other, addr);
	if (!a)
		return 0;
	len = BPF_CORE_READ(a, len);
	named = unix_key(&k, (const char *)a + bpf_core_field_offset(struct unix_address, name) +
				     bpf_core_field_offset(struct sockaddr_un, sun_path),
			 len - (int)bpf_core_field_offset(struct sockaddr_un, sun_path));
	reason = unix_reason(&id, named ? &k : NULL);
	if (!reason)
		return 0;
	deny_unix_event(hook, reason, &id, named ? &k : NULL);
	return -EPERM;
}

SEC("lsm/unix_stream_connect")
int BPF_PROG(lil_unix_conn, struct sock *sock, struct sock *other, struct sock *newsk, int ret)
{
	if (ret)
		return ret;
	if (!other)
		return 0;
	return judge_peer(other, HOOK_UNIX_STREAM_CONNECT);
}

SEC("lsm/unix_may_send")
int BPF_PROG(lil_unix_send, struct socket *sock, struct socket *other, int ret)
{
	struct sock *sk;

	if (ret)
		return ret;
	if (!other)
		return 0;
	sk = BPF_CORE_READ(other, sk);
	if (!sk)
		return 0;
	return judge_peer(sk, HOOK_UNIX_MAY_SEND);
}
