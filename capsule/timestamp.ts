// Timestamps: short-lived statements by the timestamp role that capsule D (watermark W)
// is the current tip. CI signs one on a schedule; an enforcer that stops seeing fresh
// ones (a mirror frozen on the previous tip, a replayed old branch) shows STALE and,
// past the trust file's second bound, fails closed. A timestamp only ever vouches for
// the capsule it names, so it cannot be mixed with another capsule.
import { CapsuleError } from './errors.js';
import { checkSignatures, decodeEnvelope, requireThreshold, signEnvelope, TIMESTAMP_PAYLOAD_TYPE } from './envelope.js';
import { parseBoundedJson, SMALL_DOC_SHAPE } from './json-limits.js';
import type { SigningKey } from './keys.js';
import { sha256Hex } from './payload.js';
import { checkTrustCurrent, type Trust } from './trust.js';

export const TIMESTAMP_FORMAT = 'lilith.timestamp/v1';
/** Timestamps are tiny; anything bigger is refused before parsing. */
export const MAX_TIMESTAMP_BYTES = 64 * 1024;

export interface TimestampPayload {
  format: typeof TIMESTAMP_FORMAT;
  /** sha256 hex of the capsule payload this timestamp vouches for. */
  capsule_digest: string;
  watermark: number;
  issued_at: string;
  expires_at: string;
}

export interface VerifiedTimestamp {
  payload: TimestampPayload;
  issuedAt: Date;
  expiresAt: Date;
  keyids: string[];
  /** sha256 of the signed payload bytes. */
  id: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

function malformed(message: string): never {
  throw new CapsuleError('malformed', `timestamp: ${message}`);
}

export function parseTimestampPayload(bytes: Uint8Array): TimestampPayload {
  const v = parseBoundedJson(bytes, SMALL_DOC_SHAPE, 'timestamp payload') as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) malformed('payload is not a JSON object');
  if (v.format !== TIMESTAMP_FORMAT) malformed(`format must be "${TIMESTAMP_FORMAT}"`);
  if (typeof v.capsule_digest !== 'string' || !HEX64.test(v.capsule_digest)) malformed('capsule_digest must be a sha256 hex');
  if (typeof v.watermark !== 'number' || !Number.isSafeInteger(v.watermark) || v.watermark < 0)
    malformed('watermark must be a non-negative integer');
  for (const k of ['issued_at', 'expires_at'] as const)
    if (typeof v[k] !== 'string' || Number.isNaN(Date.parse(v[k] as string))) malformed(`${k} must be an ISO 8601 time`);
  if (Date.parse(v.expires_at as string) <= Date.parse(v.issued_at as string)) malformed('expires_at must be after issued_at');
  return {
    format: TIMESTAMP_FORMAT,
    capsule_digest: v.capsule_digest,
    watermark: v.watermark,
    issued_at: v.issued_at as string,
    expires_at: v.expires_at as string,
  };
}

/** Signs a timestamp for the capsule with payload digest `digest` and `watermark`, valid `validityMs` from `now`. */
export function signTimestamp(o: { digest: string; watermark: number; now: Date; validityMs: number }, keys: SigningKey[]): Uint8Array {
  const payload: TimestampPayload = {
    format: TIMESTAMP_FORMAT,
    capsule_digest: o.digest,
    watermark: o.watermark,
    issued_at: o.now.toISOString(),
    expires_at: new Date(o.now.getTime() + o.validityMs).toISOString(),
  };
  const bytes = Buffer.from(JSON.stringify(payload), 'utf8');
  parseTimestampPayload(bytes);
  return signEnvelope(TIMESTAMP_PAYLOAD_TYPE, bytes, keys);
}

/**
 * Verifies a timestamp envelope against the trust file's timestamp role: threshold over
 * the exact bytes first, then the payload, then the time window (issued at most
 * `skewMs` in the future, not expired, valid no longer than the role's fail bound).
 * Which capsule it names is the caller's business (it must be the active one).
 */
export function verifyTimestamp(bytes: Uint8Array, trust: Trust, now: Date, skewMs = 5 * 60_000): VerifiedTimestamp {
  if (bytes.length > MAX_TIMESTAMP_BYTES)
    throw new CapsuleError('too_large', `timestamp is ${bytes.length} bytes, over the ${MAX_TIMESTAMP_BYTES}-byte cap`);
  const role = trust.roles.timestamp;
  if (!role) throw new CapsuleError('bad_trust', `the trust file (version ${trust.version}) has no timestamp role`);
  checkTrustCurrent(trust, now);
  const env = decodeEnvelope(bytes, TIMESTAMP_PAYLOAD_TYPE);
  const check = checkSignatures(env, role.keys, role.threshold);
  requireThreshold(check, role.threshold, 'timestamp');
  const payload = parseTimestampPayload(env.payloadBytes);
  const issuedAt = new Date(payload.issued_at);
  const expiresAt = new Date(payload.expires_at);
  if (issuedAt.getTime() - skewMs > now.getTime())
    throw new CapsuleError('not_yet_valid', `timestamp issued_at ${payload.issued_at} is in the future (now ${now.toISOString()})`);
  if (expiresAt.getTime() <= now.getTime())
    throw new CapsuleError('expired', `timestamp for watermark ${payload.watermark} expired at ${payload.expires_at}`);
  if (expiresAt.getTime() - issuedAt.getTime() > role.failAfterMs)
    throw new CapsuleError(
      'validity_too_long',
      `timestamp is valid for ${Math.round((expiresAt.getTime() - issuedAt.getTime()) / 1000)} s, longer than the timestamp role's fail_after_s (${role.failAfterMs / 1000} s)`,
    );
  return { payload, issuedAt, expiresAt, keyids: check.valid.sort(), id: sha256Hex(env.payloadBytes) };
}
