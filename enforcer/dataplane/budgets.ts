// Per-agent resource caps, checked before the work: open connections (each one
// an fd here and one upstream), bytes of request bodies held for a decision,
// and DNS queries in flight. One agent exhausting its budget is refused; the
// others keep theirs.

export interface BudgetLimits {
  /** Open proxied connections per agent. */
  connections: number;
  /** Bytes of request bodies held (MCP/JSON bodies waiting to be decided) per agent. */
  heldBytes: number;
  /** DNS queries being decided or forwarded per agent. */
  dnsInFlight: number;
}

export const DEFAULT_BUDGETS: BudgetLimits = { connections: 512, heldBytes: 64 * 1024 * 1024, dnsInFlight: 64 };

interface Use {
  connections: number;
  heldBytes: number;
  dns: number;
}

/** Refusals over the connection cap are audited at most this often per agent; the ones between are counted into one event. */
export const REFUSAL_AUDIT_INTERVAL_MS = 1000;

/** What a connection refused over the cap is audited with: the refusal text and something naming the connection (its origin). */
export type RefusalSummary = (agent: string, text: string, sample: unknown) => void;

interface Tally {
  /** When the agent's last refusal event was audited. */
  at: number;
  /** Refusals reset without an event since then. */
  unaudited: number;
  /** The last of them (the summary event names it) and the cap text of that moment. */
  sample: unknown;
  text: string;
  timer: NodeJS.Timeout | null;
}

export class AgentBudgets {
  readonly #use = new Map<string, Use>();
  readonly #refusals = new Map<string, Tally>();
  /** Audits the refusals counted over an interval (set by the dataplane). */
  onRefusalSummary: RefusalSummary | null = null;
  constructor(readonly limits: BudgetLimits = DEFAULT_BUDGETS) {}

  /**
   * A connection of `agent` over its cap is being refused (`text`: why). True
   * when the caller audits this one itself (the first after a quiet interval);
   * false when it is only counted: the caller resets it and does nothing else.
   * A reconnect loop over the cap must cost an accept and a reset, not a
   * decision and an audit line each — that work is what would delay every other
   * agent's decisions. Counted refusals are never lost: at the end of the
   * interval one event carries their number (onRefusalSummary).
   */
  refuseOverCap(agent: string, text: string, sample: unknown, now = Date.now()): boolean {
    const r = this.#refusals.get(agent);
    if (r && now - r.at < REFUSAL_AUDIT_INTERVAL_MS) {
      r.unaudited++;
      r.sample = sample;
      r.text = text;
      r.timer ??= setTimeout(() => this.#summarise(agent), REFUSAL_AUDIT_INTERVAL_MS - (now - r.at)).unref();
      return false;
    }
    if (!r && this.#refusals.size >= 4096) {
      // Forget the oldest agent's tally, auditing what it still counted.
      const oldest = this.#refusals.keys().next().value!;
      this.#summarise(oldest);
      this.#refusals.delete(oldest);
    }
    if (r) this.#summarise(agent);
    this.#refusals.set(agent, { at: now, unaudited: 0, sample: null, text: '', timer: null });
    return true;
  }

  #summarise(agent: string): void {
    const r = this.#refusals.get(agent);
    if (!r) return;
    if (r.timer) clearTimeout(r.timer);
    r.timer = null;
    if (r.unaudited === 0) return;
    const n = r.unaudited;
    const sample = r.sample;
    r.unaudited = 0;
    r.sample = null;
    r.at = Date.now();
    this.onRefusalSummary?.(agent, `${r.text}; ${n} connection${n === 1 ? '' : 's'} over the cap reset since the last such event`, sample);
  }

  /** Audits every count still waiting for its interval to end (the dataplane is closing). */
  flushRefusals(): void {
    for (const agent of [...this.#refusals.keys()]) this.#summarise(agent);
  }

  #of(agent: string): Use {
    let u = this.#use.get(agent);
    if (!u) this.#use.set(agent, (u = { connections: 0, heldBytes: 0, dns: 0 }));
    return u;
  }

  #release(agent: string, u: Use): void {
    if (u.connections === 0 && u.heldBytes === 0 && u.dns === 0) this.#use.delete(agent);
  }

  /** Counts `socket` against the agent until it closes; returns the refusal reason when over the cap. */
  openConnection(agent: string, socket: { once(ev: 'close', f: () => void): unknown }): string | undefined {
    const u = this.#of(agent);
    if (u.connections >= this.limits.connections) {
      this.#release(agent, u);
      return `agent has ${u.connections} open connections (limit ${this.limits.connections})`;
    }
    u.connections++;
    socket.once('close', () => {
      u.connections--;
      this.#release(agent, u);
    });
    return undefined;
  }

  /** Reserves `n` more held body bytes; false (nothing reserved) when over the agent's budget. */
  hold(agent: string, n: number): boolean {
    const u = this.#of(agent);
    if (u.heldBytes + n > this.limits.heldBytes) {
      this.#release(agent, u);
      return false;
    }
    u.heldBytes += n;
    return true;
  }

  unhold(agent: string, n: number): void {
    const u = this.#use.get(agent);
    if (!u) return;
    u.heldBytes = Math.max(0, u.heldBytes - n);
    this.#release(agent, u);
  }

  /** Starts a DNS query for the agent; returns its release, or null when the agent has too many in flight. */
  startDns(agent: string): (() => void) | null {
    const u = this.#of(agent);
    if (u.dns >= this.limits.dnsInFlight) return null;
    u.dns++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      u.dns--;
      this.#release(agent, u);
    };
  }

  /** Current use, for tests and metrics. */
  use(agent: string): Readonly<Use> {
    return this.#use.get(agent) ?? { connections: 0, heldBytes: 0, dns: 0 };
  }
}
