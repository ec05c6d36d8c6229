// Stage 7 (decoder): cvc5 output (s-expressions) → JS values of Cedar types.
// A Long beyond ±(2^53 − 1) decodes to a BigInt (exact): witnesses are written with
// stringifyJsonLong and re-checked through withExactLongs (cedar/wasm-exact.ts).
import { stringifyJsonLong } from '../../cedar/json-long.js';
import type { Ty } from './env.js';

export type SExpr = string | SExpr[];
export type DecodeErrorCode =
  /** The solver output is not a well-formed s-expression. */
  | 'syntax'
  /** A value does not have the type the model says. */
  | 'type_mismatch';

export class DecodeError extends Error {
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Reads one complete s-expression from `buf` at `pos`; returns undefined when incomplete. */
export function readSExpr(buf: string, pos: number): { expr: SExpr; end: number } | undefined {
  let i = pos;
  while (i < buf.length && /\s/.test(buf[i])) i++;
  if (i >= buf.length) return undefined;
  const stack: SExpr[][] = [];
  let top: SExpr | undefined;
  while (i < buf.length) {
    const c = buf[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    let atom: string | undefined;
    if (c === '(') {
      stack.push([]);
      i++;
      continue;
    } else if (c === ')') {
      const list = stack.pop();
      if (!list) throw new DecodeError('syntax', 'unbalanced ) in solver output');
      i++;
      if (stack.length === 0) {
        top = list;
        return { expr: top, end: i };
      }
      stack[stack.length - 1].push(list);
      continue;
    } else if (c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= buf.length) return undefined;
        if (buf[j] === '"') {
          if (buf[j + 1] === '"') j += 2;
          else break;
        } else j++;
      }
      atom = buf.slice(i, j + 1);
      i = j + 1;
    } else if (c === '|') {
      const j = buf.indexOf('|', i + 1);
      if (j < 0) return undefined;
      atom = buf.slice(i + 1, j);
      i = j + 1;
    } else {
      let j = i;
      while (j < buf.length && !/[\s()"]/.test(buf[j])) j++;
      if (j >= buf.length && stack.length === 0) return undefined; // atom may continue
      atom = buf.slice(i, j);
      i = j;
    }
    if (stack.length === 0) return { expr: atom, end: i };
    stack[stack.length - 1].push(atom);
  }
  return undefined;
}

export function parseSExpr(text: string): SExpr {
  const r = readSExpr(text + ' ', 0);
  if (!r) throw new DecodeError('syntax', `incomplete s-expression: ${text.slice(0, 200)}`);
  return r.expr;
}

/** Decodes an SMT-LIB string literal (with "" and \u{..} escapes). */
export function decodeString(lit: string): string {
  if (!lit.startsWith('"') || !lit.endsWith('"')) throw new DecodeError('type_mismatch', `expected a string literal, got ${lit}`);
  const body = lit.slice(1, -1).replace(/""/g, '"');
  return body.replace(/\\u\{([0-9a-fA-F]{1,5})\}|\\u([0-9a-fA-F]{4})/g, (_m, a: string | undefined, b: string | undefined) =>
    String.fromCodePoint(parseInt(a ?? b!, 16)),
  );
}

export function decodeLong(e: SExpr): bigint {
  if (typeof e === 'string' && e.startsWith('#b')) {
    const u = BigInt(`0b${e.slice(2)}`);
    return u >= 1n << 63n ? u - (1n << 64n) : u;
  }
  if (typeof e === 'string' && e.startsWith('#x')) {
    const u = BigInt(`0x${e.slice(2)}`);
    return u >= 1n << 63n ? u - (1n << 64n) : u;
  }
  if (Array.isArray(e) && e[0] === '_' && typeof e[1] === 'string' && e[1].startsWith('bv')) {
    const u = BigInt(e[1].slice(2));
    return u >= 1n << 63n ? u - (1n << 64n) : u;
  }
  throw new DecodeError('type_mismatch', `expected a bit-vector, got ${JSON.stringify(e)}`);
}

export function decodeBool(e: SExpr): boolean {
  if (e === 'true') return true;
  if (e === 'false') return false;
  throw new DecodeError('type_mismatch', `expected a Bool, got ${JSON.stringify(e)}`);
}

export function decodeEntity(e: SExpr): { type: string; id: string } {
  if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string') {
    const m = /^E\.(.+)\.mk$/.exec(e[0]);
    if (m) return { type: m[1], id: decodeString(e[1]) };
  }
  throw new DecodeError('type_mismatch', `expected an entity, got ${JSON.stringify(e)}`);
}

/** Elements of a model set value (set.empty / set.singleton / set.union / set.insert). */
export function decodeSet(e: SExpr): SExpr[] {
  if (Array.isArray(e)) {
    if (e[0] === 'as' && e[1] === 'set.empty') return [];
    if (e[0] === 'set.singleton') return [e[1]];
    if (e[0] === 'set.union') return [...decodeSet(e[1]), ...decodeSet(e[2])];
    if (e[0] === 'set.insert') return [...e.slice(1, -1), ...decodeSet(e[e.length - 1])];
  }
  throw new DecodeError('type_mismatch', `expected a set, got ${JSON.stringify(e)}`);
}

/** Cedar JSON values; a Long beyond ±(2^53 − 1) is a BigInt. */
export type CedarJson =
  | boolean
  | number
  | bigint
  | string
  | CedarJson[]
  | { __entity: { type: string; id: string } }
  | { [k: string]: CedarJson };

/** A model value of a (non-record) Cedar type → Cedar JSON value. */
export function decodeValue(e: SExpr, ty: Ty): CedarJson {
  switch (ty.k) {
    case 'bool':
      return decodeBool(e);
    case 'long': {
      const n = decodeLong(e);
      return n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER) ? n : Number(n);
    }
    case 'string':
      if (typeof e !== 'string') throw new DecodeError('type_mismatch', `expected a string, got ${JSON.stringify(e)}`);
      return decodeString(e);
    case 'entity':
      return { __entity: decodeEntity(e) };
    case 'set': {
      const seen = new Map<string, CedarJson>();
      for (const x of decodeSet(e)) {
        const v = decodeValue(x, ty.elem);
        seen.set(stringifyJsonLong(v), v);
      }
      return [...seen.keys()].sort().map((k) => seen.get(k)!);
    }
    default:
      throw new DecodeError('type_mismatch', `cannot decode a value of type ${ty.k}`);
  }
}
