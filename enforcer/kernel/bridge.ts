// Drives the kernel programs (bpf/index.ts) from the active capsule. Activation calls
// apply() before the snapshot swap, so the maps the capsule drives — proxy address,
// heartbeat TTL, denied socket families, exec allowlist, cgroup registrations — match
// the policy the dataplane is about to use. The heartbeat runs only while a capsule
// is being enforced: an expired capsule under fail_closed (or a dead daemon) lets the
// kernel's heartbeat TTL cut managed processes off.
import { join } from 'node:path';
import { mkdirSync, statSync } from 'node:fs';
import { executableClosure, librarySearchDirs } from './elf-deps.js';
import type { LilithConfig } from '../../capsule/config.js';
import type { Activator, KernelApplier } from '../control/activation.js';
import type { AuditSink } from '../audit/event.js';
import type { KernelStatus } from '../daemon/daemon.js';
import { controlMetrics } from '../control/metrics.js';
import type { PolicySnapshot } from '../control/snapshot.js';
import { compileRegistrations, readProcessFacts, resolveIdentity } from '../../identity/index.js';
import { parseHostPort } from '../../net/address.js';

type KernelModule = typeof import('../../bpf/index.js');
type Kernel = Awaited<ReturnType<KernelModule['attach']>>;

const FAMILIES: Record<string, number> = {
  AF_UNIX: 1, AF_LOCAL: 1, AF_AX25: 3, AF_IPX: 4, AF_APPLETALK: 5, AF_NETLINK: 16, AF_PACKET: 17,
  AF_CAN: 29, AF_TIPC: 30, AF_BLUETOOTH: 31, AF_ALG: 38, AF_VSOCK: 40, AF_KCM: 41, AF_QIPCRTR: 42, AF_XDP: 44,
};

/** Stable, non-zero 32-bit identity number for a SPIFFE ID (FNV-1a). */
export function identityNumber(spiffeId: string): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(spiffeId)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h || 1;
}

export interface KernelBridgeOptions {
  bpf: KernelModule;
  audit: AuditSink;
  activator: Activator;
  log: (line: string) => void;
  /** cgroup2 mount point; registrations' cgroup selectors are relative to it. */
  cgroupMount: string;
  pinRoot?: string;
}

export class KernelBridge implements KernelApplier {
  #o: KernelBridgeOptions;
  #kernel: Kernel | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #lastBeat: number | null = null;
  #execAllowed = new Map<string, { dev: bigint; ino: bigint }>();
  #cgroups = new Set<string>();
  #offEvents: (() => void) | null = null;

  constructor(o: KernelBridgeOptions) {
    this.#o = o;
  }

