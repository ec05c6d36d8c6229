// What a capsule source hands to activation, and what it reports to status.
// Sources only transport bytes: nothing they deliver is trusted until activation verifies it.
import type { DocumentKind } from '../../../capsule/branch.js';

/** Raw capsule bytes from one place, not yet verified. */
export interface CapsuleCandidate {
  /** "git:<url>#<branch>", "dir:<path>/<file>" or "disk". */
  source: string;
  bytes: Uint8Array;
  /** The git commit the bytes were read from, when the source is git. */
  commit: string | null;
  /**
   * What the bytes are, when the source knows (git: by path). Unset: activation looks
   * at the envelope's payloadType (documents up to 1 MiB), else treats it as a capsule.
   */
  kind?: DocumentKind;
  /**
   * Documents published beside the capsule in the same commit, applied in this order
   * around it: trust rotations (oldest first) and a reset before the capsule, the
   * timestamp after it. Unverified like the capsule.
   */
  companions?: { trust: Uint8Array[]; reset: Uint8Array | null; timestamp: Uint8Array | null };
}

/** The signed documents a source can deliver. */
export type { DocumentKind };

/** The outcome of one sync attempt. */
export type SyncOutcome = { result: 'unchanged' } | { result: 'fetched'; commit: string | null } | { result: 'error'; error: string };

export interface SourceStatus {
  name: string;
  kind: 'git' | 'dir';
  last_attempt: string | null;
  last_result: SyncOutcome['result'] | null;
  last_error: string | null;
  /** Last time a sync attempt completed without error. */
  last_success: string | null;
  /** Last commit (git) seen on the capsule branch. */
  last_commit: string | null;
  /** When the source last saw new content (git: the branch tip moved), before fetching it. */
  last_change_at: string | null;
  consecutive_failures: number;
  /** When the next attempt is due (git). */
  next_attempt: string | null;
}

/** Called with each new candidate; resolves when activation has decided. */
export type CandidateHandler = (candidate: CapsuleCandidate) => Promise<void>;

export interface CapsuleSource {
  readonly name: string;
  start(onCandidate: CandidateHandler): Promise<void>;
  stop(): Promise<void>;
  status(): SourceStatus;
}

export function emptyStatus(name: string, kind: SourceStatus['kind']): SourceStatus {
  return {
    name,
    kind,
    last_attempt: null,
    last_result: null,
    last_error: null,
    last_success: null,
    last_commit: null,
    last_change_at: null,
    consecutive_failures: 0,
    next_attempt: null,
  };
}
