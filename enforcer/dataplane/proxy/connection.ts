// One accepted connection: find its origin, refuse what may never be relayed
// (the enforcer's own listeners, an agent over its connection cap), then learn
// the protocol — from the capsule when the destination is a declared upstream
// of kind tcp, else from the first bytes under a deadline — and hand it to the
// TLS, HTTP or opaque-TCP path. A deadline, or bytes the destination's declared
// kind does not accept, refuse the connection: nothing unrecognised is relayed.
import type net from 'node:net';
import type { EntityUid } from '../../../cedar/types.js';
import { formatDestination, type Origin, type OriginResolver } from '../origin.js';
import type { SnapshotSource } from '../../control/index.js';
import { isLoopback, type LearnedNames } from '../dns/names.js';
import { detectProtocol, type Detected } from '../protocols/detect.js';
import { parseClientHello, MAX_CLIENT_HELLO, type ClientHello } from '../protocols/tls.js';
import { dataplaneMetrics } from '../metrics.js';
import { HttpConnection, type Limits } from './http.js';
import { relay } from './relay.js';
import { ACCEPTS, declaredUpstream, MUST_INTERCEPT, type OwnListeners } from './admission.js';
import type { AgentBudgets } from '../budgets.js';
import type { Decider, RequestSpec } from '../decide.js';
import type { LilithConfig } from '../../../capsule/config.js';
import { maybeIntercept, type Interception } from './tls-intercept.js';
import { withOriginatedTls } from './tls-originate.js';
import { decideH2c } from './h2c.js';
import type { IdentityCa } from '../tls/svid.js';
import type { FairQueue } from './fair-queue.js';

export interface ConnectionDeps {
  snapshots: SnapshotSource;
  origin: OriginResolver;
  decider: Decider;
  names: LearnedNames;
  /** Deadline for a client's first bytes (and a whole TLS ClientHello): passing it refuses the connection. */
  detectTimeoutMs: number;
  own: OwnListeners;
  budgets: AgentBudgets;
  /** Total lifetime of an upgraded tunnel. */
  tunnelMaxMs: number;
  /** The node CA: with it, TLS the policy intercepts (Action::"intercept") is terminated and decided per request. */
  interception?: Interception | null;
  /** The node's identity CA: client certificates (X.509-SVID) for upstreams lilith.json marks tls.client_certificate. */
  identity?: IdentityCa | null;
  /** Connection-level refusals (deadlines, unrecognised closes) run here, in per-agent round robin. */
  fair: FairQueue;
}

/**
 * Over-cap connections of one agent held unread before their reset (each holds an fd
 * meanwhile, so an agent's fds are bounded by its connection cap plus these), and for
 * how long. A client that reconnects when its connection closes (the usual retry loop)
 * retries 4 times a second per held connection instead of as fast as it can; one that
 * does not wait finds the pen full and is reset at once, as without it.
 */
const OVER_CAP_HELD = 256;
const OVER_CAP_HOLD_MS = 250;

export const DEFAULT_LIMITS: Limits = { maxHeaderBytes: 32 * 1024, maxBodyBytes: 10 * 1024 * 1024, idleTimeoutMs: 30_000 };

