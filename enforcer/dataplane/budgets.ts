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

/** Refusals over the connection cap are audited at most this often per agent; the ones between are counted into the next. */
export const REFUSAL_AUDIT_INTERVAL_MS = 1000;

export class AgentBudgets {
  readonly #use = new Map<string, Use>();
  readonly #refusals = new Map<string, { at: number; unaudited: number }>();
  constructor(readonly limits: BudgetLimits = DEFAULT_BUDGETS) {}

  /**
   * An over-cap connection of `agent` was refused: the number of such refusals
   * left unaudited since its last audited one when this one should be audited
   * (the first, then at most one per interval), else null. A reconnect loop over
   * the cap must cost a reset, not a decision and an audit line each: that work
   * is what would delay every other agent's decisions.
   */
  auditRefusal(agent: string, now = Date.now()): number | null {
    const r = this.#refusals.get(agent);
    if (r && now - r.at < REFUSAL_AUDIT_INTERVAL_MS) {
      r.unaudited++;
      return null;
    }
    const skipped = r?.unaudited ?? 0;
    if (this.#refusals.size >= 4096 && !r) this.#refusals.delete(this.#refusals.keys().next().value!);
    this.#refusals.set(agent, { at: now, unaudited: 0 });
    return skipped;
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
