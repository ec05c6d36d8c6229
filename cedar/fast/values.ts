// Runtime values of the compiled engine and the Cedar operations on them.
//
// Representation (chosen so request JSON needs no conversion in the common case):
//   String → JS string; Bool → JS boolean;
//   Long   → JS number when it is a safe integer (|v| < 2^53), otherwise BigInt.
//            The form is canonical (a value is never a BigInt when it fits a safe
//            number), so `===` is Long equality and `<` works across both forms.
//   Set    → JS array (may hold duplicates; every set operation is duplicate-insensitive);
//   Record → plain object (attributes are own properties);
//   Entity → EUid instance.

import { DateTime, Duration } from './datetime.js';
import { Decimal } from './decimal.js';
import { ExtValue } from './ext-value.js';
import { IPAddr } from './ipaddr.js';

export { DateTime, Decimal, Duration, ExtValue, IPAddr };

export class EUid {
  constructor(
    readonly type: string,
    readonly id: string,
  ) {}
}

/** A Cedar evaluation error: the policy is not satisfied and is reported. */
export class EvalError {
  constructor(readonly message: string) {}
}

export type Value = string | boolean | number | bigint | Value[] | EUid | ExtValue | { [k: string]: Value };

export const LONG_MIN = -(2n ** 63n);
export const LONG_MAX = 2n ** 63n - 1n;

export function fail(message: string): never {
  throw new EvalError(message);
}

export function typeName(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'boolean':
      return 'bool';
    case 'number':
    case 'bigint':
      return 'long';
    default:
      if (Array.isArray(v)) return 'set';
      if (v instanceof EUid) return 'entity';
      if (v instanceof ExtValue) return v.typeName;
      return 'record';
  }
}

function typeError(expected: string, v: unknown): never {
  throw new EvalError(`type error: expected ${expected}, got ${typeName(v)}`);
}

export function isLong(v: unknown): v is number | bigint {
  return typeof v === 'number' || typeof v === 'bigint';
}

export function isRecord(v: unknown): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof EUid) && !(v instanceof ExtValue);
}

/** Canonical Long from a BigInt; an error when outside the 64-bit signed range. */
export function fromBig(v: bigint, op: string): number | bigint {
  if (v < LONG_MIN || v > LONG_MAX) throw new EvalError(`integer overflow while attempting to ${op}`);
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

export function bool(v: unknown): boolean {
  if (typeof v !== 'boolean') typeError('bool', v);
  return v;
}

export function str(v: unknown): string {
  if (typeof v !== 'string') typeError('string', v);
  return v;
}

export function long(v: unknown): number | bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint') typeError('long', v);
  return v;
}

export function set(v: unknown): Value[] {
  if (!Array.isArray(v)) typeError('set', v);
  return v;
}

export function entity(v: unknown): EUid {
  if (!(v instanceof EUid)) typeError('entity', v);
  return v;
}

export function add(a: unknown, b: unknown): number | bigint {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a + b;
    if (Number.isSafeInteger(r)) return r;
  }
  return fromBig(BigInt(long(a)) + BigInt(long(b)), 'add');
}

export function sub(a: unknown, b: unknown): number | bigint {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a - b;
    if (Number.isSafeInteger(r)) return r;
  }
  return fromBig(BigInt(long(a)) - BigInt(long(b)), 'subtract');
}

export function mul(a: unknown, b: unknown): number | bigint {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a * b;
    // Exact whenever the true product is below 2^53; + 0 turns -0 into 0.
    if (Number.isSafeInteger(r)) return r + 0;
  }
  return fromBig(BigInt(long(a)) * BigInt(long(b)), 'multiply');
}

export function neg(a: unknown): number | bigint {
  if (typeof a === 'number') return 0 - a;
  return fromBig(-BigInt(long(a)), 'negate');
}

/**
 * The operand pair of `< <= > >=` as comparable numbers: two Longs, two datetimes or
 * two durations (Cedar 4 overloads the operators for those); anything else is a type error.
 */
