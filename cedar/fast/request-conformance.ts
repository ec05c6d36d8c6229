// Request-side conformance to the schema, as cedar-wasm checks it with
// validateRequest: context and entity attributes are parsed by their declared
// types (Longs made canonical, entity references made EUid), and anything that
// does not conform is a request error, hence a deny.
import { applyExtension } from './extensions.js';
import { isActionType, type SchemaModel, type SType } from './schema.js';
import { DateTime, Decimal, Duration, EUid, EvalError, ExtValue, IPAddr, LONG_MAX, LONG_MIN, type Value } from './values.js';

export class RequestError {
  constructor(readonly message: string) {}
}

function bad(message: string): never {
  throw new RequestError(message);
}

const TWO63 = 2 ** 63;
const SAFE = 9007199254740991n;

/** Own data property even for "__proto__". */
export function setProp(o: Record<string, Value>, k: string, v: Value): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Parses an entity uid in either JSON form ({type,id} or {__entity:{type,id}}). */
export function parseUid(v: unknown, what: string): EUid {
  if (typeof v === 'object' && v !== null) {
    const u = v as { type?: unknown; id?: unknown; __entity?: unknown };
    if (typeof u.type === 'string' && typeof u.id === 'string' && u.__entity === undefined && !Array.isArray(v))
      return new EUid(u.type, u.id);
  }
  if (isPlainObject(v)) {
    const inner = (v.__entity !== undefined ? v.__entity : v) as Record<string, unknown>;
    if (isPlainObject(inner) && typeof inner.type === 'string' && typeof inner.id === 'string') return new EUid(inner.type, inner.id);
  }
  return bad(`${what}: expected an entity uid {type, id}`);
}

/** Converts a request JSON value to its runtime form for declared type `t`; returns `v` itself when no conversion is needed. */
export function conform(t: SType, v: unknown, where: string): Value {
  switch (t.kind) {
    case 'String':
      if (typeof v !== 'string') bad(`${where}: expected a string`);
      return v;
    case 'Bool':
      if (typeof v !== 'boolean') bad(`${where}: expected a boolean`);
      return v;
    case 'Long':
      if (typeof v === 'number') {
        if (Number.isSafeInteger(v)) return v + 0; // -0 → 0
        // cedar-wasm takes integral numbers inside the 64-bit range at their exact double value.
        // (empirically the open interval: -2^63 itself is rejected as a double)
        if (Number.isInteger(v) && v > -TWO63 && v < TWO63) return BigInt(v);
      } else if (typeof v === 'bigint') {
        // Exact Longs from a Long-preserving reader (cedar/json-long.ts): canonical form.
        if (v >= LONG_MIN && v <= LONG_MAX) return v >= -SAFE && v <= SAFE ? Number(v) : v;
      }
      return bad(`${where}: expected a Long (an integer JSON number in the 64-bit range)`);
    case 'Set': {
      if (!Array.isArray(v)) bad(`${where}: expected a set (array)`);
      let out: Value[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const c = conform(t.element, v[i], where);
        if (c !== v[i] && out === undefined) {
          out = new Array<Value>(v.length);
          for (let j = 0; j < i; j++) out[j] = v[j] as Value;
        }
        if (out !== undefined) out[i] = c;
      }
      return out ?? (v as Value[]);
    }
    case 'Record': {
      if (!isPlainObject(v)) bad(`${where}: expected a record (object)`);
      let out: Record<string, Value> | undefined;
      let present = 0;
      const names = t.names;
      for (let i = 0; i < names.length; i++) {
        const k = names[i];
        const x = Object.hasOwn(v, k) ? v[k] : undefined;
        if (x === undefined) {
          if (t.required[i]) bad(`${where}: missing required attribute \`${k}\``);
          continue;
        }
        present++;
        const c = conform(t.types[i], x, where);
        if (c !== x && out === undefined) {
          // First converted attribute: the copy takes the ones before it as they are.
          out = {};
          for (let j = 0; j < i; j++) {
            const kj = names[j];
            if (Object.hasOwn(v, kj) && v[kj] !== undefined) setProp(out, kj, v[kj] as Value);
          }
        }
        if (out !== undefined) setProp(out, k, c);
      }
      let own = 0;
      let sawUndefined = false;
      for (const k in v) {
        if (!Object.hasOwn(v, k)) continue;
        if (v[k] === undefined) {
          sawUndefined = true; // an undefined attribute is absent: copy without it
          continue;
        }
        // Wording as cedar-wasm's: callers match "not declared" to mean an undeclared type or action.
        if (!t.attrs.has(k)) bad(`${where}: record attribute \`${k}\` should not exist according to the schema`);
        own++;
      }
      if (own === present && out !== undefined) return out;
      if (out === undefined && !sawUndefined && own === present) return v as Record<string, Value>;
      const copy: Record<string, Value> = {};
      for (let i = 0; i < names.length; i++) {
        const k = names[i];
        if (!Object.hasOwn(v, k) || v[k] === undefined) continue;
        setProp(copy, k, out !== undefined && Object.hasOwn(out, k) ? out[k] : (v[k] as Value));
      }
      return copy;
    }
    case 'Entity': {
      const uid = parseUid(v, where);
      if (uid.type !== t.name) bad(`${where}: expected an entity of type ${t.name}, got ${uid.type}`);
      if (t.enumIds !== null && !t.enumIds.has(uid.id))
        bad(`${where}: ${uid.type}::${JSON.stringify(uid.id)} is not one of the enumerated ids`);
      return uid;
    }
    case 'Ext':
      return extValue(t.name, v, where);
  }
}

