// Stage 2 (compiler): a Cedar expression (policy JSON, `policyToJson`) → a typed
// term for one request environment. Every term carries `err`, a Bool formula
// that holds exactly when Cedar evaluation would raise an error (SymCC's
// `Option T` with `none` = error, split into an error flag and a value), so a
// policy is satisfied only when its condition is "some true".
//
// Records have no SMT sort: they are flattened into per-field terms with a
// presence flag (optional attributes), which is all Cedar can observe of them.
import type { PolicyJson } from '@cedar-policy/cedar-wasm/nodejs';
import { actionKey, isActionType, tyEq, tyName, type ProverSchema, type RequestEnv, type Ty } from './env.js';
import {
  and,
  ancsFn,
  BV_ZERO,
  bvLit,
  emptySet,
  entityLit,
  entitySort,
  eq,
  FALSE,
  ite,
  not,
  or,
  isOpaque,
  sortOf,
  strLit,
  sym,
  TRUE,
  UnsupportedError,
} from './smt.js';

type Inner = string | RecInner;
export interface RecInner {
  rec: Record<string, { present: string; ty: Ty; v: Inner }>;
}

export interface Term {
  ty: Ty;
  /** Bool formula: evaluation raises an error. */
  err: string;
  v: Inner;
  /** Always an error whatever the inputs; its type is meaningless. */
  dead?: boolean;
  /** A concrete entity (literal or the action variable). */
  lit?: { type: string; id: string };
  /** Elements of a set literal, for concrete action hierarchy checks. */
  elems?: Term[];
}

/** What one query needs declared: entity sorts, constants, ancestor functions, and the footprint. */
export class Decls {
  readonly sorts = new Set<string>();
  readonly consts = new Map<string, string>();
  readonly ancs = new Set<string>();
  /** Uninterpreted unary functions over entities (existence, attributes): name → [arg sort, result sort]. */
  readonly funcs = new Map<string, [string, string]>();
  /** Entity-valued terms the query mentions → type and the condition under which they are defined. */
  readonly footprint = new Map<string, { type: string; guard: string }>();
  /** Entity functions of a concrete store (deployed-store proof): defined from the store, not declared. */
  readonly storeFns = new Map<string, StoreFn>();
  /** Uninterpreted tag functions (entity × key): name → [entity sort, result sort]. */
  readonly tagFns = new Map<string, [string, string]>();
  /** Every tag the query reads (hasTag/getTag): entity term, its type, key term, and when it is read. */
  readonly tagReads: { entity: string; type: string; key: string; guard: string }[] = [];

  useSort(type: string): string {
    this.sorts.add(type);
    return entitySort(type);
  }
  /** The SMT sort of a value type, declaring the entity sorts it mentions (sets of entities included). */
  useTy(ty: Ty): string {
    if (ty.k === 'entity') this.useSort(ty.name);
    if (ty.k === 'set' && ty.elem.k === 'entity') this.useSort(ty.elem.name);
    return sortOf(ty);
  }
  useAncs(from: string, to: string): string {
    this.useSort(from);
    this.useSort(to);
    this.ancs.add(`${from}\u0000${to}`);
    return ancsFn(from, to);
  }
  useFunc(name: string, arg: string, ret: string): string {
    this.funcs.set(name, [arg, ret]);
    return name;
  }
  useTagFn(name: string, arg: string, ret: string): string {
    this.tagFns.set(name, [arg, ret]);
    return name;
  }
  tagRead(entity: string, type: string, key: string, guard: string): void {
    if (!this.tagReads.some((r) => r.entity === entity && r.key === key)) this.tagReads.push({ entity, type, key, guard });
    else {
      const r = this.tagReads.find((x) => x.entity === entity && x.key === key)!;
      r.guard = or(r.guard, guard);
    }
  }
  useStoreFn(f: StoreFn): string {
    this.useSort(f.type);
    if (f.kind === 'ancs') this.useSort(f.to);
    if (f.kind === 'attr' || f.kind === 'tagVal') this.useTy(f.ty);
    const name = storeFnName(f);
    this.storeFns.set(name, f);
    return name;
  }
  addConst(name: string, sort: string): string {
    this.consts.set(name, sort);
    return name;
  }
  mention(term: string, type: string, guard: string): void {
    if (isActionType(type)) return;
    const prev = this.footprint.get(term);
    this.footprint.set(term, { type, guard: prev ? or(prev.guard, guard) : guard });
  }
}

/**
 * An entity function of one concrete store, named by the store's tag: its ancestor
 * sets of a type (`ancs`), existence, an attribute leaf or its presence.
 */
export type StoreFn =
  | { tag: string; kind: 'ancs'; type: string; to: string }
  | { tag: string; kind: 'exists'; type: string }
  | { tag: string; kind: 'attr'; type: string; path: string[]; ty: Ty }
  | { tag: string; kind: 'present'; type: string; path: string[] }
  /** Tags (binary: entity × key): does the entity have the tag, and its value. */
  | { tag: string; kind: 'tagHas'; type: string }
  | { tag: string; kind: 'tagVal'; type: string; ty: Ty };

