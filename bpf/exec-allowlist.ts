// The exec allowlist: with CFG_EXEC_ALLOWLIST set, managed processes may exec or
// map PROT_EXEC only files whose {dev, inode} is listed in lil_exec_ok (every
// identity), in lil_exec_id for their own identity, or registered as an identity
// binary. Inodes, not paths: a rename or a bind mount cannot smuggle a different
// file in under an allowed name.
import { statSync } from 'node:fs';
import { kernelDev } from './cgroups.js';
import { KernelConfigError } from './config.js';
import { inodeKey } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';

/** `dev` is stat's st_dev; the key uses the kernel's own dev_t encoding. */
const execKey = (dev: number | bigint, ino: number | bigint, identity: number): Buffer => inodeKey(kernelDev(dev), BigInt(ino), identity);

/** Without an identity (or 0) the inode is allowed to every managed process; with one, to that identity only. */
function target(identity: number | undefined): { map: 'lil_exec_ok' | 'lil_exec_id'; identity: number } {
  if (identity === undefined || identity === 0) return { map: 'lil_exec_ok', identity: 0 };
  if (!Number.isInteger(identity) || identity < 1 || identity > 0xffffffff) {
    throw new KernelConfigError('identity', `${identity} is not an identity id (1..2^32-1)`);
  }
  return { map: 'lil_exec_id', identity };
}

export function allowExecInode(maps: PinnedMaps, dev: number | bigint, ino: number | bigint, identity?: number): void {
  const t = target(identity);
  maps.get(t.map).update(execKey(dev, ino, t.identity), Buffer.from([1]));
}

/** Allows the file at `path` as it is now (its inode, not the path). */
export function allowExecPath(maps: PinnedMaps, path: string, identity?: number): void {
  const st = statSync(path, { bigint: true });
  allowExecInode(maps, st.dev, st.ino, identity);
}

export function revokeExecInode(maps: PinnedMaps, dev: number | bigint, ino: number | bigint, identity?: number): boolean {
  const t = target(identity);
  return maps.get(t.map).delete(execKey(dev, ino, t.identity));
}
