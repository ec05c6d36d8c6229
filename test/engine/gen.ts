// Random Cedar policies, entities and requests for differential testing of the
// compiled engine against cedar-wasm. Everything derives from one seed.
import type { AuthzRequest, CedarValue, Entity, EntityUid, PolicyBundle } from '../../cedar/types.js';
import { Rng } from '../../testkit/rng.js';

export { Rng };

// The schema body, also used inside `namespace …` (then every type and action name is qualified).
// Color is an enumerated entity type; Doc and User carry tags; read has datetime/duration context.
const SCHEMA_BODY = `
entity Role in [Role];
entity Color enum ["red", "green", "blue"];
entity Group in [Group, Role] { name: String, level: Long };
entity User in [Group, Role] {
  name: String, age: Long, tags: Set<String>, active: Bool, manager?: User,
  profile: { nick?: String, score: Long, flags: Set<Long> }, color?: Color, born?: datetime,
} tags Long;
entity Folder in [Folder] { public: Bool, depth?: Long };
entity Doc in [Folder] { owner: User, size: Long, labels: Set<String>, meta?: { kind: String, n?: Long }, created?: datetime, ttl?: duration } tags String;
action "all";
action "grp" in ["all"];
action "read" in ["grp", "all"] appliesTo {
  principal: [User], resource: [Doc, Folder],
  context: { n: Long, s: String, b: Bool, tags: Set<String>, rec: { a?: Long, b: String }, who?: User, nums?: Set<Long>, "odd key"?: String,
    dt?: datetime, dur?: duration, color?: Color },
};
action "write" in ["all"] appliesTo { principal: [User, Group], resource: [Doc], context: { n: Long, s?: String } };
action "admin" appliesTo { principal: User, resource: Folder, context: {} };
action "paint" appliesTo { principal: User, resource: Color, context: { at: datetime } };
`;

export const TEST_SCHEMA = SCHEMA_BODY;

/** The schema in namespace `ns` ('' for none). */
export function schemaIn(ns: string): string {
  return ns ? `namespace ${ns} {\n${SCHEMA_BODY}\n}\n` : SCHEMA_BODY;
}

// The namespace of the bundle being generated ('' for none): every entity type and
// action name the generator writes goes through q(). Set by randomBundle/randomRequest.
let NS = '';
const q = (t: string) => (NS ? `${NS}::${t}` : t);
const bare = (t: string) => t.slice(t.lastIndexOf(':') + 1);
const NAMESPACES = ['', '', 'App', 'Org::App'];

const TYPES = ['User', 'Group', 'Role', 'Folder', 'Doc'] as const;
const COLORS = ['red', 'green', 'blue'];
const TAG_KEYS = ['a', 'b', 'x', 'odd key', ''];
type EType = (typeof TYPES)[number];
const PARENTS: Record<EType, EType[]> = {
  User: ['Group', 'Role'],
  Group: ['Group', 'Role'],
  Role: ['Role'],
  Folder: ['Folder'],
  Doc: ['Folder'],
};
const ACTIONS = ['read', 'write', 'admin', 'grp', 'all', 'paint'];

