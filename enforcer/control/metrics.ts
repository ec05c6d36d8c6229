// Control-plane metrics (prom-client default registry, next to the dataplane's).
import client from 'prom-client';

function counter(name: string, help: string, labelNames: string[] = []) {
  return (client.register.getSingleMetric(name) as client.Counter<string> | undefined) ?? new client.Counter({ name, help, labelNames });
}
function gauge(name: string, help: string, labelNames: string[] = []) {
  return (client.register.getSingleMetric(name) as client.Gauge<string> | undefined) ?? new client.Gauge({ name, help, labelNames });
}

export const controlMetrics = {
  activations: counter('lilith_capsule_activations_total', 'Capsules activated'),
  refusals: counter('lilith_capsule_refusals_total', 'Capsules refused, by reason code', ['reason']),
  watermark: gauge('lilith_capsule_active_watermark', 'Watermark of the active capsule (-1 when none)'),
  expired: gauge('lilith_capsule_expired', '1 while the active capsule has expired'),
  expiresIn: gauge('lilith_capsule_expires_in_seconds', 'Seconds until the active capsule expires'),
  stale: gauge('lilith_capsule_stale', '1 while no fresh timestamp vouches for the active capsule (timestamp role only)'),
  freshnessFailed: gauge('lilith_capsule_freshness_failed', '1 while staleness is past fail_after_s and every decision is denied'),
  freshnessAge: gauge(
    'lilith_capsule_freshness_age_seconds',
    'Seconds since the freshest timestamp (or the capsule creation) of the active capsule',
  ),
  trustVersion: gauge('lilith_trust_version', 'Version of the trust file in use (rises with in-band rotations)'),
  swapPause: gauge('lilith_capsule_last_swap_pause_seconds', 'Time the last activation held the snapshot swap'),
  syncAttempts: counter('lilith_sync_attempts_total', 'Sync attempts by source kind and result', ['kind', 'result']),
  gitRequests: counter('lilith_sync_git_requests_total', 'HTTP requests made to the git server'),
  lastSyncSuccess: gauge('lilith_sync_last_success_timestamp_seconds', 'Unix time of the last successful sync, by source kind', ['kind']),
  kernelDenials: counter('lilith_kernel_denials_total', 'Operations the kernel programs refused (EPERM), by hook and reason', [
    'hook',
    'reason',
  ]),
  heartbeatAge: gauge('lilith_kernel_heartbeat_age_seconds', 'Seconds since the kernel heartbeat was last written'),
};
controlMetrics.watermark.set(-1);
