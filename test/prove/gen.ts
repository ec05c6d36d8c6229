// Random Cedar policies and concrete requests over a test schema that uses
// every construct the prover encodes (Long arithmetic with overflow, optional
// and nested record attributes, sets, `like` with wildcards and escapes,
// entity hierarchy with self-nesting types, entity-valued context, `is`, `in`,
// short-circuit and if-then-else, an enumerated entity type, entity tags with
// hasTag/getTag on present, absent and tagless entities), plus deliberately
// ill-typed subexpressions (runtime type errors) and attribute accesses that
// fail. `qualify` moves a schema, policy or request into a namespace.

import type { RequestEnv, Ty } from '../../pipeline/prove/env.js';
import { Rng } from '../../testkit/rng.js';

export { Rng };

export const DIFF_SCHEMA = `
entity Role enum ["r1", "r2", "r3"];
entity Group in [Group] { rank: Long };
entity User in [Group, Role] { level: Long, name?: String, manager?: User, info: { nick?: String, tags: Set<String> } } tags String;
entity Folder in [Folder];
entity Doc in [Folder] { owner: User, size?: Long } tags Set<String>;
type Meta = { label: String, level?: Long, tags?: Set<String> };
type Ctx = {
  n: Long, m?: Long, s: String, t?: String, b: Bool,
  ls: Set<Long>, ss: Set<String>, meta: Meta, opt?: Meta,
  owner?: User, groups: Set<Group>, role?: Role, roles: Set<Role>,
};
action "group";
action "read" in ["group"] appliesTo { principal: [User], resource: [Doc, Folder], context: Ctx };
action "write" in ["group"] appliesTo { principal: [User, Group], resource: [Doc], context: Ctx };
action "admin" appliesTo { principal: [User], resource: [Folder], context: Ctx };
`;

export type Uid = { type: string; id: string };

export const POOL: Record<string, string[]> = {
  Role: ['r1', 'r2', 'r3'],
  User: ['a', 'b'],
  Group: ['g1', 'g2', 'g3'],
  Folder: ['f1', 'f2', 'f3'],
  Doc: ['d1', 'd2'],
};

export function universe(): Uid[] {
  return Object.entries(POOL).flatMap(([type, ids]) => ids.map((id) => ({ type, id })));
}

const ENVS = [
  { action: 'read', principals: ['User'], resources: ['Doc', 'Folder'] },
  { action: 'write', principals: ['User', 'Group'], resources: ['Doc'] },
  { action: 'admin', principals: ['User'], resources: ['Folder'] },
];

/** Enumerated types: every value has a declared id (never the pool's stray 'zz'). */
export const ENUMS = new Set(['Role']);
const TAG_KEYS = ['a', 'b', ''];

const LONGS = [0, 1, -1, 2, 7, 1024, 3037000500, 4294967296, 9007199254740991, -9007199254740991];
const STRINGS = ['', 'a', 'ab', 'abc', 'a*b', '*', 'b', '\\', 'é', 'x"y', 'ba'];
// Cedar source text of like patterns: `\*` is a literal star, `\\` a literal backslash.
const PATTERNS = ['a*', '*b', 'a\\*b', '*', '', '*\\**', 'ab', '*é*', '\\\\*', 'a*b*c', '**'];

const lit = (s: string) => JSON.stringify(s);
const ent = (t: string, id: string) => `${t}::${lit(id)}`;

export class PolicyGen {
  constructor(private readonly r: Rng) {}

  long(d: number): string {
    const r = this.r;
    if (d <= 0 || r.chance(0.3)) {
      return r.pick([
        () => String(r.pick(LONGS)),
        () => 'context.n',
        () => 'context.m',
        () => 'context.opt.level',
        () => 'context.meta.level',
        () => 'principal.level',
        () => 'context.owner.level',
        () => 'principal.manager.level',
        () => 'resource.size',
        () => 'resource.owner.level',
        () => `${ent('Group', r.pick(POOL.Group))}.rank`,
      ])();
    }
    return r.pick([
      () => `(${this.long(d - 1)} + ${this.long(d - 1)})`,
      () => `(${this.long(d - 1)} - ${this.long(d - 1)})`,
      () => `(${this.long(d - 1)} * ${this.long(d - 1)})`,
      () => `(-${this.long(d - 1)})`,
      () => `(if ${this.bool(d - 1)} then ${this.long(d - 1)} else ${this.long(d - 1)})`,
      () => `{x: ${this.long(d - 1)}, y: ${this.str(0)}}.x`,
    ])();
  }

