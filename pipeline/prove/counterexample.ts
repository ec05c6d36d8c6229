// Stages 8–9 (extractor, concretizer): a model → a concrete Cedar request with
// entities (hierarchy repaired: every mentioned entity gets its model ancestors
// as parents, others get none), then RE-CHECKED with cedar-wasm. A
// counterexample that does not re-check is an encoder bug, never shown as fact.
import { stringifyJsonLong } from '../../cedar/json-long.js';
import { withExactLongs } from '../../cedar/wasm-exact.js';
import * as cedar from '../../cedar/wasm-loader.js';
import { isActionType, type Ty, type ProverSchema, type RequestEnv } from './env.js';
import { attrFn, attrPresentFn, ctxConst, ctxPresent, existsFn, PRINCIPAL, RESOURCE, tagHasFn, tagValFn, type Decls } from './compiler.js';
import { decodeBool, decodeEntity, decodeSet, decodeValue, type CedarJson, type SExpr } from './decoder.js';
import type { Cvc5 } from './solver.js';
import { ancsFn, bvLit, isOpaque } from './smt.js';

export interface EntityUid {
  type: string;
  id: string;
}

export interface Counterexample {
  principal: EntityUid;
  action: EntityUid;
  resource: EntityUid;
  context: Record<string, CedarJson>;
  entities: { uid: EntityUid; attrs: Record<string, CedarJson>; parents: EntityUid[]; tags?: Record<string, CedarJson> }[];
}

export class CounterexampleError extends Error {
  /** A counterexample needs a value the report cannot write (an extension value). */
  readonly code = 'unsupported_value';
}

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

/** Enumerated entity types' ids (a default entity of such a type must have one). */
type EnumIds = (type: string) => string[] | undefined;

/** A value for an attribute no query observed: any valid value of the type will do. */
function defaultValue(ty: Ty, action: string, enumIds?: EnumIds): CedarJson {
  switch (ty.k) {
    case 'bool':
      return false;
    case 'long':
      return 0;
    case 'string':
      return '';
    case 'set':
      return [];
    case 'entity':
      // An attribute holding an action must name a declared one: the request's own is.
      return { __entity: { type: ty.name, id: isActionType(ty.name) ? action : (enumIds?.(ty.name)?.[0] ?? '') } };
    case 'record':
      return Object.fromEntries(
        Object.entries(ty.fields)
          .filter(([, f]) => f.required)
          .map(([k, f]) => [k, defaultValue(f.ty, action, enumIds)]),
      );
    case 'ext':
      return extensionValue(ty.name);
  }
}

/**
 * A value of an extension type. The prover refuses every policy that reads one,
 * so no decision depends on which: a required extension-typed attribute only
 * needs some valid value for cedar-wasm to accept the request.
 */
function extensionValue(name: string): CedarJson {
  const arg = {
    ipaddr: ['ip', '0.0.0.0'],
    decimal: ['decimal', '0.0'],
    datetime: ['datetime', '1970-01-01'],
    duration: ['duration', '0ms'],
  }[name];
  if (!arg) throw new CounterexampleError(`unsupported: a counterexample needs a value of extension type ${name}`);
  return { __extn: { fn: arg[0], arg: arg[1] } } as unknown as CedarJson;
}

/** A value of a type with no SMT sort (isOpaque): no policy reads one, so any valid value will do. */
function opaqueValue(ty: Ty, action: string): CedarJson {
  return ty.k === 'ext' ? extensionValue(ty.name) : ty.k === 'entity' ? defaultValue(ty, action) : [];
}

/** One attribute of a context to read back: its presence and value terms (records and extension values have no value term). */
export interface ContextLeaf {
  path: string[];
  ty: Ty;
  present: string;
  value?: string;
}

