/* sockops: when a redirected connection is established, index its original
 * destination by the client's source address/port, the only thing the proxy's
 * accept() knows about it. */
#include "common.h"

char LICENSE[] SEC("license") = "GPL";

SEC("sockops")
int lil_sockops(struct bpf_sock_ops *skops)
{
	struct lilith_tuple_key k = {};
	struct lilith_orig *o;
	__u64 cookie;
	__u32 a[4];

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	o = bpf_map_lookup_elem(&lil_orig_ck, &cookie);
	if (!o)
		return 1;
	if (skops->family == AF_INET) {
		v4_mapped(k.addr, skops->local_ip4);
	} else {
		a[0] = skops->local_ip6[0];
		a[1] = skops->local_ip6[1];
		a[2] = skops->local_ip6[2];
		a[3] = skops->local_ip6[3];
		__builtin_memcpy(k.addr, a, 16);
	}
	k.port = skops->local_port;
	bpf_map_update_elem(&lil_orig_tp, &k, o, BPF_ANY);
	return 1;
}
