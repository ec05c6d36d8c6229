// Trust files: which keys hold which role, how many must sign, and for how long.
// Roles follow TUF, sized for this product:
//   root       signs trust rotations (the next trust file) and watermark-floor resets
//   capsule    signs capsules
//   timestamp  signs short-lived statements "capsule D is current" (freshness), optional
// A rotation is itself a signed envelope, accepted only with a threshold of the current
// root keys AND a threshold of the new file's root keys, and only with a higher version.
//
// Two file formats. Legacy (format 1): {version: 1, threshold, keys, expires_at?}: every
// key holds the root and capsule roles with the one threshold, the version is 1, and
// there is no timestamp role. Format 2: {format: "lilith.trust/v2", version, keys, roles,
// expires_at?, max_validity_s?}.
import { CapsuleError } from './errors.js';
import { publicKeyProblem } from './ed25519-point.js';
import { TRUST_PAYLOAD_TYPE, checkSignatures, decodeEnvelope, requireThreshold, signEnvelope } from './envelope.js';
import { parseBoundedJson, SMALL_DOC_SHAPE } from './json-limits.js';
import { decodePublicKey, keyIdOf, type PublicKeyFile, type SigningKey } from './keys.js';

export const TRUST_FORMAT_V2 = 'lilith.trust/v2';
export const ROLE_NAMES = ['root', 'capsule', 'timestamp'] as const;
export type RoleName = (typeof ROLE_NAMES)[number];

/** A capsule's expires_at − created_at may not exceed this unless the trust file says otherwise. */
export const DEFAULT_MAX_VALIDITY_S = 90 * 86_400;
/** Most keys one trust file may list (bounds verification cost and file size). */
export const MAX_TRUST_KEYS = 32;

export interface RoleFile {
  threshold: number;
  keyids: string[];
}
export interface TimestampRoleFile extends RoleFile {
  /** Active capsule with no timestamp (or capsule creation) newer than this: STALE in status and metrics. */
  stale_after_s: number;
  /** …and past this: fail closed (every decision denied) until a fresh timestamp arrives. */
  fail_after_s: number;
}

/** Format 1 (legacy). */
export interface TrustFileV1 {
  version: 1;
  threshold: number;
  keys: PublicKeyFile[];
  expires_at?: string;
}
/** Format 2: roles and a version that only goes up. */
export interface TrustFileV2 {
  format: typeof TRUST_FORMAT_V2;
  version: number;
  keys: PublicKeyFile[];
  roles: { root: RoleFile; capsule: RoleFile; timestamp?: TimestampRoleFile };
  expires_at?: string;
  max_validity_s?: number;
}
export type TrustFile = TrustFileV1 | TrustFileV2;

export interface Role {
  threshold: number;
  /** keyid → raw 32-byte public key. */
  keys: ReadonlyMap<string, Uint8Array>;
}
export interface TimestampRole extends Role {
  staleAfterMs: number;
  failAfterMs: number;
}

/** A parsed, checked trust file. */
export interface Trust {
  /** Only ever increases across rotations (legacy files: 1). */
  version: number;
  legacy: boolean;
  /** The capsule role's threshold and keys (what capsules are verified against). */
  threshold: number;
  keys: ReadonlyMap<string, Uint8Array>;
  roles: { root: Role; capsule: Role; timestamp: TimestampRole | null };
  expiresAt: Date | null;
  maxValidityMs: number;
  /** The file form, for writing back (e.g. after rotation). */
  file: TrustFile;
}

export const MAX_TRUST_BYTES = 1024 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(message: string): never {
  throw new CapsuleError('bad_trust', message);
}

function parseKeys(value: unknown, source: string): Map<string, Uint8Array> {
  if (!Array.isArray(value) || value.length === 0) bad(`${source}: keys must be a non-empty array`);
  if (value.length > MAX_TRUST_KEYS) bad(`${source}: ${value.length} keys, at most ${MAX_TRUST_KEYS}`);
  const keys = new Map<string, Uint8Array>();
  value.forEach((entry: unknown, i: number) => {
    const what = `${source}: keys[${i}]`;
    if (!isRecord(entry) || typeof entry.keyid !== 'string') bad(`${what}: must be {keyid, public_key}`);
    const pub = decodePublicKey(entry.public_key, what);
    if (keyIdOf(pub) !== entry.keyid) bad(`${what}: keyid is not the sha256 of its public_key`);
    const problem = publicKeyProblem(pub);
    if (problem) bad(`${what}: public_key ${problem}`);
    if (keys.has(entry.keyid)) bad(`${what}: key ${entry.keyid} listed twice`);
    keys.set(entry.keyid, pub);
  });
  return keys;
}

