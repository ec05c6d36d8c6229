// The enforcer daemon: composes capsule sources, activation, the admin API and (when
// enabled) the kernel programs and the dataplane. Startup order matters: the persisted
// last-good capsule is loaded and enforced before any network step, so a restart with
// the git server down still enforces the latest accepted policy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrust, type Trust } from '../../capsule/index.js';
import { Activator, type KernelApplier, type OfferResult } from '../control/activation.js';
import { listenAdminSocket, listenAdminTcp, type AdminHandlers, type AdminServer, type JsonReply } from './admin.js';
import { attestAgent } from './agents.js';
import type { AuditSink } from '../audit/event.js';
import type { AuthzRequest } from '../../cedar/types.js';
import { controlMetrics } from '../control/metrics.js';
import { openAudit } from './audit.js';
import { DaemonConfigError, type DaemonConfig } from './config.js';
import { DirSource } from '../control/sync/dir-source.js';
import { GitSource } from '../control/sync/git-source.js';
import type { CapsuleCandidate, CapsuleSource } from '../control/sync/types.js';

export interface Daemon {
  readonly activator: Activator;
  readonly sources: CapsuleSource[];
  status(): DaemonStatus;
  /** Re-reads the trust file (SIGHUP); keeps the current one if the new one is unusable. */
  reloadTrust(): void;
  /** Resolves when stopped (signal or stop()). */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

/** The kernel side as the daemon sees it; filled by bpf/index.ts when enabled. */
export interface KernelStatus {
  mode: 'bpf-lsm' | 'cgroup-only' | 'off';
  hooks: string[];
  heartbeat_age_ms: number | null;
  error?: string;
}

export type DaemonStatus = ReturnType<Activator['status']> & {
  version: 1;
  pid: number;
  started_at: string;
  ready: boolean;
  not_ready_reason: string | null;
  sync: { sources: ReturnType<CapsuleSource['status']>[] };
  kernel: KernelStatus;
  dataplane: { enabled: boolean; error?: string; [k: string]: unknown };
  admin: { socket: string; listen: string | null };
  audit: { path: string; dropped: number };
};

/** Optional parts the daemon composes when enabled (kernel, dataplane). */
export interface DaemonPlugins {
  kernel?: (ctx: { activator: Activator; audit: AuditSink; log: (l: string) => void }) => Promise<{ applier: KernelApplier; status(): KernelStatus; stop(): Promise<void> }>;
  dataplane?: (ctx: { activator: Activator; audit: AuditSink; log: (l: string) => void }) => Promise<{ stop(): Promise<void>; status?(): Record<string, unknown> }>;
}

function loadTrust(path: string): Trust {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new DaemonConfigError('bad_trust', `cannot read trust file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseTrust(bytes, `trust file ${path}`);
  } catch (err) {
    throw new DaemonConfigError('bad_trust', (err as Error).message);
  }
}

/** LILITH_TEST_PAUSE_AT="after-persist-capsule:5000": a test seam to kill the daemon mid-activation. */
function pauseFromEnv(log: (l: string) => void) {
  const spec = process.env.LILITH_TEST_PAUSE_AT;
  if (!spec) return undefined;
  const [step, ms] = spec.split(':');
  return async (at: string) => {
    if (at !== step) return;
    log(`test pause at ${at} for ${ms} ms`);
    await new Promise((r) => setTimeout(r, Number(ms)));
  };
}

export async function startDaemon(cfg: DaemonConfig, plugins: DaemonPlugins = {}): Promise<Daemon> {
  const log = (l: string) => process.stderr.write(`lilith enforcer: ${l}\n`);
  const trust = loadTrust(cfg.trust);
  const startedAt = new Date();
  const audit = openAudit(cfg.audit);

  let kernel: Awaited<ReturnType<NonNullable<DaemonPlugins['kernel']>>> | null = null;
  let kernelError: string | undefined;
  const kernelApplier: KernelApplier = { apply: (next, prev) => kernel?.applier.apply(next, prev) ?? Promise.resolve() };
  const activator = new Activator({
    trust,
    stateDir: cfg.stateDir,
    engine: cfg.engine,
    audit,
    kernel: kernelApplier,
    maxCapsuleBytes: cfg.maxCapsuleBytes,
    pauseAt: pauseFromEnv(log),
    log,
  });

  // 1. Last-good capsule from disk, before any network step.
  const loaded = await activator.loadPersisted(cfg.resetState);
  if (loaded?.result === 'refused') log(`persisted capsule not enforced: ${loaded.refusal.code}: ${loaded.refusal.reason}`);

  // 2. Kernel: attach and bring maps in line with the capsule already active.
  if (cfg.kernel) {
    if (!plugins.kernel) throw new DaemonConfigError('unavailable', 'kernel enforcement is enabled but this build has no kernel module; run with --no-kernel');
    kernel = await plugins.kernel({ activator, audit, log });
    const active = activator.active();
    if (active) await kernel.applier.apply(active, null).catch((e: Error) => { kernelError = e.message; log(`kernel apply: ${e.message}`); });
  }

  // 3. Dataplane reads the activator as its SnapshotSource. It listens where the capsule
  // says, so it starts with the first active capsule (until then nothing is allowed anyway).
  let dataplane: { stop(): Promise<void>; status?(): Record<string, unknown> } | null = null;
  let dataplaneError: string | undefined;
  let dataplaneListen: string | null = null;
  if (cfg.dataplane && !plugins.dataplane) throw new DaemonConfigError('unavailable', 'the dataplane is enabled but this build has no dataplane; run with --no-dataplane');
  const ensureDataplane = async () => {
    const active = activator.active();
    if (!cfg.dataplane || !plugins.dataplane || !active) return;
    const listen = [active.config.proxy.listen, active.config.proxy.listen6 ?? '', active.config.proxy.dns_listen].join(' ');
    if (dataplane) {
      if (listen !== dataplaneListen) {
        dataplaneError = `capsule watermark ${active.watermark} moves the proxy to ${listen}; restart the enforcer to rebind (still listening on ${dataplaneListen})`;
        log(dataplaneError);
      }
      return;
    }
    try {
      dataplane = await plugins.dataplane({ activator, audit, log });
      dataplaneListen = listen;
      dataplaneError = undefined;
    } catch (err) {
      dataplaneError = `dataplane did not start: ${(err as Error).message}`;
      log(dataplaneError);
    }
  };
  await ensureDataplane();

  // 4. Admin API.
  let tcp: AdminServer | null = null;
  let tcpAddr: string | null = null;
  const notReady = (): string | null => {
    if (!activator.get()) return activator.active() ? 'the active capsule has expired (on_expiry=fail_closed)' : 'no capsule activated yet';
    return null;
  };
  const status = (): DaemonStatus => ({
    version: 1,
    pid: process.pid,
    started_at: startedAt.toISOString(),
    ready: notReady() === null,
    not_ready_reason: notReady(),
    ...activator.status(),
    sync: { sources: sources.map((s) => s.status()) },
    kernel: kernel ? { ...kernel.status(), ...(kernelError ? { error: kernelError } : {}) } : { mode: 'off', hooks: [], heartbeat_age_ms: null },
    dataplane: { enabled: dataplane !== null, ...(dataplane?.status?.() ?? {}), ...(dataplaneError ? { error: dataplaneError } : {}) },
    admin: { socket: cfg.adminSocket, listen: tcp?.address ?? null },
    audit: { path: cfg.audit, dropped: audit.dropped() },
  });
  const authorize = (body: unknown): JsonReply => {
    const snap = activator.get();
    if (!snap) return { status: 200, json: { decision: 'deny', reasons: [], errors: [], watermark: null, reason: notReady() } };
    const req = body as AuthzRequest;
    if (!req || typeof req !== 'object' || !req.principal || !req.action || !req.resource) return { status: 400, json: { error: 'expected {principal, action, resource, context}' } };
    const d = snap.authorizer.isAuthorized({ ...req, context: req.context ?? {} });
    return { status: 200, json: { ...d, watermark: snap.watermark } };
  };
  // `lilith run` asks which policy config is active and who a process is.
  const config = (): JsonReply => {
    const snap = activator.get();
    return snap ? { status: 200, json: snap.config } : { status: 503, json: { error: notReady() } };
  };
  const agents = async (body: unknown): Promise<JsonReply> => {
    const snap = activator.get();
    if (!snap) return { status: 503, json: { error: notReady() } };
    const b = (body ?? {}) as { pid?: unknown; exe_path?: unknown; exe_sha256?: unknown };
    if (typeof b.pid !== 'number') return { status: 400, json: { error: 'expected {pid, exe_path?, exe_sha256?}' } };
    const r = await attestAgent({ pid: b.pid, exePath: typeof b.exe_path === 'string' ? b.exe_path : undefined, exeSha256: typeof b.exe_sha256 === 'string' ? b.exe_sha256 : undefined }, snap.config.registrations);
    return r.ok ? { status: 200, json: { spiffe_id: r.spiffe_id, registration: r.registration, watermark: snap.watermark } } : { status: 403, json: { error: r.error } };
  };
  const handlers: AdminHandlers = { status, notReady, local: { get: { '/v1/config': config }, post: { '/authorize': authorize, '/v1/agents': agents } } };
  const unix = await listenAdminSocket(cfg.adminSocket, handlers);
  const bindTcp = async (addr: string) => {
    if (addr === 'off' || addr === tcpAddr) return;
    tcpAddr = addr;
    await tcp?.close();
    tcp = null;
    try {
      tcp = await listenAdminTcp(addr, handlers);
      log(`admin (healthz, readyz, metrics) on http://${tcp.address}`);
    } catch (err) {
      log(`cannot listen on admin address ${addr}: ${(err as Error).message} (status stays available on ${cfg.adminSocket})`);
    }
  };
  if (cfg.adminListen) await bindTcp(cfg.adminListen);

