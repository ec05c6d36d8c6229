// Binds the optional parts (kernel programs, dataplane) into the daemon. Kept apart
// from daemon.ts so the sync-only daemon loads none of their modules (the kernel
// side needs the native addon and root).
import { DaemonConfigError, type DaemonConfig } from './daemon-config.js';
import type { DaemonPlugins } from './daemon.js';

export async function loadPlugins(cfg: DaemonConfig): Promise<DaemonPlugins> {
  const plugins: DaemonPlugins = {};
  if (cfg.kernel) {
    plugins.kernel = async ({ activator, audit, log }) => {
      let bpf: typeof import('../bpf/index.js');
      let mounts: typeof import('../bpf/mounts.js');
      try {
        bpf = await import('../bpf/index.js');
        mounts = await import('../bpf/mounts.js');
      } catch (err) {
        throw new DaemonConfigError(`kernel enforcement is enabled but the BPF module cannot load (${(err as Error).message}); build it (npm run build) or run with --no-kernel`);
      }
      const { KernelBridge } = await import('./kernel-bridge.js');
      let cgroupMount: string;
      try {
        cgroupMount = mounts.ensureCgroup2();
      } catch (err) {
        throw new DaemonConfigError(`kernel enforcement needs cgroup v2: ${(err as Error).message}; run with --no-kernel to sync only`);
      }
      const bridge = new KernelBridge({ bpf, audit, activator, log, cgroupMount, pinRoot: process.env.LILITH_PIN_ROOT });
      return { applier: bridge, status: () => bridge.status(), stop: () => bridge.stop() };
    };
  }
  if (cfg.dataplane) {
    plugins.dataplane = async ({ activator, audit, log }) => {
      let mod: Record<string, unknown>;
      try {
        mod = (await import('./dataplane' + '.js')) as Record<string, unknown>;
      } catch (err) {
        throw new DaemonConfigError(`the dataplane is enabled but cannot load (${(err as Error).message}); run with --no-dataplane to sync only`);
      }
      const start = mod.startDataplane as ((o: Record<string, unknown>) => Promise<{ stop?(): Promise<void>; close?(): Promise<void> }>) | undefined;
      if (!start) throw new DaemonConfigError('enforcer/dataplane.js has no startDataplane; run with --no-dataplane');
      const dp = await start({ snapshots: activator, audit, log });
      return { stop: async () => { await (dp.stop ?? dp.close)?.call(dp); } };
    };
  }
  return plugins;
}
