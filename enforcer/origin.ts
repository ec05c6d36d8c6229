// Where a proxied connection was really going, and who opened it.
//
// Two resolvers:
// - KernelOriginResolver: production. The cgroup connect/sendmsg programs
//   (bpf/index.ts) redirect a managed process's connects to the proxy and record
//   the original destination and the process; identity comes from that pid's
//   kernel-attested facts (/proc) matched against the capsule's registrations.
// - StaticOriginResolver: for tests and explicit setups where clients are
//   pointed at the proxy on purpose. It names one destination and one set of
//   process facts for every connection; it is NOT an enforcement mechanism
//   (anything that can reach the proxy is treated as that process).
import { compileRegistrations, readProcessFacts, resolveIdentity, type CompiledRegistration, type ProcessFacts, type ResolvedIdentity } from './identity/index.js';
import type { Registration } from '../capsule/config.js';

export interface Destination {
  address: string;
  port: number;
  family: 4 | 6;
}

export interface PeerAddress {
  remoteAddress: string;
  remotePort: number;
  /** The proxy-side address the connection arrived on. */
  localAddress?: string;
  localPort?: number;
}

export interface Origin {
  destination: Destination;
  pid: number | null;
  /** The agent under these registrations, or null (unknown identity → deny). */
  identify(registrations: CompiledRegistration[]): ResolvedIdentity | null;
}

export interface OriginResolver {
  /** Origin of an accepted TCP connection or a received datagram; null when the kernel recorded none. */
  resolve(peer: PeerAddress, transport: 'tcp' | 'udp'): Promise<Origin | null>;
}

export function formatDestination(d: { address: string; port: number }): string {
  return d.address.includes(':') ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`;
}

/** Parses "host:port" / "[v6]:port". */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m || Number(m[2]) > 65535) throw new Error(`expected host:port or [v6]:port, got '${text}'`);
  return { host: m[1], port: Number(m[2]) };
}

const compiled = new WeakMap<Registration[], CompiledRegistration[]>();

/** Registrations compiled once per capsule config (the array identity is the cache key). */
export function compiledRegistrations(registrations: Registration[]): CompiledRegistration[] {
  let c = compiled.get(registrations);
  if (!c) {
    c = compileRegistrations(registrations);
    compiled.set(registrations, c);
  }
  return c;
}

function originFromFacts(destination: Destination, facts: ProcessFacts | null): Origin {
  return {
    destination,
    pid: facts?.pid ?? null,
    identify: (regs) => (facts ? resolveIdentity(facts, regs) : null),
  };
}

export interface StaticOriginOptions {
  /** One destination, or a choice per connection (e.g. by the proxy listener port it arrived on). */
  destination: Destination | ((peer: PeerAddress) => Destination | null);
  /** The facts every connection is attributed to; null makes every connection an unknown identity. */
  facts: ProcessFacts | null;
}

/** Test/explicit mode: every connection goes to `destination` as the process `facts` describe. Mutable between tests. */
export class StaticOriginResolver implements OriginResolver {
  constructor(public options: StaticOriginOptions) {}
  async resolve(peer: PeerAddress): Promise<Origin | null> {
    const d = this.options.destination;
    const dest = typeof d === 'function' ? d(peer) : d;
    return dest ? originFromFacts(dest, this.options.facts) : null;
  }
}

/** What bpf/index.ts `originalDestination` returns for a redirected socket. */
export interface KernelOriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
  pid: number;
  tgid: number;
  uid: number;
  gid: number;
  cgroupId: bigint | number;
}

export type OriginalDestinationFn = (peer: PeerAddress) => KernelOriginalDestination | null | Promise<KernelOriginalDestination | null>;

/**
 * Production mode over the kernel's redirect records. Facts come from /proc for
 * the recorded process; if it already exited, only the kernel-recorded uid/gid
 * remain (registrations needing a path, hash or cgroup then do not match → deny).
 */
export class KernelOriginResolver implements OriginResolver {
  constructor(private readonly originalDestination: OriginalDestinationFn) {}

  /** Binds to bpf/index.ts at run time (it is built by the kernel side). */
  static async load(): Promise<KernelOriginResolver> {
    const spec = '../bpf/index.js';
    let mod: { originalDestination?: OriginalDestinationFn };
    try {
      mod = (await import(spec)) as typeof mod;
    } catch (err) {
      throw new Error(`kernel redirect unavailable: cannot load bpf/index.js (${(err as Error).message})`);
    }
    if (typeof mod.originalDestination !== 'function') throw new Error('kernel redirect unavailable: bpf/index.js has no originalDestination');
    return new KernelOriginResolver(mod.originalDestination);
  }

  async resolve(peer: PeerAddress): Promise<Origin | null> {
    const rec = await this.originalDestination(peer);
    if (!rec) return null;
    const pid = rec.tgid || rec.pid;
    let facts: ProcessFacts;
    try {
      facts = await readProcessFacts(pid);
    } catch {
      facts = { pid, uid: rec.uid, gid: rec.gid, gids: [rec.gid] };
    }
    return originFromFacts({ address: rec.address, port: rec.port, family: rec.family }, facts);
  }
}