// Edge Longs: limits, the 2^53 boundary, and values whose sums/products overflow.
const BIG_LITERALS = [
  '9223372036854775807',
  '-9223372036854775808',
  '9223372036854775806',
  '4611686018427387904',
  '9007199254740993',
  '-9007199254740993',
  '3037000500',
  '-3037000500',
  '9007199254740991',
  '9007199254740992',
];
const SMALL_LONGS = [0, 1, -1, 2, 3, 7, 10, 100, -100, 65535, 2147483647, -2147483648, 4294967296];
// Longs as JSON numbers (context/attributes): only doubles reach cedar-wasm.
const JSON_LONGS = [
  0,
  1,
  -1,
  2,
  7,
  100,
  -5,
  9007199254740991,
  -9007199254740991,
  9007199254740992,
  2 ** 62,
  2 ** 63 - 1024,
  -(2 ** 63) + 1024,
  2 ** 62,
];
const STRINGS = [
  '10.0.0.7',
  '::1',
  '',
  'a',
  'ab',
  'abc',
  'a*b',
  '*',
  '\\',
  'foo/bar',
  'x\u00e9y',
  '日本語',
  'A',
  'AAAA',
  'tls',
  '/api/x',
  'a\nb',
  '"q"',
  'u0',
  'aaa',
];
const ATTRS = [
  'name',
  'age',
  'tags',
  'active',
  'manager',
  'profile',
  'public',
  'depth',
  'owner',
  'size',
  'labels',
  'meta',
  'level',
  'nick',
  'score',
  'flags',
  'kind',
  'n',
  'missing',
  'color',
  'born',
  'created',
  'ttl',
];
const IPS = [
  '127.0.0.1',
  '127.0.0.1/4',
  '10.0.0.0/8',
  '10.1.2.3',
  '10.1.2.3/33',
  '01.2.3.4',
  '::1',
  '::/0',
  'ff02::1/8',
  '224.0.0.1/3',
  '192.168.1.0/24',
  '10.0.0.1/08',
  '::ffff:1.2.3.4',
  '2001:db8::/32',
  '1:2:3:4:5:6:7::',
];
const CTX_ATTRS = ['n', 's', 'b', 'tags', 'rec', 'who', 'nums', 'odd key', 'missing', 'dt', 'dur', 'color'];
// datetime strings: every accepted form, the range edges, and malformed ones (errors).
const DATETIMES = [
  '2024-10-15',
  '2024-10-15T11:38:02Z',
  '2024-10-15T11:38:02.101Z',
  '2024-10-15T11:38:02+0100',
  '2024-10-15T11:38:02.999-1134',
  '1970-01-01',
  '1969-12-31T23:59:59.999Z',
  '0000-01-01',
  '9999-12-31T23:59:59.999-2359',
  '2024-02-29',
  // Malformed from here on (BAD_DATETIMES).
  '2023-02-29',
  '2024-1-1',
  '2024-10-15T25:00:00Z',
  '2024-10-15 11:38:02Z',
  'x',
];
const GOOD_DATETIMES = DATETIMES.slice(0, DATETIMES.indexOf('2023-02-29'));
// duration strings: units in order, signs, the 64-bit millisecond edges, and malformed ones.
const DURATIONS = [
  '0ms',
  '1h',
  '-1d2h3m4s5ms',
  '90m',
  '1s',
  '-1ms',
  '9223372036854775807ms',
  '-9223372036854775808ms',
  '106751991167d',
  // Malformed or out of range from here on (BAD_DURATIONS).
  '106751991168d',
  '1d1d',
  '1m1h',
  '',
  '1x',
  '-',
];
const GOOD_DURATIONS = DURATIONS.slice(0, DURATIONS.indexOf('106751991168d'));

/** A datetime/duration value for request JSON: malformed ones rarely (each fails its whole request). */
function extnValue(r: Rng, fn: 'datetime' | 'duration', bad = 0.01): CedarValue {
  const arg = r.chance(bad)
    ? r.pick(fn === 'datetime' ? DATETIMES : DURATIONS)
    : r.pick(fn === 'datetime' ? GOOD_DATETIMES : GOOD_DURATIONS);
  // Cedar also takes the bare {fn, arg} form where the schema says which extension it is.
  return r.chance(0.05) ? ({ fn, arg } as unknown as CedarValue) : { __extn: { fn, arg } };
}

function cedarString(s: string): string {
  return JSON.stringify(s).replace(/\\u([0-9a-fA-F]{4})/g, (_, h) => `\\u{${h}}`);
}

function id(r: Rng, t: EType): string {
  return `${t[0].toLowerCase()}${r.int(4)}`;
}

function uid(r: Rng, t?: EType): EntityUid {
  const type = t ?? r.pick(TYPES);
  return { type: q(type), id: id(r, type) };
}

/** An enum entity: mostly a declared value, sometimes not (an error, or a request failure). */
function colorUid(r: Rng, bad = 0.1): EntityUid {
  return { type: q('Color'), id: r.chance(bad) ? 'purple' : r.pick(COLORS) };
}

function entityLit(u: EntityUid): string {
  return `${u.type}::${cedarString(u.id)}`;
}