  str(d: number): string {
    const r = this.r;
    if (d <= 0 || r.chance(0.5)) {
      return r.pick([
        () => lit(r.pick(STRINGS)),
        () => 'context.s',
        () => 'context.t',
        () => 'context.meta.label',
        () => 'context.opt.label',
        () => 'principal.name',
        () => 'principal.info.nick',
        () => 'resource.owner.name',
        () => `principal.getTag(${this.tagKey()})`,
        () => `context.owner.getTag(${this.tagKey()})`,
      ])();
    }
    return `(if ${this.bool(d - 1)} then ${this.str(d - 1)} else ${this.str(d - 1)})`;
  }

  setLong(d: number): string {
    const r = this.r;
    return r.pick([
      () => 'context.ls',
      () => `[${this.long(d - 1)}]`,
      () => `[${this.long(d - 1)}, ${this.long(d - 1)}, ${r.pick(LONGS)}]`,
    ])();
  }

  setStr(d: number): string {
    const r = this.r;
    return r.pick([
      () => 'context.ss',
      () => 'context.meta.tags',
      () => 'context.opt.tags',
      () => 'principal.info.tags',
      () => `resource.getTag(${this.tagKey()})`,
      () => `[${this.str(d - 1)}, ${lit(r.pick(STRINGS))}]`,
    ])();
  }

  /** A tag key: a literal (some present, some not) or a request value. */
  tagKey(): string {
    const r = this.r;
    return r.pick([() => lit(r.pick(TAG_KEYS)), () => 'context.s', () => lit(r.pick(STRINGS))])();
  }

  entity(): string {
    const r = this.r;
    return r.pick([
      () => 'principal',
      () => 'resource',
      () => 'context.owner',
      () => 'principal.manager',
      () => 'resource.owner',
      () => 'context.role',
      () => {
        const t = r.pick(Object.keys(POOL));
        return ent(t, r.pick(POOL[t]));
      },
    ])();
  }

  entityTarget(): string {
    const r = this.r;
    return r.pick([
      () => ent('Group', r.pick(POOL.Group)),
      () => ent('Folder', r.pick(POOL.Folder)),
      () => `[${ent('Group', r.pick(POOL.Group))}, ${ent('Folder', r.pick(POOL.Folder))}]`,
      () => 'context.groups',
      () => this.entity(),
      () => `[${ent('User', r.pick(POOL.User))}]`,
      () => ent('Role', r.pick(POOL.Role)),
      () => 'context.roles',
    ])();
  }

  /** Deliberately ill-typed or failing subexpressions (runtime errors in Cedar). */
  bad(): string {
    const r = this.r;
    return r.pick([
      () => `(context.s < 1)`,
      () => `(context.b + 1 == 2)`,
      () => `(!context.n)`,
      () => `context.s.contains("a")`,
      () => `(context.zzz == 1)`,
      () => `(principal.foo == 1)`,
      () => `(principal has foo)`,
      () => `(context.n in ${ent('Group', 'g1')})`,
      () => `(context.n like "a*")`,
      () => `(if context.n then true else false)`,
      () => `(context.ls.containsAll(context.ss))`,
      () => `(context.ls.containsAny(context.ss))`,
      () => `(context.ls == context.ss)`,
      () => `(context.n == "1")`,
      () => `(context.n * 9007199254740991 * 1024 > 0)`,
      () => `(${this.long(1)} * 4294967296 * 4294967296 == 0)`,
      () => `(context.meta.level > 0)`,
      () => `(principal.getTag("zz") == "a")`,
      () => `context.role.hasTag("a")`,
      () => `(resource.getTag(${this.tagKey()}).isEmpty())`,
      () => `principal.hasTag(context.n)`,
    ])();
  }

