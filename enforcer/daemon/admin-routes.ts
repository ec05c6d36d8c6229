// What the admin API answers, built from the daemon's parts: /status, /readyz (via
// notReady), /metrics, and the socket-only routes `lilith run` and `lilith authorize`
// use (/v1/config, /v1/agents, /v1/ca, /authorize). admin.ts serves these over HTTP.
import { readFileSync } from 'node:fs';
import client from 'prom-client';
import type { AuthzRequest } from '../../cedar/types.js';
import type { Activator, CapsuleSource } from '../control/index.js';
import type { AuditSink } from '../audit/event.js';
import type { KernelStatus } from '../kernel/index.js';
import type { AdminHandlers, JsonReply } from './admin.js';
import { attestAgent } from './agents.js';
import type { DaemonConfig } from './config.js';
import type { DataplaneStatus } from './parts.js';

export type DaemonStatus = ReturnType<Activator['status']> & {
  version: 1;
  pid: number;
  started_at: string;
  ready: boolean;
  not_ready_reason: string | null;
  sync: { sources: ReturnType<CapsuleSource['status']>[] };
  kernel: KernelStatus;
  dataplane: DataplaneStatus;
  admin: { socket: string; listen: string | null };
  audit: { path: string; dropped: number };
};

/** The daemon's parts as the admin routes read them. */
export interface AdminRouteParts {
  cfg: Pick<DaemonConfig, 'adminSocket' | 'audit'>;
  startedAt: Date;
  activator: Activator;
  sources: readonly CapsuleSource[];
  kernel: { status(): KernelStatus };
  dataplane: { status(): DataplaneStatus };
  audit: AuditSink;
  /** The admin TCP address actually bound, or null. */
  adminTcpAddress(): string | null;
}

export function buildAdminHandlers(p: AdminRouteParts): AdminHandlers & { status(): DaemonStatus } {
  const { activator } = p;
  const notReady = (): string | null => {
    if (!activator.get()) return activator.notServingReason() ?? 'no capsule activated yet';
    return null;
  };

  const status = (): DaemonStatus => ({
    version: 1,
    pid: process.pid,
    started_at: p.startedAt.toISOString(),
    ready: notReady() === null,
    not_ready_reason: notReady(),
    ...activator.status(),
    sync: { sources: p.sources.map((s) => s.status()) },
    kernel: p.kernel.status(),
    dataplane: p.dataplane.status(),
    admin: { socket: p.cfg.adminSocket, listen: p.adminTcpAddress() },
    audit: { path: p.cfg.audit, dropped: p.audit.dropped() },
  });

  // Every room registers its metrics in prom-client's default registry (control/metrics.ts,
  // dataplane/metrics.ts, the Cedar engine's counter); /metrics serves that one registry.
  // The daemon defines no metrics of its own.
  const metrics = async () => ({ contentType: client.register.contentType, text: await client.register.metrics() });

  /** What-if decision against the active snapshot; changes nothing. */
  const authorize = (body: unknown): JsonReply => {
    const snap = activator.get();
    if (!snap) return { status: 200, json: { decision: 'deny', reasons: [], errors: [], watermark: null, reason: notReady() } };
    const req = body as AuthzRequest;
    if (!req || typeof req !== 'object' || !req.principal || !req.action || !req.resource) {
      return { status: 400, json: { error: 'expected {principal, action, resource, context}' } };
    }
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
    const req = {
      pid: b.pid,
      exePath: typeof b.exe_path === 'string' ? b.exe_path : undefined,
      exeSha256: typeof b.exe_sha256 === 'string' ? b.exe_sha256 : undefined,
    };
    const r = await attestAgent(req, snap.config.registrations);
    if (!r.ok) return { status: 403, json: { error: r.error } };
    return { status: 200, json: { spiffe_id: r.spiffe_id, registration: r.registration, watermark: snap.watermark } };
  };

  // `lilith state reset --from FILE`: a root-signed watermark-floor reset (socket only). The
  // body is the reset envelope; its signatures cover the payload, not the JSON layout.
  const stateReset = async (body: unknown): Promise<JsonReply> => {
    if (!body || typeof body !== 'object') return { status: 400, json: { error: 'expected the reset envelope (JSON)' } };
    const r = await activator.applyReset(Buffer.from(JSON.stringify(body)), 'admin socket');
    if (r.result === 'refused') return { status: 409, json: { error: `${r.refusal.code}: ${r.refusal.reason}`, code: r.refusal.code } };
    return { status: 200, json: { result: r.result, state: activator.state() } };
  };

  // `lilith run` makes its agents trust the node's interception CA: the certificate (public) and
  // where its key lives (so the agent's Landlock rules keep that directory out).
  const ca = (): JsonReply => {
    const c = p.dataplane.status().ca as { cert?: string; key_dir?: string; fingerprint256?: string; not_after?: string } | undefined;
    if (!c?.cert) return { status: 404, json: { error: 'no interception CA (the dataplane is not running)' } };
    try {
      return {
        status: 200,
        json: { pem: readFileSync(c.cert, 'utf8'), key_dir: c.key_dir, fingerprint256: c.fingerprint256, not_after: c.not_after },
      };
    } catch (err) {
      return { status: 503, json: { error: `interception CA certificate unreadable: ${(err as Error).message}` } };
    }
  };

  return {
    status,
    notReady,
    metrics,
    local: {
      get: { '/v1/config': config, '/v1/ca': ca },
      post: { '/authorize': authorize, '/v1/agents': agents, '/v1/state/reset': stateReset },
    },
  };
}
