// Layer 2: the transparent proxy and DNS front. The control plane calls
// startDataplane with its SnapshotSource; every decision reads the active
// snapshot once and uses only it.
import net from 'node:net';
import type { AuditSink } from '../audit/event.js';
import { startDnsFront, type DnsFront } from './dns/front.js';
import { LearnedNames } from './dns/names.js';
import { registerMetricSources, dataplaneMetrics } from './metrics.js';
import { parseHostPort } from '../../net/address.js';
import type { Origin, OriginResolver } from './origin.js';
import { auditOverCapRefusals, handleConnection } from './proxy/connection.js';
import { FairQueue } from './proxy/fair-queue.js';
import { Decider } from './decide.js';
import type { SnapshotSource } from '../control/index.js';
import { TaintSessions } from './taint/sessions.js';
import { OwnListeners } from './proxy/admission.js';
import { AgentBudgets, DEFAULT_BUDGETS, type BudgetLimits } from './budgets.js';
import { persistTaint } from './taint/store.js';
import type { InterceptionCa } from './tls/ca.js';
import type { IdentityCa } from './tls/svid.js';

export interface DataplaneOptions {
  snapshots: SnapshotSource;
  origin: OriginResolver;
  audit: AuditSink;
  listen?: {
    /** TCP proxy listeners, "ip:port" / "[v6]:port" (port 0 = any). @default lilith.json proxy.listen (+ listen6) of the active capsule, else 127.0.0.1:7890 */
    proxy?: string[];
    /** UDP DNS front, or null for none. @default lilith.json proxy.dns_listen, else 127.0.0.1:7853 */
    dns?: string | null;
  };
  /** Resolver allowed DNS queries are forwarded to ("ip:port"). @default /etc/resolv.conf */
  dnsUpstream?: string;
  /** rcode for denied DNS names. @default NXDOMAIN */
  dnsDenyRcode?: 'NXDOMAIN' | 'REFUSED';
  /** How long a forwarded DNS query waits for the resolver before SERVFAIL (it holds one in-flight slot of its agent meanwhile). @default 3000 */
  dnsTimeoutMs?: number;
  /** Deadline for a client's first recognisable bytes (and a whole TLS ClientHello); passing it refuses the connection. Server-speaks-first destinations are declared `kind: "tcp"` upstreams. @default 1000 */
  detectTimeoutMs?: number;
  /** Total lifetime of an upgraded (websocket…) tunnel. @default 3600000 */
  tunnelMaxMs?: number;
  /** Per-agent caps (open connections, held body bytes, DNS queries in flight). @default DEFAULT_BUDGETS */
  budgets?: Partial<BudgetLimits>;
  /** File the taint masks are saved to and restored from (the daemon uses <state-dir>/taint.json); none: taint lives in memory only. A corrupt file stops the start (TaintStateError). */
  taintState?: string;
  /** The node CA (InterceptionCa.open(<state-dir>/ca)): TLS the policy intercepts is terminated and decided per request. None: TLS passes through on its SNI decision. */
  ca?: InterceptionCa;
  /** The node's identity CA (IdentityCa.open(<state-dir>/ca)): client certificates for upstreams marked tls.client_certificate. */
  identityCa?: IdentityCa;
}

export interface Dataplane {
  /** Bound proxy listener addresses, in `listen.proxy` order. */
  proxyAddresses: Array<{ address: string; port: number; family: string }>;
  dnsAddress: { address: string; port: number } | null;
  activeConnections(): number;
  taint: TaintSessions;
  /** The last failure to save taint state (retried on the next change), or null. */
  taintStateError(): string | null;
  names: LearnedNames;
  /** What `agent` (a SPIFFE ID, or "unknown identity") holds of its budgets right now: open connections, held body bytes, DNS queries in flight. */
  budgetUse(agent: string): Readonly<{ connections: number; heldBytes: number; dns: number }>;
  /** Stops accepting, destroys open connections, closes the DNS front. Does not close the audit sink (the caller owns it). */
  close(): Promise<void>;
}

export async function startDataplane(opts: DataplaneOptions): Promise<Dataplane> {
  const snap = opts.snapshots.get();
  const proxyListen =
    opts.listen?.proxy ??
    (snap ? [snap.config.proxy.listen, ...(snap.config.proxy.listen6 ? [snap.config.proxy.listen6] : [])] : ['127.0.0.1:7890']);
  const dnsListen = opts.listen?.dns === undefined ? (snap?.config.proxy.dns_listen ?? '127.0.0.1:7853') : opts.listen.dns;
  const taint = new TaintSessions();
  // Restored before any listener exists, so no decision ever sees a mask the agent had shed by a restart.
  const taintStore = opts.taintState ? await persistTaint(taint, opts.taintState) : null;
  const names = new LearnedNames();
  const decider = new Decider(opts.snapshots, taint, opts.audit);
  const sockets = new Set<net.Socket>();
  const own = new OwnListeners();
  const budgets = new AgentBudgets({ ...DEFAULT_BUDGETS, ...opts.budgets });
  budgets.onRefusalSummary = (_agent, reason, origin) => auditOverCapRefusals(decider, origin as Origin | null, reason);
  const fair = new FairQueue();
  const deps = {
    snapshots: opts.snapshots,
    origin: opts.origin,
    decider,
    names,
    detectTimeoutMs: opts.detectTimeoutMs ?? 1000,
    own,
    budgets,
    tunnelMaxMs: opts.tunnelMaxMs ?? 3_600_000,
    interception: opts.ca ? { ca: opts.ca, identity: opts.identityCa ?? null } : null,
    identity: opts.identityCa ?? null,
    fair,
  };
  dataplaneMetrics();

  const servers: net.Server[] = [];
  const addresses: Dataplane['proxyAddresses'] = [];
  let dns: DnsFront | null = null;
  const closeAll = async () => {
    for (const s of servers) s.close();
    fair.flush();
    budgets.flushRefusals();
    for (const s of sockets) s.destroy();
    await dns?.close();
  };
  try {
    for (const text of proxyListen) {
      const { host, port } = parseHostPort(text);
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        handleConnection(socket, deps).catch(() => socket.destroy());
      });
      // A listener error after start (EMFILE on accept…) must not kill the daemon.
      server.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      servers.push(server);
      const a = server.address() as net.AddressInfo;
      own.add(a.port);
      addresses.push({ address: a.address, port: a.port, family: a.family });
    }
    if (dnsListen) {
      const { host, port } = parseHostPort(dnsListen);
      dns = await startDnsFront(
        { listen: { host, port }, upstream: opts.dnsUpstream, denyRcode: opts.dnsDenyRcode, timeoutMs: opts.dnsTimeoutMs },
        { origin: opts.origin, decider, names, budgets },
      );
      own.add(dns.address.port);
    }
  } catch (err) {
    await closeAll();
    await taintStore?.close();
    throw err;
  }
  const unregister = registerMetricSources({
    activeConnections: () => sockets.size,
    taintSessions: () => taint.count(),
    watermark: () => opts.snapshots.get()?.watermark ?? null,
    auditDropped: () => opts.audit.dropped(),
  });
  return {
    proxyAddresses: addresses,
    dnsAddress: dns ? dns.address : null,
    activeConnections: () => sockets.size,
    taint,
    taintStateError: () => taintStore?.lastError() ?? null,
    names,
    budgetUse: (agent) => budgets.use(agent),
    close: async () => {
      unregister();
      await closeAll();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await taintStore?.close();
    },
  };
}