function ordA(a: unknown, b: unknown): number | bigint {
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) return a;
  if ((a instanceof DateTime && b instanceof DateTime) || (a instanceof Duration && b instanceof Duration)) return a.ms;
  if (a instanceof DateTime || a instanceof Duration) return typeError(a instanceof DateTime ? 'datetime' : 'duration', b);
  return typeError(b instanceof DateTime ? 'datetime' : b instanceof Duration ? 'duration' : 'long', isLong(a) ? b : a);
}
function ordB(b: unknown): number | bigint {
  return typeof b === 'number' || typeof b === 'bigint' ? b : (b as DateTime | Duration).ms;
}

export function lt(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a < b;
  return ordA(a, b) < ordB(b);
}
export function le(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a <= b;
  return ordA(a, b) <= ordB(b);
}
export function gt(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a > b;
  return ordA(a, b) > ordB(b);
}
export function ge(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a >= b;
  return ordA(a, b) >= ordB(b);
}

export function eqUid(a: EUid, b: EUid): boolean {
  return a === b || (a.id === b.id && a.type === b.type);
}

/** Cedar `==`: structural, never an error; values of different types are unequal. */
export function eq(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof EUid) return b instanceof EUid && a.id === b.id && a.type === b.type;
  if (b instanceof EUid) return false;
  if (a instanceof ExtValue) return b instanceof ExtValue && a.equals(b);
  if (b instanceof ExtValue) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b)) return false;
    return subset(a, b) && subset(b, a);
  }
  if (Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra);
  if (ka.length !== Object.keys(rb).length) return false;
  for (const k of ka) if (!Object.hasOwn(rb, k) || !eq(ra[k], rb[k])) return false;
  return true;
}

function member(s: readonly unknown[], x: unknown): boolean {
  if (typeof x !== 'object') return s.includes(x); // primitives: === is Cedar equality
  for (let i = 0; i < s.length; i++) if (eq(s[i], x)) return true;
  return false;
}

function subset(a: readonly unknown[], b: readonly unknown[]): boolean {
  for (let i = 0; i < a.length; i++) if (!member(b, a[i])) return false;
  return true;
}

export function contains(s: unknown, x: unknown): boolean {
  return member(set(s), x);
}

export function containsAll(a: unknown, b: unknown): boolean {
  const sa = set(a);
  return subset(set(b), sa);
}

export function containsAny(a: unknown, b: unknown): boolean {
  const sa = set(a);
  const sb = set(b);
  for (let i = 0; i < sb.length; i++) if (member(sa, sb[i])) return true;
  return false;
}

export function isEmpty(s: unknown): boolean {
  return set(s).length === 0;
}

/**
 * A `like` pattern compiled to literal segments split at wildcards. Leftmost greedy
 * placement of the middle segments is exact for `*`-only globs and is O(n·m) at
 * worst (no backtracking blow-up on hostile input).
 */
export function compileLike(pattern: (string | { Literal: string })[]): (s: string) => boolean {
  const segs: string[] = [''];
  for (const el of pattern) {
    if (el === 'Wildcard') segs.push('');
    else if (typeof el === 'object' && typeof el.Literal === 'string') segs[segs.length - 1] += el.Literal;
    else throw new Error(`unsupported like pattern element ${JSON.stringify(el)}`);
  }
  if (segs.length === 1) {
    const only = segs[0];
    return (s) => s === only;
  }
  const first = segs[0];
  const last = segs[segs.length - 1];
  const middle = segs.slice(1, -1).filter((s) => s.length > 0);
  const minLen = first.length + last.length;
  if (middle.length === 0) {
    if (last === '') return (s) => s.startsWith(first);
    if (first === '') return (s) => s.endsWith(last);
    return (s) => s.length >= minLen && s.startsWith(first) && s.endsWith(last);
  }
  if (middle.length === 1 && first === '' && last === '') {
    const m = middle[0];
    return (s) => s.includes(m);
  }
  return (s) => {
    if (s.length < minLen || !s.startsWith(first) || !s.endsWith(last)) return false;
    let pos = first.length;
    const end = s.length - last.length;
    for (const m of middle) {
      const at = s.indexOf(m, pos);
      if (at < 0 || at + m.length > end) return false;
      pos = at + m.length;
    }
    return true;
  };
}
