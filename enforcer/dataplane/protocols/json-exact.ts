// A JSON reader for bodies the proxy decides and forwards. JSON.parse gives one
// reading of the text, but not the only one a server might take: duplicate keys
// (last wins here, first wins elsewhere), escaped names that a lax server matches
// undecoded, and integers beyond 2^53 that JSON.parse rounds (an id the server
// echoes, an argument the policy decided). This reader parses strictly and says
// whether the text is already the one reading (`clean`): then the proxy forwards
// the exact bytes it parsed. Otherwise it forwards `canonicalJson(value)`, which
// writes every number as its source text read (integers exact, as BigInt).

export class JsonExactError extends Error {
  readonly code = 'invalid_json';
}

export interface ExactJson {
  /** Integers beyond ±(2^53 − 1) are BigInt; other numbers are doubles. */
  value: unknown;
  /**
   * The text is the one reading of `value`: no object has a duplicate key, no key
   * and no string under a deciding member name (jsonrpc, method, id, name, uri)
   * uses an escape. Forwarding the parsed bytes then forwards what was decided.
   */
  clean: boolean;
  /** Why the text is not clean (for the audit trail and tests), or null. */
  unclean: string | null;
  /**
   * Every number's text is what `canonicalJson` writes for its value (false for
   * 1e400, 0.10000000000000000001, -0, 1E2): re-serialising would change it.
   */
  numbersExact: boolean;
}

/** Members whose string value is part of what a JSON-RPC message is decided as. */
const DECIDING = new Set(['jsonrpc', 'method', 'id', 'name', 'uri']);

/** Parses `text` strictly (RFC 8259, bounded depth). Throws JsonExactError naming the offset. */
export function parseJsonExact(text: string, maxDepth = 128): ExactJson {
  let i = 0;
  const n = text.length;
  let unclean: string | null = null;
  let numbersExact = true;
  /** Set by `string()` when the string it just read had an escape. */
  let escaped = false;

  const fail = (what: string): never => {
    throw new JsonExactError(`invalid JSON at offset ${i}: ${what}`);
  };
  const ws = () => {
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
    }
  };
  const string = (): string => {
    const start = ++i;
    escaped = false;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        escaped = true;
        i++;
      }
    }
    if (i >= n) fail('unterminated string');
    const end = i++;
    if (!escaped) return text.slice(start, end);
    try {
      // Escapes are validated and decoded by JSON.parse itself.
      return JSON.parse(text.slice(start - 1, end + 1)) as string;
    } catch {
      return fail('invalid escape in string');
    }
  };
  const number = (): number | bigint => {
    const start = i;
    if (text.charCodeAt(i) === 0x2d) i++;
    const intStart = i;
    const digits = () => {
      const s = i;
      while (i < n && text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
      return i - s;
    };
    const intLen = digits();
    if (intLen === 0 || (intLen > 1 && text.charCodeAt(intStart) === 0x30)) fail('invalid number');
    let integer = true;
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      integer = false;
      if (digits() === 0) fail('invalid number');
    }
    const e = text.charCodeAt(i);
    if (e === 0x65 || e === 0x45) {
      i++;
      integer = false;
      const s = text.charCodeAt(i);
      if (s === 0x2b || s === 0x2d) i++;
      if (digits() === 0) fail('invalid number');
    }
    const src = text.slice(start, i);
    const d = Number(src);
    if (integer && !Number.isSafeInteger(d)) return BigInt(src);
    if (numbersExact && (!Number.isFinite(d) || JSON.stringify(d) !== src)) numbersExact = false;
    return d;
  };
  const value = (depth: number, member: string | null): unknown => {
    if (depth > maxDepth) fail(`nesting deeper than ${maxDepth}`);
    ws();
    const c = text.charCodeAt(i);
    if (c === 0x7b) {
      i++;
      const o: Record<string, unknown> = {};
      ws();
      if (text.charCodeAt(i) === 0x7d) {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text.charCodeAt(i) !== 0x22) fail('expected a string key');
        const k = string();
        if (escaped) unclean ??= `escaped key ${JSON.stringify(k)}`;
        ws();
        if (text.charCodeAt(i) !== 0x3a) fail('expected `:`');
        i++;
        const v = value(depth + 1, k);
        if (Object.hasOwn(o, k)) unclean ??= `duplicate key ${JSON.stringify(k)}`;
        // defineProperty: "__proto__" stays an own data property, as with JSON.parse.
        if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        else o[k] = v;
        ws();
        const next = text.charCodeAt(i);
        if (next === 0x2c) i++;
        else if (next === 0x7d) {
          i++;
          return o;
        } else fail('expected `,` or `}`');
      }
    }
    if (c === 0x5b) {
      i++;
      const a: unknown[] = [];
      ws();
      if (text.charCodeAt(i) === 0x5d) {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(depth + 1, null));
        ws();
        const next = text.charCodeAt(i);
        if (next === 0x2c) i++;
        else if (next === 0x5d) {
          i++;
          return a;
        } else fail('expected `,` or `]`');
      }
    }
    if (c === 0x22) {
      const s = string();
      if (escaped && member !== null && DECIDING.has(member)) unclean ??= `escaped ${member} ${JSON.stringify(s)}`;
      return s;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return number();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    return fail(i >= n ? 'unexpected end' : 'unexpected character');
  };
  const out = value(0, null);
  ws();
  if (i !== n) fail('trailing characters');
  return { value: out, clean: unclean === null, unclean, numbersExact };
}

/**
 * The canonical text of a value read by parseJsonExact: no whitespace, strings as
 * JSON.stringify writes them, BigInt integers exact, keys in JSON.stringify's order.
 */
export function canonicalJson(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      if (!Number.isFinite(v)) throw new JsonExactError(`number ${v} has no JSON form`);
      return JSON.stringify(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
    case 'undefined':
      return 'null';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let s = '[';
        for (let k = 0; k < v.length; k++) s += (k ? ',' : '') + canonicalJson(v[k] === undefined ? null : v[k]);
        return `${s}]`;
      }
      let s = '{';
      let first = true;
      for (const k of Object.keys(v)) {
        const x = (v as Record<string, unknown>)[k];
        if (x === undefined) continue;
        s += `${first ? '' : ','}${JSON.stringify(k)}:${canonicalJson(x)}`;
        first = false;
      }
      return `${s}}`;
    }
    default:
      throw new JsonExactError(`a ${typeof v} has no JSON form`);
  }
}