  bool(d: number): string {
    const r = this.r;
    if (r.chance(0.07)) return this.bad();
    if (d <= 0 || r.chance(0.15)) {
      return r.pick([
        () => r.pick(['true', 'false']),
        () => 'context.b',
        () => `(context has ${r.pick(['m', 't', 'opt', 'owner', 'n', 'zz'])})`,
        () => `(context.meta has ${r.pick(['level', 'tags', 'label', 'nope'])})`,
        () => `(context has opt.level)`,
        () => `(principal has ${r.pick(['name', 'manager', 'level', 'info', 'rank', 'zz'])})`,
        () => `(resource has ${r.pick(['size', 'owner'])})`,
        () => `(principal has info.nick)`,
        () => `(context.owner has manager)`,
        () => `(principal in ${ent('Group', r.pick(POOL.Group))})`,
        () => `(resource in ${ent('Folder', r.pick(POOL.Folder))})`,
        () => `(principal is ${r.pick(['User', 'Group'])})`,
        () => `(resource is Doc in ${ent('Folder', r.pick(POOL.Folder))})`,
        () => `(action in Action::"group")`,
        () => `(action == Action::${lit(r.pick(['read', 'write', 'admin']))})`,
        () => `(principal in ${ent('Role', r.pick(POOL.Role))})`,
        () => `(context has role && context.role == ${ent('Role', r.pick(POOL.Role))})`,
        () => `context.roles.contains(${ent('Role', r.pick(POOL.Role))})`,
        () => `${r.pick(['principal', 'resource', 'context.owner', 'resource.owner'])}.hasTag(${this.tagKey()})`,
      ])();
    }
    return r.pick([
      () => `(${this.long(d - 1)} ${r.pick(['<', '<=', '>', '>=', '==', '!='])} ${this.long(d - 1)})`,
      () => `(${this.str(d - 1)} ${r.pick(['==', '!='])} ${this.str(d - 1)})`,
      () => `(${this.str(d - 1)} like "${r.pick(PATTERNS)}")`,
      () => `${this.setLong(d)}.contains(${this.long(d - 1)})`,
      () => `${this.setStr(d)}.contains(${this.str(d - 1)})`,
      () => `${this.setStr(d)}.${r.pick(['containsAll', 'containsAny'])}(${this.setStr(d)})`,
      () => `${this.setLong(d)}.${r.pick(['containsAll', 'containsAny'])}(${this.setLong(d)})`,
      () => `${r.pick([this.setStr(d), this.setLong(d)])}.isEmpty()`,
      () => `(!${this.bool(d - 1)})`,
      () => `(${this.bool(d - 1)} && ${this.bool(d - 1)})`,
      () => `(${this.bool(d - 1)} || ${this.bool(d - 1)})`,
      () => `(if ${this.bool(d - 1)} then ${this.bool(d - 1)} else ${this.bool(d - 1)})`,
      () => `(${this.entity()} in ${this.entityTarget()})`,
      () => `(${this.entity()} == ${this.entity()})`,
      () => `(${this.entity()} is ${r.pick(['User', 'Group', 'Doc', 'Folder'])})`,
      () => `context.groups.contains(${ent('Group', r.pick(POOL.Group))})`,
      () => `({a: ${this.long(d - 1)}, b: ${this.str(d - 1)}} == {a: ${this.long(d - 1)}, b: ${this.str(d - 1)}})`,
      () => `(context.meta == ${r.pick(['{label: "a"}', '{label: "a", level: 1}', 'context.opt', '{label: context.s}'])})`,
      () => `(${this.setStr(d)} == ${this.setStr(d)})`,
      () => `(${this.setLong(d)} == ${this.setLong(d)})`,
      () => `(principal.hasTag(${this.tagKey()}) && principal.getTag(${this.tagKey()}) ${r.pick(['==', '!='])} ${this.str(d - 1)})`,
      () => `(resource.hasTag(${this.tagKey()}) && ${this.setStr(d)}.containsAny(resource.getTag(${this.tagKey()})))`,
      () => `(principal in context.role)`,
      () => `(context.role in ${this.entityTarget()})`,
    ])();
  }

