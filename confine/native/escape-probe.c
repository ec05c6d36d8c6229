/* escape-probe: attempts one escape primitive and reports what the kernel said.
 * Used by the confinement tests and the red-team suite to observe real
 * syscall outcomes from inside a confined process.
 *
 *   escape-probe ATTEMPT [ARG]   prints {"attempt":..., "ok":bool, "errno":N, "error":"..."}
 *
 * "ok" means the escape primitive worked. The ia32_* attempts issue the call
 * through the i386 ABI (int $0x80) in a child and report how the child ended. For "caps" it means a capability is
 * held in some set, and "error" lists the sets from /proc/self/status.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static int report(const char *attempt, long rc) {
	int err = rc < 0 ? errno : 0;
	printf("{\"attempt\":\"%s\",\"ok\":%s,\"errno\":%d,\"error\":\"%s\"}\n", attempt, rc < 0 ? "false" : "true", err,
	       rc < 0 ? strerror(err) : "");
	return rc < 0 ? 1 : 0;
}

/* The terminal an injection would target: stdin when it is one, else the
 * controlling terminal; /dev/null when there is neither (then the kernel
 * answers ENOTTY and only a seccomp filter says EPERM). */
static int terminal_fd(void) {
	if (isatty(0)) return 0;
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
	return fd >= 0 ? fd : open("/dev/null", O_RDWR);
}

/* Pushes ARG and a newline into the terminal's input queue, one byte per
 * ioctl: the next reader (the invoking shell) would run it as a command.
 * `hibits` sets the upper half of the request, which the kernel ignores. */
static long inject(const char *text, int hibits) {
	char line[256];
	snprintf(line, sizeof line, "%s\n", text ? text : "id");
	unsigned long request = TIOCSTI | (hibits ? 0xffffffff00000000UL : 0);
	int fd = terminal_fd();
	long rc = fd < 0 ? -1 : 0;
	for (const char *c = line; *c && rc == 0; c++) rc = syscall(SYS_ioctl, fd, request, c);
	return rc;
}

/* The i386 ABI from this 64-bit process: int $0x80 enters the kernel's ia32
 * syscall table (with CONFIG_IA32_EMULATION), where the numbers and argument
 * layout differ. Run in a child: a seccomp filter kills it (SIGSYS) rather than
 * answering, and the parent reports what happened. ok = the call returned >= 0. */