export async function handleConnection(client: net.Socket, deps: ConnectionDeps): Promise<void> {
  client.pause();
  // Until a protocol path owns the socket, any error just ends it.
  const early = () => client.destroy();
  client.on('error', early);
  let origin: Origin | null = null;
  try {
    origin = await deps.origin.resolve(
      {
        remoteAddress: client.remoteAddress ?? '',
        remotePort: client.remotePort ?? 0,
        localAddress: client.localAddress,
        localPort: client.localPort,
      },
      'tcp',
    );
  } catch {
    origin = null;
  }
  if (client.destroyed) return;
  const snap = deps.snapshots.get();
  const config = snap?.config ?? null;
  const p = config?.proxy;
  const limits: Limits = p
    ? { maxHeaderBytes: p.max_header_bytes, maxBodyBytes: p.max_body_bytes, idleTimeoutMs: p.idle_timeout_ms }
    : DEFAULT_LIMITS;
  const refuse = (protocol: 'tls' | 'tcp', reason: string, initial: Buffer = EMPTY) =>
    connectDecision(client, origin, deps, protocol, initial, limits, null, reason);

  if (origin && deps.own.isOwn(origin.destination, config))
    return refuse('tcp', `destination ${formatDestination(origin.destination)} is one of the enforcer's own listeners (never relayed)`);
  const agentKey = (snap && deps.decider.agentOf(snap, origin)?.spiffeId) || 'unknown identity';
  const over = deps.budgets.openConnection(agentKey, client);
  if (over) {
    // Over the cap: the cheapest refusal there is, a reset. One refusal per agent per interval is
    // audited in full; the others are counted into one event at the interval's end (budgets.ts).
    if (!deps.budgets.refuseOverCap(agentKey, over, origin)) {
      // The reset is held back (unread, no work) and then waits its agent's turn: a reconnect
      // loop slows to the hold time, and the resets (a close sending an RST, ~30 µs of kernel
      // time each on loopback) run in bounded batches between other agents' I/O. Past
      // OVER_CAP_HELD waiting, the agent's further connections are reset at once.
      if (deps.fair.waiting(agentKey) >= OVER_CAP_HELD) return void client.resetAndDestroy();
      deps.fair.runAfter(agentKey, OVER_CAP_HOLD_MS, () => client.resetAndDestroy());
      return;
    }
    return refuse('tcp', over);
  }
  client.setNoDelay(true);

  const upstream = origin ? declaredUpstream(config, origin.destination) : null;
  if (upstream?.kind === 'tcp') {
    // Declared opaque TCP: no detection (the server may speak first); the policy decides it as protocol "tcp".
    dataplaneMetrics().connections.inc({ protocol: 'tcp' });
    client.off('error', early);
    connectDecision(client, origin, deps, 'tcp', EMPTY, limits, null);
    return;
  }
  const accepts = upstream ? ACCEPTS[upstream.kind] : null;
  const notAccepted = (proto: Detected) =>
    accepts && !accepts.has(proto)
      ? `destination is declared '${upstream!.kind}' (lilith.json upstreams.${upstream!.alias}); ${proto === 'tcp' ? 'unrecognised bytes' : proto.toUpperCase()} refused`
      : undefined;

  let buf: Buffer = EMPTY;
  let decided = false;
  // Refusals of stalled or unrecognised connections wait their agent's turn: one agent's
  // deadlines expiring together must not run as one block in front of other agents' work.
  const refuseInTurn = (protocol: 'tls' | 'tcp', reason: string) => {
    const initial = buf;
    client.on('error', early); // while it waits; audited whether or not the client is still there
    deps.fair.run(agentKey, () => refuse(protocol, reason, initial));
  };
  const timer = setTimeout(() => {
    if (decided) return;
    const tls = buf.length > 0 && buf[0] === 0x16;
    finishDetection();
    if (!buf.length && !origin) return void client.destroy();
    refuseInTurn(
      tls ? 'tls' : 'tcp',
      `${tls ? 'TLS ClientHello' : buf.length ? 'recognisable protocol' : 'first bytes'} not received within ${deps.detectTimeoutMs} ms`,
    );
  }, deps.detectTimeoutMs);
  const onData = (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    try {
      const proto = detectProtocol(buf, limits.maxHeaderBytes);
      if (proto === 'maybe') return;
      const bad = notAccepted(proto);
      if (bad) {
        finishDetection();
        return refuse(proto === 'tls' ? 'tls' : 'tcp', bad, buf);
      }
      if (proto === 'tls') return tlsStep();
      settle(proto);
    } catch (err) {
      // A bug costs this connection, never the daemon.
      process.stderr.write(`lilith dataplane: internal error on a new connection (dropped): ${(err as Error)?.stack ?? String(err)}\n`);
      client.destroy();
    }
  };
  const onEnd = () => {
    if (decided) return;
    finishDetection();
    // Closed before saying anything recognisable: nothing to relay.
    if (!buf.length) return void client.destroy();
    refuseInTurn(buf[0] === 0x16 ? 'tls' : 'tcp', 'client closed before its protocol was recognised');
  };
  const finishDetection = () => {
    decided = true;
    clearTimeout(timer);
    client.off('data', onData);
    client.off('end', onEnd);
    client.off('error', early);
    client.pause();
  };
  // TLS: keep reading until the whole ClientHello is in (still under the deadline).
  const tlsStep = () => {
    const r = parseClientHello(buf);
    if (r.status === 'need_more') {
      if (buf.length > MAX_CLIENT_HELLO) return settleTls(null, 'ClientHello too large');
      return;
    }
    if (r.status === 'invalid') return settleTls(null, `malformed TLS ClientHello: ${r.reason}`);
    settleTls(r.hello);
  };
  const settleTls = (hello: ClientHello | null, bad?: string) => {
    if (decided) return;
    finishDetection();
    dataplaneMetrics().connections.inc({ protocol: 'tls' });
    connectDecision(client, origin, deps, 'tls', buf, limits, hello, bad, { config, agentKey });
  };
  function settle(proto: Detected): void {
    if (decided) return;
    finishDetection();
    dataplaneMetrics().connections.inc({ protocol: proto });
    if (proto === 'http') {
      // Still decided (and audited) per request: an unknown origin denies each one.
      const start = (connectUpstream?: () => net.Socket) =>
        new HttpConnection(client, origin, { decider: deps.decider, names: deps.names, budgets: deps.budgets, agentKey }, limits, config, {
          tunnelMaxMs: deps.tunnelMaxMs,
          connectUpstream,
        }).start(buf);
      // A declared upstream lilith.json marks tls: relayed over verified TLS once decided (tls-originate.ts).
      if (upstream && origin && config?.upstreams[upstream.alias]?.tls) {
        const spiffeId = snap ? deps.decider.agentOf(snap, origin)?.spiffeId : undefined;
        const o = { client, origin, config, alias: upstream.alias, spiffeId, decider: deps.decider, identity: deps.identity ?? null };
        return withOriginatedTls({ ...o, idleTimeoutMs: limits.idleTimeoutMs }, start);
      }
      return start();
    }
    if (proto === 'h2c') {
      // Prior-knowledge HTTP/2 on cleartext: decided as a whole (context.protocol "h2c"), then per stream (h2c.ts).
      const http = { decider: deps.decider, names: deps.names, budgets: deps.budgets, agentKey };
      return decideH2c({ client, origin, initial: buf, config, limits, http });
    }
    connectDecision(client, origin, deps, 'tcp', buf, limits, null);
  }
  client.on('data', onData);
  client.on('end', onEnd);
  client.resume();
}