  // 5. Sources.
  const sources: CapsuleSource[] = [];
  if (cfg.git) {
    sources.push(new GitSource({
      url: cfg.git.url,
      branch: cfg.git.branch,
      file: cfg.git.file,
      cloneDir: join(cfg.stateDir, 'git'),
      pollMinMs: cfg.pollMinMs,
      pollMaxMs: cfg.pollMaxMs,
      backoffMaxMs: cfg.backoffMaxMs,
      timeoutMs: cfg.timeoutMs,
      maxCapsuleBytes: cfg.maxCapsuleBytes,
      onRequest: () => controlMetrics.gitRequests.inc(),
      onOutcome: (o) => {
        controlMetrics.syncAttempts.inc({ kind: 'git', result: o.result });
        if (o.result === 'error') log(`git sync: ${o.error}`);
      },
    }));
  }
  if (cfg.capsuleDir) sources.push(new DirSource({ dir: cfg.capsuleDir, maxCapsuleBytes: cfg.maxCapsuleBytes }));

  const onCandidate = async (c: CapsuleCandidate): Promise<void> => {
    const r: OfferResult = await activator.offer(c);
    if (r.result === 'activated') await ensureDataplane();
    if (r.result === 'activated' && !cfg.adminListen) {
      const addr = activator.active()?.config.proxy?.admin_listen;
      if (addr) await bindTcp(addr);
    }
  };
  if (!cfg.adminListen) {
    const addr = activator.active()?.config.proxy?.admin_listen;
    if (addr) await bindTcp(addr);
  }
  for (const s of sources) await s.start(onCandidate);
  log(`started (pid ${process.pid}); sources: ${sources.map((s) => s.name).join(', ')}; admin socket ${cfg.adminSocket}`);

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      for (const s of sources) await s.stop().catch(() => undefined);
      activator.stop();
      await dataplane?.stop().catch(() => undefined);
      await kernel?.stop().catch(() => undefined);
      await tcp?.close();
      await unix.close();
      await audit.close();
      resolveStopped();
    })();
    return stopping;
  };
  const reloadTrust = () => {
    try {
      const next = loadTrust(cfg.trust);
      activator.setTrust(next);
      log(`trust file ${cfg.trust} reloaded: ${next.keys.size} key(s), threshold ${next.threshold}`);
    } catch (err) {
      log(`trust file reload failed, keeping the current trust: ${(err as Error).message}`);
    }
  };
  return { activator, sources, status, stopped, stop, reloadTrust };
}
