/* Structs and constants shared between Lilith's BPF programs and user space.
 * The TypeScript side (bpf/layout.ts) mirrors these byte for byte; the
 * _Static_asserts below pin the sizes so a change here breaks the build,
 * not the daemon. */
#ifndef LILITH_H
#define LILITH_H

/* Config flags (struct lilith_config.flags). */
#define CFG_INTERCEPT      (1u << 0) /* cgroup connect/sendmsg redirection attached */
#define CFG_EXEC_ALLOWLIST (1u << 1) /* exec + PROT_EXEC mappings only from allowlisted inodes */
#define CFG_WX             (1u << 2) /* no anonymous PROT_EXEC for non-JIT identities */

/* Identity flags (task storage, cgroup map, classification, socket tag). */
#define ID_MANAGED    (1u << 0)
#define ID_CLASSIFIED (1u << 1)
#define ID_JIT        (1u << 2)

/* Event kinds. */
#define EV_EXEC 1
#define EV_DENY 2

/* Hooks named in events (bpf/layout.ts HOOK_NAMES mirrors this order). */
enum lilith_hook {
	HOOK_BPRM_CHECK = 1,
	HOOK_SOCK_CONNECT,
	HOOK_SOCK_CREATE,
	HOOK_SOCK_SENDMSG,
	HOOK_MMAP_FILE,
	HOOK_FILE_MPROTECT,
	HOOK_MMAP_ADDR,
	HOOK_CONNECT4,
	HOOK_CONNECT6,
	HOOK_SENDMSG4,
	HOOK_SENDMSG6,
	HOOK_CG_SOCK_CREATE,
	HOOK_TASK_ALLOC,
	HOOK_UNIX_STREAM_CONNECT, /* LSM unix_stream_connect */
	HOOK_UNIX_MAY_SEND,       /* LSM unix_may_send (datagram connect/send) */
	HOOK_CONNECT_UNIX,        /* cgroup connect_unix (Linux >= 6.7) */
	HOOK_SENDMSG_UNIX,        /* cgroup sendmsg_unix (Linux >= 6.7) */
	HOOK_PTRACE,              /* LSM ptrace_access_check */
	HOOK_TASK_KILL,           /* LSM task_kill */
	HOOK_FILE_FCNTL,          /* LSM file_fcntl (F_SETOWN) */
	HOOK_FILE_IOCTL,          /* LSM file_ioctl (FIOSETOWN, SIOCSPGRP) */
};

/* Why a denial happened (bpf/layout.ts REASON_NAMES mirrors this order). */
enum lilith_reason {
	R_HEARTBEAT_STALE = 1, /* daemon heartbeat older than the TTL: fail closed */
	R_UNCLASSIFIED,        /* managed, but the daemon has not named its identity */
	R_NOT_PROXY,           /* destination is not the proxy and cannot be redirected */
	R_UDP,                 /* UDP other than DNS */
	R_RAW,                 /* SOCK_RAW */
	R_PACKET,              /* AF_PACKET */
	R_FAMILY,              /* family in the configured deny mask */
	R_ICMP,                /* ICMP (ping sockets) */
	R_FASTOPEN,            /* sendmsg(MSG_FASTOPEN) to a non-proxy destination */
	R_EXEC_NOT_ALLOWED,    /* binary or PROT_EXEC file inode not allowlisted */
	R_ANON_EXEC,           /* anonymous PROT_EXEC mapping (W^X) */
	R_WRITE_EXEC,          /* PROT_WRITE|PROT_EXEC together (W^X) */
	R_LOW_ADDR,            /* mapping below the low-address floor */
	R_PROTOCOL,            /* transport other than TCP/UDP */
	R_UNIX_PATH,           /* AF_UNIX peer whose address is not in the unix allowlist */
	R_PROTECTED_TASK,      /* ptrace/signal of a task outside management (or, ptrace, of another identity) */
	R_FOWNER,              /* a file owner (SIGIO target) other than the task itself */
};

struct lilith_config {
	__u64 hb_ttl_ns;       /* heartbeat TTL; 0 = unconfigured, managed tasks denied */
	__u64 denied_families; /* bit N set: socket family N denied for managed tasks */
	__u32 proxy_v4;        /* network byte order */
	__u32 flags;           /* CFG_* */
	__u8 proxy_v6[16];     /* where AF_INET6 connects are sent (may be v4-mapped) */
	__u16 proxy_port;      /* host byte order */
	__u16 dns_port;        /* host byte order */
	__u32 min_addr;        /* managed mappings below this address are denied */
	__u64 intercept_cgid;  /* cgroup the interception programs are attached to ... */
	__u32 intercept_level; /* ... and its level: tasks below it are redirected */
	__u32 pad;
};

/* Task storage, cgroup map values, classification and socket tags. */
struct lilith_ident {
	__u32 identity; /* 0 = unclassified */
	__u32 flags;    /* ID_* */
};

struct lilith_classify_key {
	__u32 tgid;
	__u32 pad;
	__u64 start_ns; /* group leader's start time: a reused PID never matches */
};

struct lilith_inode_key {
	__u64 ino;
	__u32 dev; /* kernel encoding: major << 20 | minor */
	__u32 pad; /* 0; in lil_exec_id: the identity the inode is allowed to */
};

/* Original destination of a redirected connection. Addresses are 16 bytes;
 * IPv4 is stored v4-mapped (::ffff:a.b.c.d). */
struct lilith_orig {
	__u8 addr[16];
	__u16 port;   /* host byte order */
	__u16 family; /* family of the socket that connected */
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
	__u32 identity;
	__u64 cgroup_id;
};

/* The client's source address/port as the proxy sees it (v4-mapped for IPv4). */
struct lilith_tuple_key {
	__u8 addr[16];
	__u16 port; /* host byte order */
	__u16 pad;  /* 0 for TCP (sockops); IPPROTO_UDP for datagrams to the DNS front (cgroup_skb) */
};

/* An AF_UNIX address as the allowlist knows it. Pathname sockets: the path
 * up to its first NUL, len = its length. Abstract sockets: the name with its
 * leading NUL, len = its length. Bytes after len are zero. */
#define UNIX_PATH_MAX 108
struct lilith_unix_key {
	__u32 len;
	char path[112]; /* UNIX_PATH_MAX + room for the terminating NUL a string read writes */
};

struct lilith_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u64 start_ns;
	__u64 ino;
	__u32 kind;   /* EV_* */
	__u32 hook;   /* enum lilith_hook */
	__u32 reason; /* enum lilith_reason, 0 for exec */
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
	__u32 identity;
	__u32 flags;
	__u32 dev;
	__u16 family;
	__u16 port; /* host byte order */
	__u8 addr[16];
	char comm[16];
	char path[64];
};

_Static_assert(sizeof(struct lilith_config) == 64, "lilith_config layout");
_Static_assert(sizeof(struct lilith_ident) == 8, "lilith_ident layout");
_Static_assert(sizeof(struct lilith_classify_key) == 16, "classify key layout");
_Static_assert(sizeof(struct lilith_inode_key) == 16, "inode key layout");
_Static_assert(sizeof(struct lilith_orig) == 48, "lilith_orig layout");
_Static_assert(sizeof(struct lilith_tuple_key) == 20, "tuple key layout");
_Static_assert(sizeof(struct lilith_unix_key) == 116, "unix key layout");
_Static_assert(sizeof(struct lilith_event) == 176, "lilith_event layout");

#endif
