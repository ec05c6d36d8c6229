// Pins the symbolic request of one environment to a concrete request and
// entity store. Used by the differential soundness tests (the encoding of a
// fixed request must give exactly cedar-wasm's decision) and by `explain`-style
// checks. Every entity the query can observe is pinned: principal, resource,
// context leaves, and the ancestor sets of every entity in `universe`.
import type { Ty, RequestEnv, ProverSchema } from './env.js';
import { attrFn, attrPresentFn, ctxConst, ctxPresent, existsFn, PRINCIPAL, RESOURCE, tagHasFn, tagValFn, type Decls } from './compiler.js';
import { ancsFn, bvLit, emptySet, entityLit, FALSE, isOpaque, or, strLit, UnsupportedError } from './smt.js';

export type Uid = { type: string; id: string };
export interface ConcreteEntity {
  uid: Uid;
  attrs?: Record<string, unknown>;
  parents: Uid[];
  tags?: Record<string, unknown>;
}
export interface ConcreteRequest {
  principal: Uid;
  resource: Uid;
  context: Record<string, unknown>;
  entities: ConcreteEntity[];
}

export function encodeValue(v: unknown, ty: Ty): string {
  switch (ty.k) {
    case 'bool':
      return v ? 'true' : 'false';
    case 'long':
      return bvLit(BigInt(v as number | bigint));
    case 'string':
      return strLit(v as string);
    case 'entity': {
      const e = (v as { __entity?: Uid }).__entity ?? (v as Uid);
      return entityLit(e.type, e.id);
    }
    case 'set': {
      const xs = (v as unknown[]).map((x) => encodeValue(x, ty.elem));
      if (xs.length === 0) return emptySet(ty.elem);
      return xs.length === 1
        ? `(set.singleton ${xs[0]})`
        : `(set.insert ${xs.slice(0, -1).join(' ')} (set.singleton ${xs[xs.length - 1]}))`;
    }
    default:
      throw new UnsupportedError(`cannot pin a value of type ${ty.k}`);
  }
}

interface LeafNames {
  value(path: string[]): string | undefined;
  present(path: string[]): string | undefined;
}

function recordAsserts(
  rec: Record<string, unknown> | undefined,
  ty: Ty & { k: 'record' },
  path: string[],
  names: LeafNames,
  out: string[],
): void {
  for (const [name, f] of Object.entries(ty.fields)) {
    const p = [...path, name];
    const v = rec?.[name];
    const pres = names.present(p);
    if (!f.required) {
      if (pres) out.push(v === undefined ? `(not ${pres})` : pres);
    } else if (v === undefined) throw new Error(`concrete record lacks required ${p.join('.')}`);
    if (v === undefined) continue;
    if (f.ty.k === 'record') recordAsserts(v as Record<string, unknown>, f.ty, p, names, out);
    else if (!isOpaque(f.ty)) {
      const val = names.value(p);
      if (val) out.push(`(= ${val} ${encodeValue(v, f.ty)})`);
    }
  }
}

/** Transitive ancestors of each entity in the store (what Cedar computes). */
export function ancestorsOf(entities: ConcreteEntity[]): Map<string, Uid[]> {
  const byKey = new Map(entities.map((e) => [key(e.uid), e]));
  const out = new Map<string, Uid[]>();
  for (const e of entities) {
    const seen = new Map<string, Uid>();
    const stack = [...e.parents];
    while (stack.length) {
      const p = stack.pop()!;
      const k = key(p);
      if (seen.has(k)) continue;
      seen.set(k, p);
      stack.push(...(byKey.get(k)?.parents ?? []));
    }
    out.set(key(e.uid), [...seen.values()]);
  }
  return out;
}

export function key(u: Uid): string {
  return `${u.type}::${JSON.stringify(u.id)}`;
}

/** Assertions fixing the request; `universe` must include every entity a footprint term can denote. */
export function pinRequest(env: RequestEnv, decls: Decls, schema: ProverSchema, req: ConcreteRequest, universe: Uid[]): string[] {
  const out = [
    `(= ${PRINCIPAL} ${entityLit(req.principal.type, req.principal.id)})`,
    `(= ${RESOURCE} ${entityLit(req.resource.type, req.resource.id)})`,
  ];
  recordAsserts(req.context, env.context, [], { value: ctxConst, present: ctxPresent }, out);
  const ancs = ancestorsOf(req.entities);
  const all = new Map<string, Uid>();
  for (const u of [...universe, req.principal, req.resource, ...req.entities.map((e) => e.uid)]) all.set(key(u), u);
  const stored = new Map(req.entities.map((e) => [key(e.uid), e]));
  for (const u of all.values()) {
    const shape = schema.entityTypes.get(u.type)?.shape;
    const lit = entityLit(u.type, u.id);
    if (decls.funcs.has(existsFn(u.type))) {
      const e = stored.get(key(u));
      out.push(e ? `(${existsFn(u.type)} ${lit})` : `(not (${existsFn(u.type)} ${lit}))`);
      if (e && shape) {
        const app = (f: string) => (decls.funcs.has(f) ? `(${f} ${lit})` : undefined);
        recordAsserts(
          e.attrs ?? {},
          shape,
          [],
          { value: (p) => app(attrFn(u.type, p)), present: (p) => app(attrPresentFn(u.type, p)) },
          out,
        );
      }
    }
    for (const b of schema.ancestorTypes.get(u.type) ?? []) {
      if (!decls.ancs.has(`${u.type}\u0000${b}`)) continue;
      const of = (ancs.get(key(u)) ?? []).filter((a) => a.type === b);
      out.push(`(= (${ancsFn(u.type, b)} ${entityLit(u.type, u.id)}) ${encodeValue(of, { k: 'set', elem: { k: 'entity', name: b } })})`);
    }
  }
  out.push(...pinTags(decls, schema, req.entities));
  return out;
}

/**
 * Tags, at every (entity, key) the query reads: presence is "the stored entity has
 * that key", the value the stored one. The entity and key terms are fixed by the
 * other pins, so this fixes exactly what the query observes.
 */
function pinTags(decls: Decls, schema: ProverSchema, entities: ConcreteEntity[]): string[] {
  const out: string[] = [];
  for (const r of decls.tagReads) {
    const ty = schema.entityTypes.get(r.type)?.tags;
    if (!ty || !decls.tagFns.has(tagHasFn(r.type))) continue;
    const held = entities
      .filter((e) => e.uid.type === r.type)
      .flatMap((e) =>
        Object.entries(e.tags ?? {}).map(([k, v]) => ({
          at: `(and (= ${r.entity} ${entityLit(r.type, e.uid.id)}) (= ${r.key} ${strLit(k)}))`,
          v,
        })),
      );
    const has = `(${tagHasFn(r.type)} ${r.entity} ${r.key})`;
    out.push(`(= ${has} ${or(...held.map((h) => h.at), FALSE)})`);
    if (decls.tagFns.has(tagValFn(r.type)))
      for (const h of held) out.push(`(=> ${h.at} (= (${tagValFn(r.type)} ${r.entity} ${r.key}) ${encodeValue(h.v, ty)}))`);
  }
  return out;
}
