// Enumerated entity types (`entity Color enum ["red", "blue"];`): every entity of
// such a type in a valid request or store has one of the declared ids — Cedar's
// request and entity validation refuse any other (the enforcer validates both).
// The entity sort stays a datatype over any string id; these assumptions bound
// every value of an enumerated type the query can observe to the declared ids:
// free constants (principal, resource, context leaves, sets of them), the
// attribute and tag values of the entities the query mentions, and their
// ancestor sets. Entity literals are left alone: the validator refuses an
// undeclared id in a head policy, and a base policy naming one (the head dropped
// it) must stay a plain, never-matching literal, not a contradiction.
import { ancsFn, entitySort, entityLit, or, sym, TRUE } from './smt.js';
import type { Decls } from './compiler.js';
import type { ProverSchema } from './env.js';

/** Sort name → the declared ids of each enumerated entity type the query uses. */
function enumSorts(decls: Decls, schema: ProverSchema): Map<string, { type: string; ids: string[] }> {
  const out = new Map<string, { type: string; ids: string[] }>();
  for (const type of decls.sorts) {
    const ids = schema.entityTypes.get(type)?.enumIds;
    if (ids) out.set(entitySort(type), { type, ids });
  }
  return out;
}

function domainOf(type: string, ids: string[]): string {
  const lits = ids.map((id) => entityLit(type, id));
  return lits.length === 1
    ? `(set.singleton ${lits[0]})`
    : `(set.insert ${lits.slice(0, -1).join(' ')} (set.singleton ${lits[lits.length - 1]}))`;
}

/** `t` (of `sort`) holds only declared ids: membership for an entity, subset for a set of entities. */
function bound(t: string, sort: string, enums: Map<string, { type: string; ids: string[] }>): string {
  const e = enums.get(sort);
  if (e) return or(...e.ids.map((id) => `(= ${t} ${entityLit(e.type, id)})`));
  const m = /^\(Set (.+)\)$/.exec(sort);
  const s = m && enums.get(m[1]);
  if (s) return `(set.subset ${t} ${domainOf(s.type, s.ids)})`;
  return TRUE;
}

function isLiteral(t: string, type: string): boolean {
  return t.startsWith(`(${sym(`E.${type}.mk`)} "`);
}

export function enumAssumptions(decls: Decls, schema: ProverSchema): string[] {
  const enums = enumSorts(decls, schema);
  if (!enums.size) return [];
  const out: string[] = [];
  // Not the attributes only the base declares (`bctx.`, context-view.ts): those are any value of the base's type.
  for (const [name, sort] of [...decls.consts].sort(([a], [b]) => (a < b ? -1 : 1)))
    if (!name.startsWith('|bctx.')) out.push(bound(name, sort, enums));
  const footprint = [...decls.footprint].filter(([t, { type }]) => !isLiteral(t, type));
  for (const [t, { type }] of footprint) {
    const sort = entitySort(type);
    out.push(bound(t, sort, enums));
    for (const [fn, [arg, ret]] of decls.funcs) if (arg === sort) out.push(bound(`(${fn} ${t})`, ret, enums));
    for (const key of decls.ancs) {
      const [from, to] = key.split('\u0000');
      if (from === type && enums.has(entitySort(to))) out.push(bound(`(${ancsFn(from, to)} ${t})`, `(Set ${entitySort(to)})`, enums));
    }
  }
  for (const r of decls.tagReads) {
    for (const [fn, [arg, ret]] of decls.tagFns)
      if (arg === entitySort(r.type)) out.push(bound(`(${fn} ${r.entity} ${r.key})`, ret, enums));
  }
  return out.filter((x) => x !== TRUE);
}
