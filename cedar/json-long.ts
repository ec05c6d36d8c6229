// JSON text to values with Cedar Longs kept exact: JSON.parse reads every number as
// a double, so 9223372036854775807 would arrive as 9223372036854775808. Here an
// integer literal that is not a safe integer becomes a BigInt (the engine's
// canonical Long form takes both); everything else is what JSON.parse returns.
// Used at the engine boundary for request context and entity files.

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
