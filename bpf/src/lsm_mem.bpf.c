/* BPF-LSM, memory: managed tasks map PROT_EXEC only from allowlisted inodes
 * (device + inode, not path) and never anonymous memory (W^X), unless their
 * identity is registered as JIT. */
#include "ident.h"

char LICENSE[] SEC("license") = "GPL";

#define MAP_SHARED 0x01

static __always_inline bool inode_allowed(struct file *f, __u32 identity)
{
	struct lilith_inode_key k = {};

	k.ino = BPF_CORE_READ(f, f_inode, i_ino);
	k.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	return exec_allowed(&k, identity);
}

static __always_inline int deny_file(__u32 hook, __u32 reason, const struct lilith_ident *id, struct file *f)
{
	struct lilith_event *e = event_reserve(EV_DENY, hook, reason, id);

	if (e) {
		if (f) {
			e->ino = BPF_CORE_READ(f, f_inode, i_ino);
			e->dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
		}
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

/* The checks shared by mmap and mprotect of an executable mapping. */
static __always_inline int exec_mapping(__u32 hook, struct file *f, unsigned long prot, bool shared)
{
	struct lilith_config *cfg;
	struct lilith_ident id;
	bool jit;

	if (!(prot & PROT_EXEC) || !task_ident(&id))
		return 0;
	cfg = lil_cfg();
	if (!cfg)
		return -EPERM;
	jit = id.flags & ID_JIT;
	if (!f) {
		if ((cfg->flags & CFG_WX) && !jit)
			return deny_file(hook, R_ANON_EXEC, &id, NULL);
		return 0;
	}
	/* A writable shared executable mapping is anonymous code by another name. */
	if ((cfg->flags & CFG_WX) && !jit && (prot & PROT_WRITE) && shared)
		return deny_file(hook, R_WRITE_EXEC, &id, f);
	if ((cfg->flags & CFG_EXEC_ALLOWLIST) && !inode_allowed(f, id.identity))
		return deny_file(hook, R_EXEC_NOT_ALLOWED, &id, f);
	return 0;
}

SEC("lsm/mmap_file")
int BPF_PROG(lil_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags,
	     int ret)
{
	__u64 fp = 0;

	if (ret)
		return ret;
	/* file is NULL for anonymous mappings, but kernels before the
	 * __nullable annotation (6.12 among them) type it as a trusted non-NULL
	 * pointer: the verifier then deletes `if (!file)` as dead code and a
	 * direct load oopses. Read the argument as a plain number instead, and
	 * every field through BPF_CORE_READ (fault-safe). */
	bpf_probe_read_kernel(&fp, sizeof(fp), &ctx[0]);
	return exec_mapping(HOOK_MMAP_FILE, (struct file *)fp, prot, flags & MAP_SHARED);
}

SEC("lsm/file_mprotect")
int BPF_PROG(lil_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot, int ret)
{
	/* VM_SHARED is 0x8 in every kernel we support (include/linux/mm.h). */
	if (ret)
		return ret;
	return exec_mapping(HOOK_FILE_MPROTECT, BPF_CORE_READ(vma, vm_file), prot, BPF_CORE_READ(vma, vm_flags) & 0x8);
}

/* Low-address mappings (null-page tricks) are denied to managed tasks even
 * when they hold CAP_SYS_RAWIO. */
SEC("lsm/mmap_addr")
int BPF_PROG(lil_mmap_addr, unsigned long addr, int ret)
{
	struct lilith_config *cfg;
	struct lilith_ident id;

	if (ret)
		return ret;
	cfg = lil_cfg();
	if (!cfg || !cfg->min_addr || addr >= cfg->min_addr || !task_ident(&id))
		return 0;
	return deny_file(HOOK_MMAP_ADDR, R_LOW_ADDR, &id, NULL);
}
