// Random Cedar policies, entities and requests for differential testing of the
// compiled engine against cedar-wasm. Everything derives from one seed.
import type { AuthzRequest, CedarValue, Entity, EntityUid, PolicyBundle } from '../../cedar/types.js';
import { Rng } from '../../testkit/rng.js';

export { Rng };

export const TEST_SCHEMA = `
entity Role in [Role];
entity Group in [Group, Role] { name: String, level: Long };
entity User in [Group, Role] {
  name: String, age: Long, tags: Set<String>, active: Bool, manager?: User,
  profile: { nick?: String, score: Long, flags: Set<Long> },
};
entity Folder in [Folder] { public: Bool, depth?: Long };
entity Doc in [Folder] { owner: User, size: Long, labels: Set<String>, meta?: { kind: String, n?: Long } };
action "all";
action "grp" in ["all"];
action "read" in ["grp", "all"] appliesTo {
  principal: [User], resource: [Doc, Folder],
  context: { n: Long, s: String, b: Bool, tags: Set<String>, rec: { a?: Long, b: String }, who?: User, nums?: Set<Long>, "odd key"?: String },
};
action "write" in ["all"] appliesTo { principal: [User, Group], resource: [Doc], context: { n: Long, s?: String } };
action "admin" appliesTo { principal: User, resource: Folder, context: {} };
`;

const TYPES = ['User', 'Group', 'Role', 'Folder', 'Doc'] as const;
type EType = (typeof TYPES)[number];
const PARENTS: Record<EType, EType[]> = {
  User: ['Group', 'Role'],
  Group: ['Group', 'Role'],
  Role: ['Role'],
  Folder: ['Folder'],
  Doc: ['Folder'],
};
const ACTIONS = ['read', 'write', 'admin', 'grp', 'all'];

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
const CTX_ATTRS = ['n', 's', 'b', 'tags', 'rec', 'who', 'nums', 'odd key', 'missing'];

function cedarString(s: string): string {
  return JSON.stringify(s).replace(/\\u([0-9a-fA-F]{4})/g, (_, h) => `\\u{${h}}`);
}

function id(r: Rng, t: EType): string {
  return `${t[0].toLowerCase()}${r.int(4)}`;
}

function uid(r: Rng, t?: EType): EntityUid {
  const type = t ?? r.pick(TYPES);
  return { type, id: id(r, type) };
}

function entityLit(u: EntityUid): string {
  return `${u.type}::${cedarString(u.id)}`;
}

type GType = 'bool' | 'long' | 'string' | 'set' | 'record' | 'entity' | 'any';

/** Generates Cedar expression text, mostly well typed, sometimes not (to reach type errors). */
export class ExprGen {
  constructor(private readonly r: Rng) {}

  expr(t: GType, depth: number): string {
    const r = this.r;
    if (t === 'any') t = r.pick(['bool', 'long', 'string', 'set', 'record', 'entity'] as const);
    // Occasionally the wrong type: exercises every type-error path.
    if (r.chance(0.04)) t = r.pick(['bool', 'long', 'string', 'set', 'record', 'entity'] as const);
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
          default:
            return this.access('long', d);
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
    switch (r.int(21)) {
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
        const t = r.pick([...TYPES, 'Action', 'Nope']);
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
        return `(action ${r.chance(0.5) ? 'in' : '=='} Action::${cedarString(r.pick(ACTIONS))})`;
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
      default:
        return this.access('bool', d);
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
          ? r.pick(['principal', 'resource', 'action', 'context.who', 'principal.manager', 'resource.owner'])
          : entityLit(r.chance(0.1) ? { type: 'Action', id: r.pick(ACTIONS) } : uid(r));
      case 'any':
        return this.leaf(r.pick(['bool', 'long', 'string', 'set', 'record', 'entity'] as const));
    }
  }
}

function scope(r: Rng, v: 'principal' | 'resource'): string {
  const types: EType[] = v === 'principal' ? ['User', 'Group', 'Role'] : ['Doc', 'Folder'];
  switch (r.int(5)) {
    case 0:
      return `${v} == ${entityLit(uid(r, r.pick(types)))}`;
    case 1:
      return `${v} in ${entityLit(uid(r, r.pick(TYPES)))}`;
    case 2:
      return r.chance(0.5) ? `${v} is ${r.pick(types)}` : `${v} is ${r.pick(types)} in ${entityLit(uid(r))}`;
    default:
      return v;
  }
}

function actionScope(r: Rng): string {
  switch (r.int(4)) {
    case 0:
      return `action == Action::${cedarString(r.pick(ACTIONS))}`;
    case 1:
      return `action in Action::${cedarString(r.pick(ACTIONS))}`;
    case 2:
      return `action in [${Array.from({ length: 1 + r.int(2) }, () => `Action::${cedarString(r.pick(ACTIONS))}`).join(', ')}]`;
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
      break;
    case 'Role':
      break;
  }
  if (r.chance(0.003)) a.bogus = 1;
  if (r.chance(0.003) && t === 'User') delete a.name;
  if (r.chance(0.003) && t === 'Group') a.level = 'x';
  return a;
}

function entityOf(r: Rng, u: EntityUid): Entity {
  const t = u.type as EType;
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
  return { uid: u, attrs: attrsFor(r, t), parents };
}

/** A random store: each pool entity is static, request-provided or absent. */
export function randomEntities(r: Rng): { statics: Entity[]; requestPool: Entity[] } {
  const statics: Entity[] = [];
  const requestPool: Entity[] = [];
  for (const t of TYPES) {
    for (let i = 0; i < 4; i++) {
      const u = { type: t, id: `${t[0].toLowerCase()}${i}` };
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

export function randomRequest(r: Rng, requestPool: Entity[]): AuthzRequest {
  const action = r.chance(0.03) ? r.pick(['grp', 'nope']) : r.pick(['read', 'read', 'write', 'admin']);
  const ptypes: EType[] = action === 'write' ? ['User', 'Group'] : ['User'];
  const rtypes: EType[] = action === 'read' ? ['Doc', 'Folder'] : action === 'write' ? ['Doc'] : ['Folder'];
  const principal = uid(r, r.chance(0.03) ? r.pick(TYPES) : r.pick(ptypes));
  const resource = uid(r, r.chance(0.03) ? r.pick(TYPES) : r.pick(rtypes));
  const entities = requestPool.filter(() => r.chance(0.7));
  return { principal, action: { type: 'Action', id: action }, resource, context: contextFor(r, action), entities };
}

export function randomBundle(r: Rng, policyCount: number): { bundle: PolicyBundle; requestPool: Entity[] } {
  const { statics, requestPool } = randomEntities(r);
  return { bundle: { policies: { 'random.cedar': randomPolicies(r, policyCount) }, schema: TEST_SCHEMA, entities: statics }, requestPool };
}
