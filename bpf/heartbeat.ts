// The daemon's liveness as the kernel sees it: a CLOCK_MONOTONIC stamp in
// lil_heartbeat. Programs deny managed network traffic once it is older than the
// configured TTL, so a dead or wedged daemon fails closed without any cleanup.
import { monotonicNs } from './loader.js';
import type { PinnedMaps } from './pinned-maps.js';

export class Heartbeat {
  readonly #maps: PinnedMaps;
  #timer: NodeJS.Timeout | null = null;

  constructor(maps: PinnedMaps) {
    this.#maps = maps;
  }

  /** Writes the heartbeat (CLOCK_MONOTONIC ns, default now). */
  beat(ns: bigint = monotonicNs()): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(ns);
    this.#maps.get('lil_heartbeat').update(Buffer.alloc(4), b);
  }

  /** Beats now and every intervalMs; the timer does not keep the process alive on its own (the daemon does). */
  start(intervalMs: number): void {
    this.stop();
    this.beat();
    this.#timer = setInterval(() => {
      try {
        this.beat();
      } catch {
        // A failed beat is a missed beat: the kernel fails closed on its own.
      }
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
