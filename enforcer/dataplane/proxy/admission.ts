// What a destination may be sent, before any byte of it is read: the capsule's
// declared upstream kind says which protocol it speaks, and the enforcer's own
// listeners (proxy, DNS, admin/metrics) are never a destination at all, whatever
// the policy says: relaying to them would let an agent talk to the enforcer
// through the enforcer.
import os from 'node:os';
import type { LilithConfig, Upstream } from '../../../capsule/config.js';
import { normalizeIp } from '../dns/names.js';
import { formatDestination, type Destination } from '../origin.js';

export type UpstreamKind = Upstream['kind'];

/**
 * The protocols each declared kind accepts; an undeclared destination is decided on what its bytes turn out to be.
 * mcp and http accept TLS only when it is intercepted (MUST_INTERCEPT): their requests are decided inside it.
 */
export const ACCEPTS: Record<UpstreamKind, ReadonlySet<'http' | 'h2c' | 'tls' | 'tcp'>> = {
  mcp: new Set(['http', 'tls']),
  http: new Set(['http', 'tls']),
  tls: new Set(['tls']),
  tcp: new Set(['tcp']),
};

/** Declared kinds whose TLS is never passed through: not intercepted, it is refused. */
export const MUST_INTERCEPT: ReadonlySet<UpstreamKind> = new Set(['mcp', 'http']);

const declared = new WeakMap<LilithConfig, Map<string, { alias: string; kind: UpstreamKind }>>();

/** The lilith.json upstream whose address is `dest`, or null. */
export function declaredUpstream(config: LilithConfig | null, dest: Destination): { alias: string; kind: UpstreamKind } | null {
  if (!config) return null;
  let byAddress = declared.get(config);
  if (!byAddress) {
    byAddress = new Map();
    for (const [alias, up] of Object.entries(config.upstreams ?? {})) byAddress.set(up.address.toLowerCase(), { alias, kind: up.kind });
    declared.set(config, byAddress);
  }
  return byAddress.get(formatDestination({ address: normalizeIp(dest.address), port: dest.port })) ?? null;
}

const REFRESH_MS = 5000;
let hostAddresses: { at: number; set: Set<string> } | null = null;

/** Whether `ip` is an address this host owns: loopback, unspecified, or any interface address (re-read every few seconds). */
export function isHostAddress(ip: string): boolean {
  const a = normalizeIp(ip);
  if (a.startsWith('127.') || a === '::1' || a === '0.0.0.0' || a === '::') return true;
  const now = Date.now();
  if (!hostAddresses || now - hostAddresses.at > REFRESH_MS) {
    const set = new Set<string>();
    for (const list of Object.values(os.networkInterfaces()))
      for (const i of list ?? []) set.add(normalizeIp(i.address.replace(/%.*$/, '')));
    hostAddresses = { at: now, set };
  }
  return hostAddresses.set.has(a);
}

const PORT = /:(\d{1,5})$/;

/** The enforcer's own listening ports: the bound proxy/DNS listeners and every port the capsule's proxy block names. */
export class OwnListeners {
  readonly #bound = new Set<number>();
  readonly #fromConfig = new WeakMap<LilithConfig, Set<number>>();

  add(port: number): void {
    if (port > 0) this.#bound.add(port);
  }

  /** True when `dest` is one of the enforcer's own listeners on an address this host owns. */
  isOwn(dest: Destination, config: LilithConfig | null): boolean {
    if (!this.#bound.has(dest.port) && !(config && this.#ports(config).has(dest.port))) return false;
    return isHostAddress(dest.address);
  }

  #ports(config: LilithConfig): Set<number> {
    let set = this.#fromConfig.get(config);
    if (!set) {
      set = new Set();
      const p = config.proxy;
      for (const text of [p.listen, p.listen6, p.dns_listen, p.admin_listen]) {
        const m = text ? PORT.exec(text) : null;
        if (m) set.add(Number(m[1]));
      }
      this.#fromConfig.set(config, set);
    }
    return set;
  }
}
