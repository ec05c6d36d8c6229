// Helpers the generated policy code calls: the entity store (static entities with
// precomputed ancestors plus the request's entities) and the operators that need it.
import { DateTime, Decimal, Duration, EUid, EvalError, ExtValue, IPAddr, fail, typeName, type Value } from './values.js';
import { parseDecimal } from './decimal.js';
import * as dt from './datetime.js';
import * as ipx from './ipaddr.js';
export { bool, str, set, eq, eqUid, lt, le, gt, ge, add, sub, mul, neg, contains, containsAll, containsAny, isEmpty } from './values.js';

export class EntData {
  constructor(
    public uid: EUid,
    public attrs: Record<string, Value>,
    public parents: EUid[],
    /** Transitive ancestors (type → ids); static entities only. */
    public anc: Map<string, Set<string>> | null,
    /** Tags (entity types declared with `tags`); null when none. */
    public tags: Record<string, Value> | null = null,
  ) {}
}

function ancHas(anc: Map<string, Set<string>>, b: EUid): boolean {
  const ids = anc.get(b.type);
  return ids?.has(b.id) === true;
}

/** Entities visible to one decision. Reused across decisions (decisions are synchronous). */
export class Store {
  /** Request entities of the current decision. */
  req: EntData[] = [];
  n = 0;
  /**
   * A request entity defines an entity some static entity names as a (dangling)
   * ancestor, so static ancestor sets are incomplete for this decision.
   */
  override = false;

  constructor(readonly statics: Map<string, Map<string, EntData>>) {}

  find(uid: EUid): EntData | undefined {
    const byId = this.statics.get(uid.type);
    if (byId !== undefined) {
      const e = byId.get(uid.id);
      if (e !== undefined) return e;
    }
    for (let i = 0; i < this.n; i++) {
      const e = this.req[i];
      if (e.uid.id === uid.id && e.uid.type === uid.type) return e;
    }
    return undefined;
  }

  /** `a in b` over the merged hierarchy. */
  isIn(a: EUid, b: EUid): boolean {
    if (a.id === b.id && a.type === b.type) return true;
    const e = this.find(a);
    if (e === undefined) return false;
    if (!this.override) {
      if (e.anc !== null) return ancHas(e.anc, b);
      // A request entity whose parents are all static or undefined needs no search.
      const ps = e.parents;
      let simple = true;
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i];
        if (p.id === b.id && p.type === b.type) return true;
        const pe = this.find(p);
        if (pe === undefined) continue;
        if (pe.anc === null) simple = false;
        else if (ancHas(pe.anc, b)) return true;
      }
      if (simple) return false;
    }
    return this.search(e, b);
  }

  /** Whether `b` is a proper ancestor of `start`, walking parents only (no precomputed sets). */
  reaches(start: EntData, b: EUid): boolean {
    const seen = new Set<EntData>();
    const stack = [start];
    while (stack.length) {
      const e = stack.pop()!;
      for (const p of e.parents) {
        if (p.id === b.id && p.type === b.type) return true;
        const pe = this.find(p);
        if (pe === undefined || seen.has(pe)) continue;
        seen.add(pe);
        stack.push(pe);
      }
    }
    return false;
  }

  private search(start: EntData, b: EUid): boolean {
    const seen = new Set<EntData>([start]);
    const stack = [start];
    while (stack.length) {
      const e = stack.pop()!;
      for (let i = 0; i < e.parents.length; i++) {
        const p = e.parents[i];
        if (p.id === b.id && p.type === b.type) return true;
        const pe = this.find(p);
        if (pe === undefined || seen.has(pe)) continue;
        if (pe.anc !== null && !this.override) {
          if (ancHas(pe.anc, b)) return true;
          continue;
        }
        seen.add(pe);
        stack.push(pe);
      }
    }
    return false;
  }
}

function uidName(u: EUid): string {
  return `${u.type}::${JSON.stringify(u.id)}`;
}

