/* Every map Lilith's programs share. All are pinned by name under the
 * loader's pin root (default /sys/fs/bpf/lilith), so the separate objects
 * (one per attach family) use the same maps, and a restarted daemon re-adopts
 * them. Definitions must stay identical across objects: libbpf refuses to
 * reuse a pinned map whose shape differs. */
#ifndef LILITH_MAPS_H
#define LILITH_MAPS_H

#include "lilith.h"

/* Runtime config (proxy address, TTL, flags); a capsule swap rewrites it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lilith_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_config SEC(".maps");

/* DAEMON_HEARTBEAT: CLOCK_MONOTONIC ns of the daemon's last beat. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_heartbeat SEC(".maps");

/* Managed-ness and identity, per task. Freed with the task, so a reused PID
 * starts with nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct lilith_ident);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_task SEC(".maps");

/* Managed cgroups (id = inode of the cgroup2 directory) → identity. Any task
 * whose cgroup has one of these as an ancestor (or is one) is managed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct lilith_ident);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_cgroups SEC(".maps");

/* Classifications written by the daemon for processes it saw exec:
 * {tgid, leader start time} → identity. Sized for bursts of new agents. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct lilith_classify_key);
	__type(value, struct lilith_ident);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_classify SEC(".maps");

/* Agent registrations by binary: exec of {dev, ino} makes the task managed. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct lilith_inode_key);
	__type(value, struct lilith_ident);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_exec_reg SEC(".maps");

/* Inodes a managed task may exec or map PROT_EXEC (binaries and libraries). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lilith_inode_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_exec_ok SEC(".maps");

/* Inodes one identity may exec or map PROT_EXEC on top of lil_exec_ok (a
 * registration's own exec_allowlist): the key is the inode key with `pad`
 * holding the identity, so a reader agent cannot exec what only a coder may. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lilith_inode_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_exec_id SEC(".maps");

/* Socket tag: the LSM side copies the task's identity onto each socket it
 * creates/uses, so cgroup programs (which cannot read task storage on every
 * kernel we support) see managed-ness of processes outside the agent cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct lilith_ident);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_sk_tag SEC(".maps");

/* Original destination by socket cookie, written at connect/sendmsg time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct lilith_orig);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_orig_ck SEC(".maps");

/* Original destination by the client's source address/port (what the proxy's
 * accept() sees), copied from lil_orig_ck when the connection is established. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lilith_tuple_key);
	__type(value, struct lilith_orig);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_orig_tp SEC(".maps");

/* AF_UNIX addresses managed tasks may connect/send to (exact match). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct lilith_unix_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_unix_ok SEC(".maps");

/* Exec and denial events to the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lil_events SEC(".maps");

#endif
