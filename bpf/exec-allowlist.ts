// The exec allowlist (lil_exec_ok): with CFG_EXEC_ALLOWLIST set, managed
// processes may exec or map PROT_EXEC only files whose {dev, inode} is listed
// here (or registered as an identity binary). Inodes, not paths: a rename or a
// bind mount cannot smuggle a different file in under an allowed name.
import { statSync } from 'node:fs';
import { kernelDev } from './cgroups.js';
import { inodeKey } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';

/** `dev` is stat's st_dev; the key uses the kernel's own dev_t encoding. */
const execKey = (dev: number | bigint, ino: number | bigint): Buffer => inodeKey(kernelDev(dev), BigInt(ino));

export function allowExecInode(maps: PinnedMaps, dev: number | bigint, ino: number | bigint): void {
  maps.get('lil_exec_ok').update(execKey(dev, ino), Buffer.from([1]));
}

/** Allows the file at `path` as it is now (its inode, not the path). */
export function allowExecPath(maps: PinnedMaps, path: string): void {
  const st = statSync(path, { bigint: true });
  allowExecInode(maps, st.dev, st.ino);
}

export function revokeExecInode(maps: PinnedMaps, dev: number | bigint, ino: number | bigint): boolean {
  return maps.get('lil_exec_ok').delete(execKey(dev, ino));
}
