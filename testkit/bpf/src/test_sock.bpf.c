// Test programs for the loader: cgroup/sock_create denying raw sockets, and a
// sockops program recording each actively established TCP connection by its
// local port. Not used in production.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

// local port (host order) -> remote port (host order) of established connects.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} test_estab SEC(".maps");

SEC("cgroup/sock_create")
int test_sock_create(struct bpf_sock *ctx)
{
	return ctx->type == SOCK_RAW ? 0 : 1;  // 0: the socket() call fails with EPERM
}

SEC("sockops")
int test_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		__u32 lport = skops->local_port;                        // host order
		__u32 rport = bpf_ntohl(skops->remote_port) & 0xffff;  // be16 in the high half on LE
		bpf_map_update_elem(&test_estab, &lport, &rport, BPF_ANY);
	}
	return 1;
}
