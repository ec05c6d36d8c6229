/* lilith-probe: a small real program the kernel tests run as a managed (or
 * unmanaged) process. Each leaf command performs one syscall pattern and
 * prints one JSON line; wrapper commands (cg, fork, daemonize, exec) compose.
 * Static, so it maps no shared libraries (relevant under the exec allowlist). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <stddef.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

static void result(const char *op, int ok, int err, const char *extra)
{
	printf("{\"op\":\"%s\",\"ok\":%s,\"errno\":%d,\"err\":\"%s\",\"pid\":%d%s%s}\n", op, ok ? "true" : "false",
	       err, err ? strerror(err) : "", getpid(), extra && *extra ? "," : "", extra ? extra : "");
	fflush(stdout);
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return AF_INET6;
	}
	fprintf(stderr, "bad address %s\n", host);
	exit(2);
}

static void fmt_addr(struct sockaddr_storage *ss, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in *)ss)->sin_port);
		snprintf(out, n, "%s:%d", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
		port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
		snprintf(out, n, "[%s]:%d", ip, port);
	} else {
		snprintf(out, n, "family-%d", ss->ss_family);
	}
}

static void set_timeout(int fd)
{
	struct timeval tv = { .tv_sec = 3 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* After a TCP exchange: peer as getpeername reports it, and the reply. */
static void tcp_finish(const char *op, int fd)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	char reply[256] = "", paddr[80] = "", extra[512];
	ssize_t n;

	getpeername(fd, (struct sockaddr *)&peer, &plen);
	fmt_addr(&peer, paddr, sizeof(paddr));
	n = read(fd, reply, sizeof(reply) - 1);
	if (n > 0) {
		reply[n] = 0;
		reply[strcspn(reply, "\r\n\"\\")] = 0;
	}
	snprintf(extra, sizeof(extra), "\"peer\":\"%s\",\"reply\":\"%s\"", paddr, reply);
	result(op, n > 0, n > 0 ? 0 : errno, extra);
}

static int cmd_connect(char **a, int tfo)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char msg[64];
	int fam = parse_addr(a[0], atoi(a[1]), &ss, &len), fd;

	snprintf(msg, sizeof(msg), "%d\n", getpid());
	fd = socket(fam, SOCK_STREAM, 0);
	if (fd < 0)
		return result(tfo ? "tfo" : "connect", 0, errno, NULL), 0;
	set_timeout(fd);
	if (tfo) {
		if (sendto(fd, msg, strlen(msg), MSG_FASTOPEN, (struct sockaddr *)&ss, len) < 0)
			return result("tfo", 0, errno, NULL), 0;
	} else {
		if (connect(fd, (struct sockaddr *)&ss, len) < 0)
			return result("connect", 0, errno, NULL), 0;
		if (write(fd, msg, strlen(msg)) < 0)
			return result("connect", 0, errno, NULL), 0;
	}
	tcp_finish(tfo ? "tfo" : "connect", fd);
	close(fd);
	return 0;
}

/* UDP datagram to host:port (connected when `conn`), then wait for a reply. */
static int cmd_udp(char **a, int conn)
{
	const char *op = conn ? "udp-connect" : "udp";
	struct sockaddr_storage ss, from;
	socklen_t len, flen = sizeof(from);
	char buf[256] = "", faddr[80] = "", extra[512];
	int fam = parse_addr(a[0], atoi(a[1]), &ss, &len), fd;
	ssize_t n;

	fd = socket(fam, SOCK_DGRAM, 0);
	if (fd < 0)
		return result(op, 0, errno, NULL), 0;
	set_timeout(fd);
	if (conn) {
		if (connect(fd, (struct sockaddr *)&ss, len) < 0)
			return result(op, 0, errno, NULL), 0;
		n = send(fd, "q", 1, 0);
	} else {
		n = sendto(fd, "q", 1, 0, (struct sockaddr *)&ss, len);
	}
	if (n < 0)
		return result(op, 0, errno, NULL), 0;
	n = recvfrom(fd, buf, sizeof(buf) - 1, 0, (struct sockaddr *)&from, &flen);
	if (n < 0)
		return result(op, 0, errno, "\"sent\":true"), 0;
	buf[n] = 0;
	buf[strcspn(buf, "\r\n\"\\")] = 0;
	fmt_addr(&from, faddr, sizeof(faddr));
	snprintf(extra, sizeof(extra), "\"sent\":true,\"from\":\"%s\",\"reply\":\"%s\"", faddr, buf);
	result(op, 1, 0, extra);
	close(fd);
	return 0;
}

