// Stage 4 (enforcer): assumptions every real request satisfies.
// - Hierarchy: for the entities the query mentions (its footprint), ancestor
//   sets are acyclic and transitive (a Cedar hierarchy is the irreflexive
//   transitive closure of a DAG).
// - Context domain (docs/ARCHITECTURE.md): label L ∈ context.taint iff bit
//   taint_labels[L] of context.data_touched is set, and taint ⊆ known labels.
//   data_touched is the session mask itself, as a signed 64-bit Long: the
//   enforcer hands it to the engines exactly (enforcer/dataplane/taint/mask.ts),
//   at every bit, 63 included. The enforcer guarantees it; the prover assumes it.
import type { ProverSchema, RequestEnv, Ty } from './env.js';
import { ctxConst, existsFn, type Decls } from './compiler.js';
import { and, entitySort, eq, implies, not, strLit, TRUE } from './smt.js';

export function hierarchyAssumptions(decls: Decls, schema: ProverSchema): string[] {
  const out: string[] = [];
  const terms = [...decls.footprint.entries()];
  const anc = (t: string) => schema.ancestorTypes.get(t) ?? new Set<string>();
  for (const [t, { type, guard }] of terms) {
    if (anc(type).has(type)) out.push(implies(guard, not(`(set.member ${t} (${decls.useAncs(type, type)} ${t}))`)));
  }
  for (const [t1, a] of terms) {
    for (const [t2, b] of terms) {
      if (t1 === t2 || !anc(a.type).has(b.type)) continue;
      const premise = and(a.guard, b.guard, `(set.member ${t2} (${decls.useAncs(a.type, b.type)} ${t1}))`);
      const subsets = [...anc(b.type)].map((c) => `(set.subset (${decls.useAncs(b.type, c)} ${t2}) (${decls.useAncs(a.type, c)} ${t1}))`);
      if (subsets.length) out.push(implies(premise, and(...subsets)));
    }
  }
  // Only entities in the store have parents; an entity whose attributes the
  // query reads exists or not, and if not, it has no ancestors.
  for (const [t, { type, guard }] of terms) {
    const exists = existsFn(type);
    if (!decls.funcs.has(exists)) continue;
    const empties = [...anc(type)]
      .filter((b) => decls.ancs.has(`${type}\u0000${b}`))
      .map((b) => `(= (${decls.useAncs(type, b)} ${t}) (as set.empty (Set ${entitySort(b)})))`);
    if (empties.length) out.push(implies(and(guard, `(not (${exists} ${t}))`), and(...empties)));
  }
  return out.filter((x) => x !== TRUE);
}

export interface TaintAssumption {
  labels: Record<string, number>;
}

/** Where one side's taint assumption reads: its `context.taint` set and the session mask (default: the request's constants). */
export interface TaintTerms {
  taint: string;
  mask: string;
}

/** Applies when the env's context has `taint: Set<String>` and `data_touched: Long`. */
export function hasTaintContext(ctx: Ty & { k: 'record' }): boolean {
  const t = ctx.fields.taint;
  const d = ctx.fields.data_touched;
  return !!t && !!d && t.required && d.required && t.ty.k === 'set' && t.ty.elem.k === 'string' && d.ty.k === 'long';
}

export function contextAssumptions(env: RequestEnv, taint: TaintAssumption | undefined, terms?: TaintTerms): string[] {
  if (!taint || !hasTaintContext(env.context)) return [];
  const taintSet = terms?.taint ?? ctxConst(['taint']);
  const mask = terms?.mask ?? ctxConst(['data_touched']);
  const out: string[] = [];
  const labels = Object.entries(taint.labels).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [label, bit] of labels) {
    out.push(eq(`(set.member ${strLit(label)} ${taintSet})`, `(= ((_ extract ${bit} ${bit}) ${mask}) #b1)`));
  }
  const known = labels.map(([l]) => strLit(l));
  const knownSet =
    known.length === 0
      ? '(as set.empty (Set String))'
      : known.length === 1
        ? `(set.singleton ${known[0]})`
        : `(set.insert ${known.slice(0, -1).join(' ')} (set.singleton ${known[known.length - 1]}))`;
  out.push(`(set.subset ${taintSet} ${knownSet})`);
  return out;
}

export function describeTaintAssumption(taint: TaintAssumption): string {
  const labels = Object.entries(taint.labels)
    .map(([l, b]) => `${l}=bit ${b}`)
    .join(', ');
  return `context domain: label L ∈ context.taint iff bit taint_labels[L] of the session mask is set, and context.taint ⊆ {known labels} (${labels}); context.data_touched is the session mask as a signed 64-bit Long, exact at every bit — guaranteed by the enforcer, assumed by the prover`;
}