export function storeFnName(f: StoreFn): string {
  switch (f.kind) {
    case 'ancs':
      return sym(`${f.tag}:ancs.${f.type}.${f.to}`);
    case 'exists':
      return sym(`${f.tag}:exists.${f.type}`);
    case 'attr':
      return sym(`${f.tag}:attr.${f.type}.${encodePath(f.path)}`);
    case 'present':
      return sym(`${f.tag}:attr.${f.type}.${encodePath(f.path)}?`);
    case 'tagHas':
      return sym(`${f.tag}:tag.${f.type}?`);
    case 'tagVal':
      return sym(`${f.tag}:tag.${f.type}`);
  }
}

export interface CompileEnv {
  /** Entity types (attributes, ancestor types): the head schema's, shared by both sides. */
  schema: ProverSchema;
  /** Action hierarchy of the side being compiled (base and head may differ). */
  actionAncestors: Map<string, Set<string>>;
  env: RequestEnv;
  decls: Decls;
  /** The context variable's record (default: free constants for env.context); the base side gets its view of the head request. */
  context?: RecInner;
  /**
   * Tag of a concrete entity store (the deployed store of one side): ancestors,
   * existence and attributes are that store's functions (Decls.storeFns), defined
   * by the gate, instead of the uninterpreted ones every store shares.
   */
  store?: string;
}

export const PRINCIPAL = sym('principal');
export const RESOURCE = sym('resource');

function encodePath(path: string[]): string {
  return path.map((p) => encodeURIComponent(p).replace(/\./g, '%2E')).join('.');
}
/**
 * Constant name of a context leaf (value) and of its presence flag. `root` "ctx"
 * is the request; "bctx" holds attributes only the base schema declares (context-view.ts).
 */
export function ctxConst(path: string[], root = 'ctx'): string {
  return sym(`${root}.${encodePath(path)}`);
}
export function ctxPresent(path: string[], root = 'ctx'): string {
  return sym(`${root}.${encodePath(path)}?`);
}

/** Entity existence (in the store) and attribute leaf functions. */
export function existsFn(type: string): string {
  return sym(`exists.${type}`);
}
export function attrFn(type: string, path: string[]): string {
  return sym(`attr.${type}.${encodePath(path)}`);
}
export function attrPresentFn(type: string, path: string[]): string {
  return sym(`attr.${type}.${encodePath(path)}?`);
}
/** Tag functions of an entity type: presence and value, over (entity, key). */
export function tagHasFn(type: string): string {
  return sym(`tag.${type}?`);
}
export function tagValFn(type: string): string {
  return sym(`tag.${type}`);
}

/** An entity's attributes: a record whose leaves are uninterpreted functions applied to the entity. */
export function entityRecord(
  type: string,
  entity: string,
  path: string[],
  ty: Ty & { k: 'record' },
  decls: Decls,
  store?: string,
): RecInner {
  const rec: RecInner['rec'] = {};
  const arg = entitySort(type);
  for (const [name, f] of Object.entries(ty.fields)) {
    const p = [...path, name];
    const present = f.required
      ? TRUE
      : `(${store ? decls.useStoreFn({ tag: store, kind: 'present', type, path: p }) : decls.useFunc(attrPresentFn(type, p), arg, 'Bool')} ${entity})`;
    let v: Inner;
    if (f.ty.k === 'record') v = entityRecord(type, entity, p, f.ty, decls, store);
    else if (isOpaque(f.ty))
      v = FALSE; // unusable: any read is reported unsupported
    else {
      const fn = store
        ? decls.useStoreFn({ tag: store, kind: 'attr', type, path: p, ty: f.ty })
        : decls.useFunc(attrFn(type, p), arg, decls.useTy(f.ty));
      v = `(${fn} ${entity})`;
    }
    rec[name] = { present, ty: f.ty, v };
  }
  return { rec };
}

/** The context variable: a record whose leaves are free constants. */
export function symbolicRecord(path: string[], ty: Ty & { k: 'record' }, decls: Decls): RecInner {
  const rec: RecInner['rec'] = {};
  for (const [name, f] of Object.entries(ty.fields)) {
    const p = [...path, name];
    const present = f.required ? TRUE : decls.addConst(ctxPresent(p), 'Bool');
    let v: Inner;
    if (f.ty.k === 'record') v = symbolicRecord(p, f.ty, decls);
    else if (isOpaque(f.ty))
      v = FALSE; // unusable: any read is reported unsupported
    else {
      v = decls.addConst(ctxConst(p), decls.useTy(f.ty));
    }
    rec[name] = { present, ty: f.ty, v };
  }
  return { rec };
}

export interface CompiledPolicy {
  id: string;
  effect: 'permit' | 'forbid';
  /** Scope and every condition hold without error. */
  sat: string;
  /** Evaluation raises an error (conditions short-circuit in order). */
  err: string;
}

/** Element type of a set literal holding entities of several types. */
const MIXED: Ty = { k: 'entity', name: '\u0000mixed' };
const isMixed = (t: Term) => t.ty.k === 'set' && t.ty.elem === MIXED;