static long int80(long nr, long a, long b, long c) {
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

#define IA32_IOCTL 54
#define IA32_SOCKET 359

static int report_ia32(const char *attempt, const char *text) {
	/* Arguments must fit in 32 bits: the buffer lives below 4 GiB. */
	char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED) return report(attempt, -1);
	snprintf(low, 4096, "%s\n", text ? text : "id");
	fflush(stdout);
	pid_t child = fork();
	if (child < 0) return report(attempt, -1);
	if (child == 0) {
		long rc = 0;
		if (!strcmp(attempt, "ia32_socket")) rc = int80(IA32_SOCKET, AF_INET, SOCK_STREAM, IPPROTO_SCTP);
		else
			for (const char *c = low; *c && rc >= 0; c++) rc = int80(IA32_IOCTL, terminal_fd(), TIOCSTI, (long)(unsigned long)c);
		_exit(rc >= 0 ? 0 : (int)(-rc > 254 ? 254 : -rc));
	}
	int status;
	if (waitpid(child, &status, 0) < 0) return report(attempt, -1);
	if (WIFSIGNALED(status)) {
		printf("{\"attempt\":\"%s\",\"ok\":false,\"errno\":0,\"error\":\"killed by signal %d (%s)\"}\n", attempt,
		       WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 1;
	}
	errno = WEXITSTATUS(status);
	return report(attempt, errno ? -1 : 0);
}

/* Prints every capability set; ok when any capability is left in any of them. */
static int report_caps(void) {
	FILE *f = fopen("/proc/self/status", "re");
	if (!f) return report("caps", -1);
	char line[256], sets[512] = "";
	int held = 0;
	while (fgets(line, sizeof line, f)) {
		char name[16];
		unsigned long long value;
		if (sscanf(line, "Cap%15[^:]:%llx", name, &value) != 2) continue;
		held |= value != 0;
		snprintf(sets + strlen(sets), sizeof sets - strlen(sets), "%sCap%s=%016llx", *sets ? " " : "", name, value);
	}
	fclose(f);
	printf("{\"attempt\":\"caps\",\"ok\":%s,\"errno\":0,\"error\":\"%s\"}\n", held ? "true" : "false", sets);
	return held ? 0 : 1;
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: escape-probe ATTEMPT [ARG]\n");
		return 2;
	}
	const char *a = argv[1];
	const char *arg = argc > 2 ? argv[2] : NULL;
	long rc;
	if (!strcmp(a, "ptrace")) rc = ptrace(PTRACE_ATTACH, arg ? atoi(arg) : getppid(), 0, 0);
	else if (!strcmp(a, "io_uring_setup")) {
		char params[120] = { 0 };
		rc = syscall(SYS_io_uring_setup, 4, params);
	} else if (!strcmp(a, "bpf")) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof attr);
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		rc = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
	} else if (!strcmp(a, "unshare")) rc = unshare(CLONE_NEWUSER | CLONE_NEWNET);
	else if (!strcmp(a, "mount")) rc = mount("none", arg ? arg : "/mnt", "tmpfs", 0, NULL);
	else if (!strcmp(a, "memfd_exec")) rc = syscall(SYS_memfd_create, "x", MFD_EXEC);
	else if (!strcmp(a, "memfd")) rc = syscall(SYS_memfd_create, "x", 0);
	else if (!strcmp(a, "process_vm_readv")) {
		char buf[8], src[8] = "secret";
		struct iovec local = { buf, sizeof buf }, remote = { src, sizeof src };
		rc = process_vm_readv(arg ? atoi(arg) : getppid(), &local, 1, &remote, 1, 0);
	} else if (!strcmp(a, "userfaultfd")) rc = syscall(SYS_userfaultfd, 0);
	else if (!strcmp(a, "keyctl")) rc = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
	else if (!strcmp(a, "perf_event_open")) {
		struct perf_event_attr pe;
		memset(&pe, 0, sizeof pe);
		pe.type = PERF_TYPE_SOFTWARE;
		pe.size = sizeof pe;
		pe.config = PERF_COUNT_SW_CPU_CLOCK;
		rc = syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
	} else if (!strcmp(a, "raw_socket")) rc = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	else if (!strcmp(a, "packet_socket")) rc = socket(AF_PACKET, SOCK_RAW, 0);
	else if (!strcmp(a, "mmap_rwx")) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		rc = p == MAP_FAILED ? -1 : 0;
	} else if (!strcmp(a, "mprotect_exec")) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		rc = p == MAP_FAILED ? -1 : mprotect(p, 4096, PROT_READ | PROT_EXEC);
	} else if (!strcmp(a, "read")) {
		int fd = open(arg, O_RDONLY);
		rc = fd;
	} else if (!strcmp(a, "write")) {
		int fd = open(arg, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		rc = fd < 0 ? -1 : write(fd, "x", 1);
	} else if (!strcmp(a, "connect")) {
		/* ARG = ip:port (IPv4) */
		char host[64];
		snprintf(host, sizeof host, "%s", arg ? arg : "127.0.0.1:9");
		char *colon = strrchr(host, ':');
		*colon = 0;
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(atoi(colon + 1)) };
		inet_pton(AF_INET, host, &sin.sin_addr);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		rc = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&sin, sizeof sin);
	} else if (!strcmp(a, "kill")) rc = kill(atoi(arg), 0);
	else if (!strcmp(a, "setuid")) rc = setuid(0);
	else if (!strcmp(a, "tiocsti")) rc = inject(arg, 0);
	else if (!strcmp(a, "tiocsti_hibits")) rc = inject(arg, 1);
	else if (!strcmp(a, "tioclinux")) {
		char subcode = 6; /* TIOCL_GETSHIFTSTATE: harmless; a pty answers ENOTTY */
		int fd = terminal_fd();
		rc = fd < 0 ? -1 : ioctl(fd, TIOCLINUX, &subcode);
	} else if (!strcmp(a, "mknod_chr")) rc = mknod(arg, S_IFCHR | 0666, makedev(1, 3)); /* a second /dev/null; glibc: mknodat */
	else if (!strcmp(a, "mknod_legacy_chr")) rc = syscall(SYS_mknod, arg, S_IFCHR | 0666, makedev(1, 3));
	else if (!strcmp(a, "mkfifo")) rc = mkfifo(arg, 0600);
	else if (!strcmp(a, "netlink")) rc = socket(AF_NETLINK, SOCK_DGRAM, arg ? atoi(arg) : NETLINK_ROUTE);
	else if (!strcmp(a, "netlink_raw")) rc = socket(AF_NETLINK, SOCK_RAW, arg ? atoi(arg) : NETLINK_ROUTE);
	else if (!strcmp(a, "socket_proto")) rc = socket(AF_INET, SOCK_STREAM, arg ? atoi(arg) : IPPROTO_SCTP);
	else if (!strcmp(a, "socket_proto_dgram")) rc = socket(AF_INET, SOCK_DGRAM, arg ? atoi(arg) : IPPROTO_ICMP);
	else if (!strcmp(a, "socketpair_inet")) {
		int sv[2];
		rc = socketpair(AF_INET, SOCK_STREAM, arg ? atoi(arg) : IPPROTO_SCTP, sv);
	} else if (!strcmp(a, "ia32_tiocsti") || !strcmp(a, "ia32_socket")) return report_ia32(a, arg);
	else if (!strcmp(a, "caps")) return report_caps();
	else {
		fprintf(stderr, "escape-probe: unknown attempt %s\n", a);
		return 2;
	}
	return report(a, rc);
}
