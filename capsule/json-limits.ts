// A bounded look at JSON text before JSON.parse builds it. JSON.parse of 15 MiB of
// "[[[[…" builds millions of nested arrays (≈1.5 GiB); a flat array of millions of
// empty objects does much the same at depth 2. This scan walks the bytes once without
// allocating and counts what parsing would build — nesting depth, containers, and
// items (containers plus separators) — so a document over its shape limits is refused
// before any of it exists. It does not validate JSON; JSON.parse still does that.
import { CapsuleError } from './errors.js';

export interface JsonShapeLimits {
  maxDepth: number;
  /** Objects and arrays. */
  maxContainers: number;
  /** Containers plus "," and ":" separators: a bound on the values and keys parsing creates. */
  maxItems: number;
}

/** The envelope is {payloadType, payload, signatures: [≤64 × {keyid, sig}]}. */
// Items: 3 top-level members (3 colons, 2 commas) + 2 containers; each signature 1 container, 2 colons, 2 commas.
export const ENVELOPE_SHAPE: JsonShapeLimits = { maxDepth: 3, maxContainers: 2 + 64, maxItems: 16 + 64 * 5 };
/** A capsule payload: Cedar entities may nest records; the bundled capsule has depth 7 and < 2,000 items. */
export const PAYLOAD_SHAPE: JsonShapeLimits = { maxDepth: 32, maxContainers: 200_000, maxItems: 2_000_000 };
/** Trust files, timestamps and resets: small documents. */
export const SMALL_DOC_SHAPE: JsonShapeLimits = { maxDepth: 8, maxContainers: 4_096, maxItems: 32_768 };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const OPEN_ARR = 0x5b;
const CLOSE_OBJ = 0x7d;
const CLOSE_ARR = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** Throws CapsuleError 'too_large' naming the limit `bytes` exceeds. Never echoes the content. */
export function checkJsonShape(bytes: Uint8Array, limits: JsonShapeLimits, what: string): void {
  let depth = 0;
  let containers = 0;
  let items = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
      continue;
    }
    if (c === QUOTE) inString = true;
    else if (c === OPEN_OBJ || c === OPEN_ARR) {
      if (++depth > limits.maxDepth) throw new CapsuleError('too_large', `${what} nests deeper than ${limits.maxDepth} levels`);
      if (++containers > limits.maxContainers)
        throw new CapsuleError('too_large', `${what} has more than ${limits.maxContainers} objects and arrays`);
      items++;
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) depth--;
    else if (c === COMMA || c === COLON) items++;
    else continue;
    if (items > limits.maxItems) throw new CapsuleError('too_large', `${what} has more than ${limits.maxItems} values`);
  }
}

/** JSON.parse after checkJsonShape; a parse failure says where, never what (the text may be anything, e.g. a secret). */
export function parseBoundedJson(
  bytes: Uint8Array,
  limits: JsonShapeLimits,
  what: string,
  code: 'malformed' | 'bad_trust' = 'malformed',
): unknown {
  checkJsonShape(bytes, limits, what);
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new CapsuleError(code, `${what} is not valid JSON${at ? ` (syntax error at byte ${at})` : ''}`);
  }
}
