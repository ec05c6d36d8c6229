// Binds the optional parts (kernel programs, dataplane) into the daemon. Kept apart
// from daemon.ts, and loading them only on demand, so the sync-only daemon loads none
// of their modules (the kernel side needs the native addon and root).
import { join } from 'node:path';
import { checkWorkloadDir, WorkloadDirError } from '../../identity/index.js';
import { DaemonConfigError, type DaemonConfig } from './config.js';
import type { DaemonPlugins } from './parts.js';

export async function loadPlugins(cfg: DaemonConfig): Promise<DaemonPlugins> {
  const plugins: DaemonPlugins = {};
  // Whoever can write the container metadata names identities: the enforcer does not start
  // (exit 2) on a directory others can write, rather than attest from it.
  if (cfg.dataplane)
    try {
      checkWorkloadDir(cfg.workloadMetadataDir);
    } catch (err) {
      if (!(err instanceof WorkloadDirError)) throw err;
      throw new DaemonConfigError('bad_setting', `workload_metadata_dir: ${err.message}`);
    }
  // The dataplane reads original destinations from the bridge once the kernel part exists.
  let bridge: import('../kernel/index.js').KernelBridge | null = null;
  if (cfg.kernel) {
    plugins.kernel = async ({ activator, audit, log }) => {
      let bpf: typeof import('../../bpf/index.js');
      let mounts: typeof import('../../bpf/mounts.js');
      try {
        bpf = await import('../../bpf/index.js');
        mounts = await import('../../bpf/mounts.js');
      } catch (err) {
        const why = `the BPF module cannot load (${(err as Error).message}); build it (npm run build) or run with --no-kernel`;
        throw new DaemonConfigError('unavailable', `kernel enforcement is enabled but ${why}`);
      }
      const { KernelBridge } = await import('../kernel/index.js');
      let cgroupMount: string;
      try {
        cgroupMount = mounts.ensureCgroup2();
      } catch (err) {
        throw new DaemonConfigError(
          'unavailable',
          `kernel enforcement needs cgroup v2: ${(err as Error).message}; run with --no-kernel to sync only`,
        );
      }
      const b = new KernelBridge({ bpf, audit, activator, log, cgroupMount, pinRoot: process.env.LILITH_PIN_ROOT });
      bridge = b;
      return { applier: b, status: () => b.status(), stop: () => b.stop() };
    };
  }
  if (cfg.dataplane) {
    plugins.dataplane = async ({ activator, audit }) => {
      const { startDataplane, KernelOriginResolver, InterceptionCa, IdentityCa } = await import('../dataplane/index.js');
      // Who a connection came from and where it was going is only known from the
      // kernel's redirect records. Without the kernel every origin is unknown: denied.
      const origin = new KernelOriginResolver(
        {
          originalDestination: (peer: { remoteAddress?: string; remotePort?: number; transport?: 'tcp' | 'udp' }) =>
            bridge?.originalDestination(peer) ?? null,
        },
        { workloadDir: cfg.workloadMetadataDir },
      );
      const taintState = join(cfg.stateDir, 'taint.json');
      // The node's interception CA (docs/dataplane.md, TLS interception): key 0600 in <state-dir>/ca.
      const ca = await InterceptionCa.open(join(cfg.stateDir, 'ca'));
      // Beside it, the identity CA issuing agents' client certificates for originated TLS (upstreams.*.tls).
      const identityCa = await IdentityCa.open(join(cfg.stateDir, 'ca'));
      const dp = await startDataplane({ snapshots: activator, origin, audit, taintState, ca, identityCa });
      return {
        stop: () => dp.close(),
        status: () => ({
          listen: dp.proxyAddresses.map((a) => `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`),
          dns: dp.dnsAddress ? `${dp.dnsAddress.address}:${dp.dnsAddress.port}` : null,
          active_connections: dp.activeConnections(),
          taint_state: taintState,
          taint_state_error: dp.taintStateError(),
          workload_metadata_dir: cfg.workloadMetadataDir,
          ca: {
            cert: ca.certPath,
            key_dir: join(cfg.stateDir, 'ca'),
            fingerprint256: ca.fingerprint256,
            not_after: ca.notAfter.toISOString(),
            identity_cert: identityCa.certPath,
          },
        }),
      };
    };
  }
  return plugins;
}
