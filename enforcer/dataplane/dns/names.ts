// What each agent resolved: IP → the names it asked for, learned from DNS
// answers the front forwarded. Later connects to that IP are decided on the
// name (Host::"name") rather than the bare endpoint, and a TLS SNI or HTTP Host
// is corroborated when it is one of those names. An IP shared by several names
// (a CDN) keeps up to MAX_NAMES_PER_IP of them, latest last. Bounded per agent
// (oldest IP forgotten first).

const MAX_PER_AGENT = 4096;
const MAX_NAMES_PER_IP = 16;
const NONE: readonly string[] = Object.freeze([]);

export class LearnedNames {
  #byAgent = new Map<string, Map<string, string[]>>();

  learn(spiffeId: string, ip: string, name: string): void {
    let m = this.#byAgent.get(spiffeId);
    if (!m) this.#byAgent.set(spiffeId, (m = new Map()));
    const key = normalizeIp(ip);
    const names = (m.get(key) ?? []).filter((n) => n !== name);
    names.push(name);
    if (names.length > MAX_NAMES_PER_IP) names.shift();
    m.delete(key);
    if (m.size >= MAX_PER_AGENT) {
      const oldest = m.keys().next().value;
      if (oldest !== undefined) m.delete(oldest);
    }
    m.set(key, names);
  }

  /** The name this agent most recently resolved to `ip`. */
  nameFor(spiffeId: string, ip: string): string | undefined {
    return this.#byAgent.get(spiffeId)?.get(normalizeIp(ip))?.at(-1);
  }

  /** Every name (latest last) this agent resolved to `ip`. */
  namesFor(spiffeId: string, ip: string): readonly string[] {
    return this.#byAgent.get(spiffeId)?.get(normalizeIp(ip)) ?? NONE;
  }
}

/** "::ffff:1.2.3.4" → "1.2.3.4": v4-mapped addresses are the v4 address. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip.toLowerCase();
}

/** A loopback address (127/8, ::1, or either v4-mapped). */
export function isLoopback(ip: string): boolean {
  const a = normalizeIp(ip);
  return a === '::1' || a.startsWith('127.');
}
