// The maps a Kernel handle reads and writes are the ones pinned under its pin
// root (shared by every program object and every daemon generation), opened on
// first use and closed together. Once the handle is closed any use is EBADF, so a
// stale handle can never write into a newer daemon's maps by accident.
import { join } from 'node:path';
import { BpfError, BpfMap } from './loader.js';
import type { MapName } from './programs.js';

export class PinnedMaps {
  readonly #pinRoot: string;
  #open = new Map<MapName, BpfMap>();
  #closed = false;

  constructor(pinRoot: string) {
    this.#pinRoot = pinRoot;
  }

  get(name: MapName): BpfMap {
    if (this.#closed) throw new BpfError('kernel', 9 /* EBADF */, { detail: 'kernel handle is closed' });
    let m = this.#open.get(name);
    if (!m) {
      m = BpfMap.openPinned(join(this.#pinRoot, name));
      this.#open.set(name, m);
    }
    return m;
  }

  close(): void {
    for (const m of this.#open.values()) m.close();
    this.#open.clear();
    this.#closed = true;
  }
}
