// Test program for the loader: compiles, but the verifier must reject it (a map
// value dereferenced without the NULL check), so the test sees the verifier log.
// A hash map: recent kernels know a constant in-range array lookup is non-NULL.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} reject_vals SEC(".maps");

SEC("cgroup/connect4")
int test_reject(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&reject_vals, &zero);

	return *v == 42;  // no NULL check: "invalid mem access 'map_value_or_null'"
}