const ERR: Term = { ty: { k: 'bool' }, err: TRUE, v: FALSE, dead: true };
const bool = (v: string, err: string): Term => ({ ty: { k: 'bool' }, err, v });

export class Compiler {
  private readonly vars: Record<string, Term>;
  private policyId = '';

  constructor(private readonly c: CompileEnv) {
    const { env, decls } = c;
    decls.useSort(env.principalType);
    decls.useSort(env.resourceType);
    decls.addConst(PRINCIPAL, entitySort(env.principalType));
    decls.addConst(RESOURCE, entitySort(env.resourceType));
    decls.mention(PRINCIPAL, env.principalType, TRUE);
    decls.mention(RESOURCE, env.resourceType, TRUE);
    this.vars = {
      principal: { ty: { k: 'entity', name: env.principalType }, err: FALSE, v: PRINCIPAL },
      resource: { ty: { k: 'entity', name: env.resourceType }, err: FALSE, v: RESOURCE },
      action: { ty: { k: 'entity', name: env.actionType }, err: FALSE, v: '', lit: { type: env.actionType, id: env.action } },
      context: { ty: env.context, err: FALSE, v: c.context ?? symbolicRecord([], env.context, decls) },
    };
  }

  private unsupported(what: string): never {
    throw new UnsupportedError(`unsupported: ${what} in policy ${this.policyId}`);
  }

  compilePolicy(id: string, json: PolicyJson): CompiledPolicy {
    this.policyId = id;
    try {
      return this.compileBody(id, json);
    } catch (err) {
      // A refusal raised below the compiler (a value with no SMT sort) still names the policy.
      if (err instanceof UnsupportedError && !err.message.endsWith(` in policy ${id}`))
        this.unsupported(err.message.replace(/^unsupported: /, ''));
      throw err;
    }
  }

  private compileBody(id: string, json: PolicyJson): CompiledPolicy {
    const p = json as unknown as {
      effect: 'permit' | 'forbid';
      principal: ScopeJson;
      action: ScopeJson;
      resource: ScopeJson;
      conditions: { kind: 'when' | 'unless'; body: unknown }[];
    };
    const scope = and(
      this.entityScope(p.principal, this.vars.principal),
      this.actionScope(p.action),
      this.entityScope(p.resource, this.vars.resource),
    );
    const passes: string[] = [scope];
    const errs: string[] = [];
    for (const cond of p.conditions ?? []) {
      const t = this.compile(cond.body);
      if (t.dead || t.ty.k !== 'bool') {
        errs.push(and(...passes));
        passes.push(FALSE);
        break;
      }
      const v = t.v as string;
      errs.push(and(...passes, t.err));
      passes.push(not(t.err), cond.kind === 'when' ? v : not(v));
    }
    return { id, effect: p.effect, sat: and(...passes), err: or(...errs) };
  }

  private entityLiteral(e: { type: string; id: string }): Term {
    if (isActionType(e.type)) return { ty: { k: 'entity', name: e.type }, err: FALSE, v: '', lit: { type: e.type, id: e.id } };
    this.c.decls.useSort(e.type);
    const v = entityLit(e.type, e.id);
    this.c.decls.mention(v, e.type, TRUE);
    return { ty: { k: 'entity', name: e.type }, err: FALSE, v, lit: e };
  }

  private entityScope(s: ScopeJson, x: Term): string {
    switch (s.op) {
      case 'All':
        return TRUE;
      case '==':
        return this.eqVal(x, this.entityLiteral(this.noSlot(s.entity)));
      case 'in':
        return this.inEntity(x, this.entityLiteral(this.noSlot(s.entity)));
      case 'is': {
        const isT = (x.ty as { name: string }).name === s.entity_type ? TRUE : FALSE;
        return s.in ? and(isT, this.inEntity(x, this.entityLiteral(this.noSlot(s.in.entity)))) : isT;
      }
      default:
        return this.unsupported(`scope operator ${JSON.stringify((s as { op: string }).op)}`);
    }
  }

  private noSlot(e: { type: string; id: string } | undefined): { type: string; id: string } {
    if (!e || typeof e.type !== 'string') this.unsupported('template slots');
    return e;
  }

  private actionScope(s: ScopeJson): string {
    const a = this.vars.action;
    switch (s.op) {
      case 'All':
        return TRUE;
      case '==':
        return this.eqVal(a, this.entityLiteral(this.noSlot(s.entity)));
      case 'in':
        if (s.entities) return or(...s.entities.map((e) => this.inEntity(a, this.entityLiteral(e))));
        return this.inEntity(a, this.entityLiteral(this.noSlot(s.entity)));
      default:
        return this.unsupported(`action scope operator ${JSON.stringify(s.op)}`);
    }
  }

  // ---- value-level helpers ------------------------------------------------

