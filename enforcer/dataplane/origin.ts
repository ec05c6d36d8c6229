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
import {
  compileRegistrations,
  readProcessFacts,
  resolveIdentity,
  type CompiledRegistration,
  type ProcessFacts,
  type ProcessFactsOptions,
  type ResolvedIdentity,
} from '../../identity/index.js';
import type { Registration } from '../../capsule/config.js';
import { UdpOwners } from './dns/udp-owner.js';

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
  identify(registrations: CompiledRegistration<Registration>[]): ResolvedIdentity<Registration> | null;
}

export interface OriginResolver {
  /** Origin of an accepted TCP connection or a received datagram; null when the kernel recorded none. */
  resolve(peer: PeerAddress, transport: 'tcp' | 'udp'): Promise<Origin | null>;
}

export function formatDestination(d: { address: string; port: number }): string {
  return d.address.includes(':') ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`;
}

const compiled = new WeakMap<Registration[], CompiledRegistration<Registration>[]>();

/** Registrations compiled once per capsule config (the array identity is the cache key). */
export function compiledRegistrations(registrations: Registration[]): CompiledRegistration<Registration>[] {
  let c = compiled.get(registrations);
  if (!c) {
    c = compileRegistrations(registrations);
    compiled.set(registrations, c);
  }
  return c;
}

function originFromFacts(destination: Destination, facts: ProcessFacts | null): Origin {
  // Facts are fixed for the connection's life, so the answer only changes with
  // the registrations (a new capsule): remember the last one.
  let lastRegs: CompiledRegistration<Registration>[] | null = null;
  let last: ResolvedIdentity<Registration> | null = null;
  return {
    destination,
    pid: facts?.pid ?? null,
    identify: (regs) => {
      if (!facts) return null;
      if (regs !== lastRegs) {
        last = resolveIdentity(facts, regs);
        lastRegs = regs;
      }
      return last;
    },
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

/** What bpf/index.ts `Kernel.originalDestination` returns for a redirected socket. */
export interface KernelOriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
  pid: number;
  tgid: number;
  uid: number;
  gid: number;
}

/** The part of bpf/index.ts's Kernel the proxy needs. */
export interface OriginalDestinationSource {
  /** `transport: 'udp'`: the sender of a datagram the DNS front received (absent: an accepted TCP connection). */
  originalDestination(peer: { remoteAddress?: string; remotePort?: number; transport?: 'tcp' | 'udp' }): KernelOriginalDestination | null;
}

/**
 * Production mode over the kernel's redirect records (pass the Kernel from
 * bpf/index.ts `attach()`). TCP: the sockops program recorded the original
 * destination and the process under the client's address and port. Facts come
 * from /proc for the recorded process; if it already exited only the
 * kernel-recorded uid/gid remain (registrations needing a path, hash or cgroup
 * then do not match → deny). UDP (DNS): the cgroup_skb egress program
 * records each datagram's sender under the source address and port the front
 * sees, from any network namespace; a datagram it did not record (a kernel
 * without the program, a sender outside the attached cgroup) falls back to
 * the host's socket table (/proc/net/udp inode → the process holding it),
 * which only sees the host namespace. Neither: null, refused.
 */
export interface KernelOriginOptions {
  /** Audited destination of a DNS datagram the kernel did not record. */
  dnsDestination?: Destination;
  /** The operator's container metadata directory (identity/workload-metadata.ts). @default /run/lilith/workloads */
  workloadDir?: string;
}

export class KernelOriginResolver implements OriginResolver {
  readonly #dnsDestination: Destination;
  readonly #facts: ProcessFactsOptions;

  constructor(
    private readonly kernel: OriginalDestinationSource,
    options: KernelOriginOptions = {},
  ) {
    this.#dnsDestination = options.dnsDestination ?? { address: '0.0.0.0', port: 53, family: 4 };
    this.#facts = { workloadDir: options.workloadDir };
  }

  async resolve(peer: PeerAddress, transport: 'tcp' | 'udp'): Promise<Origin | null> {
    if (transport === 'udp') {
      const rec = this.kernel.originalDestination({ remoteAddress: peer.remoteAddress, remotePort: peer.remotePort, transport });
      if (rec) return originFromRecord(rec, this.#facts);
      const pid = await udpSocketOwner(peer.remoteAddress, peer.remotePort);
      if (pid === null) return null;
      const facts = await readProcessFacts(pid, this.#facts).catch(() => null);
      return facts ? originFromFacts(this.#dnsDestination, facts) : null;
    }
    const rec = this.kernel.originalDestination(peer);
    return rec ? originFromRecord(rec, this.#facts) : null;
  }
}

/** Facts for the process the kernel recorded (its uid/gid alone when it already exited). */
async function originFromRecord(rec: KernelOriginalDestination, opts: ProcessFactsOptions): Promise<Origin> {
  const pid = rec.tgid || rec.pid;
  let facts: ProcessFacts;
  try {
    facts = await readProcessFacts(pid, opts);
  } catch {
    facts = { pid, uid: rec.uid, gid: rec.gid, gids: [rec.gid] };
  }
  return originFromFacts({ address: rec.address, port: rec.port, family: rec.family }, facts);
}

const owners = new UdpOwners();

/** The host-namespace process owning the UDP socket `address`:`port` sent from, or null (any other namespace). */
export async function udpSocketOwner(address: string, port: number): Promise<number | null> {
  return owners.ownerOf(address, port);
}
