// Taint survives a daemon restart: the masks are saved in the state directory
// (taint.json) whenever one gains bits, and put back before the first decision.
// Without this an agent that read credentials could wait for a restart (an
// upgrade, a crash) and then send them out with a clean mask.
//
// Writes are atomic (temporary file, fsync, rename, directory fsync) and
// coalesced: one in flight, and one more if masks grew meanwhile. Masks only
// grow and bits are rare events (at most 64 per agent), so this is a handful of
// writes per agent. A kill -9 within a write's few milliseconds can lose that
// last change; a clean stop (SIGTERM) flushes first.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../../capsule/atomic-file.js';
import { maskHex, parseMaskHex } from './mask.js';
import type { TaintSessions } from './sessions.js';

const VERSION = 1;

interface SavedFile {
  version: 1;
  agents: Array<{ spiffe_id: string; mask: string; mcp: Array<{ id: string; mask: string }> }>;
}

export class TaintStateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TaintStateError';
  }
}

/** Reads a saved taint file; absent → empty. A file that is there but unreadable is an error, never "start clean". */
export async function readTaintFile(path: string): Promise<ReturnType<TaintSessions['snapshot']>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new TaintStateError(`cannot read taint state ${path}: ${(err as Error).message}`);
  }
  const bad = (why: string) =>
    new TaintStateError(
      `taint state ${path} is corrupt (${why}); refusing to start every agent clean — inspect it, or remove it to reset all taint on purpose`,
    );
  let v: SavedFile;
  try {
    v = JSON.parse(text) as SavedFile;
  } catch (err) {
    throw bad(`not JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || v.version !== VERSION || !Array.isArray(v.agents))
    throw bad(`expected {"version": ${VERSION}, "agents": [...]}`);
  const out: ReturnType<TaintSessions['snapshot']> = [];
  for (const [i, a] of v.agents.entries()) {
    if (!a || typeof a.spiffe_id !== 'string' || typeof a.mask !== 'string' || !Array.isArray(a.mcp))
      throw bad(`agents[${i}] needs spiffe_id, mask and mcp`);
    try {
      out.push({
        spiffeId: a.spiffe_id,
        mask: parseMaskHex(a.mask),
        mcp: a.mcp.map((m, k) => {
          if (!m || typeof m.id !== 'string' || typeof m.mask !== 'string') throw new Error(`mcp[${k}] needs id and mask`);
          return { id: m.id, mask: parseMaskHex(m.mask) };
        }),
      });
    } catch (err) {
      throw bad(`agents[${i}]: ${(err as Error).message}`);
    }
  }
  return out;
}

export interface TaintStore {
  /** Resolves when every change made so far is on disk. */
  flush(): Promise<void>;
  /** Flushes, then stops saving. */
  close(): Promise<void>;
  /** The last write error (the next change tries again), or null. */
  lastError(): string | null;
}

/**
 * Restores `sessions` from `path`, then saves them there whenever a mask grows.
 * Throws TaintStateError for a corrupt file (the caller refuses to start).
 */
export async function persistTaint(sessions: TaintSessions, path: string): Promise<TaintStore> {
  sessions.restore(await readTaintFile(path));
  let dirty = false;
  let writing: Promise<void> | null = null;
  let closed = false;
  let lastError: string | null = null;
  const serialize = (): string => {
    const file: SavedFile = {
      version: VERSION,
      agents: sessions.snapshot().map((a) => ({
        spiffe_id: a.spiffeId,
        mask: maskHex(a.mask),
        mcp: a.mcp.filter((m) => m.mask !== 0n).map((m) => ({ id: m.id, mask: maskHex(m.mask) })),
      })),
    };
    return JSON.stringify(file) + '\n';
  };
  const drain = async (): Promise<void> => {
    while (dirty) {
      dirty = false;
      try {
        await mkdir(dirname(path), { recursive: true });
        await writeFileAtomic(path, serialize(), 0o600);
        lastError = null;
      } catch (err) {
        lastError = (err as Error).message;
        process.stderr.write(`lilith: cannot save taint state to ${path}: ${lastError} (will retry on the next change)\n`);
        return;
      }
    }
  };
  const startDrain = () => {
    writing ??= drain().finally(() => (writing = null));
  };
  const kick = () => {
    dirty = true;
    if (!closed) startDrain();
  };
  sessions.onGrow = kick;
  const flush = async () => {
    while (writing) await writing;
    if (dirty) {
      startDrain();
      await writing;
    }
  };
  return {
    flush,
    close: async () => {
      await flush();
      closed = true;
      if (sessions.onGrow === kick) sessions.onGrow = null;
    },
    lastError: () => lastError,
  };
}