  /** Cedar `==` on two evaluated values (no error part). */
  private eqVal(a: Term, b: Term): string {
    if (a.ty.k === 'ext' || b.ty.k === 'ext') this.unsupported('extension values');
    if (a.lit && b.lit && a.ty.k === 'entity' && b.ty.k === 'entity')
      return a.lit.type === b.lit.type && a.lit.id === b.lit.id ? TRUE : FALSE;
    if ((a.ty.k === 'entity' && isActionType(a.ty.name)) || (b.ty.k === 'entity' && isActionType(b.ty.name))) {
      if (a.ty.k === 'entity' && b.ty.k === 'entity' && a.ty.name === b.ty.name) this.unsupported('comparison of non-literal actions');
      return FALSE;
    }
    if (a.ty.k === 'record' && b.ty.k === 'record') {
      const ra = (a.v as RecInner).rec;
      const rb = (b.v as RecInner).rec;
      const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
      const parts: string[] = [];
      for (const k of keys) {
        const fa = ra[k];
        const fb = rb[k];
        if (!fa || !fb) {
          parts.push(not((fa ?? fb).present));
          continue;
        }
        const same = this.eqVal({ ty: fa.ty, err: FALSE, v: fa.v }, { ty: fb.ty, err: FALSE, v: fb.v });
        parts.push(eq(fa.present, fb.present), or(not(fa.present), same));
      }
      return and(...parts);
    }
    if (isMixed(a) || isMixed(b)) this.unsupported('== on a set literal mixing entity types');
    if (a.ty.k === 'set' && b.ty.k === 'set') {
      if (tyEq(a.ty.elem, b.ty.elem)) return eq(a.v as string, b.v as string);
      // Sets of different element types are equal only when both are empty.
      return and(`(= ${a.v} ${emptySet(a.ty.elem)})`, `(= ${b.v} ${emptySet(b.ty.elem)})`);
    }
    if (tyEq(a.ty, b.ty)) return eq(a.v as string, b.v as string);
    return FALSE;
  }

  /** `a in b` for an entity a and an entity b (values, no error part). */
  private inEntity(a: Term, b: Term): string {
    if (a.ty.k !== 'entity' || b.ty.k !== 'entity') throw new Error('inEntity on non-entities');
    if (isActionType(a.ty.name) || isActionType(b.ty.name)) {
      if (!isActionType(a.ty.name) || !isActionType(b.ty.name)) return FALSE;
      if (!a.lit || !b.lit) this.unsupported('`in` on non-literal actions');
      const [ak, bk] = [actionKey(a.lit.type, a.lit.id), actionKey(b.lit.type, b.lit.id)];
      return ak === bk || (this.c.actionAncestors.get(ak)?.has(bk) ?? false) ? TRUE : FALSE;
    }
    const self = a.ty.name === b.ty.name ? eq(a.v as string, b.v as string) : FALSE;
    if (!this.canHaveAncestor(a.ty.name, b.ty.name)) return self;
    return or(self, `(set.member ${b.v} (${this.ancs(a.ty.name, b.ty.name)} ${a.v}))`);
  }

  /** The ancestor-set function from entities of one type to their ancestors of another: every store's, or the tagged store's. */
  private ancs(from: string, to: string): string {
    const tag = this.c.store;
    return tag ? this.c.decls.useStoreFn({ tag, kind: 'ancs', type: from, to }) : this.c.decls.useAncs(from, to);
  }

  private exists(type: string): string {
    const tag = this.c.store;
    return tag ? this.c.decls.useStoreFn({ tag, kind: 'exists', type }) : this.c.decls.useFunc(existsFn(type), entitySort(type), 'Bool');
  }

  private canHaveAncestor(from: string, to: string): boolean {
    return this.c.schema.ancestorTypes.get(from)?.has(to) ?? false;
  }

  private inSet(a: Term, s: Term): string {
    if (a.ty.k !== 'entity' || s.ty.k !== 'set' || s.ty.elem.k !== 'entity') throw new Error('inSet on wrong types');
    const elemType = s.ty.elem.name;
    if (s.elems) return or(...s.elems.map((e) => this.inEntity(a, e)));
    if (isActionType(a.ty.name) || isActionType(elemType)) {
      if (!isActionType(a.ty.name) || !isActionType(elemType)) return FALSE;
      this.unsupported('`in` on non-literal action sets');
    }
    const self = a.ty.name === elemType ? `(set.member ${a.v} ${s.v})` : FALSE;
    if (!this.canHaveAncestor(a.ty.name, elemType)) return self;
    const anc = `(${this.ancs(a.ty.name, elemType)} ${a.v})`;
    return or(self, not(`(= (set.inter ${anc} ${s.v}) ${emptySet(s.ty.elem)})`));
  }

  private valueOf(t: Term): string {
    if (t.ty.k === 'entity' && isActionType(t.ty.name)) {
      this.c.decls.useSort(t.lit!.type);
      return entityLit(t.lit!.type, t.lit!.id);
    }
    if (typeof t.v !== 'string') this.unsupported('record used as a set element');
    return t.v;
  }

  // ---- expressions ----------------------------------------------------------

