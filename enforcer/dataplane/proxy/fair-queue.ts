// Connection-level work of many agents (refusing connections whose detection
// deadline passed, or that closed unrecognised), done in per-agent round robin
// with a bound per event-loop turn. Without it, one agent's burst — hundreds of
// stalled connections opened together whose deadlines expire in the same timer
// phase, each a decision, an audit event and a reset — runs as one block in
// front of every other agent's request. Here each batch takes at most one job
// per agent in turn and stops at a job or time budget; the loop then polls I/O,
// so a request on another agent's established connection (handled on its own
// 'data' event, never queued) waits for at most one batch.
//
// Jobs are per connection and an agent's connections are capped (budgets.ts),
// so an agent's queue is bounded by its connection cap.

export interface FairQueueOptions {
  /** Jobs run per batch (one event-loop turn) at most. @default 16 */
  perTurn?: number;
  /** A batch stops starting jobs after this long. @default 1 */
  turnMs?: number;
}

export class FairQueue {
  /** Agents with waiting jobs, in the order they are served next (Map keeps insertion order). */
  readonly #queues = new Map<string, Array<() => void>>();
  readonly #perTurn: number;
  readonly #turnMs: number;
  #scheduled: NodeJS.Immediate | null = null;
  #pending = 0;
  /** Jobs held back per agent (runAfter), moved to the queue together when their timer fires. */
  readonly #held = new Map<string, { jobs: Array<() => void>; timer: NodeJS.Timeout }>();

  constructor(options: FairQueueOptions = {}) {
    this.#perTurn = options.perTurn ?? 16;
    this.#turnMs = options.turnMs ?? 1;
  }

  /** Jobs waiting, all agents. */
  get pending(): number {
    return this.#pending;
  }

  /** Jobs waiting for `agent` (queued or held back). */
  waiting(agent: string): number {
    return (this.#queues.get(agent)?.length ?? 0) + (this.#held.get(agent)?.jobs.length ?? 0);
  }

  /** Queues `job` for `agent` once `delayMs` has passed (one timer per agent and batch of jobs held together). */
  runAfter(agent: string, delayMs: number, job: () => void): void {
    let held = this.#held.get(agent);
    if (!held) {
      const jobs: Array<() => void> = [];
      const timer = setTimeout(() => {
        this.#held.delete(agent);
        for (const j of jobs) this.run(agent, j);
      }, delayMs);
      held = { jobs, timer };
      this.#held.set(agent, held);
    }
    held.jobs.push(job);
  }

  /** Queues `job` behind `agent`'s other jobs; it runs in a later turn, after I/O was polled. */
  run(agent: string, job: () => void): void {
    const q = this.#queues.get(agent);
    if (q) q.push(job);
    else this.#queues.set(agent, [job]);
    this.#pending++;
    this.#scheduled ??= setImmediate(() => this.#batch());
  }

  /** Runs every waiting job now (the dataplane is closing: refusals are still audited). */
  flush(): void {
    for (const [agent, held] of this.#held) {
      clearTimeout(held.timer);
      for (const j of held.jobs) this.run(agent, j);
    }
    this.#held.clear();
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    while (this.#pending > 0) this.#batch(Number.POSITIVE_INFINITY);
  }

  #batch(max = this.#perTurn): void {
    this.#scheduled = null;
    const until = max === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : performance.now() + this.#turnMs;
    for (let n = 0; n < max; n++) {
      const next = this.#queues.entries().next();
      if (next.done) break;
      const [agent, q] = next.value;
      const job = q.shift()!;
      // To the back of the line: the next job comes from the next agent.
      this.#queues.delete(agent);
      if (q.length) this.#queues.set(agent, q);
      this.#pending--;
      try {
        job();
      } catch (err) {
        process.stderr.write(
          `lilith dataplane: internal error in queued connection work (dropped): ${(err as Error)?.stack ?? String(err)}\n`,
        );
      }
      if (performance.now() >= until) break;
    }
    if (this.#queues.size && max !== Number.POSITIVE_INFINITY) this.#scheduled = setImmediate(() => this.#batch());
  }
}
