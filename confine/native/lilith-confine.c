/* lilith-confine: confine the calling process, then exec the agent.
 *
 *   lilith-confine [options] -- COMMAND [ARGS...]
 *     --abi                 print {"landlock_abi":N,"seccomp":BOOL} and exit
 *     --profile P           strict | standard | jit (seccomp allowlist)
 *     --ro PATH             Landlock: read + execute beneath PATH
 *     --rw PATH             Landlock: read, write, create, remove beneath PATH
 *     --connect-port N      Landlock (ABI >= 4): TCP connect allowed to port N
 *     --bind-port N         Landlock (ABI >= 4): TCP bind allowed on port N
 *     --no-landlock-fs / --no-landlock-net / --no-seccomp
 *     --no-landlock-connect keep Landlock's TCP bind rules but not connect: used
 *                           when the kernel's cgroup connect hook redirects every
 *                           connect to the proxy (Landlock, an LSM, sees the
 *                           destination before that rewrite and would refuse it)
 *     --scope               Landlock (ABI >= 6): no abstract unix sockets or
 *                           signals outside the sandbox
 *     --allow-degraded NAME run although this kernel cannot apply NAME (landlock,
 *                           landlock-truncate, landlock-net, landlock-ioctl-dev,
 *                           landlock-scope, seccomp); without it a missing layer
 *                           is a refusal (exit 126), never a silent skip
 *     --audit               log denied syscalls to the kernel audit log
 *     --cgroup-procs FILE   write our pid into FILE (cgroup.procs) first
 *     --sync-fd N           after joining the cgroup write "ready <pid>\n" on fd N,
 *                           then read "no" or "go\0" + NUL-separated options
 *                           (the attested agent's rules) until EOF
 *
 * The order matters: join the cgroup (kernel enforcement sees us as managed
 * from the first instruction of the agent), wait for the enforcer to register
 * us, refuse if a layer cannot be applied, then a new session (no controlling
 * terminal), no_new_privs, Landlock, drop every capability (after Landlock,
 * whose rules open paths with the caller's rights), seccomp last (it must
 * allow the execve and denies capset).
 *
 * Test hook: LILITH_TEST_LANDLOCK_ABI=N makes the kernel look like Landlock ABI
 * N (only ever lower than the real one), so the refusal of a missing layer can
 * be exercised on a new kernel. It can only remove layers that allow_degraded
 * permits to be missing; anything else is refused. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "profiles.h"

/* Constants newer than some distribution headers; values are kernel ABI. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};
struct ll_path_beneath {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));
struct ll_net_port {
	uint64_t allowed_access;
	uint64_t port;
};

#define MAX_RULES 256

static void die(const char *what) {
	fprintf(stderr, "lilith-confine: %s: %s\n", what, strerror(errno));
	exit(126);
}

static void fail(const char *msg) {
	fprintf(stderr, "lilith-confine: %s\n", msg);
	exit(126);
}

static int landlock_abi(void) {
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0) abi = 0;
	const char *simulated = getenv("LILITH_TEST_LANDLOCK_ABI"); /* test hook: only lowers */
	if (simulated && *simulated) {
		long s = strtol(simulated, NULL, 10);
		if (s >= 0 && s < abi) abi = s;
	}
	return (int)abi;
}

/* seccomp(2): with filter mode compiled in, a NULL program is EFAULT; without it, EINVAL. */
static int seccomp_available(void) {
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL, 0, 0) < 0 && errno == EFAULT;
}

