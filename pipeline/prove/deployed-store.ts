// The deployed entity store: entities.json plus one Agent entity per
// registration (its groups as parents) — exactly what the enforcer hands Cedar
// (enforcer/dataplane/decide.ts: the capsule's static entities and the request's
// agent entity). The every-store proof quantifies over all stores; this one fixes
// the store, so a PR that only moves an agent between groups or adds a host to a
// zone is proved (or refuted, with a witness) over what will actually run.
//
// The store's functions (Decls.storeFns, one tag per side) are defined here:
// ancestor sets as the store's transitive closure, existence as membership,
// attributes as the store's values. An entity the store does not hold (a Host
// the agent dials that entities.json does not name) has no ancestors and no
// attributes, as Cedar sees it.
import { sortedJsonLong, stringifyJsonLong } from '../../cedar/json-long.js';
import type { Registration } from '../../capsule/config.js';
import { PRINCIPAL, storeFnName, type Decls, type StoreFn } from './compiler.js';
import { encodeValue } from './concrete.js';
import type { RequestEnv, Ty } from './env.js';
import { bvLit, INT_MAX, INT_MIN, emptySet, entityLit, entitySort, FALSE, or, sortOf, strLit, TRUE, UnsupportedError } from './smt.js';

export interface Uid {
  type: string;
  id: string;
}

export interface StoreEntity {
  uid: Uid;
  attrs: Record<string, unknown>;
  parents: Uid[];
  /** Entity tags (types declaring `tags T`); absent: none. */
  tags?: Record<string, unknown>;
}

/** What the enforcer sends: the principal is always an Agent, named by its SPIFFE id. */
export const AGENT_TYPE = 'Agent';
export const GROUP_TYPE = 'AgentGroup';

export class StoreError extends Error {
  readonly code = 'bad_store';
}

const keyOf = (u: Uid) => `${u.type}::${JSON.stringify(u.id)}`;

export class DeployedStore {
  readonly entities = new Map<string, StoreEntity>();
  /** Transitive ancestors of each entity of the store (uid key → uids, sorted). */
  readonly ancestors = new Map<string, Uid[]>();
  /** SPIFFE ids of the registered agents, sorted. */
  readonly agents: string[];
  /** Canonical text: two stores with the same key decide every request alike. */
  readonly key: string;

  constructor(entities: StoreEntity[], registrations: Registration[]) {
    for (const e of entities) {
      const k = keyOf(e.uid);
      const prev = this.entities.get(k);
      if (prev) throw new StoreError(`entities.json: ${k} appears twice`);
      this.entities.set(k, {
        uid: e.uid,
        attrs: e.attrs ?? {},
        parents: [...(e.parents ?? [])],
        ...(e.tags && Object.keys(e.tags).length ? { tags: e.tags } : {}),
      });
    }
    // An agent's request entity: its registration's groups as parents. An agent
    // entities.json also names keeps those attributes and parents too.
    for (const r of registrations) {
      const uid = { type: AGENT_TYPE, id: r.spiffe_id };
      const k = keyOf(uid);
      const e = this.entities.get(k) ?? { uid, attrs: {}, parents: [] };
      e.parents.push(...(r.groups ?? []).map((g) => ({ type: GROUP_TYPE, id: g })));
      this.entities.set(k, e);
    }
    this.agents = [...new Set(registrations.map((r) => r.spiffe_id))].sort();
    for (const [k, e] of this.entities) {
      const seen = new Map<string, Uid>();
      const stack = [...e.parents];
      while (stack.length) {
        const p = stack.pop()!;
        const pk = keyOf(p);
        if (seen.has(pk)) continue;
        seen.set(pk, p);
        stack.push(...(this.entities.get(pk)?.parents ?? []));
      }
      this.ancestors.set(
        k,
        [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, u]) => u),
      );
    }
    this.key = sortedJsonLong({
      agents: this.agents,
      entities: [...this.entities.keys()]
        .sort()
        .map((k) => [k, this.ancestors.get(k)!.map(keyOf), this.entities.get(k)!.attrs, this.entities.get(k)!.tags ?? {}]),
    });
  }

  ofType(type: string): StoreEntity[] {
    return [...this.entities.values()].filter((e) => e.uid.type === type).sort((a, b) => (a.uid.id < b.uid.id ? -1 : 1));
  }

  /**
   * The part of the store a request can observe: the request's entities, every
   * entity valued in its context, their ancestors and what their attributes name
   * (transitively). Cedar decides the request alike over this and the whole store.
   */
  witness(roots: Uid[], context: unknown): StoreEntity[] {
    const out = new Map<string, StoreEntity>();
    const queue: Uid[] = [...roots, ...entityRefs(context)];
    while (queue.length) {
      const u = queue.pop()!;
      const k = keyOf(u);
      if (out.has(k)) continue;
      const e = this.entities.get(k);
      if (!e) continue;
      out.set(k, e);
      queue.push(...e.parents, ...entityRefs(e.attrs), ...entityRefs(e.tags ?? {}));
    }
    return [...out.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, e]) => ({
        uid: e.uid,
        attrs: e.attrs,
        parents: [...e.parents].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1)),
        ...(e.tags ? { tags: e.tags } : {}),
      }));
  }
}