static int cmd_socket(const char *op, int fam, int type, int proto)
{
	int fd = socket(fam, type, proto);

	result(op, fd >= 0, fd >= 0 ? 0 : errno, NULL);
	if (fd >= 0)
		close(fd);
	return 0;
}

static int cmd_mmap(const char *op, void *addr, int prot, int flags, int fd)
{
	void *p = mmap(addr, 4096, prot, flags, fd, 0);

	result(op, p != MAP_FAILED, p != MAP_FAILED ? 0 : errno, NULL);
	if (p != MAP_FAILED)
		munmap(p, 4096);
	return 0;
}

/* unix <stream|dgram|dgram-connect> <path>: connect (stream), sendto
 * (dgram) or connect+send (dgram-connect) to a unix socket. A path starting
 * with '@' names an abstract socket. */
static int do_unix(char **a)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	const char *kind = a[0], *path = kind ? a[1] : NULL;
	int stream, fd, r, e = 0;
	size_t n;
	socklen_t len;

	if (!kind || !path) {
		fprintf(stderr, "unix <stream|dgram|dgram-connect> <path>\n");
		return 2;
	}
	stream = !strcmp(kind, "stream");
	n = strlen(path);
	if (n >= sizeof(un.sun_path)) {
		fprintf(stderr, "path too long\n");
		return 2;
	}
	memcpy(un.sun_path, path, n);
	if (path[0] == '@')
		un.sun_path[0] = 0;
	len = offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1);
	fd = socket(AF_UNIX, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (fd < 0) {
		result("unix", 0, errno, NULL);
		return 1;
	}
	if (stream || !strcmp(kind, "dgram-connect")) {
		r = connect(fd, (struct sockaddr *)&un, len);
		if (r < 0)
			e = errno;
		if (!e && !stream && send(fd, "x", 1, 0) < 0)
			e = errno;
	} else if (sendto(fd, "x", 1, 0, (struct sockaddr *)&un, len) < 0) {
		e = errno;
	}
	close(fd);
	result("unix", !e, e, NULL);
	return e ? 1 : 0;
}

static int run(char **a);

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One TCP connect to `ss` on a fresh socket, closed again: 0 if it connected, else the errno. */
static int connect_once(int fam, struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(fam, SOCK_STREAM, 0), r, e;

	r = fd < 0 ? -1 : connect(fd, (struct sockaddr *)ss, len);
	e = errno;
	if (fd >= 0)
		close(fd);
	return r < 0 ? e : 0;
}

/* until <denied|allowed> <max_ms> <host> <port>: connect every 2 ms until the
 * outcome flips; report the CLOCK_MONOTONIC time it was first observed. */
static int cmd_until(char **a)
{
	int want_denied = !strcmp(a[0], "denied"), max_ms = atoi(a[1]), attempts = 0, e;
	struct sockaddr_storage ss;
	socklen_t len;
	int fam = parse_addr(a[2], atoi(a[3]), &ss, &len);
	long long start = mono_ns(), now;
	char extra[160];

	do {
		e = connect_once(fam, &ss, len);
		attempts++;
		now = mono_ns();
		if (want_denied ? e == EPERM : e == 0) {
			snprintf(extra, sizeof(extra), "\"mono_ns\":%lld,\"attempts\":%d", now, attempts);
			result("until", 1, 0, extra);
			return 0;
		}
		usleep(2000);
	} while (now - start < max_ms * 1000000LL);
	snprintf(extra, sizeof(extra), "\"attempts\":%d", attempts);
	result("until", 0, e, extra);
	return 0;
}

/* watch <ms> <host> <port>: connect every ~2 ms for <ms>; reports the first
 * EPERM (CLOCK_MONOTONIC ns), the longest run of EPERM (first denied attempt to
 * the next permitted one, ns) and the counts: the fail-closed window as an agent sees it. */
