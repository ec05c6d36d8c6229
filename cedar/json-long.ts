// JSON text to values with Cedar Longs kept exact: JSON.parse reads every number as
// a double, so 9223372036854775807 would arrive as 9223372036854775808. Here an
// integer literal that is not a safe integer becomes a BigInt (the engine's
// canonical Long form takes both); everything else is what JSON.parse returns.
// Used at the engine boundary for request context and entity files; the writer
// below is its inverse, for handing such values on as text (cedar-wasm, capsules).
import { randomBytes } from 'node:crypto';

// Taken once: the cedar-wasm exact path (wasm-authorizer.ts) stands in for the global while it runs.
const nativeStringify = JSON.stringify;

export class JsonLongError extends Error {
  readonly code = 'invalid_json';
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** Parses `text` as JSON (RFC 8259); integers beyond ±(2^53 − 1) become BigInt. Bounded nesting depth. */
export function parseJsonLong(text: string, maxDepth = 512): unknown {
  let i = 0;
  const n = text.length;
  const fail = (what: string): never => {
    throw new JsonLongError(`invalid JSON at offset ${i}: ${what}`);
  };
  const ws = () => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };
  const value = (depth: number): unknown => {
    if (depth > maxDepth) fail('nesting too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const o: Record<string, unknown> = {};
      ws();
      if (text[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a string key');
        const k = string();
        ws();
        if (text[i] !== ':') fail('expected `:`');
        i++;
        // defineProperty: "__proto__" stays an own data property, as with JSON.parse.
        Object.defineProperty(o, k, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return o;
        } else fail('expected `,` or `}`');
      }
    }
    if (c === '[') {
      i++;
      const a: unknown[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(depth + 1));
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return a;
        } else fail('expected `,` or `]`');
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) return number();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return fail('unexpected character');
  };
  const string = (): string => {
    const start = i;
    i++;
    let simple = true;
    while (i < n) {
      const ch = text.charCodeAt(i);
      if (ch === 0x22) break;
      if (ch < 0x20) fail('control character in string');
      if (ch === 0x5c) {
        simple = false;
        i += 2;
      } else i++;
    }
    if (i >= n) fail('unterminated string');
    i++;
    const raw = text.slice(start, i);
    // Escapes are validated and decoded by JSON.parse itself.
    if (simple) return raw.slice(1, -1);
    try {
      return JSON.parse(raw) as string;
    } catch {
      return fail('invalid escape in string');
    }
  };
  const number = (): number | bigint => {
    const m = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = i;
    const r = m.exec(text);
    if (r === null) return fail('invalid number');
    i += r[0].length;
    const d = Number(r[0]);
    if (r[1] === undefined && r[2] === undefined && !Number.isSafeInteger(d)) return BigInt(r[0]);
    return d;
  };
  const out = value(0);
  ws();
  if (i !== n) fail('trailing characters');
  return out;
}

/**
 * JSON.stringify, except that a BigInt is written as its exact digits (JSON.stringify
 * throws on one). Without BigInts the text is JSON.stringify's, byte for byte
 * (`space` as JSON.stringify's).
 */
export function stringifyJsonLong(value: unknown, space?: number): string {
  try {
    return nativeStringify(value, null, space);
  } catch (err) {
    if (!(err instanceof TypeError) || !/BigInt/.test(err.message)) throw err;
  }
  // Each BigInt goes out as a string carrying a fresh random tag, which is then
  // replaced by the digits. A string in `value` that equals a tagged one would be
  // replaced too: the count of replacements against the count of BigInts refuses that.
  const tag = `lilith-long-${randomBytes(12).toString('hex')}:`;
  let longs = 0;
  const text = nativeStringify(
    value,
    (_k, v: unknown) => {
      if (typeof v !== 'bigint') return v;
      longs++;
      return tag + v.toString();
    },
    space,
  );
  let replaced = 0;
  const out = text.replace(new RegExp(`"${tag}(-?[0-9]+)"`, 'g'), (_m, digits: string) => {
    replaced++;
    return digits;
  });
  if (replaced !== longs) throw new JsonLongError('a string in the value collides with the BigInt tag');
  return out;
}

const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

/**
 * Where `value` (as parseJsonLong reads it) holds an integer outside Cedar's 64-bit
 * Long range, as a path like `[3].attrs.balance`; null when it holds none. Such a
 * value is refused where it is read, never wrapped or rounded into range.
 */
/** Order-free JSON text (object keys sorted, Longs beyond 2^53 as their exact digits): equal values give equal text. */
export function sortedJsonLong(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJsonLong).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${sortedJsonLong((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return stringifyJsonLong(v);
}

export function longOutOfRange(value: unknown, path = ''): string | null {
  if (typeof value === 'bigint') return value < LONG_MIN || value > LONG_MAX ? path : null;
  if (typeof value === 'number') return Number.isInteger(value) && (value >= 2 ** 63 || value < -(2 ** 63)) ? path : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const at = longOutOfRange(value[i], `${path}[${i}]`);
      if (at !== null) return at;
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const at = longOutOfRange(v, /^[A-Za-z_$][\w$]*$/.test(k) ? `${path}.${k}` : `${path}[${JSON.stringify(k)}]`);
      if (at !== null) return at;
    }
  }
  return null;
}

/** `value` with every BigInt made a number: what JSON.parse would have read (both round to nearest, ties to even). */
export function roundLongs(value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(roundLongs);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      Object.defineProperty(out, k, { value: roundLongs(v), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}