type GType = 'bool' | 'long' | 'string' | 'set' | 'record' | 'entity' | 'datetime' | 'duration' | 'any';
const ANY_TYPES = ['bool', 'long', 'string', 'set', 'record', 'entity', 'datetime', 'duration'] as const;

/** Generates Cedar expression text, mostly well typed, sometimes not (to reach type errors). */
export class ExprGen {
  constructor(private readonly r: Rng) {}

  expr(t: GType, depth: number): string {
    const r = this.r;
    if (t === 'any') t = r.pick(ANY_TYPES);
    // Occasionally the wrong type: exercises every type-error path.
    if (r.chance(0.04)) t = r.pick(ANY_TYPES);
    if (depth <= 0 || r.chance(0.25)) return this.leaf(t);
    const d = depth - 1;
    switch (t) {
      case 'bool':
        return this.boolExpr(d);
      case 'long':
        switch (r.int(7)) {
          case 0:
            return `(${this.expr('long', d)} + ${this.expr('long', d)})`;
          case 1:
            return `(${this.expr('long', d)} - ${this.expr('long', d)})`;
          case 2:
            return `(${this.expr('long', d)} * ${this.expr('long', d)})`;
          case 3:
            return `(-${this.expr('long', d)})`;
          case 4:
            return `(if ${this.expr('bool', d)} then ${this.expr('long', d)} else ${this.expr('long', d)})`;
          case 5:
            return r.chance(0.5)
              ? `${this.expr('duration', d)}.${r.pick(['toMilliseconds', 'toSeconds', 'toMinutes', 'toHours', 'toDays'])}()`
              : this.access('long', d);
          default:
            return r.chance(0.15) ? `(principal.getTag(${this.expr('string', d)}))` : this.access('long', d);
        }
      case 'string':
        return r.chance(0.5)
          ? this.access('string', d)
          : `(if ${this.expr('bool', d)} then ${this.expr('string', d)} else ${this.expr('string', d)})`;
      case 'set': {
        if (r.chance(0.4)) return this.access('set', d);
        const et = r.pick(['long', 'string', 'entity', 'set', 'record', 'any'] as const);
        const n = r.int(4);
        return `[${Array.from({ length: n }, () => this.expr(et, d)).join(', ')}]`;
      }
      case 'record': {
        if (r.chance(0.4)) return this.access('record', d);
        const n = r.int(3);
        const keys = ['a', 'b', '"odd key"', 'n', 'c'];
        const used = new Set<string>();
        const parts: string[] = [];
        for (let i = 0; i < n; i++) {
          const k = r.pick(keys);
          if (used.has(k)) continue;
          used.add(k);
          parts.push(`${k}: ${this.expr('any', d)}`);
        }
        return `{${parts.join(', ')}}`;
      }
      case 'entity':
        return r.chance(0.5)
          ? this.access('entity', d)
          : `(if ${this.expr('bool', d)} then ${this.expr('entity', d)} else ${this.expr('entity', d)})`;
      case 'datetime':
        switch (r.int(4)) {
          case 0:
            return `${this.expr('datetime', d)}.offset(${this.expr('duration', d)})`;
          case 1:
            return `${this.expr('datetime', d)}.toDate()`;
          case 2:
            return `(if ${this.expr('bool', d)} then ${this.expr('datetime', d)} else ${this.expr('datetime', d)})`;
          default:
            return this.leaf('datetime');
        }
      case 'duration':
        switch (r.int(3)) {
          case 0:
            return `${this.expr('datetime', d)}.durationSince(${this.expr('datetime', d)})`;
          case 1:
            return `${this.expr('datetime', d)}.toTime()`;
          default:
            return this.leaf('duration');
        }
    }
  }

  private access(_t: GType, d: number): string {
    const r = this.r;
    if (r.chance(0.5)) {
      const k = r.pick(CTX_ATTRS);
      return k.includes(' ') ? `context[${cedarString(k)}]` : `context.${k}`;
    }
    const base = r.chance(0.6) ? r.pick(['principal', 'resource', 'action']) : this.expr(r.chance(0.5) ? 'entity' : 'record', d);
    const k = r.pick(ATTRS);
    return r.chance(0.1) ? `(${base})[${cedarString(k)}]` : `(${base}).${k}`;
  }

