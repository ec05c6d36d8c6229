// Helpers the generated policy code calls: the entity store (static entities with
// precomputed ancestors plus the request's entities) and the operators that need it.
import { Decimal, EUid, EvalError, IPAddr, fail, long, typeName, type Value } from './values.js';
import { parseDecimal } from './decimal.js';
import * as ipx from './ipaddr.js';
export { bool, str, set, eq, eqUid, lt, le, add, sub, mul, neg, contains, containsAll, containsAny, isEmpty } from './values.js';

export class EntData {
  constructor(
    public uid: EUid,
    public attrs: Record<string, Value>,
    public parents: EUid[],
    /** Transitive ancestors (type → ids); static entities only. */
    public anc: Map<string, Set<string>> | null,
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

export function gt(a: unknown, b: unknown): boolean {
  return long(a) > long(b);
}
export function ge(a: unknown, b: unknown): boolean {
  return long(a) >= long(b);
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
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof IPAddr) && !(v instanceof Decimal)) {
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
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof IPAddr) && !(v instanceof Decimal))
    return Object.hasOwn(v, k);
  return fail(`type error: \`has\` expects an entity or record, got ${typeName(v)}`);
}

// Entities carry no tags here (schemas with tags are not compiled), so every tag is absent.
export function hasTag(_S: Store, v: unknown, tag: unknown): boolean {
  if (!(v instanceof EUid)) fail(`type error: \`hasTag\` expects an entity, got ${typeName(v)}`);
  if (typeof tag !== 'string') fail(`type error: tag must be a string, got ${typeName(tag)}`);
  return false;
}

export function getTag(S: Store, v: unknown, tag: unknown): Value {
  if (!(v instanceof EUid)) fail(`type error: \`getTag\` expects an entity, got ${typeName(v)}`);
  if (typeof tag !== 'string') fail(`type error: tag must be a string, got ${typeName(tag)}`);
  if (S.find(v) === undefined) fail(`entity ${uidName(v)} does not exist`);
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
