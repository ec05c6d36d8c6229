/* escape-probe: attempts one escape primitive and reports what the kernel said.
 * Used by the confinement tests and the red-team suite to observe real
 * syscall outcomes from inside a confined process.
 *
 *   escape-probe ATTEMPT [ARG]   prints {"attempt":..., "ok":bool, "errno":N, "error":"..."}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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
	else {
		fprintf(stderr, "escape-probe: unknown attempt %s\n", a);
		return 2;
	}
	return report(a, rc);
}
