// How the base decides a head request when the two schemas type the context
// differently. Both enforcers see the same real event; each hands its policies
// the context its own schema describes. So, attribute by attribute (nested
// records included):
// - declared by both with the same type: the base reads the head's value, and
//   presence. If the head may omit an attribute the base requires, the base would
//   not have admitted such a request: it is denied by the base (`admit`).
// - declared only by the head: dropped (the base enforcer never sends it).
// - declared only by the base, or with a different type: unconstrained. The head
//   enforcer no longer sends it (the dataplane drops tool arguments the schema
//   does not declare), so the value the base would have seen is unknown: the
//   comparison lets it be anything, and an escalation is any value for which the
//   base denies. That is what makes "delete a tool argument and the forbid that
//   inspected it" an escalation.
import { ctxConst, ctxPresent, type Decls, type RecInner } from './compiler.js';
import { tyEq, type Ty } from './env.js';
import { and, FALSE, implies, isOpaque, TRUE } from './smt.js';

/** Constants of attributes only the base declares. */
export const BASE_ONLY_ROOT = 'bctx';

type RecordTy = Ty & { k: 'record' };

export interface ViewLeaf {
  path: string[];
  ty: Ty;
  /**
   * Term: the attribute is in the request the base gets (TRUE when always). For
   * an attribute the base requires but the head may omit this is the head's
   * presence: without it, the base schema rejects the request (see `admit`).
   */
  present: string;
  /** Term holding the value (not for records and extension values). */
  value?: string;
}

export interface ContextView {
  /** The base's context record, for the base compiler. */
  rec: RecInner;
  /** The base schema admits the (projected) request. */
  admit: string;
  /** Every attribute of the base context, parents before children, names sorted. */
  leaves: ViewLeaf[];
  /** Some attribute is only the base's (or changed type): its value is unconstrained. */
  unconstrained: string[];
  /** Head attributes the base never sees. */
  dropped: string[];
}

function sameKind(h: Ty, b: Ty): boolean {
  return b.k === 'record' ? h.k === 'record' : tyEq(h, b);
}

/**
 * `separate`: top-level attributes the base reads from its own constants even when
 * both declare them (the taint set, when the two label tables differ: the same
 * session mask names different labels on each side; dataplane-model.ts relates them).
 */
export function contextView(head: RecordTy, base: RecordTy, decls: Decls, separate: string[] = []): ContextView {
  const view: ContextView = { rec: { rec: {} }, admit: TRUE, leaves: [], unconstrained: [], dropped: [] };
  const admit: string[] = [];
  const walk = (path: string[], b: RecordTy, h: RecordTy | undefined, headHasParent: string): RecInner => {
    const rec: RecInner['rec'] = {};
    for (const [name, bf] of Object.entries(b.fields).sort(([x], [y]) => (x < y ? -1 : 1))) {
      const p = [...path, name];
      const hf = h?.fields[name];
      const shared = hf !== undefined && sameKind(hf.ty, bf.ty) && !(path.length === 0 && separate.includes(name));
      let present: string;
      let headHas = FALSE;
      if (shared) {
        headHas = hf.required ? TRUE : decls.addConst(ctxPresent(p), 'Bool');
        present = bf.required ? TRUE : headHas;
        if (bf.required && !hf.required) admit.push(implies(headHasParent, headHas));
      } else {
        if (h && !(path.length === 0 && separate.includes(name))) view.unconstrained.push(p.join('.'));
        present = bf.required ? TRUE : decls.addConst(ctxPresent(p, BASE_ONLY_ROOT), 'Bool');
      }
      const leaf: ViewLeaf = { path: p, ty: bf.ty, present: shared ? and(headHasParent, headHas) : present };
      view.leaves.push(leaf);
      let v: RecInner | string;
      if (bf.ty.k === 'record') v = walk(p, bf.ty, shared ? (hf.ty as RecordTy) : undefined, shared ? and(headHasParent, headHas) : FALSE);
      else if (isOpaque(bf.ty))
        v = FALSE; // never observable: any read is unsupported
      else {
        v = decls.addConst(shared ? ctxConst(p) : ctxConst(p, BASE_ONLY_ROOT), decls.useTy(bf.ty));
        leaf.value = v;
      }
      rec[name] = { present, ty: bf.ty, v };
    }
    if (h)
      for (const name of Object.keys(h.fields))
        if (!b.fields[name] || !sameKind(h.fields[name].ty, b.fields[name].ty)) view.dropped.push([...path, name].join('.'));
    return { rec };
  };
  view.rec = walk([], base, head, TRUE);
  view.admit = and(...admit);
  view.unconstrained.sort();
  view.dropped.sort();
  return view;
}