/* Layers a kernel may lack, by the names lilith.json's allow_degraded uses. */
enum {
	DEG_LANDLOCK = 1 << 0,
	DEG_LANDLOCK_TRUNCATE = 1 << 1,
	DEG_LANDLOCK_NET = 1 << 2,
	DEG_LANDLOCK_IOCTL_DEV = 1 << 3,
	DEG_LANDLOCK_SCOPE = 1 << 4,
	DEG_SECCOMP = 1 << 5,
};
static const struct {
	unsigned bit;
	const char *name, *what;
} degradable[] = {
	{ DEG_LANDLOCK, "landlock", "no Landlock at all" },
	{ DEG_LANDLOCK_TRUNCATE, "landlock-truncate", "Landlock ABI < 3: truncate not controlled" },
	{ DEG_LANDLOCK_NET, "landlock-net", "Landlock ABI < 4: no TCP bind/connect rules" },
	{ DEG_LANDLOCK_IOCTL_DEV, "landlock-ioctl-dev", "Landlock ABI < 5: device ioctls not controlled" },
	{ DEG_LANDLOCK_SCOPE, "landlock-scope", "Landlock ABI < 6: no abstract unix socket or signal scoping" },
	{ DEG_SECCOMP, "seccomp", "no seccomp filter support" },
};

static unsigned degradable_bit(const char *name) {
	for (size_t d = 0; d < sizeof degradable / sizeof degradable[0]; d++)
		if (!strcmp(name, degradable[d].name)) return degradable[d].bit;
	return 0;
}

static uint64_t fs_access_for_abi(int abi) {
	uint64_t all = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
	if (abi >= 2) all |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3) all |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5) all |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return all;
}

#define FS_READ (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

static void add_path_rule(int ruleset, const char *path, uint64_t access, uint64_t handled) {
	struct ll_path_beneath rule = { .allowed_access = access & handled };
	rule.parent_fd = open(path, O_PATH | O_CLOEXEC);
	if (rule.parent_fd < 0) {
		/* A listed root that does not exist grants nothing; say so and go on. */
		fprintf(stderr, "lilith-confine: warning: %s: %s (rule skipped)\n", path, strerror(errno));
		return;
	}
	/* Files get only file rights; directories the full set. */
	struct stat st;
	if (fstat(rule.parent_fd, &st) == 0 && !S_ISDIR(st.st_mode))
		rule.allowed_access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
				       LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
				       LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (syscall(__NR_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0))
		die(path);
	close(rule.parent_fd);
}

static void add_port_rule(int ruleset, uint64_t access, long port) {
	struct ll_net_port rule = { .allowed_access = access, .port = (uint64_t)port };
	if (syscall(__NR_landlock_add_rule, ruleset, LL_RULE_NET_PORT, &rule, 0))
		die("landlock port rule");
}

static void rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n, ...);

static int resolve(const char *name) {
	return seccomp_syscall_resolve_name(name);
}

static void allow_list(scmp_filter_ctx ctx, const char *const *names) {
	for (; *names; names++) {
		int nr = resolve(*names);
		if (nr == __NR_SCMP_ERROR) continue;
		if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) fail("seccomp_rule_add");
	}
}

/* Allows syscall `name` for every value of the low 32 bits of argument `arg`
 * except `denied`. The kernel reads ioctl's request as an unsigned int, so the
 * upper half of the register is ignored there and must be here too: libseccomp
 * compares only with masked equality without looking at it (its LT/GT/NE and
 * even SCMP_A*_32 inspect the upper half, so 1<<32 | TIOCSTI would pass them).
 * The values are walked as a binary trie from the top bit: every subtree that
 * holds no denied value becomes one "masked bits == prefix" rule. */
static void allow_u32_except(scmp_filter_ctx ctx, const char *name, unsigned arg, const uint32_t *denied, unsigned ndenied,
			     uint32_t prefix, int depth) {
	for (uint32_t bit = 0; bit < 2; bit++) {
		uint32_t child = prefix | (bit << (31 - depth));
		uint32_t mask = depth == 31 ? 0xffffffffu : ~(0xffffffffu >> (depth + 1));
		int holds_denied = 0;
		for (unsigned d = 0; d < ndenied; d++)
			if ((denied[d] & mask) == child) holds_denied = 1;
		if (!holds_denied)
			rule(ctx, SCMP_ACT_ALLOW, name, 1, SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, child));
		else if (depth < 31)
			allow_u32_except(ctx, name, arg, denied, ndenied, child, depth + 1);
	}
}

