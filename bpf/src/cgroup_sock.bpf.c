/* cgroup sock_create: managed tasks get no raw or ICMP sockets (and no
 * configured-denied inet family) even without BPF-LSM. The kernel runs this
 * hook for AF_INET/AF_INET6 only; AF_PACKET needs the LSM hook or the absence
 * of CAP_NET_RAW. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

SEC("cgroup/sock_create")
int lil_cg_sock(struct bpf_sock *sk)
{
	struct lilith_ident id;
	__u32 reason = 0;

	if (!cgroup_ident(&id))
		return 1;
	if (sk->type == SOCK_RAW)
		reason = R_RAW;
	else if (sk->protocol == IPPROTO_ICMP || sk->protocol == IPPROTO_ICMPV6)
		reason = R_ICMP;
	if (!reason)
		return 1;
	deny_addr(HOOK_CG_SOCK_CREATE, reason, &id, sk->family, NULL, 0);
	return 0;
}
