// Recovery from a fast-forward: a compromised (or mistaken) capsule key signed a
// capsule with a huge watermark, every enforcer accepted it, and now no honest capsule
// can ever be above it. A reset is a root-signed document that names the capsule it
// undoes (its payload digest, as recorded in the state) and the watermark and digest
// the floor returns to. Applying it is an explicit root action: it applies only to a
// state that holds exactly the undone capsule, and it sets `not_before` (its issue
// time), so the undone capsule, and anything created before the reset, is refused for
// good (`before_reset`) even though its watermark is higher.
import { CapsuleError } from './errors.js';
import { checkSignatures, decodeEnvelope, RESET_PAYLOAD_TYPE, requireThreshold, signEnvelope } from './envelope.js';
import { parseBoundedJson, SMALL_DOC_SHAPE } from './json-limits.js';
import type { SigningKey } from './keys.js';
import { sha256Hex } from './payload.js';
import type { CapsuleState } from './state.js';
import { checkTrustCurrent, type Trust } from './trust.js';

export const RESET_FORMAT = 'lilith.reset/v1';
export const MAX_RESET_BYTES = 64 * 1024;

export interface ResetPayload {
  format: typeof RESET_FORMAT;
  /** Payload digest of the capsule this reset undoes (the state must hold exactly it). */
  undoes_digest: string;
  /** The watermark and digest the state returns to (the last good capsule). */
  watermark: number;
  digest: string;
  /** The trust version the root keys signed under (at most the enforcer's version). */
  trust_version: number;
  /** Becomes the state's not_before: capsules created earlier are refused. */
  issued_at: string;
  reason?: string;
}

export interface VerifiedReset {
  payload: ResetPayload;
  keyids: string[];
  /** sha256 of the signed payload bytes, recorded in the state (the same however the envelope is re-serialised). */
  id: string;
}

const HEX64 = /^[0-9a-f]{64}$/;

function malformed(message: string): never {
  throw new CapsuleError('malformed', `reset: ${message}`);
}

export function parseResetPayload(bytes: Uint8Array): ResetPayload {
  const v = parseBoundedJson(bytes, SMALL_DOC_SHAPE, 'reset payload') as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) malformed('payload is not a JSON object');
  if (v.format !== RESET_FORMAT) malformed(`format must be "${RESET_FORMAT}"`);
  for (const k of ['undoes_digest', 'digest'] as const)
    if (typeof v[k] !== 'string' || !HEX64.test(v[k] as string)) malformed(`${k} must be a sha256 hex`);
  for (const k of ['watermark', 'trust_version'] as const)
    if (typeof v[k] !== 'number' || !Number.isSafeInteger(v[k]) || (v[k] as number) < 0) malformed(`${k} must be a non-negative integer`);
  if (typeof v.issued_at !== 'string' || Number.isNaN(Date.parse(v.issued_at))) malformed('issued_at must be an ISO 8601 time');
  if (v.reason !== undefined && (typeof v.reason !== 'string' || v.reason.length > 500))
    malformed('reason must be a string of at most 500 characters');
  return {
    format: RESET_FORMAT,
    undoes_digest: v.undoes_digest as string,
    watermark: v.watermark as number,
    digest: v.digest as string,
    trust_version: v.trust_version as number,
    issued_at: new Date(v.issued_at).toISOString(),
    ...(v.reason !== undefined ? { reason: v.reason as string } : {}),
  };
}

export function signReset(payload: Omit<ResetPayload, 'format'>, keys: SigningKey[]): Uint8Array {
  const bytes = Buffer.from(JSON.stringify({ format: RESET_FORMAT, ...payload }), 'utf8');
  parseResetPayload(bytes);
  return signEnvelope(RESET_PAYLOAD_TYPE, bytes, keys);
}

/** Checks the root threshold (of the current trust) over the exact bytes, then the payload. */
export function verifyReset(bytes: Uint8Array, trust: Trust, now: Date, skewMs = 5 * 60_000): VerifiedReset {
  if (bytes.length > MAX_RESET_BYTES)
    throw new CapsuleError('too_large', `reset is ${bytes.length} bytes, over the ${MAX_RESET_BYTES}-byte cap`);
  checkTrustCurrent(trust, now);
  const env = decodeEnvelope(bytes, RESET_PAYLOAD_TYPE);
  const root = trust.roles.root;
  const check = checkSignatures(env, root.keys, root.threshold);
  requireThreshold(check, root.threshold, 'reset (root role)');
  const payload = parseResetPayload(env.payloadBytes);
  if (payload.trust_version > trust.version)
    throw new CapsuleError('mismatch', `reset names trust version ${payload.trust_version}, above the trusted version ${trust.version}`);
  if (Date.parse(payload.issued_at) - skewMs > now.getTime())
    throw new CapsuleError('not_yet_valid', `reset issued_at ${payload.issued_at} is in the future (now ${now.toISOString()})`);
  return { payload, keyids: check.valid.sort(), id: sha256Hex(env.payloadBytes) };
}

/**
 * The state after applying a verified reset to `state`; throws `mismatch` when the reset
 * does not apply (no state, the state holds another capsule, nothing to lower).
 * `undoneCreatedAt`: the undone capsule's created_at when known — the reset must be
 * issued after it, or not_before would not shut it out.
 */
export function applyReset(state: CapsuleState | null, reset: VerifiedReset, now: Date, undoneCreatedAt?: Date): CapsuleState {
  const r = reset.payload;
  if (!state) throw new CapsuleError('mismatch', 'reset: there is no anti-rollback state to reset');
  if (state.reset === reset.id) throw new CapsuleError('mismatch', 'reset: already applied');
  if (state.digest !== r.undoes_digest)
    throw new CapsuleError(
      'mismatch',
      `reset undoes capsule ${r.undoes_digest.slice(0, 16)}…, but the state holds ${state.digest.slice(0, 16)}… (watermark ${state.watermark})`,
    );
  if (r.watermark >= state.watermark)
    throw new CapsuleError('mismatch', `reset watermark ${r.watermark} does not lower the state's watermark ${state.watermark}`);
  if (undoneCreatedAt && undoneCreatedAt.getTime() >= Date.parse(r.issued_at))
    throw new CapsuleError(
      'mismatch',
      `reset issued_at ${r.issued_at} is not after the undone capsule's created_at ${undoneCreatedAt.toISOString()}`,
    );
  if (state.not_before && Date.parse(state.not_before) > Date.parse(r.issued_at))
    throw new CapsuleError('mismatch', `reset issued_at ${r.issued_at} is before the state's not_before ${state.not_before}`);
  return { watermark: r.watermark, digest: r.digest, accepted_at: now.toISOString(), not_before: r.issued_at, reset: reset.id };
}
