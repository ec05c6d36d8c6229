// What the enforcer may ask of the kernel side (KernelConfig) and its
// validation into KernelSettings, the values the lil_config map holds. Kept
// apart from the code that writes the map so the rules (ports, TTL bounds,
// families that would cut managed processes off from the proxy) can be read
// and tested without a kernel; bpf/layout.ts turns the settings into bytes.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { cgroupId, cgroupLevel } from './cgroups.js';
import { CFG_EXEC_ALLOWLIST, CFG_INTERCEPT, CFG_WX, unixKey, type KernelSettings } from './layout.js';
import type { KernelMode } from './mode.js';

export const DEFAULT_PIN_ROOT = '/sys/fs/bpf/lilith';

export interface ProxySettings {
  /** IPv4 address the proxy listens on (managed AF_INET connects go here). */
  readonly address: string;
  /** Where AF_INET6 connects go. @default `::ffff:<address>` (the IPv4 listener, via v4-mapped) */
  readonly address6?: string;
  /** The proxy's TCP port. */
  readonly port: number;
  /** The proxy's DNS (UDP) port; UDP 53 from managed processes is sent here. */
  readonly dnsPort: number;
}

export interface KernelConfig {
  /** cgroup v2 directory the cgroup programs attach to (the agent subtree, or the cgroup2 root). */
  readonly cgroupPath: string;
  readonly proxy: ProxySettings;
  /** @default '/sys/fs/bpf/lilith' (tests use their own root so they never touch a real daemon's pins) */
  readonly pinRoot?: string;
  /** @default 'auto': BPF-LSM when `bpf` is an active LSM and a probe program fires, else cgroup-only */
  readonly mode?: 'auto' | KernelMode;
  /** Managed network traffic is denied once the heartbeat is older than this. @default 1000 */
  readonly heartbeatTtlMs?: number;
  /** Socket families (AF_* numbers) managed processes may not create (BPF-LSM). @default [] */
  readonly deniedFamilies?: readonly number[];
  /** Exec and PROT_EXEC file mappings only from allowlisted/registered inodes (BPF-LSM). @default true */
  readonly execAllowlist?: boolean;
  /** W^X: no anonymous PROT_EXEC memory for non-JIT identities (BPF-LSM). @default true */
  readonly wx?: boolean;
  /** Managed mappings below this address are denied (BPF-LSM). @default 65536 */
  readonly minAddr?: number;
  /**
   * Attach the interception path (connect/sendmsg redirection to the proxy,
   * original destinations). false in BPF-LSM mode means managed processes may
   * only connect to the proxy address directly. Always true in cgroup-only mode.
   * @default true
   */
  readonly intercept?: boolean;
  /**
   * AF_UNIX addresses managed processes may connect/send to, matched exactly:
   * pathnames as bound ("/run/nscd/socket") and abstract names with their
   * leading NUL ("\0name"). Everything else is denied (unix_path). Replaces
   * whatever allowlist is pinned. @default [] (no unix sockets)
   */
  readonly unixAllowlist?: readonly string[];
  /** Directory of the compiled objects. @default <repo>/bpf/build */
  readonly objectDir?: string;
}

/** The part of KernelConfig that can change on a live kernel (Kernel.configure). */
export type SettingsUpdate = Partial<
  Pick<KernelConfig, 'proxy' | 'heartbeatTtlMs' | 'deniedFamilies' | 'execAllowlist' | 'wx' | 'minAddr'>
>;

export class KernelConfigError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`kernel config ${field}: ${message}`);
    this.name = 'KernelConfigError';
    this.field = field;
  }
}

/** A KernelConfig checked against this host, with defaults filled in. */
export interface ResolvedConfig {
  readonly cgroupPath: string;
  readonly pinRoot: string;
  readonly mode: 'auto' | KernelMode;
  readonly intercept: boolean;
  readonly objectDir?: string;
  readonly settings: KernelSettings;
  /** lil_unix_ok keys of unixAllowlist. */
  readonly unixKeys: Buffer[];
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0 && n < 65536;
}