static int cmd_watch(char **a)
{
	int max_ms = atoi(a[0]), attempts = 0, denied = 0, other = 0, e;
	struct sockaddr_storage ss;
	socklen_t len;
	int fam = parse_addr(a[1], atoi(a[2]), &ss, &len);
	long long start = mono_ns(), now, first = 0, run_start = 0, longest = 0;
	char extra[240];

	do {
		e = connect_once(fam, &ss, len);
		attempts++;
		now = mono_ns();
		if (e == EPERM) {
			denied++;
			if (!first)
				first = now;
			if (!run_start)
				run_start = now;
		} else {
			if (e)
				other++;
			if (run_start && now - run_start > longest)
				longest = now - run_start;
			run_start = 0;
		}
		usleep(2000);
	} while (now - start < max_ms * 1000000LL);
	if (run_start && now - run_start > longest)
		longest = now - run_start;
	snprintf(extra, sizeof(extra),
		 "\"attempts\":%d,\"denied\":%d,\"other_errors\":%d,\"first_denied_ns\":%lld,\"longest_denied_ns\":%lld,\"still_denied\":%s",
		 attempts, denied, other, first, longest, run_start ? "true" : "false");
	result("watch", 1, 0, extra);
	return 0;
}

/* Runs `a` in a child and waits; the child's JSON goes to the same stdout. */
static int cmd_fork(char **a)
{
	pid_t p = fork();
	int st;

	if (p == 0)
		exit(run(a));
	waitpid(p, &st, 0);
	return 0;
}

/* Double fork + setsid: the grandchild is reparented to init, no longer our
 * descendant. We wait for it through a pipe it holds until it exits. */
static int cmd_daemonize(char **a)
{
	int pfd[2];
	char c;
	pid_t p;

	if (pipe(pfd) < 0)
		return 1;
	p = fork();
	if (p == 0) {
		close(pfd[0]);
		setsid();
		if (fork() == 0) {
			int r = run(a);
			fflush(stdout);
			exit(r);
		}
		exit(0);
	}
	close(pfd[1]);
	waitpid(p, NULL, 0);
	while (read(pfd[0], &c, 1) > 0)
		;
	return 0;
}

static int cmp_ll(const void *x, const void *y)
{
	long long a = *(const long long *)x, b = *(const long long *)y;

	return a < b ? -1 : a > b;
}

/* bench <n> <host> <port>: time n connect() calls (socket and close excluded). */
static int cmd_bench(char **a)
{
	int n = atoi(a[0]), i, fd, fails = 0, fam;
	struct sockaddr_storage ss;
	socklen_t len;

	if (a[1] && a[1][0] == '/') { /* bench <n> <unix path> */
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;

		memset(&ss, 0, sizeof(ss));
		un->sun_family = fam = AF_UNIX;
		strncpy(un->sun_path, a[1], sizeof(un->sun_path) - 1);
		len = sizeof(*un);
	} else {
		fam = parse_addr(a[1], atoi(a[2]), &ss, &len);
	}
	long long *t = calloc(n, sizeof(*t)), t0, sum = 0;
	char extra[200];

	for (i = 0; i < n; i++) {
		fd = socket(fam, SOCK_STREAM, 0);
		t0 = mono_ns();
		if (connect(fd, (struct sockaddr *)&ss, len) < 0)
			fails++;
		t[i] = mono_ns() - t0;
		sum += t[i];
		close(fd);
	}
	qsort(t, n, sizeof(*t), cmp_ll);
	snprintf(extra, sizeof(extra), "\"n\":%d,\"fails\":%d,\"mean_ns\":%lld,\"p50_ns\":%lld,\"p99_ns\":%lld", n, fails,
		 sum / n, t[n / 2], t[(n * 99) / 100]);
	result("bench", fails == 0, 0, extra);
	return 0;
}