  private boolExpr(d: number): string {
    const r = this.r;
    switch (r.int(24)) {
      case 0:
        return `(${this.expr('bool', d)} && ${this.expr('bool', d)})`;
      case 1:
        return `(${this.expr('bool', d)} || ${this.expr('bool', d)})`;
      case 2:
        return `(!${this.expr('bool', d)})`;
      case 3: {
        const t = r.pick(['long', 'string', 'entity', 'set', 'record', 'bool', 'any'] as const);
        return `(${this.expr(t, d)} ${r.pick(['==', '!='])} ${this.expr(r.chance(0.8) ? t : 'any', d)})`;
      }
      case 4:
        return `(${this.expr('long', d)} ${r.pick(['<', '<=', '>', '>='])} ${this.expr('long', d)})`;
      case 5:
        return `(${this.expr('entity', d)} in ${r.chance(0.5) ? this.expr('entity', d) : `[${Array.from({ length: r.int(3) }, () => this.expr('entity', d)).join(', ')}]`})`;
      case 6:
        return `(${this.expr('string', d)} like ${this.pattern()})`;
      case 7: {
        const e = this.expr('entity', d);
        const t = q(r.pick([...TYPES, 'Action', 'Nope', 'Color']));
        return r.chance(0.3) ? `(${e} is ${t} in ${this.expr('entity', d)})` : `(${e} is ${t})`;
      }
      case 8: {
        const target = r.chance(0.5)
          ? r.pick(['principal', 'resource', 'context', 'action', 'context.rec', 'principal.profile', 'resource.meta'])
          : this.expr(r.pick(['entity', 'record'] as const), d);
        const k = r.pick([...ATTRS, ...CTX_ATTRS]);
        const path = r.chance(0.2)
          ? `${r.pick(['profile', 'meta', 'rec'])}.${r.pick(['nick', 'kind', 'a', 'n'])}`
          : k.includes(' ')
            ? cedarString(k)
            : k;
        return `(${target} has ${path})`;
      }
      case 9:
        return `(${this.expr('set', d)}.contains(${this.expr('any', d)}))`;
      case 10:
        return `(${this.expr('set', d)}.containsAll(${this.expr('set', d)}))`;
      case 11:
        return `(${this.expr('set', d)}.containsAny(${this.expr('set', d)}))`;
      case 12:
        return `(${this.expr('set', d)}.isEmpty())`;
      case 13:
        return `(if ${this.expr('bool', d)} then ${this.expr('bool', d)} else ${this.expr('bool', d)})`;
      case 14:
        return r.chance(0.5)
          ? `(${this.expr('entity', d)}.hasTag(${this.expr('string', d)}))`
          : `(${this.expr('entity', d)}.getTag(${this.expr('string', d)}) == "x")`;
      case 15:
        return `(action ${r.chance(0.5) ? 'in' : '=='} ${q('Action')}::${cedarString(r.pick(ACTIONS))})`;
      case 16:
        return `(context.tags.contains(${this.expr('string', d)}))`;
      case 17: {
        // ipaddr extension: constructor over literals or strings from the request, predicates, ranges.
        const ipOf = () => (r.chance(0.7) ? `ip(${cedarString(r.pick(IPS))})` : `ip(${this.expr('string', d)})`);
        return r.chance(0.4)
          ? `(${ipOf()}.isInRange(${ipOf()}))`
          : r.chance(0.2)
            ? `(${ipOf()} == ${ipOf()})`
            : `(${ipOf()}.${r.pick(['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast'])}())`;
      }
      case 18: {
        // datetime and duration: ordering and equality, within and across the two types.
        const t = r.pick(['datetime', 'duration'] as const);
        const other = r.chance(0.9) ? t : r.pick(ANY_TYPES);
        return `(${this.expr(t, d)} ${r.pick(['<', '<=', '>', '>=', '==', '!='])} ${this.expr(other, d)})`;
      }
      case 19: {
        // Enumerated entities: equality and membership with declared and undeclared values.
        const c = r.chance(0.5) ? r.pick(['context.color', 'principal.color', 'resource']) : this.leaf('entity');
        return r.chance(0.5) ? `(${c} == ${entityLit(colorUid(r))})` : `(${c} in [${entityLit(colorUid(r))}, ${entityLit(colorUid(r))}])`;
      }
      case 20: {
        // Tags: Long tags on User, String tags on Doc.
        const k = this.expr('string', d);
        return r.chance(0.5)
          ? `(principal.hasTag(${k}) && principal.getTag(${k}) ${r.pick(['<', '>=', '=='])} ${this.expr('long', d)})`
          : `(resource has owner && resource.hasTag(${k}) && resource.getTag(${k}) like ${this.pattern()})`;
      }
      default:
        return this.access('bool', d);
    }
  }

