// Per-agent taint sessions. A session's mask only grows: bits are OR-ed in
// (fetch_or semantics; Node runs decisions on one thread, so read-modify-write
// is atomic) and never cleared while the session lives.
//
// Sessions are keyed by SPIFFE ID, with MCP sessions (Mcp-Session-Id) nested
// inside. Decisions use the agent's mask, which is the union of everything any
// of its MCP sessions saw: opening a fresh MCP session cannot launder taint.
// The per-MCP-session masks say which conversation brought each bit in.

export interface TaintChange {
  before: bigint;
  after: bigint;
}

interface AgentSession {
  mask: bigint;
  mcp: Map<string, bigint>;
}

/** Bound on MCP sessions remembered per agent; the oldest is forgotten first (its bits stay in the agent mask). */
const MAX_MCP_SESSIONS_PER_AGENT = 1024;

export class TaintSessions {
  #agents = new Map<string, AgentSession>();
  /** Called after any mask gained bits (not for a new empty MCP session): the persistence hook. */
  onGrow: (() => void) | null = null;

  /** The mask decisions use for this agent (0 for an agent not seen yet). */
  mask(spiffeId: string): bigint {
    return this.#agents.get(spiffeId)?.mask ?? 0n;
  }

  mcpMask(spiffeId: string, mcpSession: string): bigint {
    return this.#agents.get(spiffeId)?.mcp.get(mcpSession) ?? 0n;
  }

  /** ORs `bits` into the agent's mask (and its MCP session's, when given). */
  or(spiffeId: string, bits: bigint, mcpSession?: string): TaintChange {
    let agent = this.#agents.get(spiffeId);
    if (!agent) {
      agent = { mask: 0n, mcp: new Map() };
      this.#agents.set(spiffeId, agent);
    }
    const before = agent.mask;
    agent.mask = before | bits;
    let grew = agent.mask !== before;
    if (mcpSession !== undefined) {
      const prev = agent.mcp.get(mcpSession);
      if (prev === undefined && agent.mcp.size >= MAX_MCP_SESSIONS_PER_AGENT) {
        const oldest = agent.mcp.keys().next().value;
        if (oldest !== undefined) agent.mcp.delete(oldest);
      }
      const next = (prev ?? 0n) | bits;
      agent.mcp.set(mcpSession, next);
      if (next !== (prev ?? 0n)) grew = true;
    }
    if (grew) this.onGrow?.();
    return { before, after: agent.mask };
  }

  /** Puts back sessions saved by `snapshot()` (at start, before any decision), OR-ing into what is here. */
  restore(saved: ReturnType<TaintSessions['snapshot']>): void {
    for (const a of saved) {
      this.or(a.spiffeId, a.mask);
      for (const m of a.mcp) this.or(a.spiffeId, m.mask, m.id);
    }
  }

  /** Registers an MCP session (at initialize) so it is counted before any bit is set. */
  openMcp(spiffeId: string, mcpSession: string): void {
    this.or(spiffeId, 0n, mcpSession);
  }

  /** The client ended the MCP session (HTTP DELETE). Its bits stay in the agent mask. */
  closeMcp(spiffeId: string, mcpSession: string): void {
    this.#agents.get(spiffeId)?.mcp.delete(mcpSession);
  }

  /** Number of live sessions: agents plus MCP sessions. */
  count(): number {
    let n = 0;
    for (const a of this.#agents.values()) n += 1 + a.mcp.size;
    return n;
  }

  snapshot(): Array<{ spiffeId: string; mask: bigint; mcp: Array<{ id: string; mask: bigint }> }> {
    return [...this.#agents].map(([spiffeId, a]) => ({ spiffeId, mask: a.mask, mcp: [...a.mcp].map(([id, mask]) => ({ id, mask })) }));
  }
}
