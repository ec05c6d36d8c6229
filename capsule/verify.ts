// Capsule verification, in the order that keeps untrusted bytes away from the
// parsers: size cap → envelope structure → signatures over the exact bytes →
// payload parse → time window → anti-rollback.
import { CapsuleError } from './errors.js';
import { CAPSULE_PAYLOAD_TYPE, checkSignatures, decodeEnvelope, requireThreshold } from './envelope.js';
import { parsePayload, sha256Hex, type CapsulePayload } from './payload.js';
import type { CapsuleState } from './state.js';
import { checkTrustCurrent, type Trust } from './trust.js';

/** Capsules larger than this are refused before any parsing. */
export const MAX_CAPSULE_BYTES = 16 * 1024 * 1024;
/** How far created_at may lie in the future (signer/enforcer clock skew). */
export const DEFAULT_CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface VerifiedCapsule {
  payload: CapsulePayload;
  /** sha256 hex of the exact payload bytes. */
  digest: string;
  /** Distinct trusted keyids whose signatures verified. */
  keyids: string[];
  /** True when the state already records this exact capsule (same watermark and digest). */
  alreadyAccepted: boolean;
}

export interface VerifyOptions {
  maxBytes?: number;
  clockSkewMs?: number;
}

export function verifyCapsule(
  bytes: Uint8Array,
  trust: Trust,
  state: CapsuleState | null,
  now: Date,
  options: VerifyOptions = {},
): VerifiedCapsule {
  const maxBytes = options.maxBytes ?? MAX_CAPSULE_BYTES;
  if (bytes.length > maxBytes)
    throw new CapsuleError('too_large', `capsule is ${bytes.length} bytes, larger than the ${maxBytes}-byte cap`);
  checkTrustCurrent(trust, now);
  const env = decodeEnvelope(bytes, CAPSULE_PAYLOAD_TYPE);
  const check = checkSignatures(env, trust.keys, trust.threshold);
  requireThreshold(check, trust.threshold, 'capsule');

  const payload = parsePayload(env.payloadBytes);
  const digest = sha256Hex(env.payloadBytes);
  const created = new Date(payload.created_at);
  const expires = new Date(payload.expires_at);
  const skew = options.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  if (created.getTime() - skew > now.getTime()) {
    throw new CapsuleError('not_yet_valid', `capsule created_at ${payload.created_at} is in the future (now ${now.toISOString()})`);
  }
  if (expires.getTime() - created.getTime() > trust.maxValidityMs) {
    throw new CapsuleError(
      'validity_too_long',
      `capsule watermark ${payload.watermark} is valid for ${Math.round((expires.getTime() - created.getTime()) / 86_400_000)} days, longer than the trust file's maximum of ${Math.round(trust.maxValidityMs / 86_400_000)} days`,
    );
  }
  if (expires.getTime() <= now.getTime()) {
    throw new CapsuleError('expired', `capsule watermark ${payload.watermark} expired at ${payload.expires_at} (now ${now.toISOString()})`);
  }

  let alreadyAccepted = false;
  if (state) {
    if (state.not_before && created.getTime() < Date.parse(state.not_before)) {
      throw new CapsuleError(
        'before_reset',
        `capsule watermark ${payload.watermark} was created at ${payload.created_at}, before the root-signed reset of ${state.not_before}`,
      );
    }
    if (payload.watermark < state.watermark) {
      throw new CapsuleError('rollback', `capsule watermark ${payload.watermark} is lower than the accepted watermark ${state.watermark}`);
    }
    if (payload.watermark === state.watermark) {
      if (digest !== state.digest) {
        throw new CapsuleError(
          'watermark_reuse',
          `capsule reuses watermark ${payload.watermark} with a different payload (digest ${digest.slice(0, 16)}…, accepted ${state.digest.slice(0, 16)}…)`,
        );
      }
      alreadyAccepted = true;
    }
  }
  return { payload, digest, keyids: check.valid.sort(), alreadyAccepted };
}

/** The state to store after activating a verified capsule. */
export function stateFor(verified: VerifiedCapsule, now: Date, previous: CapsuleState | null = null): CapsuleState {
  // A reset's not_before outlives the capsules accepted after it: the undone capsule's
  // watermark is higher than theirs, only not_before keeps it out.
  return {
    watermark: verified.payload.watermark,
    digest: verified.digest,
    accepted_at: now.toISOString(),
    ...(previous?.not_before ? { not_before: previous.not_before } : {}),
    ...(previous?.reset ? { reset: previous.reset } : {}),
  };
}

/**
 * Who signed a capsule, without the time window or anti-rollback: size, envelope, the
 * capsule role's threshold, payload shape. For the pipeline, which must know whether a
 * published capsule (possibly long expired) is genuine before trusting its watermark.
 */
export function verifyCapsuleSignatures(
  bytes: Uint8Array,
  trust: Trust,
  maxBytes = MAX_CAPSULE_BYTES,
): { payload: CapsulePayload; digest: string } {
  if (bytes.length > maxBytes)
    throw new CapsuleError('too_large', `capsule is ${bytes.length} bytes, larger than the ${maxBytes}-byte cap`);
  const env = decodeEnvelope(bytes, CAPSULE_PAYLOAD_TYPE);
  requireThreshold(checkSignatures(env, trust.keys, trust.threshold), trust.threshold, 'capsule');
  return { payload: parsePayload(env.payloadBytes), digest: sha256Hex(env.payloadBytes) };
}