function parseThreshold(value: unknown, n: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > n)
    bad(`${what}: threshold must be an integer from 1 to the number of keys (${n})`);
  return value;
}

function parseRole(value: unknown, all: ReadonlyMap<string, Uint8Array>, what: string): Role {
  if (!isRecord(value) || !Array.isArray(value.keyids) || value.keyids.length === 0) bad(`${what}: must be {threshold, keyids: [...]}`);
  const keys = new Map<string, Uint8Array>();
  for (const id of value.keyids as unknown[]) {
    if (typeof id !== 'string' || !all.has(id)) bad(`${what}: keyid ${typeof id === 'string' ? id.slice(0, 64) : '?'} is not in keys`);
    if (keys.has(id)) bad(`${what}: keyid ${id} listed twice`);
    keys.set(id, all.get(id)!);
  }
  return { threshold: parseThreshold(value.threshold, keys.size, what), keys };
}

function seconds(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) bad(`${what} must be a positive whole number of seconds`);
  return value;
}

function parseTime(value: unknown, what: string): Date {
  const d = typeof value === 'string' ? new Date(value) : new Date(NaN);
  if (Number.isNaN(d.getTime())) bad(`${what} must be an ISO 8601 time`);
  return d;
}

/** Checks a trust file value (either format). Public keys must be prime-order curve points. */
export function parseTrustValue(value: unknown, source = 'trust file'): Trust {
  if (!isRecord(value)) bad(`${source}: not a JSON object`);
  const expiresAt = value.expires_at === undefined ? null : parseTime(value.expires_at, `${source}: expires_at`);
  const maxValidityMs =
    (value.max_validity_s === undefined ? DEFAULT_MAX_VALIDITY_S : seconds(value.max_validity_s, `${source}: max_validity_s`)) * 1000;
  if (value.format === undefined) {
    if (value.version !== 1) bad(`${source}: version must be 1 (or give format "${TRUST_FORMAT_V2}")`);
    const keys = parseKeys(value.keys, source);
    const threshold = parseThreshold(value.threshold, keys.size, source);
    const file: TrustFileV1 = {
      version: 1,
      threshold,
      keys: [...keys].map(([keyid, pub]) => ({ keyid, public_key: Buffer.from(pub).toString('base64') })),
      ...(value.expires_at !== undefined ? { expires_at: value.expires_at as string } : {}),
    };
    const role = { threshold, keys };
    return {
      version: 1,
      legacy: true,
      threshold,
      keys,
      roles: { root: role, capsule: role, timestamp: null },
      expiresAt,
      maxValidityMs,
      file,
    };
  }
  if (value.format !== TRUST_FORMAT_V2) bad(`${source}: format must be "${TRUST_FORMAT_V2}"`);
  if (typeof value.version !== 'number' || !Number.isSafeInteger(value.version) || value.version < 1)
    bad(`${source}: version must be a positive integer`);
  const all = parseKeys(value.keys, source);
  if (!isRecord(value.roles)) bad(`${source}: roles must be {root, capsule, timestamp?}`);
  for (const name of Object.keys(value.roles))
    if (!(ROLE_NAMES as readonly string[]).includes(name)) bad(`${source}: unknown role "${name.slice(0, 32)}"`);
  const root = parseRole(value.roles.root, all, `${source}: roles.root`);
  const capsule = parseRole(value.roles.capsule, all, `${source}: roles.capsule`);
  let timestamp: TimestampRole | null = null;
  if (value.roles.timestamp !== undefined) {
    const t = value.roles.timestamp as Record<string, unknown>;
    const role = parseRole(t, all, `${source}: roles.timestamp`);
    const stale = seconds(t.stale_after_s, `${source}: roles.timestamp.stale_after_s`);
    const fail = seconds(t.fail_after_s, `${source}: roles.timestamp.fail_after_s`);
    if (fail <= stale) bad(`${source}: roles.timestamp.fail_after_s must be longer than stale_after_s`);
    timestamp = { ...role, staleAfterMs: stale * 1000, failAfterMs: fail * 1000 };
  }
  const file = structuredClone(value) as unknown as TrustFileV2;
  return {
    version: value.version,
    legacy: false,
    threshold: capsule.threshold,
    keys: capsule.keys,
    roles: { root, capsule, timestamp },
    expiresAt,
    maxValidityMs,
    file,
  };
}

