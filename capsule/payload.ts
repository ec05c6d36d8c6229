// The capsule payload: everything an enforcer activates, in one signed JSON document.
import { createHash } from 'node:crypto';
import { JsonLongError, longOutOfRange, parseJsonLong, roundLongs, stringifyJsonLong } from '../cedar/json-long.js';
import type { Entity, PolicyBundle } from '../cedar/types.js';
import type { LilithConfig } from './config.js';
import { CAPSULE_PAYLOAD_TYPE, decodeEnvelope } from './envelope.js';
import { CapsuleError } from './errors.js';
import { checkJsonShape, PAYLOAD_SHAPE, parseBoundedJson } from './json-limits.js';

export const CAPSULE_FORMAT = 'lilith.capsule/v1';

export interface CapsulePayload {
  format: typeof CAPSULE_FORMAT;
  /** Monotonically increasing across published capsules; enforcers refuse lower ones. */
  watermark: number;
  /** ISO 8601. */
  created_at: string;
  /** ISO 8601; enforcers refuse the capsule at or after this time. */
  expires_at: string;
  /** Git commit of the policy repository the capsule was built from, when known. */
  source_commit: string | null;
  /** sha256 hex of the proof report file, when the proof gate ran. */
  proof_digest?: string;
  /** File name → Cedar policy text (the enforced set). */
  policies: Record<string, string>;
  /** "invariants/<file>" → Cedar text (proved, not enforced). */
  invariants: Record<string, string>;
  /** Cedar schema text. */
  schema: string;
  entities: Entity[];
  config: LilithConfig;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isStringMap(v: unknown): v is Record<string, string> {
  return isRecord(v) && Object.values(v).every((x) => typeof x === 'string');
}

const HEX64 = /^[0-9a-f]{64}$/;
// RFC 3339 date-time as produced by Date.prototype.toISOString (and with offsets).
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function isoTime(v: unknown, field: string): Date {
  const d = typeof v === 'string' && ISO.test(v) ? new Date(v) : null;
  if (!d || Number.isNaN(d.getTime())) throw new CapsuleError('malformed', `payload.${field} must be an ISO 8601 time`);
  return d;
}

/** Parses verified payload bytes and checks the payload's shape (not the policies' meaning). */
export function parsePayload(bytes: Uint8Array): CapsulePayload {
  const v = readPayloadJson(bytes);
  if (!isRecord(v)) throw new CapsuleError('malformed', 'payload is not a JSON object');
  if (v.format !== CAPSULE_FORMAT) throw new CapsuleError('malformed', `payload.format must be "${CAPSULE_FORMAT}"`);
  if (typeof v.watermark !== 'number' || !Number.isSafeInteger(v.watermark) || v.watermark < 0) {
    throw new CapsuleError('malformed', 'payload.watermark must be a non-negative integer');
  }
  const created = isoTime(v.created_at, 'created_at');
  const expires = isoTime(v.expires_at, 'expires_at');
  if (expires.getTime() <= created.getTime()) throw new CapsuleError('malformed', 'payload.expires_at must be after created_at');
  if (v.source_commit !== null && typeof v.source_commit !== 'string')
    throw new CapsuleError('malformed', 'payload.source_commit must be a string or null');
  if (v.proof_digest !== undefined && (typeof v.proof_digest !== 'string' || !HEX64.test(v.proof_digest))) {
    throw new CapsuleError('malformed', 'payload.proof_digest must be a lowercase sha256 hex digest');
  }
  if (!isStringMap(v.policies) || Object.keys(v.policies).length === 0)
    throw new CapsuleError('malformed', 'payload.policies must be a non-empty map of file name to Cedar text');
  if (!isStringMap(v.invariants)) throw new CapsuleError('malformed', 'payload.invariants must be a map of file name to Cedar text');
  if (typeof v.schema !== 'string' || v.schema.length === 0)
    throw new CapsuleError('malformed', 'payload.schema must be the Cedar schema text');
  if (!Array.isArray(v.entities)) throw new CapsuleError('malformed', 'payload.entities must be an array');
  const outside = longOutOfRange(v.entities, 'payload.entities');
  if (outside !== null) throw new CapsuleError('malformed', `${outside} is an integer outside the 64-bit Long range`);
  if (!isRecord(v.config) || v.config.version !== 1)
    throw new CapsuleError('malformed', 'payload.config must be a lilith.json object with version 1');
  // lilith.json holds no Longs: it keeps the reading it always had.
  return { ...v, config: roundLongs(v.config) } as unknown as CapsulePayload;
}

// A run of 16 digits is the shortest text that can be an integer beyond 2^53.
const MAYBE_BEYOND_2_53 = /[0-9]{16}/;

/**
 * The payload's JSON with entity Longs exact (JSON.parse would round 2^53 + 1).
 * The shape is bounded first; a payload without a 16-digit run has no such Long,
 * and JSON.parse reads it faster.
 */
function readPayloadJson(bytes: Uint8Array): unknown {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (!MAYBE_BEYOND_2_53.test(text)) return parseBoundedJson(bytes, PAYLOAD_SHAPE, 'payload');
  checkJsonShape(bytes, PAYLOAD_SHAPE, 'payload');
  try {
    return parseJsonLong(text, PAYLOAD_SHAPE.maxDepth);
  } catch (err) {
    // The reader's message names an offset and what was expected, never the text.
    if (err instanceof JsonLongError) throw new CapsuleError('malformed', `payload is not valid JSON (${err.message})`);
    throw err;
  }
}

/** Serialises a payload to the exact bytes that get signed (entity Longs as exact digits). */
export function encodePayload(payload: CapsulePayload): Uint8Array {
  return Buffer.from(stringifyJsonLong(payload), 'utf8');
}

/** The engine input for a capsule's enforced policy set. */
export function bundleOf(payload: CapsulePayload): PolicyBundle {
  return { policies: payload.policies, schema: payload.schema, entities: payload.entities };
}

/** The capsule digest: sha256 hex of the exact payload bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * What a capsule envelope claims, read WITHOUT checking its signatures: for ordering,
 * summaries and reports only, never to enforce (that is verifyCapsule). Throws
 * CapsuleError 'malformed' when the envelope or the payload does not parse.
 */
export function peekCapsule(bytes: Uint8Array): { payload: CapsulePayload; digest: string } {
  const { payloadBytes } = decodeEnvelope(bytes, CAPSULE_PAYLOAD_TYPE);
  return { payload: parsePayload(payloadBytes), digest: sha256Hex(payloadBytes) };
}

/** peekCapsule as far as it gets, for reporting a refused capsule: never throws. */
export function peekCapsuleClaims(bytes: Uint8Array): { watermark: number | null; digest: string | null } {
  let payloadBytes: Uint8Array;
  try {
    payloadBytes = decodeEnvelope(bytes, CAPSULE_PAYLOAD_TYPE).payloadBytes;
  } catch {
    return { watermark: null, digest: null };
  }
  const digest = sha256Hex(payloadBytes);
  try {
    return { watermark: parsePayload(payloadBytes).watermark, digest };
  } catch {
    return { watermark: null, digest };
  }
}