static int run(char **a)
{
	const char *c = a[0];

	if (!c)
		return 2;
	if (!strcmp(c, "cg")) { /* cg <cgroup.procs> <cmd...>: join a cgroup first */
		int fd = open(a[1], O_WRONLY);
		char pid[32];
		if (fd < 0 || dprintf(fd, "%d", getpid()) < 0)
			return result("cg", 0, errno, NULL), 1;
		close(fd);
		(void)pid;
		return run(a + 2);
	}
	if (!strcmp(c, "fork"))
		return cmd_fork(a + 1);
	if (!strcmp(c, "daemonize"))
		return cmd_daemonize(a + 1);
	if (!strcmp(c, "setsid")) {
		setsid();
		return run(a + 1);
	}
	if (!strcmp(c, "exec")) { /* exec <path> <args...> */
		execv(a[1], a + 1);
		return result("exec", 0, errno, NULL), 0;
	}
	if (!strcmp(c, "then")) /* then <cmd...> ;; <cmd...>: run two in sequence */
	{
		int i;
		for (i = 1; a[i] && strcmp(a[i], ";;"); i++)
			;
		if (!a[i])
			return run(a + 1);
		a[i] = NULL;
		run(a + 1);
		return run(a + i + 1);
	}
	if (!strcmp(c, "sleep")) {
		usleep(atoi(a[1]) * 1000);
		return run(a + 2);
	}
	if (!strcmp(c, "pid")) {
		result("pid", 1, 0, NULL);
		return 0;
	}
	if (!strcmp(c, "wait-stdin")) { /* block until stdin closes or a line arrives, then run */
		char buf[16];
		if (read(0, buf, sizeof(buf)) < 0) {}
		return run(a + 1);
	}
	if (!strcmp(c, "bench"))
		return cmd_bench(a + 1);
	if (!strcmp(c, "until"))
		return cmd_until(a + 1);
	if (!strcmp(c, "watch"))
		return cmd_watch(a + 1);
	if (!strcmp(c, "unix"))
		return do_unix(a + 1);
	if (!strcmp(c, "connect"))
		return cmd_connect(a + 1, 0);
	if (!strcmp(c, "tfo"))
		return cmd_connect(a + 1, 1);
	if (!strcmp(c, "udp"))
		return cmd_udp(a + 1, 0);
	if (!strcmp(c, "udp-connect"))
		return cmd_udp(a + 1, 1);
	if (!strcmp(c, "raw"))
		return cmd_socket("raw", AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (!strcmp(c, "packet"))
		return cmd_socket("packet", AF_PACKET, SOCK_RAW, 0);
	if (!strcmp(c, "icmp"))
		return cmd_socket("icmp", AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	if (!strcmp(c, "socket")) /* socket <family> <type> <proto> */
		return cmd_socket("socket", atoi(a[1]), atoi(a[2]), atoi(a[3]));
	if (!strcmp(c, "mmap-rwx"))
		return cmd_mmap(c, NULL, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (!strcmp(c, "mmap-rx"))
		return cmd_mmap(c, NULL, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (!strcmp(c, "mmap-rw"))
		return cmd_mmap(c, NULL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (!strcmp(c, "mmap-low"))
		return cmd_mmap(c, (void *)0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1);
	if (!strcmp(c, "mprotect-x")) { /* anonymous RW page made executable */
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int r = p == MAP_FAILED ? -1 : mprotect(p, 4096, PROT_READ | PROT_EXEC);
		result(c, r == 0, r == 0 ? 0 : errno, NULL);
		return 0;
	}
	if (!strcmp(c, "mmap-file-x")) { /* mmap-file-x <path>: PROT_EXEC mapping of a file */
		int fd = open(a[1], O_RDONLY);
		if (fd < 0)
			return result(c, 0, errno, NULL), 0;
		cmd_mmap(c, NULL, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd);
		close(fd);
		return 0;
	}
	if (!strcmp(c, "ptrace")) { /* ptrace <pid>: attach, and detach at once (the attach/detach race) */
		pid_t t = atoi(a[1]);
		long r = ptrace(PTRACE_ATTACH, t, 0, 0);
		int e = r == 0 ? 0 : errno;
		if (r == 0)
			ptrace(PTRACE_DETACH, t, 0, 0);
		result(c, r == 0, e, NULL);
		return 0;
	}
	if (!strcmp(c, "proc-mem")) { /* proc-mem <pid>: open /proc/<pid>/mem (ptrace access, attach mode) */
		char path[64];
		int fd;
		snprintf(path, sizeof(path), "/proc/%s/mem", a[1]);
		fd = open(path, O_RDONLY);
		result(c, fd >= 0, fd >= 0 ? 0 : errno, NULL);
		return 0;
	}
	if (!strcmp(c, "kill")) { /* kill <pid> <signal> */
		int r = kill(atoi(a[1]), atoi(a[2]));
		result(c, r == 0, r == 0 ? 0 : errno, NULL);
		return 0;
	}
	if (!strcmp(c, "setown")) { /* setown <pid>: make <pid> the SIGIO target of a pipe */
		int p[2], r = pipe(p);
		if (r == 0)
			r = fcntl(p[0], F_SETOWN, atoi(a[1]));
		result(c, r == 0, r == 0 ? 0 : errno, NULL);
		return 0;
	}
	fprintf(stderr, "lilith-probe: unknown command %s\n", c);
	return 2;
}

int main(int argc, char **argv)
{
	(void)argc;
	return run(argv + 1);
}
