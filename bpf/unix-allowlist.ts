// The AF_UNIX allowlist (lil_unix_ok): the only unix socket addresses managed
// processes may connect or send to (LSM unix hooks or cgroup connect_unix /
// sendmsg_unix). Matched exactly as bound, so the keys are built by
// config.ts unixKeyOf and a bad address is refused before any map write.
import { unixKeyOf } from './config.js';
import { decodeUnixKey } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';

export function allowUnixPath(maps: PinnedMaps, path: string): void {
  maps.get('lil_unix_ok').update(unixKeyOf(path, 'unixPath'), Buffer.from([1]));
}

export function revokeUnixPath(maps: PinnedMaps, path: string): boolean {
  return maps.get('lil_unix_ok').delete(unixKeyOf(path, 'unixPath'));
}

export function listUnixPaths(maps: PinnedMaps): string[] {
  return maps.get('lil_unix_ok').keys().map(decodeUnixKey);
}

/**
 * Makes the pinned allowlist exactly these keys. On attach the config is the
 * truth: entries a previous daemon added and this config lacks are removed,
 * after the wanted ones are in, so nothing allowed is briefly denied.
 */
export function replaceUnixAllowlist(maps: PinnedMaps, keys: readonly Buffer[]): void {
  const m = maps.get('lil_unix_ok');
  for (const k of keys) m.update(k, Buffer.from([1]));
  const want = new Set(keys.map((k) => k.toString('hex')));
  for (const k of m.keys()) if (!want.has(k.toString('hex'))) m.delete(k);
}
