// From a validated policy source to a capsule payload: the exact set of files an
// enforcer will activate, plus the metadata it checks (watermark, validity window,
// source commit, proof digest).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CAPSULE_FORMAT, type CapsulePayload } from '../capsule/index.js';
import type { LilithConfig } from '../capsule/config.js';
import { parseEntities, type PolicySource } from './policy-source.js';

export const DEFAULT_VALIDITY = '30d';

/** Parses "30d", "12h", "90m", "45s" (also "1w") into milliseconds; null when not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)\s*(s|m|h|d|w)$/.exec(text.trim());
  if (!m) return null;
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
  const ms = Number(m[1]) * unit;
  return ms > 0 && Number.isSafeInteger(ms) ? ms : null;
}

export interface BuildOptions {
  watermark: number;
  now: Date;
  /** Validity from `now`, in ms. */
  validityMs: number;
  sourceCommit?: string | null;
  proofDigest?: string;
}

export function buildPayload(src: PolicySource, opts: BuildOptions): CapsulePayload {
  if (!Number.isSafeInteger(opts.watermark) || opts.watermark < 0)
    throw new Error(`watermark must be a non-negative integer, got ${opts.watermark}`);
  return {
    format: CAPSULE_FORMAT,
    watermark: opts.watermark,
    created_at: opts.now.toISOString(),
    expires_at: new Date(opts.now.getTime() + opts.validityMs).toISOString(),
    source_commit: opts.sourceCommit ?? null,
    ...(opts.proofDigest ? { proof_digest: opts.proofDigest } : {}),
    policies: { ...src.policies },
    invariants: { ...src.invariants },
    schema: src.schema,
    entities: parseEntities(src.entitiesText),
    config: JSON.parse(src.configText) as LilithConfig,
  };
}

/** sha256 hex of a file's bytes (the proof report digest recorded in the capsule). */
export async function fileDigest(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}
