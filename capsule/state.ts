// Anti-rollback state: the last accepted watermark and payload digest, kept on
// disk so a restart cannot be used to roll an enforcer back. Written atomically
// (temp file, fsync, rename, fsync dir). A state file that cannot be read is an
// error, never treated as "no state", because that would re-open rollback.
import { mkdir, readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-file.js';
import { join } from 'node:path';
import { CapsuleError } from './errors.js';

export const STATE_FILE = 'state.json';

export interface CapsuleState {
  watermark: number;
  /** sha256 hex of the accepted capsule's payload bytes. */
  digest: string;
  /** ISO 8601 time of acceptance. */
  accepted_at: string;
  /**
   * Set by a root-signed reset (capsule/reset.ts): capsules created before this time are
   * refused, so the fast-forwarded capsule the reset undid can never be accepted again.
   */
  not_before?: string;
  /** sha256 of the reset that set this state (audit; a reset applies to exactly one state). */
  reset?: string;
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** Returns the stored state, null when none was ever written; throws `state_corrupt` otherwise. */
export async function readState(dir: string): Promise<CapsuleState | null> {
  const path = statePath(dir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CapsuleError('state_corrupt', `cannot read capsule state ${path}: ${(err as Error).message}`, { cause: err });
  }
  let v: Partial<CapsuleState>;
  try {
    v = JSON.parse(text) as Partial<CapsuleState>;
  } catch (err) {
    throw new CapsuleError(
      'state_corrupt',
      `capsule state ${path} is not valid JSON (${(err as Error).message}); refusing to reset it — inspect or remove it by hand`,
    );
  }
  if (
    typeof v !== 'object' ||
    v === null ||
    typeof v.watermark !== 'number' ||
    !Number.isSafeInteger(v.watermark) ||
    v.watermark < 0 ||
    typeof v.digest !== 'string' ||
    !/^[0-9a-f]{64}$/.test(v.digest) ||
    typeof v.accepted_at !== 'string'
  ) {
    throw new CapsuleError(
      'state_corrupt',
      `capsule state ${path} does not have {watermark, digest, accepted_at}; refusing to reset it — inspect or remove it by hand`,
    );
  }
  if (v.not_before !== undefined && (typeof v.not_before !== 'string' || Number.isNaN(Date.parse(v.not_before))))
    throw new CapsuleError(
      'state_corrupt',
      `capsule state ${path}: not_before is not an ISO time; refusing to reset it — inspect it by hand`,
    );
  return {
    watermark: v.watermark,
    digest: v.digest,
    accepted_at: v.accepted_at,
    ...(v.not_before !== undefined ? { not_before: v.not_before } : {}),
    ...(typeof v.reset === 'string' ? { reset: v.reset } : {}),
  };
}

/** Replaces the state file atomically and durably. */
export async function writeStateAtomic(dir: string, state: CapsuleState): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFileAtomic(statePath(dir), JSON.stringify(state, null, 2) + '\n');
}
