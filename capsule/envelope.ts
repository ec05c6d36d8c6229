// DSSE-style envelope: the signature covers a pre-authentication encoding of the
// payload type and the exact payload bytes, so nothing is ever parsed or
// canonicalised before its signature is checked.
import nacl from 'tweetnacl';
import { CapsuleError } from './errors.js';
import { ENVELOPE_SHAPE, parseBoundedJson } from './json-limits.js';
import type { SigningKey } from './keys.js';

export const CAPSULE_PAYLOAD_TYPE = 'application/vnd.lilith.capsule+json';
export const TRUST_PAYLOAD_TYPE = 'application/vnd.lilith.trust+json';
export const TIMESTAMP_PAYLOAD_TYPE = 'application/vnd.lilith.timestamp+json';
export const RESET_PAYLOAD_TYPE = 'application/vnd.lilith.reset+json';
/** Most signatures an envelope may carry. */
export const MAX_SIGNATURES = 64;
const KEYID = /^[0-9a-f]{64}$/;

export interface EnvelopeSignature {
  keyid: string;
  /** base64 Ed25519 detached signature (64 bytes) over PAE(payloadType, payload). */
  sig: string;
}

export interface Envelope {
  payloadType: string;
  /** base64 of the exact payload bytes. */
  payload: string;
  signatures: EnvelopeSignature[];
}

/** An envelope whose structure was checked and whose payload was base64-decoded, not yet verified. */
export interface DecodedEnvelope {
  payloadType: string;
  payloadBytes: Uint8Array;
  signatures: { keyid: string; sig: Uint8Array }[];
}