/** Reads a context record from the model: absent optionals omitted, extension values filled in. */
export async function readContext(solver: Cvc5, ls: ContextLeaf[], action: string): Promise<Record<string, CedarJson>> {
  const terms: string[] = [];
  const idx = ls.map((l) => ({
    l,
    present: l.present === 'true' ? undefined : terms.push(l.present) - 1,
    value: l.value === undefined ? undefined : terms.push(l.value) - 1,
  }));
  const vals = await solver.getValues(terms);
  const out: Record<string, CedarJson> = {};
  const absent = new Set<string>();
  for (const { l, present, value } of idx) {
    const key = l.path.join('\u0000');
    if (l.path.length > 1 && absent.has(l.path.slice(0, -1).join('\u0000'))) {
      absent.add(key);
      continue;
    }
    if (present !== undefined && !decodeBool(vals[present])) {
      absent.add(key);
      continue;
    }
    let target = out;
    for (const p of l.path.slice(0, -1)) target = target[p] as Record<string, CedarJson>;
    target[l.path[l.path.length - 1]] =
      l.ty.k === 'record' ? {} : isOpaque(l.ty) ? opaqueValue(l.ty, action) : decodeValue(vals[value!], l.ty);
  }
  return out;
}

/** Rebuilds a (possibly nested) record from decoded leaves; undecided optionals are left out. */
function buildRecord(ls: { leaf: Leaf; present?: boolean; value?: SExpr }[], action: string, enumIds: EnumIds): Record<string, CedarJson> {
  const out: Record<string, CedarJson> = {};
  const absent = new Set<string>();
  for (const { leaf, present, value } of ls) {
    const key = leaf.path.join('\u0000');
    if (leaf.path.length > 1 && absent.has(leaf.path.slice(0, -1).join('\u0000'))) {
      absent.add(key);
      continue;
    }
    if (!leaf.required && present !== true) {
      absent.add(key);
      continue;
    }
    let target = out;
    for (const p of leaf.path.slice(0, -1)) target = target[p] as Record<string, CedarJson>;
    const name = leaf.path[leaf.path.length - 1];
    target[name] = leaf.ty.k === 'record' ? {} : value === undefined ? defaultValue(leaf.ty, action, enumIds) : decodeValue(value, leaf.ty);
  }
  return out;
}

/** Asserts keeping Long values (context and mentioned entities' attributes) within ±(2^53 − 1), tried first: readable witnesses (any value is exact, as a BigInt beyond). */
export function safeLongBounds(env: RequestEnv, decls: Decls, schema: ProverSchema): string[] {
  const lim = BigInt(Number.MAX_SAFE_INTEGER);
  const bound = (t: string) => `(and (bvsge ${t} ${bvLit(-lim)}) (bvsle ${t} ${bvLit(lim)}))`;
  // Every Long constant: the request's and the base-only attributes' (context-view.ts).
  const out = [
    ...new Set([
      ...leaves(env.context)
        .filter((l) => l.ty.k === 'long')
        .map((l) => ctxConst(l.path)),
      ...[...decls.consts].filter(([, sort]) => sort === '(_ BitVec 64)').map(([n]) => n),
    ]),
  ]
    .sort()
    .map(bound);
  for (const [t, { type }] of decls.footprint) {
    const shape = schema.entityTypes.get(type)?.shape;
    if (!shape) continue;
    for (const l of leaves(shape))
      if (l.ty.k === 'long' && decls.funcs.has(attrFn(type, l.path))) out.push(bound(`(${attrFn(type, l.path)} ${t})`));
  }
  for (const r of decls.tagReads)
    if (decls.tagFns.get(tagValFn(r.type))?.[1] === '(_ BitVec 64)') out.push(bound(`(${tagValFn(r.type)} ${r.entity} ${r.key})`));
  return out;
}

