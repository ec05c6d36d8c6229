// SMT-LIB term builders with light constant folding. Terms are SMT-LIB text;
// folding `true`/`false` keeps scripts small without changing meaning.
import { isActionType, type Ty } from './env.js';

export class UnsupportedError extends Error {
  /** Something the prover does not encode (the gate answers exit 2, never "proven"). */
  readonly code = 'unsupported';
}

export const TRUE = 'true';
export const FALSE = 'false';

export function and(...xs: string[]): string {
  const ys = xs.filter((x) => x !== TRUE);
  if (ys.includes(FALSE)) return FALSE;
  if (ys.length === 0) return TRUE;
  return ys.length === 1 ? ys[0] : `(and ${ys.join(' ')})`;
}

export function or(...xs: string[]): string {
  const ys = xs.filter((x) => x !== FALSE);
  if (ys.includes(TRUE)) return TRUE;
  if (ys.length === 0) return FALSE;
  return ys.length === 1 ? ys[0] : `(or ${ys.join(' ')})`;
}

export function not(x: string): string {
  if (x === TRUE) return FALSE;
  if (x === FALSE) return TRUE;
  if (x.startsWith('(not ') && x.endsWith(')')) {
    const inner = x.slice(5, -1);
    if (balanced(inner)) return inner;
  }
  return `(not ${x})`;
}

function balanced(s: string): boolean {
  let d = 0;
  let inStr = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (inStr) {
      if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '(') d++;
    else if (c === ')' && --d < 0) return false;
  }
  return d === 0;
}

export function ite(c: string, a: string, b: string): string {
  if (c === TRUE) return a;
  if (c === FALSE) return b;
  if (a === b) return a;
  if (a === TRUE && b === FALSE) return c;
  if (a === FALSE && b === TRUE) return not(c);
  return `(ite ${c} ${a} ${b})`;
}

export function implies(a: string, b: string): string {
  return or(not(a), b);
}

export function eq(a: string, b: string): string {
  if (a === b) return TRUE;
  if (a === TRUE) return b;
  if (b === TRUE) return a;
  if (a === FALSE) return not(b);
  if (b === FALSE) return not(a);
  return `(= ${a} ${b})`;
}

/** A quoted SMT symbol; we build names from Cedar identifiers, so quote always. */
export function sym(name: string): string {
  if (name.includes('|') || name.includes('\\')) throw new UnsupportedError(`identifier ${JSON.stringify(name)} (contains | or \\)`);
  return `|${name}|`;
}

/** SMT-LIB string literal. Code points above 0x2FFFF are outside the SMT-LIB string alphabet. */
export function strLit(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp > 0x2ffff) throw new UnsupportedError(`string literal with code point U+${cp.toString(16).toUpperCase()} (above U+2FFFF)`);
    if (ch === '"') out += '""';
    else if (cp >= 0x20 && cp <= 0x7e && ch !== '\\') out += ch;
    else out += `\\u{${cp.toString(16)}}`;
  }
  return out + '"';
}

const MASK64 = (1n << 64n) - 1n;
export const INT_MIN = -(1n << 63n);
export const INT_MAX = (1n << 63n) - 1n;

export function bvLit(n: bigint): string {
  if (n < INT_MIN || n > INT_MAX) throw new UnsupportedError(`Long literal ${n} out of range`);
  return `(_ bv${(n & MASK64).toString()} 64)`;
}

export const BV_ZERO = bvLit(0n);

export function entitySort(type: string): string {
  return sym(`E.${type}`);
}

export function entityLit(type: string, id: string): string {
  return `(${sym(`E.${type}.mk`)} ${strLit(id)})`;
}

export function ancsFn(from: string, to: string): string {
  return sym(`ancs.${from}.${to}`);
}

/**
 * A type the prover does not model that is not a record: extension values, actions
 * held in attributes (actions are concrete per request environment, never values),
 * and sets of records, of sets or of those. An attribute of such a type stands as a
 * placeholder no policy may read (reading it is refused as unsupported); unread,
 * it changes no decision, so a schema declaring one proves like one without it.
 */
export function isOpaque(t: Ty): boolean {
  if (t.k === 'ext' || (t.k === 'entity' && isActionType(t.name))) return true;
  return t.k === 'set' && (t.elem.k === 'record' || t.elem.k === 'set' || isOpaque(t.elem));
}

/** The SMT sort of a Cedar type; records have no sort (they are flattened), so sets of records are unsupported. */
export function sortOf(t: Ty): string {
  switch (t.k) {
    case 'bool':
      return 'Bool';
    case 'long':
      return '(_ BitVec 64)';
    case 'string':
      return 'String';
    case 'entity':
      return entitySort(t.name);
    case 'set':
      if (t.elem.k === 'set' || t.elem.k === 'record' || t.elem.k === 'ext')
        throw new UnsupportedError(`set of ${t.elem.k === 'ext' ? t.elem.name : t.elem.k}`);
      return `(Set ${sortOf(t.elem)})`;
    case 'record':
      throw new UnsupportedError('record used where a value sort is needed (e.g. inside a set)');
    case 'ext':
      throw new UnsupportedError(`extension type ${t.name}`);
  }
}

export function emptySet(elem: Ty): string {
  return `(as set.empty ${sortOf({ k: 'set', elem })})`;
}
