// The enforcer daemon: composes capsule sources, activation, the admin API and (when
// enabled) the kernel programs and the dataplane. Startup order matters: the persisted
// last-good capsule is loaded and enforced before any network step, so a restart with
// the git server down still enforces the latest accepted policy.
import { Activator, type CapsuleCandidate, type CapsuleSource } from '../control/index.js';
import { AdminListeners } from './admin-listeners.js';
import { buildAdminHandlers, type DaemonStatus } from './admin-routes.js';
import { openAudit } from './audit.js';
import type { DaemonConfig } from './config.js';
import { DataplaneHolder, KernelHolder, type DaemonPlugins } from './parts.js';
import { buildSources } from './sources.js';
import { loadTrust } from './trust.js';
import { systemdNotifier } from './systemd-notify.js';

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
  const systemd = await systemdNotifier(process.env, log);
  const trust = loadTrust(cfg.trust);
  const startedAt = new Date();
  const audit = openAudit(cfg.audit);
  const kernel = new KernelHolder();
  const { stateDir, engine, maxCapsuleBytes } = cfg;
  const activator = new Activator({
    trust,
    stateDir,
    engine,
    audit,
    kernel: kernel.applier,
    maxCapsuleBytes,
    pauseAt: pauseFromEnv(log),
    log,
  });
  const parts = { activator, audit, log };

  // 1. Last-good capsule from disk, before any network step.
  const loaded = await activator.loadPersisted(cfg.resetState);
  if (loaded?.result === 'refused') log(`persisted capsule not enforced: ${loaded.refusal.code}: ${loaded.refusal.reason}`);

  // 2. Kernel: attach and bring maps in line with the capsule already active.
  if (cfg.kernel) await kernel.start(plugins.kernel, parts);

  // 3. Dataplane: reads the activator as its SnapshotSource; starts with the first active capsule.
  const dataplane = new DataplaneHolder(cfg.dataplane, plugins.dataplane, parts);
  await dataplane.ensure();

  // 4. Admin API: the socket always; TCP on --admin-listen, else where the active capsule says.
  const sources = buildSources(cfg, log);
  const admin = new AdminListeners(cfg.adminSocket, log);
  const handlers = buildAdminHandlers({
    cfg,
    startedAt,
    activator,
    sources,
    kernel,
    dataplane,
    audit,
    adminTcpAddress: () => admin.tcpAddress,
  });
  await admin.open(handlers);
  const adminTcpWanted = () => cfg.adminListen ?? activator.active()?.config.proxy?.admin_listen;
  const bindAdminTcp = async () => {
    const addr = adminTcpWanted();
    if (addr) await admin.bindTcp(addr);
  };
  await bindAdminTcp();

  // 5. Sources.
  const onCandidate = async (c: CapsuleCandidate): Promise<void> => {
    const r = await activator.offer(c);
    if (r.result !== 'activated') return;
    await dataplane.ensure();
    await bindAdminTcp();
  };
  for (const s of sources) await s.start(onCandidate);
  log(`started (pid ${process.pid}); sources: ${sources.map((s) => s.name).join(', ')}; admin socket ${cfg.adminSocket}`);
  // Ready for systemd only now: the persisted capsule is enforced and the kernel attached.
  systemd?.ready(`enforcing${activator.active() ? '' : ' (no capsule yet: failing closed)'}; admin socket ${cfg.adminSocket}`);
  if (systemd?.watchdogIntervalMs) log(`systemd watchdog: WATCHDOG=1 every ${systemd.watchdogIntervalMs} ms`);

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      systemd?.stopping();
      for (const s of sources) await s.stop().catch(() => undefined);
      activator.stop();
      await dataplane.stop();
      await kernel.stop();
      await admin.close();
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
  return { activator, sources, status: handlers.status, stopped, stop, reloadTrust };
}