  compile(x: unknown): Term {
    if (x === null || typeof x !== 'object') this.unsupported(`expression ${JSON.stringify(x)}`);
    const keys = Object.keys(x);
    if (keys.length !== 1) this.unsupported(`expression with keys ${keys.join(',')}`);
    const op = keys[0];
    // biome-ignore lint/suspicious/noExplicitAny: a policy JSON node, checked by shape per operator below
    const arg = (x as Record<string, any>)[op];
    switch (op) {
      case 'Value':
        return this.value(arg);
      case 'Var':
        if (!(arg in this.vars)) this.unsupported(`variable ${arg}`);
        return this.vars[arg];
      case 'Slot':
        return this.unsupported('template slots');
      case 'Unknown':
        return this.unsupported('unknowns');
      case '!': {
        const t = this.compile(arg.arg);
        if (t.dead || t.ty.k !== 'bool') return ERR;
        return bool(not(t.v as string), t.err);
      }
      case 'neg': {
        const t = this.compile(arg.arg);
        if (t.dead || t.ty.k !== 'long') return this.typeErr(t);
        const v = t.v as string;
        return { ty: { k: 'long' }, err: or(t.err, `(= ${v} ${bvLit(-(1n << 63n))})`), v: `(bvneg ${v})` };
      }
      case '&&':
      case '||':
        return this.shortCircuit(op, this.compile(arg.left), () => this.compile(arg.right));
      case 'if-then-else':
        return this.ifThenElse(arg);
      case '==':
      case '!=': {
        const [a, b] = [this.compile(arg.left), this.compile(arg.right)];
        if (a.dead || b.dead) return ERR;
        const v = this.eqVal(a, b);
        return bool(op === '==' ? v : not(v), or(a.err, b.err));
      }
      case '<':
      case '<=':
      case '>':
      case '>=':
        return this.compare(op, this.compile(arg.left), this.compile(arg.right));
      case '+':
      case '-':
      case '*':
        return this.arith(op, this.compile(arg.left), this.compile(arg.right));
      case 'in':
        return this.inExpr(this.compile(arg.left), this.compile(arg.right));
      case 'contains':
      case 'containsAll':
      case 'containsAny':
        return this.setOp(op, this.compile(arg.left), this.compile(arg.right));
      case 'isEmpty': {
        const t = this.compile(arg.arg);
        if (t.dead || t.ty.k !== 'set') return this.typeErr(t);
        if (isMixed(t)) return bool(FALSE, t.err);
        return bool(`(= ${t.v} ${emptySet(t.ty.elem)})`, t.err);
      }
      case '.':
        return this.getAttr(this.compile(arg.left), arg.attr);
      case 'has': {
        const path: string[] = Array.isArray(arg.attr) ? arg.attr : [arg.attr];
        return this.hasPath(this.compile(arg.left), path);
      }
      case 'like': {
        const t = this.compile(arg.left);
        if (t.dead || t.ty.k !== 'string') return this.typeErr(t);
        return bool(`(str.in_re ${t.v} ${likeRegex(arg.pattern)})`, t.err);
      }
      case 'is': {
        const t = this.compile(arg.left);
        if (t.dead || t.ty.k !== 'entity') return this.typeErr(t);
        const isT = bool(t.ty.name === arg.entity_type ? TRUE : FALSE, t.err);
        if (arg.in === undefined) return isT;
        return this.shortCircuit('&&', isT, () => this.inExpr({ ...t, err: FALSE }, this.compile(arg.in)));
      }
      case 'Set':
        return this.setLiteral(arg as unknown[]);
      case 'Record': {
        const rec: RecInner['rec'] = {};
        const errs: string[] = [];
        for (const [k, e] of Object.entries(arg as Record<string, unknown>)) {
          const t = this.compile(e);
          if (t.dead) return ERR;
          if (isMixed(t)) this.unsupported('record holding a set literal mixing entity types');
          errs.push(t.err);
          rec[k] = { present: TRUE, ty: t.ty, v: t.v };
        }
        return {
          ty: { k: 'record', fields: Object.fromEntries(Object.entries(rec).map(([k, f]) => [k, { ty: f.ty, required: true }])) },
          err: or(...errs),
          v: { rec },
        };
      }
      case 'getTag':
      case 'hasTag':
        return this.tagOp(op, this.compile(arg.left), () => this.compile(arg.right));
      default:
        return this.unsupported(`function or extension ${op}()`);
    }
  }

  /** A well-typed-but-wrong operand: Cedar evaluates it, then raises a type error. */
  private typeErr(t: Term): Term {
    if (t.ty.k === 'ext' && !t.dead) this.unsupported(`extension type ${t.ty.name}`);
    return ERR;
  }