static void apply_seccomp(const char *profile, int audit) {
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx) fail("seccomp_init failed");
	if (audit && seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1))
		fprintf(stderr, "lilith-confine: warning: seccomp audit logging unsupported\n");
	int strict = strcmp(profile, "strict") == 0;
	/* Only the native ABI is allowed. A syscall through another ABI of this CPU (int $0x80
	 * or sysenter into the ia32 table, x32 numbers) would reach the kernel's compat entry
	 * points with other numbers and argument layouts, which none of the rules below match:
	 * such a process is killed outright (SIGSYS, logged by the kernel), never passed
	 * through. A 32-bit program cannot run under lilith run; that is on purpose. */
	if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) fail("seccomp: cannot set the non-native ABI action");

	allow_list(ctx, strict ? strict_syscalls : standard_syscalls);
	for (const char *const *b = always_blocked; *b; b++) {
		int nr = resolve(*b);
		if (nr != __NR_SCMP_ERROR) seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}

	/* clone: threads only (strict) or no new namespaces (standard). clone3's
	 * flags live in memory seccomp cannot read: ENOSYS makes libc fall back to clone. */
	const uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
				  CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
	if (strict)
		rule(ctx, SCMP_ACT_ALLOW, "clone", 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	else
		rule(ctx, SCMP_ACT_ALLOW, "clone", 1, SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags, 0));
	rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0);

	/* socket: strict = AF_UNIX only; others = unix, inet, inet6, netlink, never raw or packet. */
	rule(ctx, SCMP_ACT_ALLOW, "socket", 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	if (!strict) {
		rule(ctx, SCMP_ACT_ALLOW, "socketpair", 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
		/* inet and inet6: TCP, UDP and MPTCP by their numbers or 0 (the type's default), nothing
		 * else. Any other protocol number makes the kernel load that protocol's module on demand
		 * (SCTP, DCCP, L2TP, RDS... "net-pf-2-proto-N"), code an agent has no business reaching,
		 * and those protocols' connects and sends are not all mediated by the cgroup hooks.
		 * IPPROTO_UDPLITE and ICMP datagram ("ping") sockets are left out too: nothing an agent
		 * runs needs them, and a ping socket's echo payload is a way out the proxy never sees.
		 * Compared with 64-bit equality: a value with high bits set (which the kernel would
		 * ignore) matches no rule and is denied. socketpair is AF_UNIX only: an inet socketpair
		 * always fails, but only after the protocol module was loaded. */
		const int families[] = { AF_INET, AF_INET6 };
		const struct {
			int type, protocol;
		} allowed[] = {
			{ SOCK_STREAM, 0 }, { SOCK_STREAM, IPPROTO_TCP }, { SOCK_STREAM, IPPROTO_MPTCP },
			{ SOCK_DGRAM, 0 },  { SOCK_DGRAM, IPPROTO_UDP },
		};
		for (unsigned f = 0; f < 2; f++)
			for (unsigned a = 0; a < sizeof allowed / sizeof allowed[0]; a++)
				rule(ctx, SCMP_ACT_ALLOW, "socket", 3, SCMP_A0(SCMP_CMP_EQ, families[f]),
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, allowed[a].type), SCMP_A2(SCMP_CMP_EQ, allowed[a].protocol));
		/* netlink: NETLINK_ROUTE only (interfaces, addresses, routes; changing them needs
		 * CAP_NET_ADMIN, which the agent no longer has). Never NETLINK_NETFILTER (nftables),
		 * audit, xfrm, kobject uevents... SOCK_RAW and SOCK_DGRAM are the same for netlink;
		 * glibc's getifaddrs uses SOCK_RAW. */
		const int netlink_types[] = { SOCK_DGRAM, SOCK_RAW };
		for (unsigned i = 0; i < 2; i++)
			rule(ctx, SCMP_ACT_ALLOW, "socket", 3, SCMP_A0(SCMP_CMP_EQ, AF_NETLINK),
			     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, netlink_types[i]), SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE));
	}

	/* ioctl, every profile: never TIOCSTI (push input into a terminal: type commands into
	 * the invoking shell) or TIOCLINUX (the same on a virtual console, plus selection paste). */
	const uint32_t tty_injection[] = { TIOCSTI, TIOCLINUX };
	allow_u32_except(ctx, "ioctl", 1, tty_injection, 2, 0, 0);

	/* mknod/mknodat, every profile: no device nodes. FIFOs stay possible outside strict
	 * (mkfifo in scripts; Landlock's MAKE_FIFO right still decides where); regular files
	 * are made with open/creat, sockets with bind. The mode is a umode_t: S_IFMT is in
	 * the low bits a masked comparison reads. */
	if (!strict) {
		rule(ctx, SCMP_ACT_ALLOW, "mknodat", 1, SCMP_A2(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFIFO));
		rule(ctx, SCMP_ACT_ALLOW, "mknod", 1, SCMP_A1(SCMP_CMP_MASKED_EQ, S_IFMT, S_IFIFO));
	}

	/* memfd_create(MFD_EXEC) would give executable anonymous memory with a file behind it. */
	if (!strict) rule(ctx, SCMP_ACT_ALLOW, "memfd_create", 1, SCMP_A1(SCMP_CMP_MASKED_EQ, MFD_EXEC, 0));

	/* strict: W^X at the syscall layer: no executable anonymous mappings, no mprotect to exec. */
	if (strict) {
		rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
		rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, SCMP_A3(SCMP_CMP_MASKED_EQ, MAP_ANONYMOUS, 0));
		rule(ctx, SCMP_ACT_ALLOW, "mprotect", 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	} else {
		rule(ctx, SCMP_ACT_ALLOW, "mmap", 0);
		rule(ctx, SCMP_ACT_ALLOW, "mprotect", 0);
	}

	if (seccomp_load(ctx)) fail("seccomp_load failed");
	seccomp_release(ctx);
}