  policy(id: string): string {
    const r = this.r;
    const effect = r.chance(0.75) ? 'permit' : 'forbid';
    const principal = r.pick([
      'principal',
      'principal',
      'principal',
      `principal == ${ent('User', r.pick(POOL.User))}`,
      `principal in ${ent('Group', r.pick(POOL.Group))}`,
      'principal is User',
      `principal is User in ${ent('Group', r.pick(POOL.Group))}`,
      'principal is Group',
    ]);
    const action = r.pick([
      'action',
      'action',
      'action',
      'action == Action::"read"',
      'action in Action::"group"',
      'action in [Action::"read", Action::"admin"]',
      'action == Action::"write"',
    ]);
    const resource = r.pick([
      'resource',
      'resource',
      'resource',
      `resource in ${ent('Folder', r.pick(POOL.Folder))}`,
      'resource is Doc',
      `resource == ${ent('Doc', r.pick(POOL.Doc))}`,
      `resource is Folder in ${ent('Folder', r.pick(POOL.Folder))}`,
    ]);
    const conds: string[] = [];
    const n = r.int(3);
    for (let i = 0; i < n; i++) conds.push(`${r.chance(0.7) ? 'when' : 'unless'} { ${this.bool(1 + r.int(3))} }`);
    return `@id(${lit(id)})\n${effect} (${principal}, ${action}, ${resource})\n${conds.join('\n')};`;
  }
}

export interface GenRequest {
  principal: Uid;
  action: string;
  resource: Uid;
  context: Record<string, unknown>;
  entities: { uid: Uid; attrs: Record<string, unknown>; parents: Uid[]; tags?: Record<string, unknown> }[];
}

/** Tags of an entity of a type that declares them (User: String, Doc: Set<String>). */
function tagsFor(r: Rng, type: string): Record<string, unknown> | undefined {
  if (type !== 'User' && type !== 'Doc') return undefined;
  const out: Record<string, unknown> = {};
  for (const k of TAG_KEYS.filter(() => r.chance(0.5)))
    out[k] = type === 'User' ? r.pick(STRINGS) : [...new Set([r.pick(STRINGS), r.pick(STRINGS)])].slice(0, r.int(3));
  if (r.chance(0.2)) out[r.pick(STRINGS)] = type === 'User' ? r.pick(STRINGS) : [r.pick(STRINGS)];
  return out;
}

function attrsFor(r: Rng, type: string): Record<string, unknown> {
  const user = () => ({ __entity: { type: 'User', id: r.pick(POOL.User) } });
  if (type === 'Group') return { rank: r.pick(LONGS) };
  if (type === 'Doc') return { owner: user(), ...(r.chance(0.5) ? { size: r.pick(LONGS) } : {}) };
  if (type === 'User') {
    const info: Record<string, unknown> = { tags: [...new Set([r.pick(STRINGS), r.pick(STRINGS)])].slice(0, r.int(3)) };
    if (r.chance(0.5)) info.nick = r.pick(STRINGS);
    return {
      level: r.pick(LONGS),
      info,
      ...(r.chance(0.5) ? { name: r.pick(STRINGS) } : {}),
      ...(r.chance(0.5) ? { manager: user() } : {}),
    };
  }
  return {};
}