  /**
   * A well-typed condition over the Cedar 4 features that evaluates without error
   * whenever the request's entities exist, so that datetime, duration, tag and enum
   * values decide policies, not only error them.
   */
  feature(): string {
    const r = this.r;
    const goodDt = () => `datetime(${cedarString(r.pick(GOOD_DATETIMES.slice(0, 10)))})`;
    const goodDur = () => `duration(${cedarString(r.pick(['0ms', '1h', '-1d2h3m4s5ms', '90m', '1s', '-1ms', '400d']))})`;
    const dt = (): string => {
      const [on, a] = r.pick([
        ['context', 'dt'],
        ['principal', 'born'],
        ['resource', 'created'],
      ]);
      const base = r.chance(0.7) ? `(if ${on} has ${a} then ${on}.${a} else ${goodDt()})` : goodDt();
      return r.pick([base, base, `${base}.offset(${dur()})`, `${base}.toDate()`]);
    };
    const dur = (): string => (r.chance(0.6) ? goodDur() : `(if context has dur then context.dur else ${goodDur()})`);
    const cmp = () => r.pick(['<', '<=', '>', '>=', '==', '!=']);
    switch (r.int(6)) {
      case 0:
        return `${dt()} ${cmp()} ${dt()}`;
      case 1:
        return `${dur()} ${cmp()} ${dur()}`;
      case 2:
        return r.chance(0.5) ? `${dt()}.durationSince(${dt()}) ${cmp()} ${dur()}` : `${dt()}.toTime() ${cmp()} ${dur()}`;
      case 3:
        return `${dur()}.${r.pick(['toMilliseconds', 'toSeconds', 'toMinutes', 'toHours', 'toDays'])}() ${cmp()} ${r.pick(SMALL_LONGS)}`;
      case 4: {
        const k = cedarString(r.pick(TAG_KEYS));
        return r.chance(0.5)
          ? `principal.hasTag(${k}) && principal.getTag(${k}) ${cmp()} ${r.pick(SMALL_LONGS)}`
          : `resource.hasTag(${k}) && resource.getTag(${k}) ${r.chance(0.5) ? '==' : '!='} ${cedarString(r.pick(STRINGS))}`;
      }
      default:
        return r.chance(0.5)
          ? `principal has color && principal.color == ${entityLit(colorUid(r, 0))}`
          : `context has color && context.color in [${entityLit(colorUid(r, 0))}, ${entityLit(colorUid(r, 0))}]`;
    }
  }

  pattern(): string {
    const r = this.r;
    const n = r.int(5);
    let s = '';
    for (let i = 0; i < n; i++) s += r.pick(['*', '*', 'a', 'b', '\\*', '/', 'é', '日', '\\\\', '\\"']);
    return `"${s}"`;
  }