  async apply(next: PolicySnapshot, _previous: PolicySnapshot | null): Promise<void> {
    const cfg = next.config;
    const listen = parseHostPort(cfg.proxy.listen, 'proxy.listen');
    const dns = parseHostPort(cfg.proxy.dns_listen, 'proxy.dns_listen');
    const proxy = { address: listen.host, port: listen.port, dnsPort: dns.port, ...(cfg.proxy.listen6 ? { address6: parseHostPort(cfg.proxy.listen6, 'proxy.listen6').host } : {}) };
    const deniedFamilies = (cfg.kernel.deny_socket_families ?? []).map((f) => {
      const n = FAMILIES[f.toUpperCase()];
      if (n === undefined) throw new Error(`kernel.deny_socket_families: unknown family ${f}`);
      return n;
    });
    if (!this.#kernel) {
      const cgroupPath = join(this.#o.cgroupMount, cfg.kernel.cgroup_root);
      mkdirSync(cgroupPath, { recursive: true });
      this.#kernel = await this.#o.bpf.attach({ cgroupPath, proxy, heartbeatTtlMs: cfg.kernel.heartbeat_ttl_ms, deniedFamilies, unixAllowlist: cfg.kernel.unix_allowlist ?? [], pinRoot: this.#o.pinRoot });
      this.#o.log(`kernel programs attached (${this.#kernel.mode}${this.#kernel.adopted ? ', re-adopted from pins' : ''}) on ${cgroupPath}: ${this.#kernel.hooks.active.join(' ')}`);
      this.#o.audit.emit({ kind: 'kernel', time: new Date().toISOString(), event: 'mode', reason: this.#kernel.mode, detail: { hooks: this.#kernel.hooks.active, missing: this.#kernel.hooks.missing } });
      this.#offEvents = this.#kernel.onEvent((e) => this.#onEvent(e));
    } else {
      this.#kernel.configure({ proxy, heartbeatTtlMs: cfg.kernel.heartbeat_ttl_ms, deniedFamilies });
    }
    this.#applyExec(cfg);
    this.#applyUnix(cfg);
    this.#applyRegistrations(cfg);
    this.#startHeartbeat(cfg.kernel.heartbeat_interval_ms);
  }

  #applyExec(cfg: LilithConfig): void {
    const k = this.#kernel!;
    const want = new Map<string, { dev: bigint; ino: bigint }>();
    // Under BPF-LSM the allowlist also gates executable mappings: each program
    // brings its interpreter and shared libraries (read from its ELF headers).
    const searchDirs = librarySearchDirs();
    for (const path of cfg.kernel.exec_allowlist ?? []) {
      let files: string[];
      try {
        const closure = executableClosure(path, searchDirs);
        files = closure.files;
        if (closure.missing.length) this.#o.log(`exec_allowlist: ${path} needs ${closure.missing.join(', ')}, not found (it will not start)`);
      } catch (err) {
        this.#o.log(`exec_allowlist: ${path}: ${(err as Error).message} (skipped)`);
        continue;
      }
      for (const file of files) {
        try {
          const st = statSync(file, { bigint: true });
          want.set(`${st.dev}:${st.ino}`, { dev: st.dev, ino: st.ino });
        } catch (err) {
          this.#o.log(`exec_allowlist: ${file} (for ${path}): ${(err as Error).message} (skipped)`);
        }
      }
    }
    // Add the new set first, then revoke what left it: never a moment with less than both.
    for (const [key, v] of want) if (!this.#execAllowed.has(key)) k.allowExecInode(v.dev, v.ino);
    for (const [key, v] of this.#execAllowed) if (!want.has(key)) k.revokeExecInode(v.dev, v.ino);
    this.#execAllowed = want;
  }

  #applyUnix(cfg: LilithConfig): void {
    const k = this.#kernel!;
    const want = new Set(cfg.kernel.unix_allowlist ?? []);
    const have = new Set(k.unixAllowlist());
    // Add first, then revoke: a path in both capsules is never briefly denied.
    for (const path of want) if (!have.has(path)) k.allowUnixPath(path);
    for (const path of have) if (!want.has(path)) k.revokeUnixPath(path);
  }

  #applyRegistrations(cfg: LilithConfig): void {
    const k = this.#kernel!;
    const want = new Map<string, { id: number; jit: boolean }>();
    for (const r of cfg.registrations) {
      for (const sel of r.selectors) {
        if (!sel.startsWith('cgroup:')) continue;
        const dir = join(this.#o.cgroupMount, sel.slice('cgroup:'.length));
        want.set(dir, { id: identityNumber(r.spiffe_id), jit: r.jit === true });
      }
    }
    for (const [dir, v] of want) {
      mkdirSync(dir, { recursive: true });
      k.registerIdentity({ cgroup: dir }, v.id, { jit: v.jit });
    }
    // A cgroup no longer registered stays managed but unclassified: denied, not freed.
    for (const dir of this.#cgroups) if (!want.has(dir)) k.manageCgroup(dir);
    this.#cgroups = new Set([...this.#cgroups, ...want.keys()]);
  }

  #startHeartbeat(intervalMs: number): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    const beat = () => {
      // Only while a capsule is enforced: otherwise let the kernel TTL fail closed.
      if (!this.#o.activator.get() || !this.#kernel) return;
      this.#kernel.setHeartbeat();
      this.#lastBeat = Date.now();
    };
    beat();
    this.#heartbeat = setInterval(beat, Math.max(10, intervalMs));
  }

  async #onEvent(e: import('../../bpf/index.js').KernelEvent): Promise<void> {
    if (e.kind === 'deny') {
      this.#o.audit.emit({ kind: 'kernel', time: new Date().toISOString(), event: 'deny', hook: e.hook, pid: e.tgid, reason: e.reason, detail: { comm: e.comm, uid: e.uid, identity: e.identity, ...(e.destination ? { destination: `${e.destination.address}:${e.destination.port}` } : {}), ...(e.path ? { path: e.path } : {}) } });
      return;
    }
    // A managed process exec'd: classify it from attested facts against the capsule's registrations.
    const snap = this.#o.activator.get();
    let spiffe: string | null = null;
    if (snap && e.managed && !e.classified) {
      try {
        const resolved = resolveIdentity(await readProcessFacts(e.tgid), compileRegistrations(snap.config.registrations));
        if (resolved) {
          spiffe = resolved.spiffeId;
          this.#kernel?.registerIdentity({ pid: e.tgid, startNs: e.startNs }, identityNumber(spiffe), { jit: resolved.registration.jit === true });
        }
      } catch {
        // The process may be gone already; unclassified means denied.
      }
    }
    this.#o.audit.emit({ kind: 'kernel', time: new Date().toISOString(), event: 'exec', pid: e.tgid, spiffe_id: spiffe, detail: { path: e.path, comm: e.comm, uid: e.uid } });
  }

  /** For the dataplane's origin resolver: the redirect record of an accepted connection. */
  originalDestination(peer: { remoteAddress?: string; remotePort?: number }) {
    return this.#kernel?.originalDestination(peer) ?? null;
  }

  status(): KernelStatus {
    const k = this.#kernel;
    const age = this.#lastBeat === null ? null : Date.now() - this.#lastBeat;
    if (age !== null) controlMetrics.heartbeatAge.set(age / 1000);
    return { mode: k ? k.mode : 'off', hooks: k ? [...k.hooks.active] : [], heartbeat_age_ms: age, ...(k ? {} : { error: 'not attached yet (waiting for the first capsule)' }) };
  }

  async stop(): Promise<void> {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#offEvents?.();
    // Close handles only: pinned programs keep enforcing (fail closed once the heartbeat ages out).
    this.#kernel?.close();
  }
}
