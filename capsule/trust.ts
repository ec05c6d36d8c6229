// Trust files: which keys may sign capsules and how many must. Rotation follows
// TUF's root rotation: a new trust file is itself a signed envelope and is
// accepted only with a threshold of the old keys AND a threshold of its own keys.
import { CapsuleError } from './errors.js';
import { TRUST_PAYLOAD_TYPE, checkSignatures, decodeEnvelope, requireThreshold, signEnvelope } from './envelope.js';
import { decodePublicKey, keyIdOf, type PublicKeyFile, type SigningKey } from './keys.js';

/** The trust file as written on disk. */
export interface TrustFile {
  version: 1;
  /** k: distinct listed keys that must sign. */
  threshold: number;
  keys: PublicKeyFile[];
  /** ISO time after which this trust file is refused (capsules verified with it fail `expired`). */
  expires_at?: string;
}

/** A parsed, checked trust file. */
export interface Trust {
  threshold: number;
  /** keyid → raw 32-byte public key. */
  keys: ReadonlyMap<string, Uint8Array>;
  expiresAt: Date | null;
  /** The file form, for writing back (e.g. after rotation). */
  file: TrustFile;
}

export const MAX_TRUST_BYTES = 1024 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks a trust file value: version, threshold 1..keys, keyid = sha256(public key), no duplicates. */
export function parseTrustValue(value: unknown, source = 'trust file'): Trust {
  if (!isRecord(value)) throw new CapsuleError('bad_trust', `${source}: not a JSON object`);
  if (value.version !== 1) throw new CapsuleError('bad_trust', `${source}: version must be 1`);
  if (!Array.isArray(value.keys) || value.keys.length === 0)
    throw new CapsuleError('bad_trust', `${source}: keys must be a non-empty array`);
  const keys = new Map<string, Uint8Array>();
  value.keys.forEach((entry: unknown, i: number) => {
    const what = `${source}: keys[${i}]`;
    if (!isRecord(entry) || typeof entry.keyid !== 'string') throw new CapsuleError('bad_trust', `${what}: must be {keyid, public_key}`);
    const pub = decodePublicKey(entry.public_key, what);
    if (keyIdOf(pub) !== entry.keyid) throw new CapsuleError('bad_trust', `${what}: keyid is not the sha256 of its public_key`);
    if (keys.has(entry.keyid)) throw new CapsuleError('bad_trust', `${what}: key ${entry.keyid} listed twice`);
    keys.set(entry.keyid, pub);
  });
  const { threshold } = value;
  if (typeof threshold !== 'number' || !Number.isInteger(threshold) || threshold < 1 || threshold > keys.size) {
    throw new CapsuleError('bad_trust', `${source}: threshold must be an integer from 1 to the number of keys (${keys.size})`);
  }
  let expiresAt: Date | null = null;
  if (value.expires_at !== undefined) {
    expiresAt = typeof value.expires_at === 'string' ? new Date(value.expires_at) : new Date(NaN);
    if (Number.isNaN(expiresAt.getTime())) throw new CapsuleError('bad_trust', `${source}: expires_at must be an ISO 8601 time`);
  }
  const file: TrustFile = {
    version: 1,
    threshold,
    keys: [...keys].map(([keyid, pub]) => ({ keyid, public_key: Buffer.from(pub).toString('base64') })),
    ...(value.expires_at !== undefined ? { expires_at: value.expires_at as string } : {}),
  };
  return { threshold, keys, expiresAt, file };
}

/** Parses trust file bytes (plain JSON, not an envelope). */
export function parseTrust(bytes: Uint8Array | string, source = 'trust file'): Trust {
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8');
  if (Buffer.byteLength(text) > MAX_TRUST_BYTES) throw new CapsuleError('too_large', `${source}: larger than ${MAX_TRUST_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CapsuleError('bad_trust', `${source}: not valid JSON: ${(err as Error).message}`);
  }
  return parseTrustValue(value, source);
}

export function trustFromKeys(keys: { keyid: string; publicKey: Uint8Array }[], threshold = 1, expiresAt?: Date): TrustFile {
  return {
    version: 1,
    threshold,
    keys: keys.map((k) => ({ keyid: k.keyid, public_key: Buffer.from(k.publicKey).toString('base64') })),
    ...(expiresAt ? { expires_at: expiresAt.toISOString() } : {}),
  };
}

/** Throws `expired` when the trust file has expired at `now`. */
export function checkTrustCurrent(trust: Trust, now: Date): void {
  if (trust.expiresAt && trust.expiresAt.getTime() <= now.getTime()) {
    throw new CapsuleError('expired', `trust file expired at ${trust.expiresAt.toISOString()}`);
  }
}

/** Signs a new trust file for rotation; sign with k of the old keys and k of the new keys. */
export function signTrustUpdate(next: TrustFile, keys: SigningKey[]): Uint8Array {
  parseTrustValue(next, 'new trust file');
  return signEnvelope(TRUST_PAYLOAD_TYPE, Buffer.from(JSON.stringify(next), 'utf8'), keys);
}

/**
 * Verifies a trust rotation envelope against the currently trusted file. The new
 * file must be signed by `current.threshold` distinct current keys and by its own
 * threshold of its own keys (so a rotation cannot hand control to keys that never
 * signed, nor be done by the new keys alone).
 */
export function verifyTrustUpdate(bytes: Uint8Array, current: Trust, now: Date): Trust {
  if (bytes.length > MAX_TRUST_BYTES) throw new CapsuleError('too_large', `trust update is ${bytes.length} bytes (cap ${MAX_TRUST_BYTES})`);
  checkTrustCurrent(current, now);
  const env = decodeEnvelope(bytes, TRUST_PAYLOAD_TYPE);
  // Old keys first, before the payload is parsed: only its threshold check needs no payload.
  requireThreshold(checkSignatures(env, current.keys), current.threshold, 'trust update (current keys)');
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(env.payloadBytes).toString('utf8'));
  } catch (err) {
    throw new CapsuleError('malformed', `trust update payload is not valid JSON: ${(err as Error).message}`);
  }
  const next = parseTrustValue(value, 'new trust file');
  requireThreshold(checkSignatures(env, next.keys), next.threshold, 'trust update (new keys)');
  checkTrustCurrent(next, now);
  return next;
}