export function genRequest(r: Rng): GenRequest {
  const env = r.pick(ENVS);
  const pt = r.pick(env.principals);
  const rt = r.pick(env.resources);
  const principal = { type: pt, id: r.pick(POOL[pt]) };
  const resource = { type: rt, id: r.pick(POOL[rt]) };
  const meta = () => {
    const m: Record<string, unknown> = { label: r.pick(STRINGS) };
    if (r.chance(0.5)) m.level = r.pick(LONGS);
    if (r.chance(0.5)) m.tags = [...new Set([r.pick(STRINGS), r.pick(STRINGS)])].slice(0, r.int(3));
    return m;
  };
  const ctx: Record<string, unknown> = {
    n: r.pick(LONGS),
    s: r.pick(STRINGS),
    b: r.chance(0.5),
    ls: [...new Set(Array.from({ length: r.int(3) }, () => r.pick(LONGS)))],
    ss: [...new Set(Array.from({ length: r.int(3) }, () => r.pick(STRINGS)))],
    meta: meta(),
    groups: [...new Set(Array.from({ length: r.int(3) }, () => r.pick(POOL.Group)))].map((id) => ({ __entity: { type: 'Group', id } })),
    roles: [...new Set(Array.from({ length: r.int(3) }, () => r.pick(POOL.Role)))].map((id) => ({ __entity: { type: 'Role', id } })),
  };
  if (r.chance(0.6)) ctx.role = { __entity: { type: 'Role', id: r.pick(POOL.Role) } };
  if (r.chance(0.5)) ctx.m = r.pick(LONGS);
  if (r.chance(0.5)) ctx.t = r.pick(STRINGS);
  if (r.chance(0.4)) ctx.opt = meta();
  if (r.chance(0.5)) ctx.owner = { __entity: { type: 'User', id: r.pick(POOL.User) } };

  // A random acyclic hierarchy respecting the schema's memberOf; some entities absent.
  const entities: GenRequest['entities'] = [];
  const some = <T>(xs: T[]) => xs.filter(() => r.chance(0.4));
  for (const [type, ids] of Object.entries(POOL)) {
    ids.forEach((id, i) => {
      if (r.chance(0.15)) return;
      let parents: Uid[] = [];
      if (type === 'User')
        parents = [...some(POOL.Group).map((g) => ({ type: 'Group', id: g })), ...some(POOL.Role).map((g) => ({ type: 'Role', id: g }))];
      if (type === 'Group') parents = some(POOL.Group.slice(i + 1)).map((g) => ({ type: 'Group', id: g }));
      if (type === 'Folder') parents = some(POOL.Folder.slice(i + 1)).map((g) => ({ type: 'Folder', id: g }));
      if (type === 'Doc') parents = some(POOL.Folder).map((g) => ({ type: 'Folder', id: g }));
      const tags = tagsFor(r, type);
      entities.push({ uid: { type, id }, attrs: attrsFor(r, type), parents, ...(tags ? { tags } : {}) });
    });
  }
  return { principal, action: env.action, resource, context: ctx, entities };
}

// ---- requests for the bundled schema and policies ----------------------------

const B_STRINGS = [
  '',
  'tls',
  'tcp',
  'A',
  'AAAA',
  'MX',
  'GET',
  '/api/v1',
  '/api/',
  '/other',
  '/workspace/src/a.ts',
  '/workspace/.git/hooks/pre-commit',
  '/etc/passwd',
  'curl http://x',
  'ls -la',
  'read_file',
  '10.0.1.50',
];
const B_LONGS = [0, 1, 22, 80, 443, 1023, 1024, 8080, 65535, -1];
export const LABEL_BITS: Record<string, number> = { PII: 0, FINANCIAL: 1, UNTRUSTED: 2, CREDENTIALS: 3, SOURCE_CODE: 4 };

function valueOfType(r: Rng, ty: Ty): unknown {
  switch (ty.k) {
    case 'bool':
      return r.chance(0.5);
    case 'long':
      return r.pick(B_LONGS);
    case 'string':
      return r.pick(B_STRINGS);
    case 'set':
      return [...new Set(Array.from({ length: r.int(3) }, () => valueOfType(r, ty.elem) as string))];
    case 'record': {
      const out: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(ty.fields)) if (f.required || r.chance(0.6)) out[k] = valueOfType(r, f.ty);
      return out;
    }
    default:
      throw new Error(`no generator for ${ty.k}`);
  }
}