/** The lil_config values for a config; throws KernelConfigError naming the first bad field. */
export function settingsOf(c: KernelConfig, intercept: boolean, where: { id: bigint; level: number }): KernelSettings {
  const p = c.proxy;
  if (!p || typeof p !== 'object') throw new KernelConfigError('proxy', 'is required');
  if (!isIPv4(p.address)) throw new KernelConfigError('proxy.address', `${JSON.stringify(p.address)} is not an IPv4 address`);
  const v6 = p.address6 ?? `::ffff:${p.address}`;
  if (!isIPv6(v6)) throw new KernelConfigError('proxy.address6', `${JSON.stringify(v6)} is not an IPv6 address`);
  if (!isPort(p.port)) throw new KernelConfigError('proxy.port', `${String(p.port)} is not a port (1-65535)`);
  if (!isPort(p.dnsPort)) throw new KernelConfigError('proxy.dnsPort', `${String(p.dnsPort)} is not a port (1-65535)`);
  const ttl = c.heartbeatTtlMs ?? 1000;
  if (!Number.isFinite(ttl) || ttl < 50 || ttl > 3_600_000) throw new KernelConfigError('heartbeatTtlMs', `${ttl} is outside 50..3600000`);
  const minAddr = c.minAddr ?? 65536;
  if (!Number.isInteger(minAddr) || minAddr < 0 || minAddr > 0xffffffff)
    throw new KernelConfigError('minAddr', `${minAddr} is not a 32-bit address`);
  for (const f of c.deniedFamilies ?? []) {
    if (!Number.isInteger(f) || f < 0 || f > 63) throw new KernelConfigError('deniedFamilies', `${f} is not a socket family (0-63)`);
    if (f === 2 || f === 10)
      throw new KernelConfigError('deniedFamilies', `denying AF_INET/AF_INET6 (${f}) would cut managed processes off from the proxy`);
  }
  return {
    heartbeatTtlNs: BigInt(Math.round(ttl * 1e6)),
    deniedFamilies: [...(c.deniedFamilies ?? [])],
    proxyV4: p.address,
    proxyV6: v6,
    proxyPort: p.port,
    dnsPort: p.dnsPort,
    minAddr,
    flags: (intercept ? CFG_INTERCEPT : 0) | (c.execAllowlist === false ? 0 : CFG_EXEC_ALLOWLIST) | (c.wx === false ? 0 : CFG_WX),
    interceptCgroupId: where.id,
    interceptLevel: where.level,
  };
}

/**
 * The settings after a live update: unchanged fields keep their current value,
 * the interception flag and cgroup stay what attach chose. Validated like attach.
 */
export function updatedSettings(current: KernelSettings, cgroupPath: string, update: SettingsUpdate): KernelSettings {
  const s = current;
  const merged: KernelConfig = {
    cgroupPath,
    proxy: update.proxy ?? { address: s.proxyV4, address6: s.proxyV6, port: s.proxyPort, dnsPort: s.dnsPort },
    heartbeatTtlMs: update.heartbeatTtlMs ?? Number(s.heartbeatTtlNs) / 1e6,
    deniedFamilies: update.deniedFamilies ?? s.deniedFamilies,
    execAllowlist: update.execAllowlist ?? (s.flags & CFG_EXEC_ALLOWLIST) !== 0,
    wx: update.wx ?? (s.flags & CFG_WX) !== 0,
    minAddr: update.minAddr ?? s.minAddr,
  };
  return settingsOf(merged, (s.flags & CFG_INTERCEPT) !== 0, { id: s.interceptCgroupId, level: s.interceptLevel });
}

/** lil_unix_ok key of an AF_UNIX address; a bad address is a KernelConfigError for `field`. */
export function unixKeyOf(path: string, field: string): Buffer {
  try {
    return unixKey(path);
  } catch (err) {
    throw new KernelConfigError(field, (err as Error).message);
  }
}

/** Validates a config against this host (the cgroup must exist) and fills in the defaults. */
export function resolveConfig(c: KernelConfig): ResolvedConfig {
  if (!c || typeof c !== 'object') throw new KernelConfigError('config', 'is required');
  const mode = c.mode ?? 'auto';
  if (!['auto', 'bpf-lsm', 'cgroup-only'].includes(mode))
    throw new KernelConfigError('mode', `${JSON.stringify(mode)} is not auto, bpf-lsm or cgroup-only`);
  if (typeof c.cgroupPath !== 'string' || !existsSync(join(c.cgroupPath, 'cgroup.procs'))) {
    throw new KernelConfigError('cgroupPath', `${JSON.stringify(c.cgroupPath)} is not a cgroup v2 directory`);
  }
  const intercept = mode === 'cgroup-only' ? true : (c.intercept ?? true);
  if (c.unixAllowlist !== undefined && !Array.isArray(c.unixAllowlist))
    throw new KernelConfigError('unixAllowlist', 'must be an array of socket paths');
  const unixKeys = (c.unixAllowlist ?? []).map((p, i) => unixKeyOf(p, `unixAllowlist[${i}]`));
  return {
    unixKeys,
    cgroupPath: c.cgroupPath,
    pinRoot: c.pinRoot ?? DEFAULT_PIN_ROOT,
    mode,
    intercept,
    objectDir: c.objectDir,
    settings: settingsOf(c, intercept, { id: cgroupId(c.cgroupPath), level: cgroupLevel(c.cgroupPath) }),
  };
}