export function isIn(S: Store, a: EUid, b: EUid): boolean {
  return S.isIn(a, b);
}

export function inExpr(S: Store, l: unknown, r: unknown): boolean {
  if (!(l instanceof EUid)) fail(`type error: \`in\` expects an entity on the left, got ${typeName(l)}`);
  if (r instanceof EUid) return S.isIn(l, r);
  if (!Array.isArray(r)) fail(`type error: \`in\` expects an entity or a set of entities on the right, got ${typeName(r)}`);
  // Cedar checks every element is an entity before looking for a match.
  for (let i = 0; i < r.length; i++)
    if (!(r[i] instanceof EUid)) fail(`type error: \`in\` set element is ${typeName(r[i])}, not an entity`);
  for (let i = 0; i < r.length; i++) if (S.isIn(l, r[i] as EUid)) return true;
  return false;
}

export function isType(v: unknown, type: string): boolean {
  if (!(v instanceof EUid)) fail(`type error: \`is\` expects an entity, got ${typeName(v)}`);
  return v.type === type;
}

/** Attribute of the context (always a record). */
export function rget(C: Record<string, Value>, k: string): Value {
  if (Object.hasOwn(C, k)) return C[k];
  return fail(`record does not have the attribute \`${k}\``);
}

export function get(S: Store, v: unknown, k: string): Value {
  if (v instanceof EUid) {
    const e = S.find(v);
    if (e === undefined) return fail(`entity ${uidName(v)} does not exist`);
    if (Object.hasOwn(e.attrs, k)) return e.attrs[k];
    return fail(`${uidName(v)} does not have the attribute \`${k}\``);
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof ExtValue)) {
    const r = v as Record<string, Value>;
    if (Object.hasOwn(r, k)) return r[k];
    return fail(`record does not have the attribute \`${k}\``);
  }
  return fail(`type error: expected an entity or record, got ${typeName(v)}`);
}

export function has(S: Store, v: unknown, k: string): boolean {
  if (v instanceof EUid) {
    const e = S.find(v);
    return e !== undefined && Object.hasOwn(e.attrs, k);
  }
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof ExtValue)) return Object.hasOwn(v, k);
  return fail(`type error: \`has\` expects an entity or record, got ${typeName(v)}`);
}

export function hasTag(S: Store, v: unknown, tag: unknown): boolean {
  if (!(v instanceof EUid)) fail(`type error: \`hasTag\` expects an entity, got ${typeName(v)}`);
  if (typeof tag !== 'string') fail(`type error: tag must be a string, got ${typeName(tag)}`);
  const tags = S.find(v)?.tags;
  return tags != null && Object.hasOwn(tags, tag);
}

export function getTag(S: Store, v: unknown, tag: unknown): Value {
  if (!(v instanceof EUid)) fail(`type error: \`getTag\` expects an entity, got ${typeName(v)}`);
  if (typeof tag !== 'string') fail(`type error: tag must be a string, got ${typeName(tag)}`);
  const e = S.find(v);
  if (e === undefined) fail(`entity ${uidName(v)} does not exist`);
  if (e.tags !== null && Object.hasOwn(e.tags, tag)) return e.tags[tag];
  return fail(`${uidName(v)} does not have the tag \`${tag}\``);
}

function ipArg(v: unknown): IPAddr {
  if (!(v instanceof IPAddr)) fail(`type error: expected ipaddr, got ${typeName(v)}`);
  return v;
}

export function ipFn(s: unknown): IPAddr {
  if (typeof s !== 'string') fail(`type error: ip() expects a string, got ${typeName(s)}`);
  const r = ipx.parseIp(s);
  if (typeof r === 'string') fail(`ipaddr: ${r}`);
  return r;
}
export function isIpv4(v: unknown): boolean {
  return !ipArg(v).v6;
}
export function isIpv6(v: unknown): boolean {
  return ipArg(v).v6;
}
export function isLoopback(v: unknown): boolean {
  return ipx.isLoopback(ipArg(v));
}
export function isMulticast(v: unknown): boolean {
  return ipx.isMulticast(ipArg(v));
}
export function isInRange(a: unknown, b: unknown): boolean {
  const child = ipArg(a);
  return ipx.isInRange(child, ipArg(b));
}