/** A request the enforcer could produce: taint and data_touched always agree (the documented assumption). */
export function genBundledRequest(r: Rng, envs: RequestEnv[], staticEntities: GenRequest['entities']): GenRequest {
  const env = r.pick(envs);
  const ctx = valueOfType(r, env.context) as Record<string, unknown>;
  const labels = Object.keys(LABEL_BITS).filter(() => r.chance(0.25));
  let mask = labels.reduce((m, l) => m | (1 << LABEL_BITS[l]), 0);
  if (r.chance(0.1)) mask |= 1 << 20; // a bit no label names
  ctx.taint = labels;
  ctx.data_touched = mask;
  const agent = { type: 'Agent', id: r.pick(['spiffe://corp.example/agents/coder', 'spiffe://corp.example/agents/reader', 'x']) };
  const ids = staticEntities.filter((e) => e.uid.type === env.resourceType).map((e) => e.uid.id);
  const resource = { type: env.resourceType, id: r.chance(0.8) && ids.length ? r.pick(ids) : 'unknown.example' };
  const groups = ['coding', 'readers'].filter(() => r.chance(0.5)).map((id) => ({ type: 'AgentGroup', id }));
  return {
    principal: agent,
    action: env.action,
    resource,
    context: ctx,
    entities: [...staticEntities, { uid: agent, attrs: {}, parents: groups }],
  };
}

// ---- capsule pairs: entity stores and schemas --------------------------------

export type StoreEntity = GenRequest['entities'][number];

/** A random acyclic store over the pool (as genRequest makes them). */
export function genStore(r: Rng): StoreEntity[] {
  return genRequest(r).entities;
}

/** May `child` (type, pool index) take `parent` as a parent, keeping the store acyclic and within memberOf? */
function mayParent(child: Uid, parent: Uid): boolean {
  const order = (u: Uid) => POOL[u.type].indexOf(u.id);
  if (child.type === 'User' && parent.type === 'Role') return true;
  if (child.type === 'User' || child.type === 'Group')
    return parent.type === 'Group' && (child.type === 'User' || order(parent) > order(child));
  if (child.type === 'Doc' || child.type === 'Folder')
    return parent.type === 'Folder' && (child.type === 'Doc' || order(parent) > order(child));
  return false;
}

/** The base store with one to three edits: a parent edge added or removed, an entity added or removed, attributes redrawn. */
export function mutateStore(r: Rng, base: StoreEntity[]): StoreEntity[] {
  const out: StoreEntity[] = structuredClone(base);
  const key = (u: Uid) => `${u.type}::${u.id}`;
  for (let n = 1 + r.int(3); n > 0; n--) {
    const edit = r.int(5);
    if (edit <= 1 && out.length) {
      const e = r.pick(out);
      const cands = universe().filter((p) => mayParent(e.uid, p) && !e.parents.some((x) => key(x) === key(p)));
      if (cands.length) e.parents.push(r.pick(cands));
    } else if (edit === 2 && out.length) {
      const e = r.pick(out);
      if (e.parents.length) e.parents.splice(r.int(e.parents.length), 1);
    } else if (edit === 3) {
      const missing = universe().filter((u) => !out.some((e) => key(e.uid) === key(u)));
      if (missing.length) {
        const uid = r.pick(missing);
        const parents = universe().filter((p) => mayParent(uid, p) && r.chance(0.5));
        const tags = tagsFor(r, uid.type);
        out.push({ uid, attrs: attrsFor(r, uid.type), parents, ...(tags ? { tags } : {}) });
      } else if (out.length) out.splice(r.int(out.length), 1);
    } else if (out.length) {
      const e = r.pick(out);
      e.attrs = attrsFor(r, e.uid.type);
      const tags = tagsFor(r, e.uid.type);
      if (tags) e.tags = tags;
    }
  }
  return out;
}

/** DIFF_SCHEMA's context and Meta types as field → type text, edited by schema mutations. */
export interface CtxShape {
  ctx: Record<string, string>;
  meta: Record<string, string>;
}

export const DIFF_CTX: CtxShape = {
  ctx: {
    n: 'Long',
    'm?': 'Long',
    s: 'String',
    't?': 'String',
    b: 'Bool',
    ls: 'Set<Long>',
    ss: 'Set<String>',
    meta: 'Meta',
    'opt?': 'Meta',
    'owner?': 'User',
    groups: 'Set<Group>',
    'role?': 'Role',
    roles: 'Set<Role>',
  },
  meta: { label: 'String', 'level?': 'Long', 'tags?': 'Set<String>' },
};