  private value(v: unknown): Term {
    if (typeof v === 'boolean') return bool(v ? TRUE : FALSE, FALSE);
    // Literals beyond 2^53 arrive as BigInts (exact-policy.ts); a number beyond it was rounded on the way.
    if (typeof v === 'bigint') return { ty: { k: 'long' }, err: FALSE, v: this.long(v) };
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) this.unsupported(`Long literal ${v} (rounded: policy JSON not read exactly)`);
      return { ty: { k: 'long' }, err: FALSE, v: bvLit(BigInt(v)) };
    }
    if (typeof v === 'string') return { ty: { k: 'string' }, err: FALSE, v: this.str(v) };
    if (Array.isArray(v)) return this.setLiteral(v.map((e) => ({ Value: e })));
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if ('__entity' in o) return this.entityLiteral(o.__entity as { type: string; id: string });
      if ('__extn' in o) return this.unsupported('extension values (ip/decimal/datetime)');
      return this.compile({ Record: Object.fromEntries(Object.entries(o).map(([k, e]) => [k, { Value: e }])) });
    }
    return this.unsupported(`literal ${JSON.stringify(v)}`);
  }

  private long(n: bigint): string {
    try {
      return bvLit(n);
    } catch (err) {
      return this.unsupported((err as Error).message);
    }
  }

  private str(s: string): string {
    try {
      return strLit(s);
    } catch (err) {
      return this.unsupported((err as Error).message);
    }
  }

  private shortCircuit(op: '&&' | '||', a: Term, right: () => Term): Term {
    if (a.dead || a.ty.k !== 'bool') return this.typeErr(a);
    const av = a.v as string;
    // The right operand is evaluated only when the left does not decide.
    const goesOn = and(not(a.err), op === '&&' ? av : not(av));
    if (goesOn === FALSE) return a;
    const b = right();
    const bBad = b.dead || b.ty.k !== 'bool';
    if (bBad && b.ty.k === 'ext' && !b.dead) this.unsupported(`extension type ${b.ty.name}`);
    const bErr = bBad ? TRUE : b.err;
    const bv = bBad ? FALSE : (b.v as string);
    return bool(op === '&&' ? and(av, bv) : or(av, bv), or(a.err, and(goesOn, bErr)));
  }

  private ifThenElse(arg: { if: unknown; then: unknown; else: unknown }): Term {
    const c = this.compile(arg.if);
    if (c.dead || c.ty.k !== 'bool') return this.typeErr(c);
    const cv = c.v as string;
    if (and(not(c.err), cv) === FALSE) {
      const e = this.compile(arg.else);
      return { ...e, err: or(c.err, e.err), lit: undefined, elems: undefined };
    }
    const t = this.compile(arg.then);
    const e = this.compile(arg.else);
    if (t.dead && e.dead) return ERR;
    if (isMixed(t) || isMixed(e)) this.unsupported('if-then-else yielding a set literal mixing entity types');
    const ty = t.dead ? e.ty : t.ty;
    if (!t.dead && !e.dead && !tyEq(t.ty, e.ty))
      this.unsupported(`if-then-else with branches of different types (${tyName(t.ty)}, ${tyName(e.ty)})`);
    if (ty.k === 'record' || (ty.k === 'entity' && isActionType(ty.name)))
      this.unsupported(`if-then-else yielding ${ty.k === 'record' ? 'records' : 'actions'}`);
    if (ty.k === 'ext') this.unsupported(`extension type ${ty.name}`);
    const tv = t.dead ? (e.v as string) : (t.v as string);
    const ev = e.dead ? (t.v as string) : (e.v as string);
    return { ty, err: or(c.err, and(cv, t.err), and(not(cv), e.err)), v: ite(cv, tv, ev) };
  }

  private compare(op: string, a: Term, b: Term): Term {
    if (a.dead || b.dead) return ERR;
    if (a.ty.k !== 'long' || b.ty.k !== 'long') {
      if (a.ty.k === 'ext' || b.ty.k === 'ext') this.unsupported('comparison of extension values');
      return ERR;
    }
    const f = { '<': 'bvslt', '<=': 'bvsle', '>': 'bvsgt', '>=': 'bvsge' }[op]!;
    return bool(`(${f} ${a.v} ${b.v})`, or(a.err, b.err));
  }

  private arith(op: '+' | '-' | '*', a: Term, b: Term): Term {
    if (a.dead || b.dead) return ERR;
    if (a.ty.k !== 'long' || b.ty.k !== 'long') return this.typeErr(a.ty.k !== 'long' ? a : b);
    const [x, y] = [a.v as string, b.v as string];
    // Overflow checks written by hand: cvc5 1.0.3 lacks bvsaddo/bvssubo/bvsmulo.
    const neg = (t: string) => `(bvslt ${t} ${BV_ZERO})`;
    let v: string;
    let ovf: string;
    if (op === '+') {
      v = `(bvadd ${x} ${y})`;
      ovf = and(eq(neg(x), neg(y)), `(distinct ${neg(v)} ${neg(x)})`);
    } else if (op === '-') {
      v = `(bvsub ${x} ${y})`;
      ovf = and(`(distinct ${neg(x)} ${neg(y)})`, `(distinct ${neg(v)} ${neg(x)})`);
    } else {
      v = `(bvmul ${x} ${y})`;
      ovf = `(distinct (bvmul ((_ sign_extend 64) ${x}) ((_ sign_extend 64) ${y})) ((_ sign_extend 64) ${v}))`;
    }
    return { ty: { k: 'long' }, err: or(a.err, b.err, ovf), v };
  }

  private inExpr(a: Term, b: Term): Term {
    if (a.dead || b.dead) return ERR;
    if (a.ty.k !== 'entity') return this.typeErr(a);
    const err = or(a.err, b.err);
    if (b.ty.k === 'entity') return bool(this.inEntity(a, b), err);
    if (b.ty.k === 'set' && b.ty.elem.k === 'entity') return bool(this.inSet(a, b), err);
    return this.typeErr(b);
  }

  private setOp(op: 'contains' | 'containsAll' | 'containsAny', a: Term, b: Term): Term {
    if (a.dead || b.dead) return ERR;
    if (a.ty.k !== 'set') return this.typeErr(a);
    const err = or(a.err, b.err);
    if (isMixed(a) || isMixed(b)) {
      if (op !== 'contains' || isMixed(b)) this.unsupported(`${op} on a set literal mixing entity types`);
      return bool(or(...a.elems!.map((e) => this.eqVal(e, b))), err);
    }
    if (op === 'contains') {
      if (b.ty.k === 'record') return bool(FALSE, err); // sets never hold records here (unsupported to build)
      if (b.ty.k === 'ext') this.unsupported('extension values');
      if (!tyEq(a.ty.elem, b.ty)) return bool(FALSE, err);
      if (a.elems && b.lit && isActionType(b.lit.type))
        return bool(a.elems.some((e) => e.lit?.type === b.lit!.type && e.lit?.id === b.lit!.id) ? TRUE : FALSE, err);
      return bool(`(set.member ${this.valueOf(b)} ${a.v})`, err);
    }
    if (b.ty.k !== 'set') return this.typeErr(b);
    const same = tyEq(a.ty.elem, b.ty.elem);
    if (op === 'containsAll') return bool(same ? `(set.subset ${b.v} ${a.v})` : `(= ${b.v} ${emptySet(b.ty.elem)})`, err);
    return bool(same ? not(`(= (set.inter ${a.v} ${b.v}) ${emptySet(a.ty.elem)})`) : FALSE, err);
  }

  private setLiteral(xs: unknown[]): Term {
    if (xs.length === 0) this.unsupported('empty set literal []');
    const ts = xs.map((e) => this.compile(e));
    if (ts.some((t) => t.dead)) return ERR;
    const elem = ts[0].ty;
    if (!ts.every((t) => tyEq(t.ty, elem))) {
      // `in [Group::"a", Folder::"b"]`: kept as its elements; only `in`, `contains` and `isEmpty` use it.
      if (ts.every((t) => t.ty.k === 'entity'))
        return { ty: { k: 'set', elem: MIXED }, err: or(...ts.map((t) => t.err)), v: '', elems: ts };
      this.unsupported('set literal with elements of different types');
    }
    sortOf({ k: 'set', elem }); // rejects sets of records/sets/extensions
    if (elem.k === 'entity') this.c.decls.useSort(elem.name);
    const vals = ts.map((t) => this.valueOf(t));
    const v =
      vals.length === 1
        ? `(set.singleton ${vals[0]})`
        : `(set.insert ${vals.slice(0, -1).join(' ')} (set.singleton ${vals[vals.length - 1]}))`;
    return { ty: { k: 'set', elem }, err: or(...ts.map((t) => t.err)), v, elems: ts };
  }

  private getAttr(t: Term, attr: string): Term {
    if (t.dead) return ERR;
    if (t.ty.k === 'record') {
      const f = (t.v as RecInner).rec[attr];
      if (!f) return ERR;
      const out: Term = { ty: f.ty, err: or(t.err, not(f.present)), v: f.v };
      if (f.ty.k === 'ext') this.unsupported(`extension type ${f.ty.name}`);
      if (isOpaque(f.ty))
        this.unsupported(
          `reading attribute ${attr} of type ${tyName(f.ty)} (the prover does not model actions held in attributes, sets of records, of sets or of extension values)`,
        );
      if (f.ty.k === 'entity' && typeof f.v === 'string') this.c.decls.mention(f.v, f.ty.name, not(out.err));
      return out;
    }
    if (t.ty.k === 'entity') {
      const shape = this.c.schema.entityTypes.get(t.ty.name)?.shape;
      if (isActionType(t.ty.name) || !shape || !shape.fields[attr]) return ERR;
      // Reading an attribute of an entity absent from the store is an error.
      const exists = `(${this.exists(t.ty.name)} ${t.v})`;
      const rec = entityRecord(t.ty.name, t.v as string, [], shape, this.c.decls, this.c.store);
      return this.getAttr({ ty: shape, err: or(t.err, not(exists)), v: rec }, attr);
    }
    return this.typeErr(t);
  }

  /**
   * `e.hasTag(k)` / `e.getTag(k)`: an entity's tags are a map from string keys to
   * values of the type the schema declares (`tags T`), modelled as two
   * uninterpreted functions over (entity, key): presence and value. An entity
   * absent from the store has no tags (hasTag false, getTag an error); getTag of a
   * tag the entity lacks is an error. A type without tags has none.
   */
  private tagOp(op: 'hasTag' | 'getTag', e: Term, key: () => Term): Term {
    if (e.dead) return ERR;
    if (e.ty.k !== 'entity') return this.typeErr(e);
    const k = key();
    if (k.dead) return ERR;
    if (k.ty.k !== 'string') return this.typeErr(k);
    const err = or(e.err, k.err);
    const type = e.ty.name;
    const tagTy = isActionType(type) ? undefined : this.c.schema.entityTypes.get(type)?.tags;
    if (!tagTy) return op === 'hasTag' ? bool(FALSE, err) : ERR;
    const ent = e.v as string;
    const kv = k.v as string;
    const exists = `(${this.exists(type)} ${ent})`;
    const has = and(exists, `(${this.tagHas(type)} ${ent} ${kv})`);
    this.c.decls.tagRead(ent, type, kv, not(err));
    if (op === 'hasTag') return bool(has, err);
    if (tagTy.k === 'ext') this.unsupported(`entity tags of extension type ${tagTy.name} (getTag on ${type})`);
    if (tagTy.k === 'record' || isOpaque(tagTy))
      this.unsupported(`entity tags of type ${tyName(tagTy)} (getTag on ${type}: tag values the prover does not model)`);
    const out: Term = { ty: tagTy, err: or(err, not(has)), v: `(${this.tagVal(type, tagTy)} ${ent} ${kv})` };
    if (tagTy.k === 'entity') this.c.decls.mention(out.v as string, tagTy.name, not(out.err));
    return out;
  }

  private tagHas(type: string): string {
    const tag = this.c.store;
    return tag ? this.c.decls.useStoreFn({ tag, kind: 'tagHas', type }) : this.c.decls.useTagFn(tagHasFn(type), entitySort(type), 'Bool');
  }

  private tagVal(type: string, ty: Ty): string {
    const tag = this.c.store;
    return tag
      ? this.c.decls.useStoreFn({ tag, kind: 'tagVal', type, ty })
      : this.c.decls.useTagFn(tagValFn(type), entitySort(type), this.c.decls.useTy(ty));
  }

  private hasPath(t: Term, path: string[]): Term {
    // `e has a.b` is `e has a && e.a has b`.
    let cur = this.hasAttr(t, path[0]);
    for (let i = 1; i < path.length; i++) {
      const prefix = path.slice(0, i);
      cur = this.shortCircuit('&&', cur, () => {
        let base = t;
        for (const p of prefix) base = this.getAttr(base, p);
        return this.hasAttr(base, path[i]);
      });
    }
    return cur;
  }

  private hasAttr(t: Term, attr: string): Term {
    if (t.dead) return ERR;
    if (t.ty.k === 'record') {
      const f = (t.v as RecInner).rec[attr];
      return bool(f ? f.present : FALSE, t.err);
    }
    if (t.ty.k === 'entity') {
      const shape = this.c.schema.entityTypes.get(t.ty.name)?.shape;
      if (isActionType(t.ty.name) || !shape || !shape.fields[attr]) return bool(FALSE, t.err);
      const exists = `(${this.exists(t.ty.name)} ${t.v})`;
      const f = entityRecord(t.ty.name, t.v as string, [], shape, this.c.decls, this.c.store).rec[attr];
      return bool(and(exists, f.present), t.err);
    }
    return this.typeErr(t);
  }
}

