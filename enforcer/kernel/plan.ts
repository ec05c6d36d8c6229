// What the kernel maps should hold for one capsule, as plain data. Pure: the
// filesystem facts it needs (exec closures by inode) come in resolved
// (exec-inodes.ts), so the plan can be checked without a kernel, and the bridge
// (bridge.ts) is left with applying it: attach/configure, add-before-revoke
// diffs, heartbeat.
import { join } from 'node:path';
import type { KernelConfig, LilithConfig, ProxyConfig, Registration } from '../../capsule/config.js';
import type { ExecProgram } from './exec-inodes.js';
import { parseHostPort } from '../../net/address.js';

/** Where managed traffic is sent: the proxy's addresses as bpf/index.ts ProxySettings wants them. */
export interface ProxyPlan {
  address: string;
  port: number;
  dnsPort: number;
  address6?: string;
}

/** An inode managed processes may exec and map executable. */
export interface ExecEntry {
  /** `${dev}:${ino}`: what the bridge diffs by. */
  key: string;
  dev: bigint;
  ino: bigint;
}

/** An inode only one identity may exec and map executable (a registration's own exec_allowlist). */
export interface IdentityExecEntry {
  /** `${identity}/${dev}:${ino}`: what the bridge diffs by. */
  key: string;
  dev: bigint;
  ino: bigint;
  identity: number;
}

/** A registration's exec_allowlist, resolved (resolveExecPrograms). */
export interface IdentityExecPrograms {
  spiffeId: string;
  programs: readonly ExecProgram[];
}

/** A registration's cgroup selector as the kernel classifies it. */
export interface CgroupIdentity {
  /** Absolute cgroup directory (under the cgroup2 mount). */
  cgroup: string;
  id: number;
  jit: boolean;
}

export interface KernelPlan {
  /** The agent subtree the cgroup programs attach to. */
  cgroupPath: string;
  proxy: ProxyPlan;
  heartbeat: { ttlMs: number; intervalMs: number };
  /** AF_* numbers managed processes may not create. */
  deniedFamilies: number[];
  unixAllowlist: string[];
  exec: ExecEntry[];
  /** Per-identity exec allowlists: only processes classified with that identity may exec these. */
  identityExec: IdentityExecEntry[];
  identities: CgroupIdentity[];
  /** What could not be planned but does not stop the capsule (exec programs or libraries not found). */
  warnings: string[];
}

export interface KernelPlanInput {
  config: Pick<LilithConfig, 'proxy' | 'kernel' | 'registrations'>;
  /** cgroup2 mount point; cgroup_root and cgroup selectors are relative to it. */
  cgroupMount: string;
  /** config.kernel.exec_allowlist, resolved (resolveExecPrograms). */
  execPrograms: readonly ExecProgram[];
  /** Each registration's exec_allowlist, resolved. */
  identityExecPrograms?: readonly IdentityExecPrograms[];
}

/** A shorter interval would only burn CPU: the kernel TTL is what fails closed. */
const MIN_HEARTBEAT_INTERVAL_MS = 10;

const FAMILIES: Record<string, number> = {
  AF_UNIX: 1,
  AF_LOCAL: 1,
  AF_AX25: 3,
  AF_IPX: 4,
  AF_APPLETALK: 5,
  AF_NETLINK: 16,
  AF_PACKET: 17,
  AF_CAN: 29,
  AF_TIPC: 30,
  AF_BLUETOOTH: 31,
  AF_ALG: 38,
  AF_VSOCK: 40,
  AF_KCM: 41,
  AF_QIPCRTR: 42,
  AF_XDP: 44,
};

/** Stable, non-zero 32-bit identity number for a SPIFFE ID (FNV-1a). */
export function identityNumber(spiffeId: string): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(spiffeId)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h || 1;
}

export function planKernel(input: KernelPlanInput): KernelPlan {
  const { config, cgroupMount } = input;
  const warnings: string[] = [];
  return {
    cgroupPath: join(cgroupMount, config.kernel.cgroup_root),
    proxy: planProxy(config.proxy),
    heartbeat: {
      ttlMs: config.kernel.heartbeat_ttl_ms,
      intervalMs: Math.max(MIN_HEARTBEAT_INTERVAL_MS, config.kernel.heartbeat_interval_ms),
    },
    deniedFamilies: planDeniedFamilies(config.kernel),
    unixAllowlist: [...new Set(config.kernel.unix_allowlist ?? [])],
    exec: planExec(input.execPrograms, warnings),
    identityExec: planIdentityExec(input.identityExecPrograms ?? [], warnings),
    identities: planIdentities(config.registrations, cgroupMount),
    warnings,
  };
}

function planProxy(proxy: ProxyConfig): ProxyPlan {
  const listen = parseHostPort(proxy.listen, 'proxy.listen');
  const dns = parseHostPort(proxy.dns_listen, 'proxy.dns_listen');
  return {
    address: listen.host,
    port: listen.port,
    dnsPort: dns.port,
    ...(proxy.listen6 ? { address6: parseHostPort(proxy.listen6, 'proxy.listen6').host } : {}),
  };
}

function planDeniedFamilies(kernel: KernelConfig): number[] {
  return (kernel.deny_socket_families ?? []).map((f) => {
    const n = FAMILIES[f.toUpperCase()];
    if (n === undefined) throw new Error(`kernel.deny_socket_families: unknown family ${f}`);
    return n;
  });
}

function planExec(programs: readonly ExecProgram[], warnings: string[], where = 'exec_allowlist'): ExecEntry[] {
  const entries = new Map<string, ExecEntry>();
  for (const p of programs) {
    if ('error' in p) {
      warnings.push(`${where}: ${p.path}: ${p.error} (skipped)`);
      continue;
    }
    if (p.missing.length) warnings.push(`${where}: ${p.path} needs ${p.missing.join(', ')}, not found (it will not start)`);
    for (const f of p.files) {
      if ('error' in f) {
        warnings.push(`${where}: ${f.file} (for ${p.path}): ${f.error} (skipped)`);
        continue;
      }
      const key = `${f.dev}:${f.ino}`;
      entries.set(key, { key, dev: f.dev, ino: f.ino });
    }
  }
  return [...entries.values()];
}

function planIdentityExec(lists: readonly IdentityExecPrograms[], warnings: string[]): IdentityExecEntry[] {
  // Keyed by identity and inode: registrations sharing a SPIFFE ID share one list.
  const entries = new Map<string, IdentityExecEntry>();
  for (const { spiffeId, programs } of lists) {
    const identity = identityNumber(spiffeId);
    for (const e of planExec(programs, warnings, `${spiffeId}: exec_allowlist`)) {
      const key = `${identity}/${e.key}`;
      entries.set(key, { key, dev: e.dev, ino: e.ino, identity });
    }
  }
  return [...entries.values()];
}

function planIdentities(registrations: readonly Registration[], cgroupMount: string): CgroupIdentity[] {
  // Keyed by directory: a later registration naming the same cgroup replaces the earlier one.
  const byCgroup = new Map<string, CgroupIdentity>();
  for (const r of registrations) {
    for (const sel of r.selectors) {
      if (!sel.startsWith('cgroup:')) continue;
      const cgroup = join(cgroupMount, sel.slice('cgroup:'.length));
      byCgroup.set(cgroup, { cgroup, id: identityNumber(r.spiffe_id), jit: r.jit === true });
    }
  }
  return [...byCgroup.values()];
}