function decArg(v: unknown): bigint {
  if (!(v instanceof Decimal)) fail(`type error: expected decimal, got ${typeName(v)}`);
  return v.value;
}

export function decimalFn(s: unknown): Decimal {
  if (typeof s !== 'string') fail(`type error: decimal() expects a string, got ${typeName(s)}`);
  const r = parseDecimal(s);
  if (typeof r === 'string') fail(`decimal: ${r}`);
  return r;
}
export function lessThan(a: unknown, b: unknown): boolean {
  const x = decArg(a);
  return x < decArg(b);
}
export function lessThanOrEqual(a: unknown, b: unknown): boolean {
  const x = decArg(a);
  return x <= decArg(b);
}
export function greaterThan(a: unknown, b: unknown): boolean {
  const x = decArg(a);
  return x > decArg(b);
}
export function greaterThanOrEqual(a: unknown, b: unknown): boolean {
  const x = decArg(a);
  return x >= decArg(b);
}

export { EvalError };

function dateArg(v: unknown): DateTime {
  if (!(v instanceof DateTime)) fail(`type error: expected datetime, got ${typeName(v)}`);
  return v;
}
function durArg(v: unknown): Duration {
  if (!(v instanceof Duration)) fail(`type error: expected duration, got ${typeName(v)}`);
  return v;
}

export function datetimeFn(s: unknown): DateTime {
  if (typeof s !== 'string') fail(`type error: datetime() expects a string, got ${typeName(s)}`);
  const r = dt.parseDateTime(s);
  if (typeof r === 'string') fail(`datetime: ${r}`);
  return r;
}
export function durationFn(s: unknown): Duration {
  if (typeof s !== 'string') fail(`type error: duration() expects a string, got ${typeName(s)}`);
  const r = dt.parseDuration(s);
  if (typeof r === 'string') fail(`duration: ${r}`);
  return r;
}
export function offset(a: unknown, b: unknown): DateTime {
  const d = dateArg(a);
  const r = dt.addMs(d.ms, durArg(b).ms, false);
  if (r === null) fail('offset: overflows when adding an offset');
  return new DateTime(r);
}
export function durationSince(a: unknown, b: unknown): Duration {
  const d = dateArg(a);
  const r = dt.addMs(d.ms, dateArg(b).ms, true);
  if (r === null) fail('durationSince: overflows when computing the duration');
  return new Duration(r);
}
export function toDate(a: unknown): DateTime {
  const d = dateArg(a);
  const r = dt.addMs(d.ms, dt.dayRem(d.ms), true);
  if (r === null) fail('toDate: overflows when computing the date');
  return new DateTime(r);
}
export function toTime(a: unknown): Duration {
  return new Duration(dt.dayRem(dateArg(a).ms));
}
export function toMilliseconds(a: unknown): number | bigint {
  return durArg(a).ms;
}
export function toSeconds(a: unknown): number | bigint {
  return dt.truncDiv(durArg(a).ms, 1000);
}
export function toMinutes(a: unknown): number | bigint {
  return dt.truncDiv(durArg(a).ms, 60_000);
}
export function toHours(a: unknown): number | bigint {
  return dt.truncDiv(durArg(a).ms, 3_600_000);
}
export function toDays(a: unknown): number | bigint {
  return dt.truncDiv(durArg(a).ms, dt.DAY_MS);
}

/** An extension function called with the wrong number of arguments (which are evaluated first). */
export function wrongArity(fn: string, arity: number, args: unknown[]): never {
  return fail(`wrong number of arguments in extension function application: \`${fn}\` expects ${arity}, got ${args.length}`);
}
