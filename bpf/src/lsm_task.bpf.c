/* BPF-LSM, process lifecycle: which tasks are managed and with which
 * identity. Exec of a registered binary makes a task managed; children
 * inherit at task_alloc; storage dies with the task. */
#include "ident.h"

char LICENSE[] SEC("license") = "GPL";

static __always_inline void inode_key(struct file *f, struct lilith_inode_key *k)
{
	struct inode *ino = BPF_CORE_READ(f, f_inode);

	k->ino = BPF_CORE_READ(ino, i_ino);
	k->dev = BPF_CORE_READ(ino, i_sb, s_dev);
	k->pad = 0;
}

static __always_inline int deny_exec(struct linux_binprm *bprm, const struct lilith_ident *id,
				     const struct lilith_inode_key *k)
{
	struct lilith_event *e = event_reserve(EV_DENY, HOOK_BPRM_CHECK, R_EXEC_NOT_ALLOWED, id);

	if (e) {
		e->dev = k->dev;
		e->ino = k->ino;
		bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename));
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(lil_bprm_check, struct linux_binprm *bprm, int ret)
{
	struct lilith_inode_key k = {};
	struct lilith_ident id = {}, *reg, *ti;
	struct lilith_config *cfg;
	bool managed;

	if (ret)
		return ret;
	inode_key(BPF_CORE_READ(bprm, file), &k);
	managed = task_ident(&id);
	reg = bpf_map_lookup_elem(&lil_exec_reg, &k);
	if (reg) {
		/* A registration names an identity only for a task that has none
		 * yet: an agent cannot switch identity by exec'ing another's binary. */
		if (!managed || !(id.flags & ID_CLASSIFIED)) {
			ti = bpf_task_storage_get(&lil_task, bpf_get_current_task_btf(), 0,
						  BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (!ti)
				return deny_exec(bprm, &id, &k);
			ti->identity = reg->identity;
			ti->flags = ID_MANAGED | (reg->flags & ID_JIT) | (reg->identity ? ID_CLASSIFIED : 0);
		}
		return 0;
	}
	if (!managed)
		return 0;
	cfg = lil_cfg();
	if (cfg && (cfg->flags & CFG_EXEC_ALLOWLIST) && !exec_allowed(&k, id.identity))
		return deny_exec(bprm, &id, &k);
	return 0;
}

/* After a successful exec: tell the daemon, which classifies the process. */
SEC("lsm/bprm_committed_creds")
int BPF_PROG(lil_bprm_done, struct linux_binprm *bprm)
{
	struct lilith_inode_key k = {};
	struct lilith_ident id;
	struct lilith_event *e;
	struct task_struct *t;

	if (!task_ident(&id))
		return 0;
	e = event_reserve(EV_EXEC, HOOK_BPRM_CHECK, 0, &id);
	if (!e)
		return 0;
	t = bpf_get_current_task_btf();
	inode_key(BPF_CORE_READ(bprm, file), &k);
	e->dev = k.dev;
	e->ino = k.ino;
	e->start_ns = BPF_CORE_READ(t, group_leader, start_time);
	bpf_probe_read_kernel_str(e->path, sizeof(e->path), BPF_CORE_READ(bprm, filename));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* Children (processes and threads) inherit the parent's identity. */
SEC("lsm/task_alloc")
int BPF_PROG(lil_task_alloc, struct task_struct *task, unsigned long clone_flags, int ret)
{
	struct lilith_ident id, *ti;

	if (ret)
		return ret;
	if (!task_ident(&id))
		return 0;
	ti = bpf_task_storage_get(&lil_task, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ti)
		/* A child we cannot mark would escape management: refuse the fork. */
		return deny(HOOK_TASK_ALLOC, R_UNCLASSIFIED, &id);
	ti->identity = id.identity;
	ti->flags = id.flags;
	return 0;
}

SEC("lsm/task_free")
int BPF_PROG(lil_task_free, struct task_struct *task)
{
	bpf_task_storage_delete(&lil_task, task);
	return 0;
}
