// Stages 8–9 (extractor, concretizer): a model → a concrete Cedar request with
// entities (hierarchy repaired: every mentioned entity gets its model ancestors
// as parents, others get none), then RE-CHECKED with cedar-wasm. A
// counterexample that does not re-check is an encoder bug, never shown as fact.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { Ty, ProverSchema, RequestEnv } from './env.js';
import { ctxConst, ctxPresent, PRINCIPAL, RESOURCE, type Decls } from './compiler.js';
import { decodeBool, decodeEntity, decodeSet, decodeValue, type CedarJson, type SExpr } from './decoder.js';
import type { Cvc5 } from './solver.js';
import { ancsFn, bvLit } from './smt.js';

export interface EntityUid {
  type: string;
  id: string;
}

export interface Counterexample {
  principal: EntityUid;
  action: EntityUid;
  resource: EntityUid;
  context: Record<string, CedarJson>;
  entities: { uid: EntityUid; attrs: Record<string, never>; parents: EntityUid[] }[];
}

export class CounterexampleError extends Error {}

interface Leaf {
  path: string[];
  ty: Ty;
  required: boolean;
}

function leaves(ty: Ty & { k: 'record' }, path: string[] = []): Leaf[] {
  const out: Leaf[] = [];
  for (const [name, f] of Object.entries(ty.fields).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const p = [...path, name];
    if (f.ty.k === 'record') {
      out.push({ path: p, ty: f.ty, required: f.required });
      out.push(...leaves(f.ty, p));
    } else out.push({ path: p, ty: f.ty, required: f.required });
  }
  return out;
}

/** Asserts keeping Long context values within what JSON numbers carry exactly (tried first). */
export function safeLongBounds(env: RequestEnv): string[] {
  const lim = BigInt(Number.MAX_SAFE_INTEGER);
  return leaves(env.context)
    .filter((l) => l.ty.k === 'long')
    .map((l) => `(and (bvsge ${ctxConst(l.path)} ${bvLit(-lim)}) (bvsle ${ctxConst(l.path)} ${bvLit(lim)}))`);
}

/** Reads the model of the current (sat) solver state into a concrete request. */
export async function extract(solver: Cvc5, env: RequestEnv, decls: Decls, schema: ProverSchema): Promise<Counterexample> {
  const ls = leaves(env.context).filter((l) => l.ty.k !== 'ext');
  const terms: string[] = [PRINCIPAL, RESOURCE];
  const leafIdx: { leaf: Leaf; present?: number; value?: number }[] = [];
  for (const l of ls) {
    const e: { leaf: Leaf; present?: number; value?: number } = { leaf: l };
    if (!l.required) e.present = terms.push(ctxPresent(l.path)) - 1;
    if (l.ty.k !== 'record') e.value = terms.push(ctxConst(l.path)) - 1;
    leafIdx.push(e);
  }
  const fp: { type: string; guard: number; value: number; ancs: { type: string; idx: number }[] }[] = [];
  for (const [t, { type, guard }] of decls.footprint) {
    const item = { type, guard: terms.push(guard) - 1, value: terms.push(t) - 1, ancs: [] as { type: string; idx: number }[] };
    for (const b of schema.ancestorTypes.get(type) ?? []) {
      if (decls.ancs.has(`${type}\u0000${b}`)) item.ancs.push({ type: b, idx: terms.push(`(${ancsFn(type, b)} ${t})`) - 1 });
    }
    fp.push(item);
  }
  const vals: SExpr[] = await solver.getValues(terms);

  // Context: nested records rebuilt from their leaves; absent optionals omitted.
  const context: Record<string, CedarJson> = {};
  const absent = new Set<string>();
  for (const { leaf, present, value } of leafIdx) {
    const key = leaf.path.join('\u0000');
    const parentKey = leaf.path.slice(0, -1).join('\u0000');
    if (leaf.path.length > 1 && absent.has(parentKey)) {
      absent.add(key);
      continue;
    }
    if (present !== undefined && !decodeBool(vals[present])) {
      absent.add(key);
      continue;
    }
    let target = context;
    for (const p of leaf.path.slice(0, -1)) target = target[p] as Record<string, CedarJson>;
    const name = leaf.path[leaf.path.length - 1];
    target[name] = leaf.ty.k === 'record' ? {} : decodeValue(vals[value!], leaf.ty);
  }

  const entities = new Map<string, { uid: EntityUid; parents: Map<string, EntityUid> }>();
  const entity = (uid: EntityUid) => {
    const k = `${uid.type}::${JSON.stringify(uid.id)}`;
    let e = entities.get(k);
    if (!e) entities.set(k, (e = { uid, parents: new Map() }));
    return e;
  };
  const principal = decodeEntity(vals[0]);
  const resource = decodeEntity(vals[1]);
  entity(principal);
  entity(resource);
  for (const item of fp) {
    if (!decodeBool(vals[item.guard])) continue;
    // A literal of a type the head schema lacks (only a base policy can name one) cannot be in a
    // valid store; it is never anyone's ancestor, so leaving it out changes no decision.
    if (!schema.entityTypes.has(item.type)) continue;
    const e = entity(decodeEntity(vals[item.value]));
    for (const a of item.ancs) {
      for (const x of decodeSet(vals[a.idx])) {
        const p = decodeEntity(x);
        entity(p);
        e.parents.set(`${p.type}::${JSON.stringify(p.id)}`, p);
      }
    }
  }
  return {
    principal,
    action: { type: 'Action', id: env.action },
    resource,
    context,
    entities: [...entities.values()]
      .sort((a, b) => (`${a.uid.type}::${a.uid.id}` < `${b.uid.type}::${b.uid.id}` ? -1 : 1))
      .map((e) => ({ uid: e.uid, attrs: {}, parents: [...e.parents.values()].sort((a, b) => (`${a.type}::${a.id}` < `${b.type}::${b.id}` ? -1 : 1)) })),
  };
}

export interface ConcreteDecision {
  decision: 'allow' | 'deny';
  reasons: string[];
  errors: string[];
}

/** Evaluates a counterexample with cedar-wasm (the reference authorizer), validating the request against the schema. */
export function decide(cx: Counterexample, policies: Record<string, string>, schemaText: string): ConcreteDecision {
  const answer = cedar.isAuthorized({
    principal: cx.principal,
    action: cx.action,
    resource: cx.resource,
    context: cx.context as cedar.Context,
    policies: { staticPolicies: policies },
    entities: cx.entities as unknown as cedar.EntityJson[],
    schema: schemaText,
    validateRequest: true,
  });
  if (answer.type === 'failure') return { decision: 'deny', reasons: [], errors: answer.errors.map((e) => `request: ${e.message}`) };
  return {
    decision: answer.response.decision,
    reasons: answer.response.diagnostics.reason,
    errors: answer.response.diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
  };
}

export function describeCounterexample(cx: Counterexample): string {
  const uid = (u: EntityUid) => `${u.type}::${JSON.stringify(u.id)}`;
  const lines = [
    `principal: ${uid(cx.principal)}`,
    `action:    ${uid(cx.action)}`,
    `resource:  ${uid(cx.resource)}`,
    `context:   ${JSON.stringify(cx.context)}`,
  ];
  const withParents = cx.entities.filter((e) => e.parents.length);
  if (withParents.length) lines.push(`entities:  ${withParents.map((e) => `${uid(e.uid)} in [${e.parents.map(uid).join(', ')}]`).join('; ')}`);
  else lines.push('entities:  (no hierarchy needed)');
  return lines.join('\n');
}
