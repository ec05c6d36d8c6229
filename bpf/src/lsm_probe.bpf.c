// BPF-LSM feature probe (Tetragon's approach): an LSM program on file_open that
// counts opens by one process. features.ts loads it, attaches it, opens a file
// and reads the counter: loads → the kernel accepts LSM programs; counter > 0 →
// bpf is really in the active LSM list and the hook fires.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

// key 0: tgid to count (set by the prober after load); key 1: hits.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} probe_state SEC(".maps");

SEC("lsm/file_open")
int BPF_PROG(lsm_probe_open, struct file *file, int ret)
{
	__u32 k_tgid = 0, k_hits = 1;
	__u64 *tgid, *hits;

	if (ret)
		return ret;  // never override an earlier denial
	tgid = bpf_map_lookup_elem(&probe_state, &k_tgid);
	if (!tgid || *tgid != (bpf_get_current_pid_tgid() >> 32))
		return 0;
	hits = bpf_map_lookup_elem(&probe_state, &k_hits);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return 0;
}
