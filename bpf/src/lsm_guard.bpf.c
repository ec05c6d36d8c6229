/* BPF-LSM, process guard: a managed task may not ptrace, signal or aim SIGIO
 * at a task outside management, whatever Landlock the kernel has. That covers
 * the enforcer itself (an unmanaged process) and every other host process, on
 * 6.1 too, where Landlock cannot scope signals (ABI < 6). The enforcer's
 * liveness depends on it: a ptrace attach/detach race leaves its target
 * stopped (state T), and a stopped daemon holds no heartbeat, answers no
 * `lilith status` and is never restarted by Restart=on-failure.
 *
 * ptrace (every mode: attach, /proc/PID/mem, process_vm_readv, pidfd_getfd,
 * /proc/PID/environ) needs a target of the same identity: a reader agent that
 * could trace a coder could run the coder's binaries through it. Signals need
 * a managed target of any identity (a parent classified before its early
 * children were keeps signalling them). A target is managed by its task
 * storage or, before any hook has seen it, by its cgroup. Unmanaged callers
 * are never judged. */
#include "ident.h"

char LICENSE[] SEC("license") = "GPL";

#define F_SETOWN 8
#define F_SETOWN_EX 15
#define FIOSETOWN 0x8901
#define SIOCSPGRP 0x8902

/* The identity of a task's deepest managed cgroup, read from the task itself
 * (cgroup_ident only sees the current task): its default-hierarchy cgroup,
 * then each parent, bounded like the cgroup hierarchy the daemon manages. */
static __always_inline bool target_cgroup_ident(struct task_struct *t, struct lilith_ident *out)
{
	struct cgroup *cg = BPF_CORE_READ(t, cgroups, dfl_cgrp);
	struct lilith_ident *v;
	__u64 id;
	int i;

	for (i = 0; i <= MAX_CGROUP_LEVEL && cg; i++) {
		id = BPF_CORE_READ(cg, kn, id);
		v = bpf_map_lookup_elem(&lil_cgroups, &id);
		if (v) {
			out->identity = v->identity;
			out->flags = v->flags | ID_MANAGED | (v->identity ? ID_CLASSIFIED : 0);
			return true;
		}
		/* self is struct cgroup's first member: the parent css is the parent cgroup. */
		cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
	}
	return false;
}

/* The target's identity (classified now if the daemon has since named its
 * process); false when it is not managed. Task storage first; a task no hook
 * has seen yet has none (it joined a managed cgroup through cgroup.procs, as
 * lilith run's helper does, or was forked before the programs attached), and
 * its cgroup decides: without that, a managed agent would be refused signals
 * to its own idle children after an attach. */
static __always_inline bool target_ident(struct task_struct *t, struct lilith_ident *out)
{
	struct lilith_classify_key k = {};
	struct lilith_ident *ti, *v;

	ti = bpf_task_storage_get(&lil_task, t, 0, 0);
	if (ti) {
		if (!(ti->flags & ID_MANAGED))
			return false;
		out->identity = ti->identity;
		out->flags = ti->flags;
	} else if (!target_cgroup_ident(t, out)) {
		return false;
	}
	if (!(out->flags & ID_CLASSIFIED)) {
		k.tgid = BPF_CORE_READ(t, tgid);
		k.start_ns = BPF_CORE_READ(t, group_leader, start_time);
		v = bpf_map_lookup_elem(&lil_classify, &k);
		if (v && v->identity)
			out->identity = v->identity;
	}
	return true;
}

static __always_inline int deny_task(__u32 hook, const struct lilith_ident *id, struct task_struct *t, __u16 sig)
{
	struct lilith_event *e = event_reserve(EV_DENY, hook, R_PROTECTED_TASK, id);

	if (e) {
		/* The target, in fields a deny event has no other use for (bpf/layout.ts decodes them). */
		e->start_ns = BPF_CORE_READ(t, tgid);
		e->port = sig;
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(lil_ptrace_chk, struct task_struct *child, unsigned int mode, int ret)
{
	struct lilith_ident id, tid;

	if (ret)
		return ret;
	if (!task_ident(&id))
		return 0;
	if (target_ident(child, &tid) && tid.identity == id.identity)
		return 0;
	return deny_task(HOOK_PTRACE, &id, child, 0);
}

/* kill, tgkill, sigqueue, pidfd_send_signal (signal 0 included). */
SEC("lsm/task_kill")
int BPF_PROG(lil_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *cred, int ret)
{
	struct lilith_ident id, tid;

	if (ret)
		return ret;
	if (!task_ident(&id))
		return 0;
	if (target_ident(p, &tid))
		return 0;
	return deny_task(HOOK_TASK_KILL, &id, p, (__u16)sig);
}

/* SIGIO/SIGURG (any signal, with F_SETSIG) reach the file's owner without
 * task_kill: a managed task may own its files itself, nobody else. F_SETOWN_EX
 * takes a user pointer the hook cannot read race-free, so it is refused. */
SEC("lsm/file_fcntl")
int BPF_PROG(lil_file_fcntl, struct file *file, unsigned int cmd, unsigned long arg, int ret)
{
	struct lilith_ident id;
	long who = (long)arg;

	if (ret)
		return ret;
	if (cmd != F_SETOWN && cmd != F_SETOWN_EX)
		return 0;
	if (!task_ident(&id))
		return 0;
	if (cmd == F_SETOWN && (who == 0 || who == (long)(bpf_get_current_pid_tgid() >> 32)))
		return 0;
	return deny(HOOK_FILE_FCNTL, R_FOWNER, &id);
}

/* The ioctl spellings of F_SETOWN take a pointer too: refused for managed tasks. */
SEC("lsm/file_ioctl")
int BPF_PROG(lil_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg, int ret)
{
	struct lilith_ident id;

	if (ret)
		return ret;
	if (cmd != FIOSETOWN && cmd != SIOCSPGRP)
		return 0;
	if (!task_ident(&id))
		return 0;
	return deny(HOOK_FILE_IOCTL, R_FOWNER, &id);
}
