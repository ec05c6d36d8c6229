// Test program for the loader (test/bpf-addon): a cgroup connect4 hook that
// counts TCP connects per process, rewrites them to 127.0.0.1:<port from
// test_cfg>, and reports each one on a ring buffer. Not used in production.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct test_event {
	__u32 pid;
	__u32 orig_ip4;   // network order, as the application asked
	__u16 orig_port;  // network order
	__u16 pad;
	__u64 ts_ns;      // bpf_ktime_get_ns(): CLOCK_MONOTONIC
};

// key 0: redirect port (host order); 0 disables the rewrite.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} test_cfg SEC(".maps");

// tgid -> number of connects seen. Pinned by name when the loader gives a pinRoot.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} test_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} test_events SEC(".maps");

// Set by the loader before load (exercises setGlobal): added to each count.
const volatile __u64 count_step = 1;

SEC("cgroup/connect4")
int test_connect4(struct bpf_sock_addr *ctx)
{
	__u32 zero = 0, tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *n, step = count_step;

	if (ctx->type != SOCK_STREAM)
		return 1;

	// Count first: the test reads what the kernel wrote.
	n = bpf_map_lookup_elem(&test_counts, &tgid);
	if (n)
		__sync_fetch_and_add(n, step);
	else
		bpf_map_update_elem(&test_counts, &tgid, &step, BPF_NOEXIST);

	struct test_event *e = bpf_ringbuf_reserve(&test_events, sizeof(*e), 0);
	if (e) {
		e->pid = tgid;
		e->orig_ip4 = ctx->user_ip4;
		e->orig_port = (__u16)ctx->user_port;
		e->pad = 0;
		e->ts_ns = bpf_ktime_get_ns();
		bpf_ringbuf_submit(e, 0);
	}

	__u32 *port = bpf_map_lookup_elem(&test_cfg, &zero);
	if (port && *port) {
		ctx->user_ip4 = bpf_htonl(0x7f000001);
		ctx->user_port = bpf_htons((__u16)*port);
	}
	return 1;
}
