// Kernel events (exec of a managed process, denials) from the lil_events ring
// buffer, decoded into KernelEvent and fanned out to listeners. The ring is
// opened with the first listener and closed with the last, so a daemon that
// does not listen pays nothing; it never keeps the event loop alive by itself.
import { RingBuffer } from './loader.js';
import { decodeEvent, type KernelEvent } from './layout.js';
import type { PinnedMaps } from './pinned-maps.js';

export type KernelEventListener = (e: KernelEvent) => void;

export class KernelEvents {
  readonly #maps: PinnedMaps;
  #ring: RingBuffer | null = null;
  #listeners = new Set<KernelEventListener>();
  /** Ends open iterators when the handle closes. */
  #onClose = new Set<() => void>();

  constructor(maps: PinnedMaps) {
    this.#maps = maps;
  }

  /** Subscribes; returns the unsubscribe function. */
  on(listener: KernelEventListener): () => void {
    this.#listeners.add(listener);
    if (!this.#ring) {
      this.#ring = new RingBuffer(
        this.#maps.get('lil_events'),
        (buf) => {
          const e = decodeEvent(buf);
          if (e) for (const l of this.#listeners) l(e);
        },
        { ref: false },
      );
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) {
        this.#ring?.close();
        this.#ring = null;
      }
    };
  }

  /** Events as an async iterator (ends when the iterator is returned or close() runs). */
  iterate(): AsyncIterableIterator<KernelEvent> {
    const queue: KernelEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    const off = this.on((e) => {
      queue.push(e);
      wake?.();
    });
    const finish = (): void => {
      done = true;
      off();
      wake?.();
    };
    this.#onClose.add(finish);
    const it: AsyncIterableIterator<KernelEvent> = {
      [Symbol.asyncIterator]: () => it,
      next: async () => {
        while (!queue.length && !done) await new Promise<void>((r) => (wake = r));
        wake = null;
        if (queue.length) return { value: queue.shift()!, done: false };
        return { value: undefined, done: true };
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
    };
    return it;
  }

  close(): void {
    for (const f of this.#onClose) f();
    this.#onClose.clear();
    this.#ring?.close();
    this.#ring = null;
  }
}
