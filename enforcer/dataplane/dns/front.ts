// The DNS front: managed agents' UDP port-53 traffic arrives here. Each query
// is a `dns_resolve` decision on Host::"<name>"; denied names get NXDOMAIN (so
// DNS cannot carry data out, and resolvers do not retry elsewhere), allowed
// ones are forwarded to the system resolver and the answers' addresses are
// remembered per agent for later connect decisions.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { parseHostPort } from '../../../net/address.js';
import type { Origin, OriginResolver } from '../origin.js';
import type { AgentBudgets } from '../budgets.js';
import type { Decider } from '../decide.js';
import type { LearnedNames } from './names.js';
import { answerAddresses, canonicalQuery, errorResponse, parseQuery, qtypeName, RCODE, DnsFormatError, type DnsQuestion } from './wire.js';

export interface DnsFrontOptions {
  listen: { host: string; port: number };
  /** Where allowed queries go: "ip:port". @default first nameserver in /etc/resolv.conf, port 53 */
  upstream?: string;
  /** rcode for denied names. @default NXDOMAIN */
  denyRcode?: 'NXDOMAIN' | 'REFUSED';
  timeoutMs?: number;
}

/** First `nameserver` in /etc/resolv.conf (127.0.0.53-style stubs included), else 127.0.0.1. */
export function systemResolver(path = '/etc/resolv.conf'): string {
  try {
    const m = /^\s*nameserver\s+(\S+)/m.exec(readFileSync(path, 'utf8'));
    if (m) return net.isIPv6(m[1]) ? `[${m[1]}]:53` : `${m[1]}:53`;
  } catch {
    // fall through
  }
  return '127.0.0.1:53';
}

export interface DnsFront {
  address: { address: string; port: number };
  close(): Promise<void>;
}

export async function startDnsFront(
  opts: DnsFrontOptions,
  deps: { origin: OriginResolver; decider: Decider; names: LearnedNames; budgets?: AgentBudgets },
): Promise<DnsFront> {
  const family = net.isIPv6(opts.listen.host) ? 'udp6' : 'udp4';
  const sock = dgram.createSocket(family);
  const upstreamText = opts.upstream ?? systemResolver();
  const upstream = parseHostPort(upstreamText, 'dns upstream');
  const denyRcode = RCODE[opts.denyRcode ?? 'NXDOMAIN'];
  const timeoutMs = opts.timeoutMs ?? 3000;
  let closed = false;
  // A reply after close() (a forward still in flight) is dropped, never thrown.
  const send = (buf: Buffer, port: number, host: string) => {
    if (!closed) sock.send(buf, port, host, () => undefined);
  };

  // One socket to the resolver for every forwarded query, each under a fresh id: an
  // unanswering resolver costs a table entry until the timeout, never an fd per query.
  const up = dgram.createSocket(net.isIPv6(upstream.host) ? 'udp6' : 'udp4');
  up.on('error', () => undefined);
  const pending = new Map<number, { done: (r: Buffer | null) => void; id: number }>();
  let nextId = Math.floor(Math.random() * 0x10000);
  up.on('message', (r, from) => {
    if (r.length < 12 || from.port !== upstream.port) return;
    const p = pending.get(r.readUInt16BE(0));
    if (!p) return;
    const out = Buffer.from(r);
    out.writeUInt16BE(p.id, 0);
    p.done(out);
  });
  const forward = (q: DnsQuestion): Promise<Buffer | null> =>
    new Promise((resolve) => {
      if (closed || pending.size >= 0xffff) return resolve(null);
      while (pending.has(nextId)) nextId = (nextId + 1) & 0xffff;
      const id = nextId;
      nextId = (nextId + 1) & 0xffff;
      const t = setTimeout(() => entry.done(null), timeoutMs);
      const entry = {
        id: q.id,
        done: (r: Buffer | null) => {
          clearTimeout(t);
          pending.delete(id);
          resolve(r);
        },
      };
      pending.set(id, entry);
      // Forward only what was decided: the query re-emitted from its question (wire.ts canonicalQuery).
      up.send(canonicalQuery(q, id), upstream.port, upstream.host, (err) => err && entry.done(null));
    });

  sock.on('message', async (msg, rinfo) => {
    let q;
    try {
      q = parseQuery(msg);
    } catch (err) {
      // Unparseable: answer FORMERR when there is a header to answer, else drop.
      if (msg.length >= 12 && err instanceof DnsFormatError && !(msg.readUInt16BE(2) & 0x8000)) {
        const out = Buffer.from(msg.subarray(0, 12));
        out.writeUInt16BE(0x8000 | RCODE.FORMERR, 2);
        out.fill(0, 4, 12);
        send(out, rinfo.port, rinfo.address);
      }
      return;
    }
    let origin = null;
    try {
      origin = await deps.origin.resolve({ remoteAddress: rinfo.address, remotePort: rinfo.port }, 'udp');
    } catch {
      origin = null;
    }
    const name = q.name;
    // Per-agent cap on queries in flight: a flood from one agent is answered REFUSED, not queued.
    const agent = deps.budgets ? deps.decider.agentKey(origin) : null;
    const release = agent !== null ? deps.budgets!.startDns(agent) : () => undefined;
    if (!release) {
      send(errorResponse(msg, q, RCODE.REFUSED), rinfo.port, rinfo.address);
      return;
    }
    try {
      await answer(msg, q, rinfo, origin, name);
    } finally {
      release();
    }
  });

  const answer = async (msg: Buffer, q: ReturnType<typeof parseQuery>, rinfo: dgram.RemoteInfo, origin: Origin | null, name: string) => {
    const result = deps.decider.decide({
      origin,
      protocol: 'dns',
      fallback: { action: 'dns_resolve', resource: { type: 'Host', id: name } },
      build: () => ({
        action: 'dns_resolve',
        resource: { type: 'Host', id: name },
        context: { qtype: qtypeName(q.qtype) },
        refuse: name === '' ? 'query for the root name' : undefined,
      }),
    });
    if (!result.allowed) {
      send(errorResponse(msg, q, denyRcode), rinfo.port, rinfo.address);
      return;
    }
    const reply = await forward(q);
    if (!reply) {
      send(errorResponse(msg, q, RCODE.SERVFAIL), rinfo.port, rinfo.address);
      return;
    }
    if (result.agent) for (const ip of answerAddresses(reply)) deps.names.learn(result.agent.spiffeId, ip, name);
    send(reply, rinfo.port, rinfo.address);
  };

  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(opts.listen.port, opts.listen.host, () => {
      sock.off('error', reject);
      sock.on('error', () => undefined);
      resolve();
    });
  });
  const addr = sock.address();
  return {
    address: { address: addr.address, port: addr.port },
    close: async () => {
      closed = true;
      for (const p of [...pending.values()]) p.done(null);
      up.close();
      await new Promise<void>((r) => sock.close(() => r()));
    },
  };
}