static void rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n, ...) {
	int nr = resolve(name);
	if (nr == __NR_SCMP_ERROR) return;
	struct scmp_arg_cmp args[4];
	va_list ap;
	va_start(ap, n);
	for (unsigned i = 0; i < n && i < 4; i++) args[i] = va_arg(ap, struct scmp_arg_cmp);
	va_end(ap);
	/* When a syscall already has an unconditional rule this is a no-op by design. */
	int rc = seccomp_rule_add_array(ctx, action, nr, n, args);
	if (rc && rc != -EEXIST) {
		errno = -rc;
		die(name);
	}
}

/* Every capability, from every set: an agent started as root keeps none. The
 * bounding set is emptied so exec cannot hand root's capabilities back;
 * without CAP_SETPCAP (an unprivileged caller) it cannot be, and need not be:
 * with no_new_privs an exec never grants more than the empty permitted set. */
static void drop_capabilities(void) {
	/* PR_CAPBSET_READ is EINVAL past the running kernel's /proc/sys/kernel/cap_last_cap. */
	for (int cap = 0; cap < 64 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EPERM) die("PR_CAPBSET_DROP");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL) die("PR_CAP_AMBIENT_CLEAR_ALL");
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &header, data)) die("capset (drop all capabilities)");
}

struct opts {
	const char *profile, *cgroup_procs;
	const char *ro[MAX_RULES], *rw[MAX_RULES];
	long connect_ports[MAX_RULES], bind_ports[MAX_RULES];
	int nro, nrw, nconnect, nbind, sync_fd;
	int landlock_fs, landlock_net, landlock_connect, use_seccomp, audit, scope;
	unsigned allow_degraded;
};

