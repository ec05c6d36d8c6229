/* Task identity for the LSM programs: task storage first, then the managed
 * cgroup ancestry (adopting tasks that were already running when Lilith
 * attached), then the daemon's classification of the process. */
#ifndef LILITH_IDENT_H
#define LILITH_IDENT_H

#include "common.h"

/* Apply a classification the daemon wrote for this process, keyed by
 * {tgid, leader start time} so a reused PID never matches. */
static __always_inline void classify(struct task_struct *t, struct lilith_ident *ti)
{
	struct lilith_classify_key k = {};
	struct lilith_ident *v, cg;

	k.tgid = BPF_CORE_READ(t, tgid);
	k.start_ns = BPF_CORE_READ(t, group_leader, start_time);
	v = bpf_map_lookup_elem(&lil_classify, &k);
	if (v && v->identity) {
		ti->identity = v->identity;
		ti->flags |= ID_CLASSIFIED | (v->flags & ID_JIT);
		return;
	}
	/* Its cgroup may have been given an identity after the task was adopted. */
	if (cgroup_ident(&cg) && (cg.flags & ID_CLASSIFIED)) {
		ti->identity = cg.identity;
		ti->flags |= ID_CLASSIFIED | (cg.flags & ID_JIT);
	}
}

/* Identity of the current task; false when it is not managed. */
static __always_inline bool task_ident(struct lilith_ident *out)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct lilith_ident *ti, cg;

	ti = bpf_task_storage_get(&lil_task, t, 0, 0);
	if (ti) {
		if (!(ti->flags & ID_MANAGED))
			return false;
		if (!(ti->flags & ID_CLASSIFIED))
			classify(t, ti);
		out->identity = ti->identity;
		out->flags = ti->flags;
		return true;
	}
	if (!cgroup_ident(&cg))
		return false;
	/* Found through its cgroup: remember it on the task so leaving the
	 * cgroup later does not shed it. If storage cannot be allocated the
	 * task is still treated as managed for this call (fail closed). */
	ti = bpf_task_storage_get(&lil_task, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ti) {
		ti->identity = cg.identity;
		ti->flags = cg.flags;
		if (!(ti->flags & ID_CLASSIFIED))
			classify(t, ti);
		cg.identity = ti->identity;
		cg.flags = ti->flags;
	}
	*out = cg;
	return true;
}

#endif
