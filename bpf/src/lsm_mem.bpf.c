/* BPF-LSM, memory: managed tasks map PROT_EXEC only from allowlisted inodes
 * (device + inode, not path) and never anonymous memory (W^X), unless their
 * identity is registered as JIT. */
#include "ident.h"

char LICENSE[] SEC("license") = "GPL";

#define MAP_SHARED 0x01

static __always_inline bool inode_allowed(struct file *f)
{
	struct lilith_inode_key k = {};
	struct inode *ino = f->f_inode;

	k.ino = ino->i_ino;
	k.dev = ino->i_sb->s_dev;
	return bpf_map_lookup_elem(&lil_exec_ok, &k) || bpf_map_lookup_elem(&lil_exec_reg, &k);
}

static __always_inline int deny_file(__u32 hook, __u32 reason, const struct lilith_ident *id, struct file *f)
{
	struct lilith_event *e = event_reserve(EV_DENY, hook, reason, id);
	struct inode *ino;

	if (e) {
		if (f) {
			ino = f->f_inode;
			e->ino = ino->i_ino;
			e->dev = ino->i_sb->s_dev;
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
	if ((cfg->flags & CFG_EXEC_ALLOWLIST) && !inode_allowed(f))
		return deny_file(hook, R_EXEC_NOT_ALLOWED, &id, f);
	return 0;
}

SEC("lsm/mmap_file")
int BPF_PROG(lil_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags,
	     int ret)
{
	if (ret)
		return ret;
	return exec_mapping(HOOK_MMAP_FILE, file, prot, flags & MAP_SHARED);
}

SEC("lsm/file_mprotect")
int BPF_PROG(lil_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot, int ret)
{
	/* VM_SHARED is 0x8 in every kernel we support (include/linux/mm.h). */
	if (ret)
		return ret;
	return exec_mapping(HOOK_FILE_MPROTECT, vma->vm_file, prot, vma->vm_flags & 0x8);
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