  leaf(t: GType): string {
    const r = this.r;
    switch (t) {
      case 'bool':
        return r.chance(0.5) ? String(r.chance(0.5)) : r.pick(['context.b', 'principal.active', 'resource.public', 'context.missing']);
      case 'long':
        if (r.chance(0.2)) return r.pick(BIG_LITERALS);
        if (r.chance(0.3))
          return r.pick(['context.n', 'principal.age', 'resource.size', 'principal.level', 'context.rec.a', 'resource.depth']);
        return String(r.pick(SMALL_LONGS));
      case 'string':
        return r.chance(0.6)
          ? cedarString(r.pick(STRINGS))
          : r.pick(['context.s', 'principal.name', 'context.rec.b', 'context["odd key"]']);
      case 'set':
        return r.pick([
          'context.tags',
          'context.nums',
          'principal.tags',
          'resource.labels',
          '[]',
          '[1, 2]',
          '["a", "A"]',
          'principal.profile.flags',
          '[[1], [2, 1]]',
          `[${entityLit(uid(r))}]`,
        ]);
      case 'record':
        return r.pick(['context.rec', 'principal.profile', 'resource.meta', 'context', '{}', '{a: 1}', '{"odd key": "x", b: [1]}']);
      case 'entity':
        return r.chance(0.5)
          ? r.pick(['principal', 'resource', 'action', 'context.who', 'principal.manager', 'resource.owner', 'context.color'])
          : entityLit(r.chance(0.1) ? { type: q('Action'), id: r.pick(ACTIONS) } : r.chance(0.1) ? colorUid(r) : uid(r));
      case 'datetime': {
        // Literals mostly valid; attributes are optional, so often read behind `has` (no error, a real value).
        const lit = () => `datetime(${cedarString(r.pick(r.chance(0.85) ? GOOD_DATETIMES : DATETIMES))})`;
        if (r.chance(0.5)) return lit();
        const [on, a] = r.pick([
          ['context', 'dt'],
          ['principal', 'born'],
          ['resource', 'created'],
          ['context', 'at'],
        ]);
        return r.chance(0.6) ? `(if ${on} has ${a} then ${on}.${a} else ${lit()})` : `${on}.${a}`;
      }
      case 'duration': {
        const lit = () => `duration(${cedarString(r.pick(r.chance(0.85) ? GOOD_DURATIONS : DURATIONS))})`;
        if (r.chance(0.6)) return lit();
        const [on, a] = r.pick([
          ['context', 'dur'],
          ['resource', 'ttl'],
        ]);
        return r.chance(0.6) ? `(if ${on} has ${a} then ${on}.${a} else ${lit()})` : `${on}.${a}`;
      }
      case 'any':
        return this.leaf(r.pick(ANY_TYPES));
    }
  }
}

function scope(r: Rng, v: 'principal' | 'resource'): string {
  const types: EType[] = v === 'principal' ? ['User', 'Group', 'Role'] : ['Doc', 'Folder'];
  switch (r.int(5)) {
    case 0:
      return `${v} == ${entityLit(v === 'resource' && r.chance(0.15) ? colorUid(r) : uid(r, r.pick(types)))}`;
    case 1:
      return `${v} in ${entityLit(uid(r, r.pick(TYPES)))}`;
    case 2:
      return r.chance(0.5) ? `${v} is ${q(r.pick(types))}` : `${v} is ${q(r.pick(types))} in ${entityLit(uid(r))}`;
    default:
      return v;
  }
}

function actionScope(r: Rng): string {
  switch (r.int(4)) {
    case 0:
      return `action == ${q('Action')}::${cedarString(r.pick(ACTIONS))}`;
    case 1:
      return `action in ${q('Action')}::${cedarString(r.pick(ACTIONS))}`;
    case 2:
      return `action in [${Array.from({ length: 1 + r.int(2) }, () => `${q('Action')}::${cedarString(r.pick(ACTIONS))}`).join(', ')}]`;
    default:
      return 'action';
  }
}

export function randomPolicies(r: Rng, count: number): string {
  const g = new ExprGen(r);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const conds: string[] = [];
    const n = r.int(3);
    for (let j = 0; j < n; j++) conds.push(`${r.chance(0.75) ? 'when' : 'unless'} { ${g.expr('bool', 1 + r.int(4))} }`);
    if (r.chance(0.3)) conds.push(`${r.chance(0.75) ? 'when' : 'unless'} { ${g.feature()} }`);
    out.push(
      `@id("p${i}")\n${r.chance(0.7) ? 'permit' : 'forbid'} (${scope(r, 'principal')}, ${actionScope(r)}, ${scope(r, 'resource')})\n${conds.join('\n')};`,
    );
  }
  return out.join('\n\n');
}