/** Parses trust file bytes (plain JSON, not an envelope). */
export function parseTrust(bytes: Uint8Array | string, source = 'trust file'): Trust {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  if (buf.length > MAX_TRUST_BYTES) throw new CapsuleError('too_large', `${source}: larger than ${MAX_TRUST_BYTES} bytes`);
  return parseTrustValue(parseBoundedJson(buf, SMALL_DOC_SHAPE, source, 'bad_trust'), source);
}

/** A legacy (format 1) trust file: every key holds every role. */
export function trustFromKeys(keys: { keyid: string; publicKey: Uint8Array }[], threshold = 1, expiresAt?: Date): TrustFileV1 {
  return {
    version: 1,
    threshold,
    keys: keys.map((k) => ({ keyid: k.keyid, public_key: Buffer.from(k.publicKey).toString('base64') })),
    ...(expiresAt ? { expires_at: expiresAt.toISOString() } : {}),
  };
}

export interface RoleSpec {
  keys: { keyid: string; publicKey: Uint8Array }[];
  threshold: number;
}

/** A format 2 trust file from role specs. */
export function trustFileV2(o: {
  version: number;
  root: RoleSpec;
  capsule: RoleSpec;
  timestamp?: RoleSpec & { staleAfterS: number; failAfterS: number };
  expiresAt?: Date;
  maxValidityS?: number;
}): TrustFileV2 {
  const keys = new Map<string, string>();
  for (const spec of [o.root, o.capsule, ...(o.timestamp ? [o.timestamp] : [])])
    for (const k of spec.keys) keys.set(k.keyid, Buffer.from(k.publicKey).toString('base64'));
  const role = (s: RoleSpec): RoleFile => ({ threshold: s.threshold, keyids: s.keys.map((k) => k.keyid) });
  return {
    format: TRUST_FORMAT_V2,
    version: o.version,
    keys: [...keys].map(([keyid, public_key]) => ({ keyid, public_key })),
    roles: {
      root: role(o.root),
      capsule: role(o.capsule),
      ...(o.timestamp
        ? { timestamp: { ...role(o.timestamp), stale_after_s: o.timestamp.staleAfterS, fail_after_s: o.timestamp.failAfterS } }
        : {}),
    },
    ...(o.expiresAt ? { expires_at: o.expiresAt.toISOString() } : {}),
    ...(o.maxValidityS ? { max_validity_s: o.maxValidityS } : {}),
  };
}

/** Throws `expired` when the trust file has expired at `now`. */
export function checkTrustCurrent(trust: Trust, now: Date): void {
  if (trust.expiresAt && trust.expiresAt.getTime() <= now.getTime()) {
    throw new CapsuleError('expired', `trust file expired at ${trust.expiresAt.toISOString()}`);
  }
}

/** Signs a new trust file for rotation; sign with k of the current root keys and k of the new root keys. */
export function signTrustUpdate(next: TrustFile, keys: SigningKey[]): Uint8Array {
  parseTrustValue(next, 'new trust file');
  return signEnvelope(TRUST_PAYLOAD_TYPE, Buffer.from(JSON.stringify(next), 'utf8'), keys);
}

/**
 * Verifies a trust rotation envelope against the currently trusted file. The new file
 * must be signed by the current root threshold and by its own root threshold (so a
 * rotation cannot hand control to keys that never signed, nor be done by the new keys
 * alone), and its version must be higher than the current one (legacy → legacy: equal),
 * so an old rotation replayed later is refused.
 */
export function verifyTrustUpdate(bytes: Uint8Array, current: Trust, now: Date): Trust {
  if (bytes.length > MAX_TRUST_BYTES) throw new CapsuleError('too_large', `trust update is ${bytes.length} bytes (cap ${MAX_TRUST_BYTES})`);
  checkTrustCurrent(current, now);
  const env = decodeEnvelope(bytes, TRUST_PAYLOAD_TYPE);
  // Current root keys first, before the payload is parsed.
  const root = current.roles.root;
  requireThreshold(checkSignatures(env, root.keys, root.threshold), root.threshold, 'trust update (current keys)');
  const next = parseTrustValue(parseBoundedJson(env.payloadBytes, SMALL_DOC_SHAPE, 'trust update payload'), 'new trust file');
  requireThreshold(
    checkSignatures(env, next.roles.root.keys, next.roles.root.threshold),
    next.roles.root.threshold,
    'trust update (new keys)',
  );
  const sameLegacy = current.legacy && next.legacy;
  if (sameLegacy ? next.version < current.version : next.version <= current.version) {
    throw new CapsuleError('rollback', `trust update has version ${next.version}, not above the current version ${current.version}`);
  }
  checkTrustCurrent(next, now);
  return next;
}