/* Parses one option at argv[i]; returns how many arguments it used, 0 at "--", -1 on error. */
static int parse_opt(struct opts *o, char **argv, int i, int argc) {
	const char *a = argv[i];
	const char *next = i + 1 < argc ? argv[i + 1] : NULL;
	if (!strcmp(a, "--")) return 0;
	if (!strcmp(a, "--abi")) {
		printf("{\"landlock_abi\":%d,\"seccomp\":%s}\n", landlock_abi(), seccomp_available() ? "true" : "false");
		exit(0);
	}
	if (!strcmp(a, "--audit")) { o->audit = 1; return 1; }
	if (!strcmp(a, "--scope")) { o->scope = 1; return 1; }
	if (!strcmp(a, "--no-landlock-fs")) { o->landlock_fs = 0; return 1; }
	if (!strcmp(a, "--no-landlock-net")) { o->landlock_net = 0; return 1; }
	if (!strcmp(a, "--no-landlock-connect")) { o->landlock_connect = 0; return 1; }
	if (!strcmp(a, "--no-seccomp")) { o->use_seccomp = 0; return 1; }
	if (!next) { fprintf(stderr, "lilith-confine: %s needs a value\n", a); return -1; }
	if (o->nro >= MAX_RULES || o->nrw >= MAX_RULES || o->nconnect >= MAX_RULES || o->nbind >= MAX_RULES) fail("too many rules");
	if (!strcmp(a, "--profile")) o->profile = next;
	else if (!strcmp(a, "--ro")) o->ro[o->nro++] = next;
	else if (!strcmp(a, "--rw")) o->rw[o->nrw++] = next;
	else if (!strcmp(a, "--connect-port")) o->connect_ports[o->nconnect++] = strtol(next, NULL, 10);
	else if (!strcmp(a, "--bind-port")) o->bind_ports[o->nbind++] = strtol(next, NULL, 10);
	else if (!strcmp(a, "--cgroup-procs")) o->cgroup_procs = next;
	else if (!strcmp(a, "--sync-fd")) o->sync_fd = (int)strtol(next, NULL, 10);
	else if (!strcmp(a, "--allow-degraded")) {
		unsigned bit = degradable_bit(next);
		if (!bit) { fprintf(stderr, "lilith-confine: --allow-degraded: unknown layer %s\n", next); return -1; }
		o->allow_degraded |= bit;
	}
	else { fprintf(stderr, "lilith-confine: unknown option %s\n", a); return -1; }
	return 2;
}

/* With --sync-fd the launcher answers "ready" with either "no" (refused) or
 * "go\0" followed by NUL-separated options: the rules of the identity the
 * enforcer attested, which only exist once the process is in its cgroup. */
static void read_sync(struct opts *o) {
	static char buf[65536];
	static char *args[4096];
	size_t len = 0;
	if (dprintf(o->sync_fd, "ready %d\n", getpid()) < 0) die("sync write");
	for (;;) {
		ssize_t n = read(o->sync_fd, buf + len, sizeof buf - 1 - len);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) die("sync read");
		if (n == 0) break;
		len += (size_t)n;
		if (len >= sizeof buf - 1) fail("sync message too large");
	}
	close(o->sync_fd);
	if (len < 3 || memcmp(buf, "go", 3)) fail("this agent was refused; not starting it");
	int nargs = 0;
	for (size_t p = 3; p < len && nargs < 4095;) {
		args[nargs++] = buf + p;
		p += strlen(buf + p) + 1;
	}
	for (int i = 0; i < nargs;) {
		int used = parse_opt(o, args, i, nargs);
		if (used <= 0) fail("bad options in sync message");
		i += used;
	}
}

/* A layer this kernel cannot apply is a refusal unless explicitly allowed:
 * never a silent downgrade. lilith run checks first with a friendlier message. */
static void refuse_missing_layers(const struct opts *o, int abi, int have_seccomp) {
	unsigned missing = 0;
	if (o->landlock_fs || o->landlock_net || o->scope) {
		if (abi < 1) missing |= DEG_LANDLOCK;
		else {
			if (o->landlock_fs && abi < 3) missing |= DEG_LANDLOCK_TRUNCATE;
			if (o->landlock_net && abi < 4) missing |= DEG_LANDLOCK_NET;
			if (o->landlock_fs && abi < 5) missing |= DEG_LANDLOCK_IOCTL_DEV;
			if (o->scope && abi < 6) missing |= DEG_LANDLOCK_SCOPE;
		}
	}
	if (o->use_seccomp && !have_seccomp) missing |= DEG_SECCOMP;
	unsigned refused = missing & ~o->allow_degraded;
	if (!refused) return;
	fprintf(stderr, "lilith-confine: refusing to start the agent: this kernel cannot apply");
	const char *sep = " ";
	for (size_t d = 0; d < sizeof degradable / sizeof degradable[0]; d++)
		if (refused & degradable[d].bit) {
			fprintf(stderr, "%s%s (%s)", sep, degradable[d].name, degradable[d].what);
			sep = ", ";
		}
	fprintf(stderr, "; allow it with --allow-degraded (allow_degraded in lilith.json)\n");
	exit(126);
}

