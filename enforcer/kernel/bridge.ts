// Drives the kernel programs (bpf/index.ts) from the active capsule. Activation calls
// apply() before the snapshot swap, so the maps the capsule drives — proxy address,
// heartbeat TTL, denied socket families, exec allowlist, cgroup registrations — match
// the policy the dataplane is about to use. The heartbeat runs only while a capsule
// is being enforced: an expired capsule under fail_closed (or a dead daemon) lets the
// kernel's heartbeat TTL cut managed processes off. What the maps should hold is
// computed in plan.ts; this class applies it.
import { mkdirSync } from 'node:fs';
import type { KernelEvent } from '../../bpf/index.js';
import { controlMetrics, type Activator, type KernelApplier, type PolicySnapshot } from '../control/index.js';
import type { AuditSink } from '../audit/event.js';
import { compileRegistrations, readProcessFacts, resolveIdentity } from '../../identity/index.js';
import { resolveExecPrograms } from './exec-inodes.js';
import { identityNumber, planKernel, type KernelPlan } from './plan.js';
import type { KernelStatus } from './status.js';

// Type-only: the daemon loads bpf/index.ts (native addon) itself and hands it in.
type KernelModule = typeof import('../../bpf/index.js');
type Kernel = Awaited<ReturnType<KernelModule['attach']>>;

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
  #execAllowed = new Map<string, { dev: bigint; ino: bigint; identity?: number }>();
  #cgroups = new Set<string>();
  #offEvents: (() => void) | null = null;

  constructor(o: KernelBridgeOptions) {
    this.#o = o;
  }

  async apply(next: PolicySnapshot, _previous: PolicySnapshot | null): Promise<void> {
    const cfg = next.config;
    const plan = planKernel({
      config: cfg,
      cgroupMount: this.#o.cgroupMount,
      execPrograms: resolveExecPrograms(cfg.kernel.exec_allowlist ?? []),
      identityExecPrograms: cfg.registrations
        .filter((r) => r.exec_allowlist?.length)
        .map((r) => ({ spiffeId: r.spiffe_id, programs: resolveExecPrograms(r.exec_allowlist ?? []) })),
    });
    const k = await this.#attachOrConfigure(plan);
    for (const w of plan.warnings) this.#o.log(w);
    this.#applyExec(k, plan);
    this.#applyUnix(k, plan);
    this.#applyRegistrations(k, plan);
    this.#startHeartbeat(plan.heartbeat.intervalMs);
  }

  async #attachOrConfigure(plan: KernelPlan): Promise<Kernel> {
    const settings = { proxy: plan.proxy, heartbeatTtlMs: plan.heartbeat.ttlMs, deniedFamilies: plan.deniedFamilies };
    if (this.#kernel) {
      this.#kernel.configure(settings);
      return this.#kernel;
    }
    mkdirSync(plan.cgroupPath, { recursive: true });
    const k = await this.#o.bpf.attach({
      cgroupPath: plan.cgroupPath,
      ...settings,
      unixAllowlist: plan.unixAllowlist,
      pinRoot: this.#o.pinRoot,
    });
    this.#kernel = k;
    this.#o.log(
      `kernel programs attached (${k.mode}${k.adopted ? ', re-adopted from pins' : ''}) on ${plan.cgroupPath}: ${k.hooks.active.join(' ')}`,
    );
    for (const p of k.replacedPins) this.#o.log(`kernel: ${this.#o.bpf.describeReplacedPin(p)}`);
    const detail = {
      hooks: k.hooks.active,
      missing: k.hooks.missing,
      ...(k.replacedPins.length ? { replaced_pins: k.replacedPins } : {}),
    };
    this.#o.audit.emit({ kind: 'kernel', time: new Date().toISOString(), event: 'mode', reason: k.mode, detail });
    this.#offEvents = k.onEvent((e) => this.#onEvent(e));
    return k;
  }

  #applyExec(k: Kernel, plan: KernelPlan): void {
    const want = new Map<string, { dev: bigint; ino: bigint; identity?: number }>([
      ...plan.exec.map((e) => [e.key, { dev: e.dev, ino: e.ino }] as const),
      ...plan.identityExec.map((e) => [e.key, { dev: e.dev, ino: e.ino, identity: e.identity }] as const),
    ]);
    // Add the new set first, then revoke what left it: never a moment with less than both.
    for (const [key, v] of want) if (!this.#execAllowed.has(key)) k.allowExecInode(v.dev, v.ino, v.identity);
    for (const [key, v] of this.#execAllowed) if (!want.has(key)) k.revokeExecInode(v.dev, v.ino, v.identity);
    this.#execAllowed = want;
  }

  #applyUnix(k: Kernel, plan: KernelPlan): void {
    const want = new Set(plan.unixAllowlist);
    const have = new Set(k.unixAllowlist());
    // Add first, then revoke: a path in both capsules is never briefly denied.
    for (const path of want) if (!have.has(path)) k.allowUnixPath(path);
    for (const path of have) if (!want.has(path)) k.revokeUnixPath(path);
  }

  #applyRegistrations(k: Kernel, plan: KernelPlan): void {
    for (const { cgroup, id, jit } of plan.identities) {
      mkdirSync(cgroup, { recursive: true });
      k.registerIdentity({ cgroup }, id, { jit });
    }
    // A cgroup no longer registered stays managed but unclassified: denied, not freed.
    const want = new Set(plan.identities.map((i) => i.cgroup));
    for (const dir of this.#cgroups) if (!want.has(dir)) k.manageCgroup(dir);
    this.#cgroups = new Set([...this.#cgroups, ...want]);
  }

  /** intervalMs comes from the plan, already clamped. */
  #startHeartbeat(intervalMs: number): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    const beat = () => {
      // Only while a capsule is enforced: otherwise let the kernel TTL fail closed.
      if (!this.#o.activator.get() || !this.#kernel) return;
      this.#kernel.setHeartbeat();
      this.#lastBeat = Date.now();
    };
    beat();
    this.#heartbeat = setInterval(beat, intervalMs);
  }

  async #onEvent(e: KernelEvent): Promise<void> {
    if (e.kind === 'deny') {
      controlMetrics.kernelDenials.inc({ hook: e.hook, reason: e.reason });
      const detail = {
        comm: e.comm,
        uid: e.uid,
        identity: e.identity,
        ...(e.destination ? { destination: `${e.destination.address}:${e.destination.port}` } : {}),
        ...(e.path ? { path: e.path } : {}),
        ...(e.target ? { target_pid: e.target.tgid, signal: e.target.signal } : {}),
      };
      this.#o.audit.emit({
        kind: 'kernel',
        time: new Date().toISOString(),
        event: 'deny',
        hook: e.hook,
        pid: e.tgid,
        reason: e.reason,
        detail,
      });
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
          this.#kernel?.registerIdentity({ pid: e.tgid, startNs: e.startNs }, identityNumber(spiffe), {
            jit: resolved.registration.jit === true,
          });
        }
      } catch {
        // The process may be gone already; unclassified means denied.
      }
    }
    const detail = { path: e.path, comm: e.comm, uid: e.uid };
    this.#o.audit.emit({ kind: 'kernel', time: new Date().toISOString(), event: 'exec', pid: e.tgid, spiffe_id: spiffe, detail });
  }

  /** For the dataplane's origin resolver: the redirect record of an accepted connection or (udp) a DNS datagram. */
  originalDestination(peer: { remoteAddress?: string; remotePort?: number; transport?: 'tcp' | 'udp' }) {
    return this.#kernel?.originalDestination(peer) ?? null;
  }

  status(): KernelStatus {
    const k = this.#kernel;
    const age = this.#lastBeat === null ? null : Date.now() - this.#lastBeat;
    if (age !== null) controlMetrics.heartbeatAge.set(age / 1000);
    if (!k) return { mode: 'off', hooks: [], heartbeat_age_ms: age, error: 'not attached yet (waiting for the first capsule)' };
    const replaced = k.replacedPins.map((p) => ({ program: p.program, pinned_tag: p.pinnedTag, build_tag: p.buildTag }));
    return { mode: k.mode, hooks: [...k.hooks.active], heartbeat_age_ms: age, ...(replaced.length ? { replaced_pins: replaced } : {}) };
  }

  async stop(): Promise<void> {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#offEvents?.();
    // Close handles only: pinned programs keep enforcing (fail closed once the heartbeat ages out).
    this.#kernel?.close();
  }
}