function entityRefs(v: unknown): Uid[] {
  if (Array.isArray(v)) return v.flatMap(entityRefs);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (o.__entity) return [o.__entity as Uid];
    if (o.__extn) return [];
    return Object.values(o).flatMap(entityRefs);
  }
  return [];
}

/** The head side: the enforcer decides for registered agents only (any other identity is refused before Cedar). */
export function registeredPrincipal(store: DeployedStore, env: RequestEnv): string {
  if (env.principalType !== AGENT_TYPE) return TRUE;
  return or(...store.agents.map((id) => `(= ${PRINCIPAL} ${entityLit(AGENT_TYPE, id)})`), FALSE);
}

function valueAt(attrs: Record<string, unknown>, path: string[]): unknown {
  let v: unknown = attrs;
  for (const p of path) {
    if (!v || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/** A value of the store as an SMT term of the attribute's declared type; refuses what does not fit. */
function storeValue(v: unknown, ty: Ty, where: string): string {
  const bad = (): never => {
    throw new StoreError(`${where}: ${stringifyJsonLong(v)} is not a ${ty.k}`);
  };
  switch (ty.k) {
    case 'bool':
      if (typeof v !== 'boolean') bad();
      break;
    case 'long':
      // entities.json is read exactly (policy-source.ts parseEntities): beyond 2^53 a Long is a BigInt.
      if (typeof v === 'bigint') {
        if (v < INT_MIN || v > INT_MAX) throw new StoreError(`${where}: ${v} is outside the 64-bit Long range`);
      } else if (!Number.isSafeInteger(v)) {
        if (typeof v === 'number' && Number.isInteger(v))
          throw new UnsupportedError(`unsupported: ${where}: Long ${v} beyond 2^53 was rounded (entities.json not read exactly)`);
        bad();
      }
      break;
    case 'string':
      if (typeof v !== 'string') bad();
      break;
    case 'entity': {
      const e = (v as { __entity?: Uid })?.__entity ?? (v as Uid);
      if (!e || typeof e.type !== 'string' || typeof e.id !== 'string' || e.type !== ty.name) bad();
      break;
    }
    case 'set':
      if (!Array.isArray(v)) bad();
      return (v as unknown[]).length === 0 ? emptySet(ty.elem) : storeSet((v as unknown[]).map((x) => storeValue(x, ty.elem, where)));
    default:
      throw new UnsupportedError(`unsupported: ${where}: a stored value of type ${ty.k}`);
  }
  return encodeValue(v, ty);
}

function storeSet(xs: string[]): string {
  const ys = [...new Set(xs)];
  return ys.length === 1 ? `(set.singleton ${ys[0]})` : `(set.insert ${ys.slice(0, -1).join(' ')} (set.singleton ${ys[ys.length - 1]}))`;
}

/** Some value of a sort, for arguments the store does not hold (never observed: existence guards every read). */
function anyValue(ty: Ty): string {
  switch (ty.k) {
    case 'bool':
      return FALSE;
    case 'long':
      return bvLit(0n);
    case 'string':
      return strLit('');
    case 'entity':
      return entityLit(ty.name, '');
    default:
      return emptySet((ty as Ty & { k: 'set' }).elem);
  }
}

function chain(x: string, cases: [string, string][], otherwise: string): string {
  let body = otherwise;
  for (let i = cases.length - 1; i >= 0; i--) body = `(ite (= ${x} ${cases[i][0]}) ${cases[i][1]} ${body})`;
  return body;
}

/** define-fun text for every function of `tag` the query uses, from the store. */
export function defineStore(decls: Decls, tag: string, store: DeployedStore): string {
  const fns = [...decls.storeFns.values()].filter((f) => f.tag === tag).sort((a, b) => (storeFnName(a) < storeFnName(b) ? -1 : 1));
  return fns.map((f) => defineOne(f, store)).join('');
}

function defineOne(f: StoreFn, store: DeployedStore): string {
  const name = storeFnName(f);
  const x = '|x|';
  const arg = `((${x} ${entitySort(f.type)}))`;
  const k = '|k|';
  const args2 = `((${x} ${entitySort(f.type)}) (${k} String))`;
  const here = store.ofType(f.type);
  const lit = (e: StoreEntity) => entityLit(e.uid.type, e.uid.id);
  switch (f.kind) {
    case 'ancs': {
      const elem: Ty = { k: 'entity', name: f.to };
      const cases: [string, string][] = [];
      for (const e of here) {
        const ancs = store.ancestors.get(keyOf(e.uid))!.filter((a) => a.type === f.to);
        if (ancs.length) cases.push([lit(e), storeSet(ancs.map((a) => entityLit(a.type, a.id)))]);
      }
      return `(define-fun ${name} ${arg} (Set ${entitySort(f.to)}) ${chain(x, cases, emptySet(elem))})\n`;
    }
    case 'exists': {
      const body = or(...here.map((e) => `(= ${x} ${lit(e)})`));
      return `(define-fun ${name} ${arg} Bool ${body})\n`;
    }
    case 'present': {
      const body = or(...here.filter((e) => valueAt(e.attrs, f.path) !== undefined).map((e) => `(= ${x} ${lit(e)})`));
      return `(define-fun ${name} ${arg} Bool ${body})\n`;
    }
    case 'attr': {
      const cases: [string, string][] = [];
      for (const e of here) {
        const v = valueAt(e.attrs, f.path);
        if (v !== undefined) cases.push([lit(e), storeValue(v, f.ty, `entity ${keyOf(e.uid)} attribute ${f.path.join('.')}`)]);
      }
      return `(define-fun ${name} ${arg} ${sortOf(f.ty)} ${chain(x, cases, anyValue(f.ty))})\n`;
    }
    case 'tagHas': {
      const body = or(
        ...here.flatMap((e) =>
          Object.keys(e.tags ?? {})
            .sort()
            .map((t) => `(and (= ${x} ${lit(e)}) (= ${k} ${strLit(t)}))`),
        ),
      );
      return `(define-fun ${name} ${args2} Bool ${body})\n`;
    }
    case 'tagVal': {
      let body = anyValue(f.ty);
      const cases = here.flatMap((e) =>
        Object.entries(e.tags ?? {})
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([t, v]) => [`(and (= ${x} ${lit(e)}) (= ${k} ${strLit(t)}))`, storeValue(v, f.ty, `entity ${keyOf(e.uid)} tag ${t}`)]),
      );
      for (let i = cases.length - 1; i >= 0; i--) body = `(ite ${cases[i][0]} ${cases[i][1]} ${body})`;
      return `(define-fun ${name} ${args2} ${sortOf(f.ty)} ${body})\n`;
    }
  }
}