const EXT_CLASS = { ipaddr: IPAddr, decimal: Decimal, datetime: DateTime, duration: Duration } as const;
const MEMO: Record<keyof typeof EXT_CLASS, Map<string, Value>> = {
  ipaddr: new Map(),
  decimal: new Map(),
  datetime: new Map(),
  duration: new Map(),
};
const CONSTRUCTOR = { ipaddr: 'ip', decimal: 'decimal', datetime: 'datetime', duration: 'duration' } as const;

/** The value of one `__extn` call ({fn, arg} or {fn, args}); arguments are strings or nested calls. */
function extCall(x: unknown, where: string, depth: number): Value {
  if (!isPlainObject(x) || typeof x.fn !== 'string') return bad(`${where}: expected an extension call {fn, arg}`);
  const rawArgs = Array.isArray(x.args) ? x.args : x.arg !== undefined ? [x.arg] : bad(`${where}: extension call without arguments`);
  if (depth > 8) bad(`${where}: extension call nested too deep`);
  const args = rawArgs.map((a) => {
    if (typeof a === 'string') return a;
    if (isPlainObject(a) && a.__extn !== undefined) return extCall(a.__extn, where, depth + 1);
    return bad(`${where}: extension arguments must be strings or extension calls`);
  });
  try {
    return applyExtension(x.fn, args);
  } catch (err) {
    if (err instanceof EvalError) bad(`${where}: ${err.message}`);
    throw err;
  }
}

/**
 * An extension-typed value as Cedar reads it with a schema: `{"__extn": {fn, arg|args}}`,
 * the same call without the escape, or the constructor's string argument alone
 * (`"10.0.0.1"` for an ipaddr). The result must have the declared type.
 */
function extValue(name: keyof typeof EXT_CLASS, v: unknown, where: string): Value {
  const cls = EXT_CLASS[name];
  if (v instanceof cls) return v;
  let r: Value;
  if (isPlainObject(v) && v.__extn !== undefined) r = extCall(v.__extn, where, 0);
  else if (isPlainObject(v) && v.fn !== undefined) r = extCall(v, where, 0);
  else if (typeof v === 'string') {
    // The same timestamp or address recurs across requests: values are immutable, so
    // a bounded memo of parsed constructor strings skips the parse.
    const memo = MEMO[name];
    const hit = memo.get(v);
    if (hit !== undefined) return hit;
    r = extCall({ fn: CONSTRUCTOR[name], arg: v }, where, 0);
    if (r instanceof cls) {
      if (memo.size >= 1024) memo.clear();
      memo.set(v, r);
    }
  } else return bad(`${where}: expected a ${name} value`);
  if (!(r instanceof cls)) bad(`${where}: expected a ${name} value, got ${r instanceof ExtValue ? r.typeName : 'another type'}`);
  return r;
}

/** Formats an entity's name only when an error message needs it. */
class EntityName {
  constructor(private readonly uid: EUid) {}
  toString(): string {
    return `${this.uid.type}::${JSON.stringify(this.uid.id)}`;
  }
}

export interface ParsedEntity {
  uid: EUid;
  attrs: Record<string, Value>;
  parents: EUid[];
  tags: Record<string, Value> | null;
}

/** Checks one entity (request or static) against the schema; actions are taken from the schema, not from here. */
export function parseEntity(schema: SchemaModel, raw: unknown): ParsedEntity | null {
  if (!isPlainObject(raw)) bad('entity: expected an object');
  const uid = parseUid(raw.uid, 'entity uid');
  const name = new EntityName(uid);
  if (raw.attrs === undefined) bad(`entity ${name}: missing field \`attrs\``);
  if (raw.parents === undefined) bad(`entity ${name}: missing field \`parents\``);
  if (!Array.isArray(raw.parents)) bad(`entity ${name}: parents must be an array`);
  if (isActionType(uid.type)) return null;
  const type = schema.entityTypes.get(uid.type);
  if (!type) bad(`entity ${name}: type \`${uid.type}\` is not declared in the schema`);
  if (type.enumIds !== null && !type.enumIds.has(uid.id)) bad(`entity ${name}: id is not one of the enumerated ids of ${uid.type}`);
  let tags: Record<string, Value> | null = null;
  if (raw.tags !== undefined && raw.tags !== null) {
    if (!isPlainObject(raw.tags)) bad(`entity ${name}: tags must be an object`);
    for (const k in raw.tags) {
      if (!Object.hasOwn(raw.tags, k)) continue;
      if (type.tags === null) bad(`entity ${name}: tag \`${k}\` is not allowed by the schema`);
      setProp((tags ??= {}), k, conform(type.tags, raw.tags[k], `entity ${name} tag \`${k}\``));
    }
  }
  const attrs = conform(type.shape, raw.attrs, `entity ${name} attrs`) as Record<string, Value>;
  const rawParents = raw.parents as unknown[];
  const parents: EUid[] = new Array<EUid>(rawParents.length);
  for (let i = 0; i < rawParents.length; i++) {
    const puid = parseUid(rawParents[i], `entity ${name} parent`);
    if (isActionType(puid.type)) {
      if (!schema.actions.get(puid.type)?.has(puid.id)) bad(`entity ${name}: parent action ${puid.id} is not declared`);
    } else if (!schema.entityTypes.has(puid.type)) bad(`entity ${name}: parent type \`${puid.type}\` is not declared in the schema`);
    if (!type.allowedParents.has(puid.type)) bad(`entity ${name}: is not allowed to have an ancestor of type \`${puid.type}\``);
    parents[i] = puid;
  }
  return { uid, attrs, parents, tags };
}
