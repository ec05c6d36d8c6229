// One accepted connection: find its origin, detect the protocol from the first
// bytes, and hand it to the TLS, HTTP or opaque-TCP path.
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
import type { Decider, RequestSpec } from '../decide.js';

export interface ConnectionDeps {
  snapshots: SnapshotSource;
  origin: OriginResolver;
  decider: Decider;
  names: LearnedNames;
  /** Wait this long for a client's first bytes before treating the stream as opaque TCP (server-speaks-first protocols). */
  detectTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = { maxHeaderBytes: 32 * 1024, maxBodyBytes: 10 * 1024 * 1024, idleTimeoutMs: 30_000 };

export async function handleConnection(client: net.Socket, deps: ConnectionDeps): Promise<void> {
  client.pause();
  client.setNoDelay(true);
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
  const p = snap?.config.proxy;
  const limits: Limits = p
    ? { maxHeaderBytes: p.max_header_bytes, maxBodyBytes: p.max_body_bytes, idleTimeoutMs: p.idle_timeout_ms }
    : DEFAULT_LIMITS;

  let buf: Buffer = Buffer.alloc(0);
  let decided = false;
  const timer = setTimeout(
    () => settle(buf.length ? (detectProtocol(buf) === 'maybe' ? 'tcp' : (detectProtocol(buf) as Detected)) : 'tcp'),
    deps.detectTimeoutMs,
  );
  const onData = (d: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    try {
      const proto = detectProtocol(buf);
      if (proto === 'tls') return tlsStep();
      if (proto !== 'maybe') settle(proto);
    } catch (err) {
      // A bug costs this connection, never the daemon.
      process.stderr.write(`lilith dataplane: internal error on a new connection (dropped): ${(err as Error)?.stack ?? String(err)}\n`);
      client.destroy();
    }
  };
  const onEnd = () => settle(buf.length ? 'tcp' : 'tcp');
  const detach = () => {
    clearTimeout(timer);
    client.off('data', onData);
    client.off('end', onEnd);
    client.off('error', early);
  };
  // TLS: keep reading until the whole ClientHello is in.
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
    decided = true;
    detach();
    client.pause();
    dataplaneMetrics().connections.inc({ protocol: 'tls' });
    connectDecision(client, origin, deps, 'tls', buf, limits, hello, bad);
  };
  function settle(proto: Detected): void {
    if (decided) return;
    if (proto === 'tls') return tlsStep();
    decided = true;
    detach();
    client.pause();
    dataplaneMetrics().connections.inc({ protocol: proto });
    if (proto === 'http') {
      if (!origin) {
        // Still decided (and audited) per request: unknown origin denies each one.
      }
      new HttpConnection(client, origin, { decider: deps.decider, names: deps.names }, limits, snap?.config ?? null).start(buf);
      return;
    }
    connectDecision(client, origin, deps, 'tcp', buf, limits, null);
  }
  client.on('data', onData);
  client.on('end', onEnd);
  client.resume();
}

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

/** TLS and opaque TCP: one `connect` decision, then a byte relay or a reset. */
function connectDecision(
  client: net.Socket,
  origin: Origin | null,
  deps: ConnectionDeps,
  protocol: 'tls' | 'tcp',
  initial: Buffer,
  limits: Limits,
  hello: ClientHello | null,
  bad?: string,
): void {
  const fallback: EntityUid = origin ? { type: 'Endpoint', id: endpointId(origin) } : { type: 'Endpoint', id: 'unknown' };
  const result = deps.decider.decide({
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
        const sniDns = sniAgainstDns(hello.sni, learned, o.destination.address);
        context.sni_dns = sniDns;
        if (sniDns === 'mismatch') findings.push('sni_mismatch');
        else if (sniDns === 'unknown') findings.push('sni_unverified');
      } else if (protocol === 'tcp' && learned.length) resource = { type: 'Host', id: learned[learned.length - 1] };
      else resource = fallback;
      if (hello?.alpn.length) context.alpn = hello.alpn;
      return { action: 'connect', resource, context, findings, taintOnAllow: (c) => c.upstreamBits(resource) };
    },
  });
  if (!result.allowed) {
    client.resetAndDestroy();
    return;
  }
  relay(client, origin!.destination, initial, limits.idleTimeoutMs);
}