function jsonLong(r: Rng): number {
  // -2^63 is a double cedar-wasm rejects (a request error): rare on purpose.
  if (r.chance(0.002)) return -(2 ** 63);
  return r.chance(0.7) ? r.pick(SMALL_LONGS) : r.pick(JSON_LONGS);
}

function strSet(r: Rng): string[] {
  return Array.from({ length: r.int(4) }, () => r.pick(STRINGS));
}

/** Attribute values conforming to TEST_SCHEMA, occasionally not (request errors). */
function attrsFor(r: Rng, t: EType): Record<string, CedarValue> {
  const a: Record<string, CedarValue> = {};
  switch (t) {
    case 'User':
      a.name = r.pick(STRINGS);
      a.age = jsonLong(r);
      a.tags = strSet(r);
      a.active = r.chance(0.5);
      if (r.chance(0.5)) a.manager = r.chance(0.5) ? { __entity: uid(r, 'User') } : (uid(r, 'User') as unknown as CedarValue);
      a.profile = { score: jsonLong(r), flags: Array.from({ length: r.int(3) }, () => jsonLong(r)) };
      if (r.chance(0.5)) (a.profile as Record<string, CedarValue>).nick = r.pick(STRINGS);
      if (r.chance(0.5)) a.color = { __entity: colorUid(r, 0.01) } as unknown as CedarValue;
      if (r.chance(0.5)) a.born = extnValue(r, 'datetime', 0.002);
      break;
    case 'Group':
      a.name = r.pick(STRINGS);
      a.level = jsonLong(r);
      break;
    case 'Folder':
      a.public = r.chance(0.5);
      if (r.chance(0.5)) a.depth = jsonLong(r);
      break;
    case 'Doc':
      a.owner = { __entity: uid(r, 'User') };
      a.size = jsonLong(r);
      a.labels = strSet(r);
      if (r.chance(0.5)) a.meta = r.chance(0.5) ? { kind: r.pick(STRINGS) } : { kind: r.pick(STRINGS), n: jsonLong(r) };
      if (r.chance(0.5)) a.created = extnValue(r, 'datetime', 0.002);
      if (r.chance(0.3)) a.ttl = extnValue(r, 'duration', 0.002);
      break;
    case 'Role':
      break;
  }
  if (r.chance(0.003)) a.bogus = 1;
  if (r.chance(0.003) && t === 'User') delete a.name;
  if (r.chance(0.003) && t === 'Group') a.level = 'x';
  return a;
}

/** Tags as the schema types them (User: Long, Doc: String), rarely of the wrong type. */
function tagsFor(r: Rng, t: EType): Record<string, CedarValue> | undefined {
  if ((t !== 'User' && t !== 'Doc') || r.chance(0.3)) return undefined;
  const tags: Record<string, CedarValue> = {};
  for (let i = r.int(3); i > 0; i--) tags[r.pick(TAG_KEYS)] = t === 'User' ? jsonLong(r) : r.pick(STRINGS);
  if (r.chance(0.005)) tags.a = t === 'User' ? 'x' : 1;
  return tags;
}

function entityOf(r: Rng, u: EntityUid): Entity {
  const t = bare(u.type) as EType;
  const parents: EntityUid[] = [];
  const n = r.int(3);
  const index = Number(u.id.slice(1));
  for (let i = 0; i < n; i++) {
    const pt = r.chance(0.003) ? r.pick(TYPES) : r.pick(PARENTS[t]);
    const p = uid(r, pt);
    // Same-type parents point "upwards" (higher index) so most hierarchies are
    // acyclic chains; a few are not (Cedar rejects cycles, including self-loops).
    if (p.type === u.type && Number(p.id.slice(1)) <= index && !r.chance(0.005)) continue;
    parents.push(p);
  }
  const tags = tagsFor(r, t);
  const e: Entity = { uid: u, attrs: attrsFor(r, t), parents };
  if (tags) (e as Entity & { tags?: Record<string, CedarValue> }).tags = tags;
  return e;
}

