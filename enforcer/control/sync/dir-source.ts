// Air-gapped source: a local directory operators drop capsule files into. chokidar
// watches the directory (not the files), so a capsule replaced by rename — the safe
// way to drop one — is seen. Every regular file not starting with "." is a candidate;
// activation verifies each and keeps only a higher valid watermark.
import { watch, type FSWatcher } from 'chokidar';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { emptyStatus, type CandidateHandler, type CapsuleSource, type SourceStatus } from './types.js';

export interface DirSourceOptions {
  dir: string;
  maxCapsuleBytes: number;
  /** Quiet time after the last change before the directory is rescanned. */
  settleMs?: number;
}

export class DirSource implements CapsuleSource {
  readonly name: string;
  #opts: DirSourceOptions;
  #status: SourceStatus;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #scan: Promise<void> = Promise.resolve();
  #onCandidate: CandidateHandler | null = null;
  /** File name → sha256 of the bytes last offered, so unchanged files are not re-offered. */
  #offered = new Map<string, string>();

  constructor(opts: DirSourceOptions) {
    this.#opts = opts;
    this.name = `dir:${opts.dir}`;
    this.#status = emptyStatus(this.name, 'dir');
  }

  status(): SourceStatus {
    return { ...this.#status };
  }

  async start(onCandidate: CandidateHandler): Promise<void> {
    this.#onCandidate = onCandidate;
    this.#watcher = watch(this.#opts.dir, { depth: 0, ignoreInitial: true, persistent: true });
    const kick = () => this.#kick();
    this.#watcher
      .on('add', kick)
      .on('change', kick)
      .on('unlink', kick)
      .on('error', (err) => {
        this.#status.last_error = `watch: ${(err as Error).message}`;
      });
    await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()));
    await this.rescan();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    await this.#watcher?.close();
    this.#watcher = null;
    await this.#scan;
  }

  #kick(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.rescan(), this.#opts.settleMs ?? 100);
  }

  /** Reads every candidate file and offers the new ones, serialized. */
  rescan(): Promise<void> {
    this.#scan = this.#scan.then(() => this.#rescan());
    return this.#scan;
  }

  async #rescan(): Promise<void> {
    this.#status.last_attempt = new Date().toISOString();
    const errors: string[] = [];
    let names: string[];
    try {
      names = (await readdir(this.#opts.dir)).filter((n) => !n.startsWith('.')).sort();
    } catch (err) {
      this.#fail(`cannot read ${this.#opts.dir}: ${(err as Error).message}`);
      return;
    }
    let offered = false;
    for (const name of names) {
      const path = join(this.#opts.dir, name);
      let bytes: Buffer;
      try {
        bytes = await readCapped(path, this.#opts.maxCapsuleBytes);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EISDIR' || (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        // The name is the dropper's choice: quoted, and nothing of the content is ever shown.
        errors.push(`${JSON.stringify(basename(path))}: ${(err as Error).message}`);
        continue;
      }
      const digest = createHash('sha256').update(bytes).digest('hex');
      if (this.#offered.get(name) === digest) continue;
      this.#offered.set(name, digest);
      offered = true;
      this.#status.last_change_at = new Date().toISOString();
      try {
        await this.#onCandidate?.({ source: `${this.name}/${name}`, bytes, commit: null });
      } catch (err) {
        this.#offered.delete(name);
        errors.push(`${name}: ${(err as Error).message}`);
      }
    }
    for (const name of [...this.#offered.keys()]) if (!names.includes(name)) this.#offered.delete(name);
    if (errors.length) this.#fail(errors.join('; '));
    else {
      this.#status.last_result = offered ? 'fetched' : 'unchanged';
      this.#status.last_error = null;
      this.#status.last_success = new Date().toISOString();
      this.#status.consecutive_failures = 0;
    }
  }

  #fail(error: string): void {
    this.#status.last_result = 'error';
    this.#status.last_error = error;
    this.#status.consecutive_failures++;
  }
}

/**
 * Reads a regular file without following symlinks, refusing (without reading) one over
 * `max` bytes. The type and size come from fstat of the opened descriptor, so a file
 * swapped for a symlink or FIFO between listing and opening is still refused.
 * O_NONBLOCK: opening a FIFO must not hang the scan.
 */
async function readCapped(path: string, max: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new Error('is a symbolic link; only regular files are read');
    throw err;
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (!st.isFile()) throw new Error('is not a regular file');
    if (st.size > max) throw new Error(`${st.size} bytes, over the ${max}-byte cap`);
    // One byte more than stat promised: a file still being written shows up as grown.
    const buf = Buffer.alloc(st.size + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n > st.size) throw new Error('changed while being read');
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}
