// Capsule verification off the event loop. Ed25519 in tweetnacl costs tens to hundreds
// of milliseconds per signature on a busy host; on the daemon's main thread that is
// time every in-flight decision waits. The worker runs the same verifyCapsule on a copy
// of the bytes and returns the result (or the CapsuleError code and message). For a
// capsule that verifies it also does the cedar-wasm parsing of its policies and schema
// (engine/prepare.ts), so the activation's engine build on the main thread is only
// the compile.
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { bundleOf, CapsuleError, verifyCapsule, type CapsuleState, type Trust, type VerifiedCapsule } from '../../capsule/index.js';
import { prepareBundle } from '../../cedar/prepare.js';
import type { PreparedBundle } from '../../cedar/types.js';
import { validateCapsule, validated } from './validate-capsule.js';

/** A verified capsule, with its engine input already parsed when the worker could. */
export type VerifiedForActivation = VerifiedCapsule & { prepared?: PreparedBundle };

interface Job {
  id: number;
  bytes: Uint8Array;
  trust: Trust;
  state: CapsuleState | null;
  nowMs: number;
  maxBytes?: number;
}
type Reply =
  | { id: number; ok: true; verified: VerifiedCapsule; prepared?: PreparedBundle }
  | { id: number; ok: false; code: string | null; message: string };

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', (job: Job) => {
    let reply: Reply;
    try {
      const verified = verifyCapsule(job.bytes, job.trust, job.state, new Date(job.nowMs), job.maxBytes ? { maxBytes: job.maxBytes } : {});
      let prepared: PreparedBundle | undefined;
      try {
        prepared = prepareBundle(bundleOf(verified.payload));
      } catch {
        // A policy set that does not parse: the activation's own build reports why.
      }
      if (prepared) validateCapsule(verified.payload);
      reply = { id: job.id, ok: true, verified, prepared };
    } catch (err) {
      reply = { id: job.id, ok: false, code: err instanceof CapsuleError ? err.code : null, message: (err as Error).message };
    }
    port.postMessage(reply);
  });
}

/**
 * The worker's heap is capped: capsule parsing is bounded before it starts (capsule/json-limits.ts),
 * and this is the second wall — whatever slips past kills the worker, never the daemon.
 */
export const WORKER_HEAP_MB = 192;

/**
 * How long one job may take in the worker. A worker that stops answering (seen under
 * emulated CPUs) would otherwise hold activation forever; past the deadline the worker
 * is replaced by the caller's thread, where bounded ingestion still applies.
 */
export const VERIFY_DEADLINE_MS = 60_000;

interface PendingJob {
  job: Job;
  resolve: (v: VerifiedForActivation) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function onThisThread(job: Job): VerifiedForActivation {
  return validated(verifyCapsule(job.bytes, job.trust, job.state, new Date(job.nowMs), job.maxBytes ? { maxBytes: job.maxBytes } : {}));
}

/** A lazily started verification worker; falls back to the caller's thread if it cannot run. */
export class VerifyWorker {
  #worker: Worker | null = null;
  #next = 1;
  #pending = new Map<number, PendingJob>();
  #broken = false;
  readonly #deadlineMs: number;

  constructor(opts: { deadlineMs?: number } = {}) {
    this.#deadlineMs = opts.deadlineMs ?? VERIFY_DEADLINE_MS;
  }

  verify(bytes: Uint8Array, trust: Trust, state: CapsuleState | null, now: Date, maxBytes?: number): Promise<VerifiedForActivation> {
    const job: Job = { id: this.#next++, bytes: Uint8Array.from(bytes), trust, state, nowMs: now.getTime(), maxBytes };
    if (this.#broken) return Promise.resolve().then(() => onThisThread(job));
    const w = this.#ensure();
    return new Promise<VerifiedForActivation>((resolve, reject) => {
      const timer = setTimeout(() => this.#timedOut(w), this.#deadlineMs);
      timer.unref();
      this.#pending.set(job.id, { job, resolve, reject, timer });
      w.postMessage(job);
    });
  }

  /** The worker missed a deadline: stop it and finish its jobs on this thread from now on. */
  #timedOut(w: Worker): void {
    if (this.#worker !== w) return;
    this.#worker = null;
    this.#broken = true;
    void w.terminate();
    const jobs = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of jobs) {
      clearTimeout(p.timer);
      try {
        p.resolve(onThisThread(p.job));
      } catch (err) {
        p.reject(err as Error);
      }
    }
  }

  #ensure(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(new URL(import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    w.unref();
    w.on('message', (r: Reply) => {
      const p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.ok) p.resolve(r.prepared ? { ...r.verified, prepared: r.prepared } : r.verified);
      else p.reject(r.code ? new CapsuleError(r.code as CapsuleError['code'], r.message) : new Error(r.message));
    });
    const fail = (err: Error) => {
      if (this.#worker !== w) return;
      this.#worker = null;
      if ((err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
        // The capsule being verified blew the heap cap: refuse it (the next job gets a new
        // worker). Never retried on the main thread, where it would take the daemon down.
        for (const [, p] of this.#pending) {
          clearTimeout(p.timer);
          p.reject(new CapsuleError('too_large', `verifying the capsule exceeded the ${WORKER_HEAP_MB} MB verification heap`));
        }
        this.#pending.clear();
        return;
      }
      // Verification must not stop because the worker did: finish on the main thread.
      this.#broken = true;
      for (const [, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(new Error(`verification worker failed: ${err.message}; retrying on the next round`));
      }
      this.#pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => {
      if (code !== 0) fail(new Error(`exited with ${code}`));
    });
    this.#worker = w;
    return w;
  }

  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = null;
    if (w) await w.terminate();
  }
}