/** A random store: each pool entity is static, request-provided or absent. */
export function randomEntities(r: Rng): { statics: Entity[]; requestPool: Entity[] } {
  const statics: Entity[] = [];
  const requestPool: Entity[] = [];
  for (const t of TYPES) {
    for (let i = 0; i < 4; i++) {
      const u = { type: q(t), id: `${t[0].toLowerCase()}${i}` };
      const roll = r.next();
      if (roll < 0.55) {
        statics.push(entityOf(r, u));
        // A request entity naming a static one is ignored (static entities win).
        if (r.chance(0.1)) requestPool.push(entityOf(r, u));
      } else if (roll < 0.85) requestPool.push(entityOf(r, u));
    }
  }
  return { statics, requestPool };
}

function contextFor(r: Rng, action: string): Record<string, CedarValue> {
  let c: Record<string, CedarValue> = {};
  if (action === 'read') {
    c = {
      n: jsonLong(r),
      s: r.pick(STRINGS),
      b: r.chance(0.5),
      tags: strSet(r),
      rec: r.chance(0.5) ? { b: r.pick(STRINGS) } : { a: jsonLong(r), b: r.pick(STRINGS) },
    };
    if (r.chance(0.4)) c.who = { __entity: uid(r, 'User') };
    if (r.chance(0.4)) c.nums = Array.from({ length: r.int(3) }, () => jsonLong(r));
    if (r.chance(0.3)) c['odd key'] = r.pick(STRINGS);
    if (r.chance(0.5)) c.dt = extnValue(r, 'datetime');
    if (r.chance(0.5)) c.dur = extnValue(r, 'duration');
    if (r.chance(0.3)) c.color = { __entity: colorUid(r, 0.01) } as unknown as CedarValue;
  } else if (action === 'paint') {
    c = { at: extnValue(r, 'datetime') };
  } else if (action === 'write') {
    c = { n: jsonLong(r) };
    if (r.chance(0.5)) c.s = r.pick(STRINGS);
  }
  // Malformed contexts: wasm validates the request against the schema.
  const roll = r.next();
  if (roll < 0.02) c.extra = 1;
  else if (roll < 0.04) delete c.n;
  else if (roll < 0.05) c.n = 'five';
  else if (roll < 0.06) c.n = 2 ** 63;
  else if (roll < 0.07) c.n = 1.5;
  else if (roll < 0.08 && action === 'read') c.who = { __entity: uid(r, 'Doc') };
  return c;
}

/** A request for a bundle of namespace `ns` (randomBundle's). */
export function randomRequest(r: Rng, requestPool: Entity[], ns = ''): AuthzRequest {
  NS = ns;
  const action = r.chance(0.03) ? r.pick(['grp', 'nope']) : r.pick(['read', 'read', 'write', 'admin', 'paint']);
  const ptypes: EType[] = action === 'write' ? ['User', 'Group'] : ['User'];
  const rtypes: EType[] = action === 'read' ? ['Doc', 'Folder'] : action === 'write' ? ['Doc'] : ['Folder'];
  const principal = uid(r, r.chance(0.03) ? r.pick(TYPES) : r.pick(ptypes));
  const resource = action === 'paint' && !r.chance(0.03) ? colorUid(r) : uid(r, r.chance(0.03) ? r.pick(TYPES) : r.pick(rtypes));
  const entities = requestPool.filter(() => r.chance(0.7));
  // Rarely an enum entity among the request's entities: Cedar refuses it (enum entities are not data).
  if (r.chance(0.003)) entities.push({ uid: colorUid(r), attrs: {}, parents: [] });
  return { principal, action: { type: q('Action'), id: action }, resource, context: contextFor(r, action), entities };
}

/** A random bundle; its namespace ('' mostly, else App or Org::App) qualifies every name in it and in its requests. */
export function randomBundle(r: Rng, policyCount: number): { bundle: PolicyBundle; requestPool: Entity[]; ns: string } {
  NS = r.pick(NAMESPACES);
  const { statics, requestPool } = randomEntities(r);
  return {
    bundle: { policies: { 'random.cedar': randomPolicies(r, policyCount) }, schema: schemaIn(NS), entities: statics },
    requestPool,
    ns: NS,
  };
}
