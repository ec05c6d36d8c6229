// What each agent resolved: IP → the name it asked for, learned from DNS
// answers the front forwarded. Later connects to that IP are decided on the
// name (Host::"name") rather than the bare endpoint. Bounded per agent (oldest
// forgotten first); an IP answered for several names keeps the latest.

const MAX_PER_AGENT = 4096;

export class LearnedNames {
  #byAgent = new Map<string, Map<string, string>>();

  learn(spiffeId: string, ip: string, name: string): void {
    let m = this.#byAgent.get(spiffeId);
    if (!m) this.#byAgent.set(spiffeId, (m = new Map()));
    m.delete(ip);
    if (m.size >= MAX_PER_AGENT) {
      const oldest = m.keys().next().value;
      if (oldest !== undefined) m.delete(oldest);
    }
    m.set(ip, name);
  }

  nameFor(spiffeId: string, ip: string): string | undefined {
    return this.#byAgent.get(spiffeId)?.get(normalizeIp(ip));
  }
}

/** "::ffff:1.2.3.4" → "1.2.3.4": v4-mapped addresses are the v4 address. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip.toLowerCase();
}
