// The audit file: JSON lines, one event per line, appended by a background
// writer so the dataplane never waits on the disk. emit() only queues (the event
// object itself: it is serialized by the writer, after the response that caused
// it has left, so callers must not change an event after emitting it); when the
// queue is full the event is dropped and counted (exposed as a metric and in
// status). Files rotate by size: audit.jsonl → audit.jsonl.1 → … → .N.
import { open, rename, stat, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AuditEvent, AuditSink } from '../audit/event.js';

export interface FileAuditSinkOptions {
  /** Rotate when the file would exceed this many bytes. @default 64 MiB */
  maxBytes?: number;
  /** Rotated files kept (audit.jsonl.1 … .keep). @default 5 */
  keep?: number;
  /** Events waiting for the disk before new ones are dropped. @default 10000 */
  queueLimit?: number;
  /** Events are gathered this long and written together (one write per batch, not per event). @default 5 */
  batchMs?: number;
}

export class FileAuditSink implements AuditSink {
  readonly path: string;
  #maxBytes: number;
  #keep: number;
  #queueLimit: number;
  #queue: AuditEvent[] = [];
  #dropped = 0;
  #written = 0;
  #fh: FileHandle | null = null;
  #size = 0;
  #writing: Promise<void> | null = null;
  #closed = false;
  #lastError: string | null = null;
  #batchMs: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(path: string, options: FileAuditSinkOptions = {}) {
    this.path = path;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.#keep = options.keep ?? 5;
    this.#queueLimit = options.queueLimit ?? 10_000;
    this.#batchMs = options.batchMs ?? 5;
  }

  emit(event: AuditEvent): void {
    if (this.#closed || this.#queue.length >= this.#queueLimit) {
      this.#dropped++;
      return;
    }
    this.#queue.push(event);
    if (!this.#writing && !this.#timer) this.#timer = setTimeout(() => this.#startDrain(), this.#batchMs);
  }

  #startDrain(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (!this.#writing && this.#queue.length) this.#writing = this.#drain().finally(() => (this.#writing = null));
  }

  dropped(): number {
    return this.#dropped;
  }

  written(): number {
    return this.#written;
  }

  lastError(): string | null {
    return this.#lastError;
  }

  /** Resolves when everything queued so far is on disk (tests, shutdown). */
  async flush(): Promise<void> {
    this.#startDrain();
    while (this.#writing) {
      await this.#writing;
      this.#startDrain();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    await this.#fh?.close();
    this.#fh = null;
  }

  async #openFile(): Promise<FileHandle> {
    if (this.#fh) return this.#fh;
    await mkdir(dirname(this.path), { recursive: true });
    this.#fh = await open(this.path, 'a', 0o640);
    this.#size = (await this.#fh.stat()).size;
    return this.#fh;
  }

  async #rotate(): Promise<void> {
    await this.#fh?.close();
    this.#fh = null;
    await unlink(`${this.path}.${this.#keep}`).catch(() => undefined);
    for (let i = this.#keep - 1; i >= 1; i--) await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => undefined);
    if (this.#keep > 0) await rename(this.path, `${this.path}.1`).catch(() => undefined);
    else await unlink(this.path).catch(() => undefined);
  }

  async #drain(): Promise<void> {
    while (this.#queue.length) {
      const events = this.#queue.splice(0, 512);
      const lines: string[] = [];
      for (const e of events) {
        try {
          lines.push(JSON.stringify(e) + '\n');
        } catch {
          this.#dropped++; // not serializable (a bug upstream): lose this event, not the batch
        }
      }
      try {
        let fh = await this.#openFile();
        let batch = '';
        // Counted as it grows: measuring the growing string per line would flatten and rescan it each time.
        let batchBytes = 0;
        for (const line of lines) {
          const bytes = Buffer.byteLength(line);
          if (this.#size + batchBytes + bytes > this.#maxBytes && this.#size + batchBytes > 0) {
            if (batch) await fh.write(batch);
            batch = '';
            batchBytes = 0;
            await this.#rotate();
            fh = await this.#openFile();
          }
          batch += line;
          batchBytes += bytes;
        }
        if (batch) {
          await fh.write(batch);
          this.#size += batchBytes;
        }
        this.#written += lines.length;
        this.#lastError = null;
      } catch (err) {
        // A failing disk loses these events; count them and keep the dataplane running.
        this.#dropped += lines.length;
        this.#lastError = (err as Error).message;
        await this.#fh?.close().catch(() => undefined);
        this.#fh = null;
      }
    }
  }
}

/** Current size of an audit file (0 when absent). */
export async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