/** PAE = "DSSEv1" SP len(type) SP type SP len(body) SP body (lengths as ASCII decimal byte counts). */
export function pae(payloadType: string, body: Uint8Array): Uint8Array {
  const typeBytes = Buffer.from(payloadType, 'utf8');
  const head = Buffer.from(`DSSEv1 ${typeBytes.length} ${payloadType} ${body.length} `, 'utf8');
  return Buffer.concat([head, body]);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64: rejects characters Buffer.from would silently skip, and non-canonical padding. */
export function decodeBase64Strict(text: string, what: string): Uint8Array {
  if (text.length % 4 !== 0 || !BASE64.test(text)) throw new CapsuleError('malformed', `${what} is not valid base64`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new CapsuleError('malformed', `${what} is not canonical base64`);
  return new Uint8Array(bytes);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses envelope JSON and checks its structure. Does not verify signatures. The shape
 * (depth, containers, signature count) is bounded before JSON.parse, and no refusal
 * message quotes the input.
 */
export function decodeEnvelope(bytes: Uint8Array, expectedType: string): DecodedEnvelope {
  const value = parseBoundedJson(bytes, ENVELOPE_SHAPE, 'envelope');
  if (!isRecord(value)) throw new CapsuleError('malformed', 'envelope is not a JSON object');
  const { payloadType, payload, signatures } = value;
  if (typeof payloadType !== 'string') throw new CapsuleError('malformed', 'envelope.payloadType must be a string');
  if (payloadType !== expectedType) throw new CapsuleError('malformed', `envelope.payloadType is not "${expectedType}"`);
  if (typeof payload !== 'string') throw new CapsuleError('malformed', 'envelope.payload must be a base64 string');
  if (!Array.isArray(signatures)) throw new CapsuleError('malformed', 'envelope.signatures must be an array');
  if (signatures.length === 0) throw new CapsuleError('malformed', 'envelope has no signatures');
  if (signatures.length > MAX_SIGNATURES)
    throw new CapsuleError('malformed', `envelope has ${signatures.length} signatures (at most ${MAX_SIGNATURES})`);
  const sigs = signatures.map((s, i) => {
    if (!isRecord(s) || typeof s.keyid !== 'string' || typeof s.sig !== 'string') {
      throw new CapsuleError('malformed', `envelope.signatures[${i}] must be {keyid: string, sig: string}`);
    }
    // Keyids end up in refusal messages (status, audit): only the sha256 hex form.
    if (!KEYID.test(s.keyid))
      throw new CapsuleError('malformed', `envelope.signatures[${i}].keyid is not a 64-character lowercase hex sha256`);
    if (s.sig.length > 128) throw new CapsuleError('malformed', `envelope.signatures[${i}].sig is longer than an Ed25519 signature`);
    return { keyid: s.keyid, sig: decodeBase64Strict(s.sig, `envelope.signatures[${i}].sig`) };
  });
  return { payloadType, payloadBytes: decodeBase64Strict(payload, 'envelope.payload'), signatures: sigs };
}

/** The payloadType an envelope announces, after the same bounded look as decodeEnvelope; null if it is not an envelope. */
export function envelopeTypeOf(bytes: Uint8Array): string | null {
  try {
    const value = parseBoundedJson(bytes, ENVELOPE_SHAPE, 'envelope');
    return isRecord(value) && typeof value.payloadType === 'string' ? value.payloadType : null;
  } catch {
    return null;
  }
}

/** Signs payload bytes with each key; returns the envelope JSON bytes (what gets published). */
export function signEnvelope(payloadType: string, payloadBytes: Uint8Array, keys: SigningKey[]): Uint8Array {
  if (keys.length === 0) throw new Error('signEnvelope: at least one key is required');
  const message = pae(payloadType, payloadBytes);
  const envelope: Envelope = {
    payloadType,
    payload: Buffer.from(payloadBytes).toString('base64'),
    signatures: keys.map((k) => ({ keyid: k.keyid, sig: Buffer.from(nacl.sign.detached(message, k.secretKey)).toString('base64') })),
  };
  return Buffer.from(JSON.stringify(envelope, null, 2) + '\n', 'utf8');
}

export interface SignatureCheck {
  /** Distinct listed keyids with at least one valid signature. */
  valid: string[];
  /** Listed keyids whose signature(s) all failed. */
  bad: string[];
  /** Keyids not in the key list. */
  unknown: string[];
}

/**
 * Checks signatures against the listed public keys with bounded cost: each keyid is
 * looked at once (its first signature; a key counts once however often it signs),
 * unlisted keyids cost nothing, so at most `keys.size` Ed25519 verifications run —
 * and none after `stopAt` distinct keys verified (the threshold is met).
 */
export function checkSignatures(env: DecodedEnvelope, keys: ReadonlyMap<string, Uint8Array>, stopAt = Infinity): SignatureCheck {
  const message = pae(env.payloadType, env.payloadBytes);
  const valid = new Set<string>();
  const bad = new Set<string>();
  const unknown = new Set<string>();
  const seen = new Set<string>();
  for (const { keyid, sig } of env.signatures) {
    if (valid.size >= stopAt) break;
    if (seen.has(keyid)) continue;
    seen.add(keyid);
    const pub = keys.get(keyid);
    if (!pub) {
      unknown.add(keyid);
      continue;
    }
    if (sig.length === nacl.sign.signatureLength && nacl.sign.detached.verify(message, sig, pub)) valid.add(keyid);
    else bad.add(keyid);
  }
  return { valid: [...valid], bad: [...bad], unknown: [...unknown] };
}

/** Throws the most specific refusal when fewer than `threshold` distinct listed keys signed validly. */
export function requireThreshold(check: SignatureCheck, threshold: number, what: string): void {
  if (check.valid.length >= threshold) return;
  const got = `${check.valid.length} of ${threshold} required valid signature(s)`;
  if (check.bad.length > 0) {
    throw new CapsuleError(
      'bad_signature',
      `${what}: signature by key ${check.bad.join(', ')} does not verify (payload or signature altered); ${got}`,
    );
  }
  if (check.unknown.length > 0 && check.valid.length === 0) {
    throw new CapsuleError('unknown_key', `${what}: signed only by key(s) not in the trust file: ${check.unknown.join(', ')}`);
  }
  const extra = check.unknown.length ? `; ignored unknown key(s) ${check.unknown.join(', ')}` : '';
  throw new CapsuleError('below_threshold', `${what}: ${got} from distinct trusted keys${extra}`);
}

/**
 * Adds signatures by `keys` to an existing envelope of `expectedType` (k-of-n signing by
 * separate parties, each adding theirs). The payload is untouched; a key that already
 * signed is not added twice.
 */
export function addSignatures(bytes: Uint8Array, expectedType: string, keys: SigningKey[]): Uint8Array {
  const env = decodeEnvelope(bytes, expectedType);
  const message = pae(env.payloadType, env.payloadBytes);
  const signatures: EnvelopeSignature[] = env.signatures.map((s) => ({ keyid: s.keyid, sig: Buffer.from(s.sig).toString('base64') }));
  for (const k of keys) {
    if (signatures.some((s) => s.keyid === k.keyid)) continue;
    signatures.push({ keyid: k.keyid, sig: Buffer.from(nacl.sign.detached(message, k.secretKey)).toString('base64') });
  }
  if (signatures.length > MAX_SIGNATURES) throw new CapsuleError('malformed', `more than ${MAX_SIGNATURES} signatures`);
  const envelope: Envelope = { payloadType: env.payloadType, payload: Buffer.from(env.payloadBytes).toString('base64'), signatures };
  return Buffer.from(JSON.stringify(envelope, null, 2) + '\n', 'utf8');
}