type ScopeJson = {
  op: string;
  entity?: { type: string; id: string };
  entities?: { type: string; id: string }[];
  entity_type?: string;
  in?: { entity: { type: string; id: string } };
};

/**
 * `like` pattern (JSON: literal runs and "Wildcard") → SMT regular expression:
 * `(re.* re.allchar)` for each run of wildcards (adjacent ones are one),
 * `str.to_re` for literal runs (an escaped `\*` arrives as a literal).
 * Membership (`str.in_re`) keeps multi-wildcard patterns decidable. Measured on
 * cvc5 1.0.3: `re.all` in place of `(re.* re.allchar)` makes random policy
 * pairs answer unknown (test/prove/random-gate.test.ts), so it is not used.
 */
export function likeRegex(pattern: unknown[]): string {
  const parts: string[] = [];
  let lit = '';
  const flush = () => {
    if (lit) parts.push(`(str.to_re ${strLit(lit)})`);
    lit = '';
  };
  for (const p of pattern) {
    if (p === 'Wildcard') {
      flush();
      if (parts[parts.length - 1] !== '(re.* re.allchar)') parts.push('(re.* re.allchar)');
    } else if (p && typeof p === 'object' && 'Literal' in p) lit += (p as { Literal: string }).Literal;
    else throw new UnsupportedError(`unsupported: like pattern element ${JSON.stringify(p)}`);
  }
  flush();
  if (parts.length === 0) return '(str.to_re "")';
  return parts.length === 1 ? parts[0] : `(re.++ ${parts.join(' ')})`;
}