/** Reads the model of the current (sat) solver state into a concrete request. */
export async function extract(solver: Cvc5, env: RequestEnv, decls: Decls, schema: ProverSchema): Promise<Counterexample> {
  const ls = leaves(env.context);
  const terms: string[] = [PRINCIPAL, RESOURCE];
  const leafIdx: { leaf: Leaf; present?: number; value?: number }[] = [];
  for (const l of ls) {
    const e: { leaf: Leaf; present?: number; value?: number } = { leaf: l };
    if (!l.required) e.present = terms.push(ctxPresent(l.path)) - 1;
    if (l.ty.k !== 'record' && !isOpaque(l.ty)) e.value = terms.push(ctxConst(l.path)) - 1;
    leafIdx.push(e);
  }
  interface AttrLeaf {
    leaf: Leaf;
    present?: number;
    value?: number;
  }
  const fp: { type: string; guard: number; value: number; exists?: number; attrs?: AttrLeaf[]; ancs: { type: string; idx: number }[] }[] =
    [];
  for (const [t, { type, guard }] of decls.footprint) {
    const item: (typeof fp)[number] = { type, guard: terms.push(guard) - 1, value: terms.push(t) - 1, ancs: [] };
    for (const b of schema.ancestorTypes.get(type) ?? []) {
      if (decls.ancs.has(`${type}\u0000${b}`)) item.ancs.push({ type: b, idx: terms.push(`(${ancsFn(type, b)} ${t})`) - 1 });
    }
    const shape = schema.entityTypes.get(type)?.shape;
    if (decls.funcs.has(existsFn(type))) item.exists = terms.push(`(${existsFn(type)} ${t})`) - 1;
    if (shape) {
      item.attrs = leaves(shape).map((leaf) => {
        const a: AttrLeaf = { leaf };
        if (!leaf.required && decls.funcs.has(attrPresentFn(type, leaf.path)))
          a.present = terms.push(`(${attrPresentFn(type, leaf.path)} ${t})`) - 1;
        if (leaf.ty.k !== 'record' && decls.funcs.has(attrFn(type, leaf.path)))
          a.value = terms.push(`(${attrFn(type, leaf.path)} ${t})`) - 1;
        return a;
      });
    }
    fp.push(item);
  }
  // Tags the query reads: the entity, the key, whether it has the tag and its value.
  const tags = decls.tagReads
    .filter((r) => decls.tagFns.has(tagHasFn(r.type)))
    .map((r) => ({
      type: r.type,
      guard: terms.push(r.guard) - 1,
      entity: terms.push(r.entity) - 1,
      key: terms.push(r.key) - 1,
      has: terms.push(`(${tagHasFn(r.type)} ${r.entity} ${r.key})`) - 1,
      value: decls.tagFns.has(tagValFn(r.type)) ? terms.push(`(${tagValFn(r.type)} ${r.entity} ${r.key})`) - 1 : undefined,
    }));
  const vals: SExpr[] = await solver.getValues(terms);
  const enumIds: EnumIds = (type) => schema.entityTypes.get(type)?.enumIds;

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
    target[name] = leaf.ty.k === 'record' ? {} : isOpaque(leaf.ty) ? opaqueValue(leaf.ty, env.action) : decodeValue(vals[value!], leaf.ty);
  }

  const entities = new Map<
    string,
    {
      uid: EntityUid;
      attrs: Record<string, CedarJson>;
      parents: Map<string, EntityUid>;
      inStore: boolean;
      tags: Map<string, CedarJson>;
    }
  >();
  const entity = (uid: EntityUid) => {
    const k = `${uid.type}::${JSON.stringify(uid.id)}`;
    let e = entities.get(k);
    if (!e) entities.set(k, (e = { uid, attrs: {}, parents: new Map(), inStore: false, tags: new Map() }));
    return e;
  };
  const principal = decodeEntity(vals[0]);
  const resource = decodeEntity(vals[1]);
  for (const item of fp) {
    if (!decodeBool(vals[item.guard])) continue;
    // A literal of a type the head schema lacks (only a base policy can name one) cannot be in a
    // valid store; it is never anyone's ancestor, so leaving it out changes no decision.
    if (!schema.entityTypes.has(item.type)) continue;
    const e = entity(decodeEntity(vals[item.value]));
    for (const a of item.ancs) {
      for (const x of decodeSet(vals[a.idx])) {
        const p = decodeEntity(x);
        e.parents.set(`${p.type}::${JSON.stringify(p.id)}`, p);
      }
    }
    if (item.attrs) {
      // Entities with attributes are in the store exactly when the model says they exist
      // (or, existence unobserved, when they need parents); others stay dangling references.
      e.inStore = item.exists !== undefined ? decodeBool(vals[item.exists]) : e.parents.size > 0;
      if (e.inStore)
        e.attrs = buildRecord(
          item.attrs.map((a) => ({
            ...a,
            present: a.present === undefined ? undefined : decodeBool(vals[a.present]),
            value: a.value === undefined ? undefined : vals[a.value],
          })),
          env.action,
          enumIds,
        );
    } else e.inStore = item.exists !== undefined ? decodeBool(vals[item.exists]) : true;
  }
  // Tags: an existing entity carries each tag the model gives it (hasTag true), with
  // the model's value or, when no getTag observed it, any value of the tag type.
  for (const t of tags) {
    if (!decodeBool(vals[t.guard]) || !decodeBool(vals[t.has])) continue;
    const e = entities.get(((u) => `${u.type}::${JSON.stringify(u.id)}`)(decodeEntity(vals[t.entity])));
    const tagTy = schema.entityTypes.get(t.type)?.tags;
    if (!e || !tagTy) continue;
    e.tags.set(
      decodeValue(vals[t.key], { k: 'string' }) as string,
      t.value === undefined ? defaultValue(tagTy, env.action, enumIds) : decodeValue(vals[t.value], tagTy),
    );
  }
  // Ancestors no query term mentions stay dangling parent references (Cedar allows them).
  return {
    principal,
    action: { type: env.actionType, id: env.action },
    resource,
    context,
    entities: [...entities.values()]
      .filter((e) => e.inStore)
      .sort((a, b) => (`${a.uid.type}::${a.uid.id}` < `${b.uid.type}::${b.uid.id}` ? -1 : 1))
      .map((e) => ({
        uid: e.uid,
        attrs: e.attrs,
        parents: [...e.parents.values()].sort((a, b) => (`${a.type}::${a.id}` < `${b.type}::${b.id}` ? -1 : 1)),
        ...(e.tags.size ? { tags: Object.fromEntries([...e.tags].sort(([a], [b]) => (a < b ? -1 : 1))) } : {}),
      })),
  };
}

export interface ConcreteDecision {
  decision: 'allow' | 'deny';
  reasons: string[];
  errors: string[];
}

/** Evaluates a counterexample with cedar-wasm (the reference authorizer), validating the request against the schema. */
export function decide(cx: Counterexample, policies: Record<string, string>, schemaText: string): ConcreteDecision {
  // Longs beyond 2^53 reach cedar-wasm exact: the re-check sees the witness's values.
  const answer = withExactLongs(cedar.isAuthorized, {
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
    `context:   ${stringifyJsonLong(cx.context)}`,
  ];
  const shown = cx.entities.filter((e) => e.parents.length || Object.keys(e.attrs).length || e.tags);
  const one = (e: Counterexample['entities'][number]) =>
    `${uid(e.uid)}${Object.keys(e.attrs).length ? ` ${stringifyJsonLong(e.attrs)}` : ''}${e.tags ? ` tags ${stringifyJsonLong(e.tags)}` : ''}${e.parents.length ? ` in [${e.parents.map(uid).join(', ')}]` : ''}`;
  if (shown.length) lines.push(`entities:  ${shown.map(one).join('; ')}`);
  else lines.push('entities:  (no hierarchy needed)');
  return lines.join('\n');
}