int main(int argc, char **argv) {
	struct opts o = { .profile = "standard", .sync_fd = -1, .landlock_fs = 1, .landlock_net = 1, .landlock_connect = 1, .use_seccomp = 1 };
	int i = 1;
	while (i < argc) {
		int used = parse_opt(&o, argv, i, argc);
		if (used < 0) return 125;
		if (used == 0) { i++; break; }
		i += used;
	}
	if (i >= argc) { fprintf(stderr, "usage: lilith-confine [options] -- COMMAND [ARGS...]\n"); return 125; }

	if (o.cgroup_procs) {
		int fd = open(o.cgroup_procs, O_WRONLY | O_CLOEXEC);
		if (fd < 0) die(o.cgroup_procs);
		if (dprintf(fd, "%d\n", getpid()) < 0) die(o.cgroup_procs);
		close(fd);
	}
	if (o.sync_fd >= 0) read_sync(&o);
	if (strcmp(o.profile, "strict") && strcmp(o.profile, "standard") && strcmp(o.profile, "jit")) {
		fprintf(stderr, "lilith-confine: unknown profile %s (strict, standard, jit)\n", o.profile);
		return 125;
	}

	int abi = landlock_abi();
	refuse_missing_layers(&o, abi, seccomp_available());

	/* A new session: no controlling terminal to inject keystrokes into or to
	 * signal; stdio stays the same file descriptors. lilith run never starts us
	 * as a process-group leader, the one case where this fails. */
	if (setsid() < 0) die("setsid (a new session for the agent)");

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) die("no_new_privs");

	if ((o.landlock_fs || o.landlock_net || o.scope) && abi > 0) {
		struct ll_ruleset_attr attr = { 0 };
		size_t attr_size = abi >= 6 ? sizeof attr : abi >= 4 ? 16 : 8;
		if (o.landlock_fs) attr.handled_access_fs = fs_access_for_abi(abi);
		if (o.landlock_net && abi >= 4)
			attr.handled_access_net = LL_NET_BIND_TCP | (o.landlock_connect ? LL_NET_CONNECT_TCP : 0);
		if (o.scope && abi >= 6) attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		int ruleset = (int)syscall(__NR_landlock_create_ruleset, &attr, attr_size, 0);
		if (ruleset < 0) die("landlock_create_ruleset");
		for (int r = 0; r < o.nro; r++) add_path_rule(ruleset, o.ro[r], FS_READ, attr.handled_access_fs);
		for (int r = 0; r < o.nrw; r++) add_path_rule(ruleset, o.rw[r], attr.handled_access_fs, attr.handled_access_fs);
		if (attr.handled_access_net) {
			if (attr.handled_access_net & LL_NET_CONNECT_TCP)
				for (int r = 0; r < o.nconnect; r++) add_port_rule(ruleset, LL_NET_CONNECT_TCP, o.connect_ports[r]);
			for (int r = 0; r < o.nbind; r++) add_port_rule(ruleset, LL_NET_BIND_TCP, o.bind_ports[r]);
		}
		if (syscall(__NR_landlock_restrict_self, ruleset, 0)) die("landlock_restrict_self");
		close(ruleset);
	}

	drop_capabilities();
	if (o.use_seccomp && seccomp_available()) apply_seccomp(o.profile, o.audit);

	execvp(argv[i], &argv[i]);
	fprintf(stderr, "lilith-confine: exec %s: %s\n", argv[i], strerror(errno));
	return 127;
}
