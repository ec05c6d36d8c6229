/* Seccomp syscall allowlists. Names unknown to this kernel/libseccomp are skipped.
 * Dangerous calls are never in any list; they are also denied explicitly with
 * EPERM (see always_blocked in lilith-confine.c) so an audit sees them by name. */
#ifndef LILITH_PROFILES_H
#define LILITH_PROFILES_H

/* The strict profile: the seed's ~60 syscalls plus what a non-JIT Node needs
 * (below); no network but AF_UNIX, threads only, no executable anonymous memory. */
static const char *const strict_syscalls[] = {
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close",
	"fstat", "newfstatat", "statx", "lseek", "openat", "getdents64",
	"readlink", "readlinkat", "access", "faccessat", "faccessat2", "getcwd",
	"munmap", "brk", "madvise", "mremap", /* mmap, mprotect: W^X rules in code */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"poll", "ppoll", "select", "pselect6",
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"futex", "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday",
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
	"exit", "exit_group", "execve", "set_tid_address", "set_robust_list",
	"rseq", "prlimit64", "arch_prctl", "getrandom", "uname", "sched_yield",
	"dup", "dup2", "dup3", "pipe2", "fcntl", /* ioctl: minus TIOCSTI/TIOCLINUX, in code */
	"connect", "sendto", "recvfrom", "sendmsg", "recvmsg",
	/* What a non-JIT Node (node --jitless) needs beyond the seed, found with
	 * strace -f under this profile (test/confine/strict-node.test.ts runs it):
	 *  eventfd2          libuv wakes its loop from other threads (uv_async_send,
	 *                    threadpool completions) through an eventfd: without it
	 *                    uv_loop_init fails and Node aborts at start (the SIGSEGV
	 *                    in node::tracing::Agent the red team saw).
	 *  sched_getaffinity libuv (uv_available_parallelism) and V8 size their
	 *                    thread pools from the CPU mask; reads our own mask only.
	 *  sysinfo           V8 sizes its heap from physical memory (glibc
	 *                    sysconf(_SC_PHYS_PAGES)); returns memory/uptime/load
	 *                    figures, nothing writable.
	 *  capget            Node reads its own capability sets at start to decide
	 *                    whether to trust its environment; read-only, and lilith
	 *                    run has cleared every set (capset stays denied).
	 *  getsockname,      libuv (uv_guess_handle) tells what kind of socket a stdio
	 *  getsockopt        fd is (SO_TYPE, then its address family); refused, Node
	 *                    makes stdout a black hole whenever it is a socketpair
	 *                    (how Node's child_process and many supervisors pass
	 *                    stdio): output silently lost. Both only read options and
	 *                    the address of a socket we already hold (setsockopt stays out).
	 * Left out on purpose: pkey_alloc (V8 falls back without memory protection
	 * keys), clone3 (ENOSYS: glibc falls back to clone, which stays threads-only
	 * here), anything that creates processes, namespaces or non-unix sockets. */
	"eventfd2", "sched_getaffinity", "sysinfo", "capget", "getsockname", "getsockopt",
	NULL,
};

/* A profile fit for real agents (Node CLIs, shells, git): the strict set plus
 * process management, files, sockets and timers. Still no ptrace, bpf,
 * namespaces, mounts, modules, keyrings, io_uring or perf. */
static const char *const standard_syscalls[] = {
	"access", "alarm", "bind", "brk", "capget", "chdir", "chmod", "chown",
	"clock_getres", "clock_gettime", "clock_nanosleep", "close", "close_range",
	"connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait",
	"eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
	"faccessat", "faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat",
	"fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
	"fstat", "fstatfs", "fsync", "ftruncate", "futex", "futex_waitv", "getcpu", "getcwd",
	"getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer",
	"getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
	"getresgid", "getresuid", "getrlimit", "getrusage", "getsid", "getsockname", "getsockopt",
	"gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch", "inotify_init",
	"inotify_init1", "inotify_rm_watch", "kill", "lchown", "lgetxattr", "link",
	"linkat", "listen", "listxattr", "llistxattr", "lseek", "lstat", "madvise", "membarrier",
	"mincore", "mkdir", "mkdirat", "mlock", /* ioctl, mknod, mknodat, socket, socketpair: rules in code */
	"mremap", "msync", "munlock", "munmap", "nanosleep", "newfstatat", "open", "openat",
	"openat2", "pause", "pipe", "pipe2", "poll", "ppoll", "prctl", "pread64", "preadv",
	"preadv2", "prlimit64", "pselect6", "pwrite64", "pwritev", "pwritev2", "read",
	"readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
	"rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
	"rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
	"rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getparam",
	"sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
	"sched_setaffinity", "sched_yield", "select", "sendfile", "sendmmsg", "sendmsg", "sendto",
	"setitimer", "setpgid", "setpriority", "setsid", "setsockopt", "set_robust_list",
	"set_tid_address", "shutdown", "sigaltstack", "splice", "stat", "statfs",
	"statx", "symlink", "symlinkat", "sync", "sync_file_range", "sysinfo", "tee", "tgkill",
	"time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
	"timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times",
	"tkill", "truncate", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
	"utimes", "vfork", "wait4", "waitid", "write", "writev", "arch_prctl", "getresuid",
	"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
	"seccomp", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "process_mrelease",
	NULL,
};

/* Never allowed, in any profile: the local-privilege-escalation and
 * escape primitives. Each gets an explicit EPERM rule. */
static const char *const always_blocked[] = {
	"ptrace", "process_vm_readv", "process_vm_writev", "bpf", "userfaultfd",
	"keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
	"io_uring_register", "mount", "umount2", "pivot_root", "unshare", "setns",
	"kexec_load", "kexec_file_load", "init_module", "finit_module",
	"delete_module", "perf_event_open", "open_by_handle_at", "name_to_handle_at",
	"fsopen", "fsmount", "fsconfig", "move_mount", "open_tree", "mount_setattr",
	"swapon", "swapoff", "reboot", "syslog", "acct", "quotactl", "lookup_dcookie",
	"fanotify_init", "personality", "chroot", "setuid", "setgid", "setreuid",
	"setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
	NULL,
};

#endif