const EMPTY: Buffer = Buffer.alloc(0);

/** How a TLS SNI compares with the names this agent resolved the destination to (context.sni_dns). */
export function sniAgainstDns(sni: string, learned: readonly string[], destination: string): 'match' | 'mismatch' | 'unknown' {
  const name = sni.toLowerCase().replace(/\.$/, '');
  if (learned.includes(name)) return 'match';
  if (learned.length) return 'mismatch';
  return name === 'localhost' && isLoopback(destination) ? 'match' : 'unknown';
}

function endpointId(o: Origin): string {
  return formatDestination(o.destination);
}

/** TLS and opaque TCP: one `connect` decision, then a byte relay or a reset; `bad` refuses without evaluating policy. */
function connectDecision(
  client: net.Socket,
  origin: Origin | null,
  deps: ConnectionDeps,
  protocol: 'tls' | 'tcp',
  initial: Buffer,
  limits: Limits,
  hello: ClientHello | null,
  bad?: string,
  conn?: { config: LilithConfig | null; agentKey: string },
): void {
  let sniDns: string | undefined;
  const fallback: EntityUid = origin ? { type: 'Endpoint', id: endpointId(origin) } : { type: 'Endpoint', id: 'unknown' };
  const decide = () =>
    deps.decider.decide({
      origin,
      protocol,
      fallback: { action: 'connect', resource: fallback },
      build: (_snap, agent): RequestSpec => {
        const o = origin!;
        const learned = deps.names.namesFor(agent.spiffeId, o.destination.address);
        const context: RequestSpec['context'] = { protocol, ip: o.destination.address, port: o.destination.port };
        if (bad) return { action: 'connect', resource: fallback, context, refuse: bad };
        let resource: EntityUid;
        const findings: string[] = [];
        if (hello?.sni) {
          resource = { type: 'Host', id: hello.sni };
          context.sni = hello.sni;
          // SNI is the client's claim. "match": this agent resolved the destination to that
          // name through the DNS front (or localhost → loopback). "mismatch": it resolved the
          // destination to other names only (domain fronting). "unknown": nothing to compare.
          sniDns = sniAgainstDns(hello.sni, learned, o.destination.address);
          context.sni_dns = sniDns;
          if (sniDns === 'mismatch') findings.push('sni_mismatch');
          else if (sniDns === 'unknown') findings.push('sni_unverified');
        } else if (protocol === 'tcp' && learned.length) resource = { type: 'Host', id: learned[learned.length - 1] };
        else resource = fallback;
        if (hello?.alpn.length) context.alpn = hello.alpn;
        return { action: 'connect', resource, context, findings, taintOnAllow: (c) => c.upstreamBits(resource) };
      },
    });
  const result = decide();
  if (!result.allowed) {
    client.resetAndDestroy();
    return;
  }
  if (protocol === 'tls' && hello && conn) {
    // A declared mcp/http upstream speaking TLS is decided per request inside it or not at all.
    const kind = declaredUpstream(conn.config, origin!.destination)?.kind;
    const must = kind !== undefined && MUST_INTERCEPT.has(kind);
    const http = { decider: deps.decider, names: deps.names, budgets: deps.budgets, agentKey: conn.agentKey };
    const input = { client, origin: origin!, hello, initial, sniDns, config: conn.config, limits, http, tunnelMaxMs: deps.tunnelMaxMs };
    const owned = deps.interception
      ? maybeIntercept({ ...input, handshakeTimeoutMs: limits.idleTimeoutMs, mustIntercept: must }, deps.interception, deps.decider)
      : false;
    if (owned) return;
    if (must) {
      refuseTls(client, origin, deps, `destination is a declared '${kind}' upstream: its TLS must be intercepted (no node CA)`, hello);
      return;
    }
  }
  // The stream stays decided only while the agent's taint is what it was: when it grows, decide again.
  const spiffeId = result.agent!.spiffeId;
  let mask = deps.decider.taint.mask(spiffeId);
  const stillAllowed = () => {
    const now = deps.decider.taint.mask(spiffeId);
    if (now === mask) return true;
    mask = now;
    return decide().allowed;
  };
  relay(client, origin!.destination, initial, { idleTimeoutMs: limits.idleTimeoutMs, stillAllowed });
}

/** The event for connections refused over their agent's cap and counted since the last one (budgets.ts refuseOverCap). */
export function auditOverCapRefusals(decider: Decider, origin: Origin | null, reason: string): void {
  const resource: EntityUid = { type: 'Endpoint', id: origin ? endpointId(origin) : 'unknown' };
  decider.refuse(origin, 'tcp', 'connect', resource, reason);
}

/** Audits a refused TLS connection (intercept decision with a refusal) and resets it. */
function refuseTls(client: net.Socket, origin: Origin | null, deps: ConnectionDeps, reason: string, hello: ClientHello): void {
  const resource: EntityUid = hello.sni
    ? { type: 'Host', id: hello.sni }
    : { type: 'Endpoint', id: origin ? endpointId(origin) : 'unknown' };
  deps.decider.refuse(origin, 'tls', 'intercept', resource, reason);
  client.resetAndDestroy();
}
