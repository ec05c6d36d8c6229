// Prior-knowledge HTTP/2 on cleartext (h2c): a connection opening with the HTTP/2
// connection preface. It is decided first as a whole, Action::"connect" with
// context.protocol "h2c" (no bundled policy permits it except to Zone::"h2c":
// denied by default, audited, reset); permitted, every stream is then decided on
// its own exactly as inside intercepted TLS (h2.ts), with context.tls false and
// the :authority compared with the destination as for plaintext HTTP/1.
import net from 'node:net';
import type { LilithConfig } from '../../../capsule/config.js';
import type { EntityUid } from '../../../cedar/types.js';
import { isLoopback, normalizeIp } from '../dns/names.js';
import type { RequestSpec } from '../decide.js';
import { formatDestination, type Origin } from '../origin.js';
import { relayH2 } from './h2.js';
import type { HttpDeps, Limits } from './http.js';
import { connectUpstream } from './relay.js';

export interface H2cInput {
  client: net.Socket;
  origin: Origin | null;
  /** The bytes read so far (the preface, perhaps more): handed back to the HTTP/2 session. */
  initial: Buffer;
  config: LilithConfig | null;
  limits: Limits;
  http: HttpDeps;
}

export function decideH2c(input: H2cInput): void {
  const { client, origin, http } = input;
  const endpoint: EntityUid = { type: 'Endpoint', id: origin ? formatDestination(origin.destination) : 'unknown' };
  let learned: readonly string[] = [];
  const result = http.decider.decide({
    origin,
    protocol: 'http',
    fallback: { action: 'connect', resource: endpoint },
    build: (_snap, agent): RequestSpec => {
      const d = origin!.destination;
      learned = http.names.namesFor(agent.spiffeId, d.address);
      // The destination as the agent named it through the DNS front, else its address (as for opaque TCP).
      const resource: EntityUid = learned.length ? { type: 'Host', id: learned[learned.length - 1] } : endpoint;
      return {
        action: 'connect',
        resource,
        context: { protocol: 'h2c', ip: d.address, port: d.port },
        taintOnAllow: (c) => c.upstreamBits(resource),
      };
    },
  });
  if (!result.allowed) return void client.resetAndDestroy();
  const d = origin!.destination;
  const hostMismatch = (host: string): boolean => {
    if (net.isIP(host)) return normalizeIp(host) !== normalizeIp(d.address);
    if (host === 'localhost') return !isLoopback(d.address);
    return !learned.includes(host);
  };
  if (input.initial.length) client.unshift(input.initial);
  relayH2(client, connectUpstream(d), {
    origin: origin!,
    authorityName: learned.at(-1) ?? (net.isIPv6(d.address) ? `[${d.address}]` : d.address),
    scheme: 'http',
    hostMismatch,
    decider: http.decider,
    config: input.config,
    limits: input.limits,
    http,
  });
}
