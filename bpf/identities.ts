// Who a process is, as the kernel programs see it: identity registrations keyed
// by cgroup (lil_cgroups), by executable inode (lil_exec_reg) or by one running
// process (lil_classify). identityEntry() is the pure selector → map key step;
// writeIdentity/deleteIdentity are the map writes.
import { cgroupId, inodeOf, kernelDev } from './cgroups.js';
import { KernelConfigError } from './config.js';
import { ID_JIT, ID_MANAGED, classifyKey, encodeIdent, inodeKey } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';
import type { MapName } from './programs.js';

/** Selects the processes an identity applies to. */
export type IdentitySelector =
  /** Every process in this cgroup v2 directory and below. */
  | { readonly cgroup: string }
  /** Exec of this binary (by its device and inode at registration time). */
  | { readonly binary: string }
  | { readonly dev: number | bigint; readonly ino: bigint }
  /** One running process, from an exec event: tgid and group-leader start time. */
  | { readonly pid: number; readonly startNs: bigint };

export interface IdentityOptions {
  /** Allowed anonymous executable memory (JIT runtimes). @default false */
  readonly jit?: boolean;
}

/** The map and key a selector registers under (stats the cgroup or binary, nothing else). */
export function identityEntry(sel: IdentitySelector): { map: MapName; key: Buffer } {
  if ('cgroup' in sel) {
    const key = Buffer.alloc(8);
    key.writeBigUInt64LE(cgroupId(sel.cgroup));
    return { map: 'lil_cgroups', key };
  }
  if ('binary' in sel) {
    const { dev, ino } = inodeOf(sel.binary);
    return { map: 'lil_exec_reg', key: inodeKey(dev, ino) };
  }
  if ('ino' in sel) return { map: 'lil_exec_reg', key: inodeKey(kernelDev(sel.dev), BigInt(sel.ino)) };
  if ('pid' in sel && Number.isInteger(sel.pid) && sel.pid > 0 && typeof sel.startNs === 'bigint') {
    return { map: 'lil_classify', key: classifyKey(sel.pid, sel.startNs) };
  }
  const shown = JSON.stringify(sel, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  throw new KernelConfigError('selector', `${shown} is not a cgroup, binary, {dev, ino} or {pid, startNs}`);
}

/** Identity 0 marks the processes managed without naming them (unclassified: network denied). */
export function writeIdentity(maps: PinnedMaps, selector: IdentitySelector, identity: number, opts: IdentityOptions): void {
  const { map, key } = identityEntry(selector);
  maps.get(map).update(key, encodeIdent(identity, ID_MANAGED | (opts.jit ? ID_JIT : 0)));
}

export function deleteIdentity(maps: PinnedMaps, selector: IdentitySelector): boolean {
  const { map, key } = identityEntry(selector);
  return maps.get(map).delete(key);
}