export function schemaOf(shape: CtxShape): string {
  const fields = (f: Record<string, string>) =>
    Object.entries(f)
      .map(([k, t]) => `${k}: ${t}`)
      .join(', ');
  return DIFF_SCHEMA.replace(/type Meta = \{[^}]*\};/, `type Meta = { ${fields(shape.meta)} };`).replace(
    /type Ctx = \{[^}]*\};/,
    `type Ctx = { ${fields(shape.ctx)} };`,
  );
}

function rename(rec: Record<string, string>, from: string, to: string): void {
  if (!(from in rec)) return;
  const t = rec[from];
  delete rec[from];
  rec[to] = t;
}

/** One to two schema edits: attributes deleted, added, made optional or required, retyped (nested Meta too). */
export function mutateShape(r: Rng, base: CtxShape): { shape: CtxShape; edits: string[] } {
  const s: CtxShape = structuredClone(base);
  const edits: string[] = [];
  const all: Array<[string, () => void]> = [
    ['delete t?', () => delete s.ctx['t?']],
    ['delete m?', () => delete s.ctx['m?']],
    ['delete owner?', () => delete s.ctx['owner?']],
    ['m? required', () => rename(s.ctx, 'm?', 'm')],
    ['t? required', () => rename(s.ctx, 't?', 't')],
    ['s optional', () => rename(s.ctx, 's', 's?')],
    ['n optional', () => rename(s.ctx, 'n', 'n?')],
    ['t? retyped Long', () => 't?' in s.ctx && (s.ctx['t?'] = 'Long')],
    ['add extra?: String', () => (s.ctx['extra?'] = 'String')],
    ['add extra: Long', () => (s.ctx.extra = 'Long')],
    ['delete meta.level?', () => delete s.meta['level?']],
    ['meta.level required', () => rename(s.meta, 'level?', 'level')],
    ['meta.label optional', () => rename(s.meta, 'label', 'label?')],
  ];
  for (let n = 1 + r.int(2); n > 0; n--) {
    const [what, f] = r.pick(all);
    f();
    edits.push(what);
  }
  return { shape: s, edits };
}

/** A random value of a (DIFF schema) type: entities from the pool plus one id no store holds. */
export function genValue(r: Rng, ty: Ty): unknown {
  switch (ty.k) {
    case 'bool':
      return r.chance(0.5);
    case 'long':
      return r.pick(LONGS);
    case 'string':
      return r.pick(STRINGS);
    case 'entity':
      return { __entity: { type: ty.name, id: r.chance(0.85) || ENUMS.has(ty.name) ? r.pick(POOL[ty.name]) : 'zz' } };
    case 'set': {
      const xs = Array.from({ length: r.int(3) }, () => genValue(r, ty.elem));
      const seen = new Set<string>();
      return xs.filter((x) => !seen.has(JSON.stringify(x)) && seen.add(JSON.stringify(x)));
    }
    case 'record': {
      const out: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(ty.fields)) if (f.required || r.chance(0.6)) out[k] = genValue(r, f.ty);
      return out;
    }
    default:
      throw new Error(`no generator for ${ty.k}`);
  }
}

// ---- namespaces ----------------------------------------------------------------

const TYPE_NAMES = /\b(Role|Group|User|Folder|Doc|Action)\b(?=::|\s*[),;\]]|\s+in\b|$)/g;

/** DIFF_SCHEMA (or a mutation of it) inside `namespace NS`: its names resolve within the namespace. */
export function qualifySchema(schema: string, ns: string): string {
  return `namespace ${ns} {\n${schema}\n}\n`;
}

/** A generated policy with every type name qualified (`User` → `NS::User`, `Action::"read"` → `NS::Action::"read"`). */
export function qualifyPolicy(text: string, ns: string): string {
  // Type names appear only in type positions (scope, `is`, entity literals): string literals hold none of them.
  return text.replace(TYPE_NAMES, `${ns}::$1`);
}

/** Entity references in a request value or entity, qualified. */
export function qualifyValue<T>(v: T, ns: string): T {
  if (Array.isArray(v)) return v.map((x) => qualifyValue(x, ns)) as T;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.type === 'string' && typeof o.id === 'string' && Object.keys(o).length === 2)
      return { type: `${ns}::${o.type}`, id: o.id } as T;
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, qualifyValue(x, ns)])) as T;
  }
  return v;
}
