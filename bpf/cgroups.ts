// Kernel identifiers for paths: cgroup ids (the inode of a cgroup v2
// directory) and {device, inode} of files in the kernel's own dev_t encoding,
// which is what the BPF programs read from struct inode.
import { realpathSync, statSync } from 'node:fs';
import { mountPointsOf } from './mounts.js';

/** The cgroup id of a cgroup v2 directory (what bpf_get_current_cgroup_id returns). */
export function cgroupId(dir: string): bigint {
  const st = statSync(dir, { bigint: true });
  if (!st.isDirectory()) throw new TypeError(`${dir} is not a cgroup directory`);
  return st.ino;
}

/**
 * stat's st_dev (glibc/new_encode_dev layout) → the kernel's internal dev_t
 * (major << 20 | minor), as in inode->i_sb->s_dev.
 */
export function kernelDev(stDev: bigint | number): number {
  const d = BigInt(stDev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return Number(((major << 20n) | minor) & 0xffffffffn);
}

/** {dev, ino} of a file as the kernel sees it (symlinks followed). */
export function inodeOf(path: string): { dev: number; ino: bigint } {
  const st = statSync(path, { bigint: true });
  return { dev: kernelDev(st.dev), ino: st.ino };
}

/**
 * Level of a cgroup v2 directory in the hierarchy (the root is 0), as
 * bpf_get_current_ancestor_cgroup_id counts it. Assumes the cgroup2 mount is
 * the hierarchy root (no cgroup namespace).
 */
export function cgroupLevel(dir: string): number {
  const real = realpathSync(dir);
  const mount = mountPointsOf('cgroup2')
    .filter((m) => real === m || real.startsWith(m.endsWith('/') ? m : `${m}/`))
    .sort((a, b) => b.length - a.length)[0];
  if (mount === undefined) throw new TypeError(`${dir} is not inside a cgroup v2 mount`);
  return real.slice(mount.length).split('/').filter(Boolean).length;
}
