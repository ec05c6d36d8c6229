// Compiles one policy's JSON form (EST) into a JavaScript function, generated
// once per activation. Untrusted strings (attribute names, literals, entity ids)
// reach generated code only through JSON.stringify or the constant table `K`.
import type { NamedPolicy } from '../policy-set.js';
import { LongLiteralError, markLongLiterals } from '../long-literals.js';
import { Unsupported } from './schema.js';
import * as rt from './runtime.js';
import { EUid, compileLike, fromBig, type Value } from './values.js';
import { setProp } from './request-conformance.js';
import { EXT_FNS, applyExtension } from './extensions.js';

/** (principal, action, resource, context, store) → satisfied; throws EvalError when the policy errors. */
export type PolicyFn = (P: EUid, A: EUid, R: EUid, C: Record<string, Value>, S: rt.Store) => boolean;

export type ScopeConstraint =
  | { op: 'All' }
  | { op: '=='; entity: EUid }
  | { op: 'in'; entity: EUid }
  | { op: 'is'; type: string; in?: EUid };

export interface CompiledPolicy {
  id: string;
  forbid: boolean;
  principal: ScopeConstraint;
  resource: ScopeConstraint;
  /** null: any action. */
  actions: EUid[] | null;
  /** `action == X` (false) or `action in X` (true). */
  actionIn: boolean;
  fn: PolicyFn;
  /** The generated source, for debugging and docs. */
  source: string;
}

// biome-ignore lint/suspicious/noExplicitAny: the policy JSON from cedar-wasm is walked by shape, checked node by node
type Json = any;

const _SAFE = 9007199254740991n;

/** Operators whose result is always a boolean (or an error). */
const BOOL_OPS = new Set([
  'lessThan',
  'lessThanOrEqual',
  'greaterThan',
  'greaterThanOrEqual',
  'isIpv4',
  'isIpv6',
  'isLoopback',
  'isMulticast',
  'isInRange',
  '!',
  '==',
  '!=',
  'in',
  '<',
  '<=',
  '>',
  '>=',
  '&&',
  '||',
  'contains',
  'containsAll',
  'containsAny',
  'isEmpty',
  'hasTag',
  'has',
  'like',
  'is',
]);

/** The policy's EST with its large Long literals as markers (cedar/long-literals.ts). */
function exactEst(p: NamedPolicy): { json: Json; bigs: Map<string, bigint> } {
  try {
    return markLongLiterals(p);
  } catch (err) {
    if (err instanceof LongLiteralError) throw new Unsupported(err.message);
    throw err;
  }
}

function uidOf(j: Json): EUid {
  const inner = j?.__entity ? j.__entity : j;
  if (!inner || typeof inner.type !== 'string' || typeof inner.id !== 'string')
    throw new Unsupported(`entity reference ${JSON.stringify(j)}`);
  return new EUid(inner.type, inner.id);
}

function scopeOf(j: Json, what: string): ScopeConstraint {
  if (j.slot !== undefined || (j.in && j.in.slot !== undefined)) throw new Unsupported('template slots');
  switch (j.op) {
    case 'All':
      return { op: 'All' };
    case '==':
      return { op: '==', entity: uidOf(j.entity) };
    case 'in':
      return { op: 'in', entity: uidOf(j.entity) };
    case 'is':
      return { op: 'is', type: j.entity_type, in: j.in ? uidOf(j.in.entity) : undefined };
    default:
      throw new Unsupported(`${what} scope ${JSON.stringify(j)}`);
  }
}

class Gen {
  readonly K: unknown[] = [];
  constructor(
    private readonly bigs: Map<string, bigint>,
    /** Context attributes every action this policy can apply to requires: validated requests always have them. */
    private readonly requiredContext: ReadonlySet<string>,
  ) {}

  konst(v: unknown): string {
    this.K.push(v);
    return `K[${this.K.length - 1}]`;
  }

  /** A literal JSON value (EST `Value`) in runtime form. */
  value(v: Json): Value {
    if (typeof v === 'string') {
      const big = this.bigs.get(v);
      if (big !== undefined) return fromBig(big, 'parse literal');
      return v;
    }
    if (typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new Unsupported(`imprecise number literal ${v}`);
      return v + 0;
    }
    if (Array.isArray(v)) return v.map((x) => this.value(x));
    if (v && typeof v === 'object') {
      if (v.__entity) return uidOf(v);
      if (v.__extn) {
        const x = v.__extn;
        const args = Array.isArray(x?.args) ? x.args : [x?.arg];
        try {
          return applyExtension(
            String(x?.fn),
            args.map((a: Json) => this.value(a)),
          );
        } catch (err) {
          if (err instanceof rt.EvalError) throw new Unsupported(`extension value ${JSON.stringify(v)}: ${err.message}`);
          throw err;
        }
      }
      const o: Record<string, Value> = {};
      for (const k of Object.keys(v)) setProp(o, k, this.value(v[k]));
      return o;
    }
    throw new Unsupported(`literal ${JSON.stringify(v)}`);
  }

  literal(v: Value): string {
    if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
    if (typeof v === 'number') return v < 0 ? `(${v})` : String(v);
    return this.konst(v);
  }

  /** The literal value of `e` if it is a constant primitive (string/bool/safe Long), else undefined. */
  primitive(e: Json): string | boolean | number | undefined {
    if (e && Object.hasOwn(e, 'Value')) {
      const v = this.value(e.Value);
      if (typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') return v;
    }
    return undefined;
  }

  /** The constant value of `e` when it has no variables (literals, sets and records of literals). */
  constant(e: Json): { v: Value } | undefined {
    if (!e || typeof e !== 'object') return undefined;
    if (Object.hasOwn(e, 'Value')) return { v: this.value(e.Value) };
    const keys = Object.keys(e);
    const fn = keys.length === 1 ? EXT_FNS.get(keys[0]) : undefined;
    if (fn !== undefined && Array.isArray(e[keys[0]]) && e[keys[0]].length === fn.arity) {
      // A pure extension call on constants; one that errors is not a constant.
      const args: Value[] = [];
      for (const x of e[keys[0]]) {
        const c = this.constant(x);
        if (!c) return undefined;
        args.push(c.v);
      }
      try {
        return { v: applyExtension(keys[0], args) };
      } catch (err) {
        if (err instanceof rt.EvalError) return undefined;
        throw err;
      }
    }
    if (Array.isArray(e.Set)) {
      const out: Value[] = [];
      for (const x of e.Set) {
        const c = this.constant(x);
        if (!c) return undefined;
        out.push(c.v);
      }
      return { v: out };
    }
    if (e.Record && typeof e.Record === 'object') {
      const o: Record<string, Value> = {};
      for (const k of Object.keys(e.Record)) {
        const c = this.constant(e.Record[k]);
        if (!c) return undefined;
        setProp(o, k, c.v);
      }
      return { v: o };
    }
    return undefined;
  }

  /** `e` as a condition: checked to be a boolean unless its operator always yields one. */
  cond(e: Json): string {
    const op = e && typeof e === 'object' ? Object.keys(e)[0] : undefined;
    return op !== undefined && BOOL_OPS.has(op) ? this.expr(e) : `bool(${this.expr(e)})`;
  }

  expr(e: Json): string {
    if (!e || typeof e !== 'object' || Array.isArray(e)) throw new Unsupported(`expression ${JSON.stringify(e)}`);
    const keys = Object.keys(e);
    if (keys.length !== 1) throw new Unsupported(`expression ${JSON.stringify(e)}`);
    const op = keys[0];
    const a = e[op];
    const bin = (fn: string) => `${fn}(${this.expr(a.left)}, ${this.expr(a.right)})`;
    switch (op) {
      case 'Value':
        return this.literal(this.value(a));
      case 'Var':
        switch (a) {
          case 'principal':
            return 'P';
          case 'action':
            return 'A';
          case 'resource':
            return 'R';
          case 'context':
            return 'C';
        }
        throw new Unsupported(`variable ${a}`);
      case '!':
        return `!${this.cond(a.arg)}`;
      case 'neg': {
        // `-<literal>` that did not fold because the literal needed a marker.
        const inner = a.arg;
        if (inner && typeof inner.Value === 'string' && this.bigs.has(inner.Value))
          return this.literal(fromBig(-this.bigs.get(inner.Value)!, 'negate'));
        return `neg(${this.expr(inner)})`;
      }
      case '==':
      case '!=': {
        const l = this.primitive(a.left);
        const r = this.primitive(a.right);
        let code: string;
        // Strings, bools and safe Longs are Cedar-equal exactly when ===.
        if (r !== undefined) code = `(${this.expr(a.left)} === ${this.literal(r)})`;
        else if (l !== undefined) code = `(${this.literal(l)} === ${this.expr(a.right)})`;
        else code = bin('eq');
        return op === '==' ? code : `!${code}`;
      }
      case 'in':
        return `inExpr(S, ${this.expr(a.left)}, ${this.expr(a.right)})`;
      case '<':
        return bin('lt');
      case '<=':
        return bin('le');
      case '>':
        return bin('gt');
      case '>=':
        return bin('ge');
      case '&&':
        return `(${this.cond(a.left)} ? ${this.cond(a.right)} : false)`;
      case '||':
        return `(${this.cond(a.left)} ? true : ${this.cond(a.right)})`;
      case '+':
        return bin('add');
      case '-':
        return bin('sub');
      case '*':
        return bin('mul');
      case 'contains': {
        const r = this.primitive(a.right);
        if (r !== undefined) return `set(${this.expr(a.left)}).includes(${this.literal(r)})`;
        return bin('contains');
      }
      case 'containsAll':
        return bin('containsAll');
      case 'containsAny':
        return bin('containsAny');
      case 'isEmpty':
        return `isEmpty(${this.expr(a.arg)})`;
      case 'getTag':
        return `getTag(S, ${this.expr(a.left)}, ${this.expr(a.right)})`;
      case 'hasTag':
        return `hasTag(S, ${this.expr(a.left)}, ${this.expr(a.right)})`;
      case '.': {
        const attr = JSON.stringify(String(a.attr));
        if (a.left && a.left.Var === 'context') return this.requiredContext.has(String(a.attr)) ? `C[${attr}]` : `rget(C, ${attr})`;
        return `get(S, ${this.expr(a.left)}, ${attr})`;
      }
      case 'has': {
        const path: string[] = Array.isArray(a.attr) ? a.attr.map(String) : [String(a.attr)];
        let target = this.expr(a.left);
        const parts: string[] = [];
        for (let i = 0; i < path.length; i++) {
          parts.push(`has(S, ${target}, ${JSON.stringify(path[i])})`);
          target = `get(S, ${target}, ${JSON.stringify(path[i])})`;
        }
        return parts.length === 1 ? parts[0] : `(${parts.join(' && ')})`;
      }
      case 'like':
        return `${this.konst(compileLike(a.pattern))}(str(${this.expr(a.left)}))`;
      case 'is': {
        const left = this.expr(a.left);
        const test = `isType(${left}, ${JSON.stringify(String(a.entity_type))})`;
        return a.in ? `(${test} && inExpr(S, ${left}, ${this.expr(a.in)}))` : test;
      }
      case 'if-then-else':
        return `(${this.cond(a.if)} ? ${this.expr(a.then)} : ${this.expr(a.else)})`;
      case 'Set': {
        const c = this.constant(e);
        if (c) return this.konst(c.v);
        return `[${(a as Json[]).map((x) => this.expr(x)).join(', ')}]`;
      }
      case 'Record': {
        const c = this.constant(e);
        if (c) return this.konst(c.v);
        return `{${Object.keys(a)
          .map((k) => `[${JSON.stringify(k)}]: ${this.expr(a[k])}`)
          .join(', ')}}`;
      }
      default: {
        const fn = EXT_FNS.get(op);
        if (fn === undefined) throw new Unsupported(`operator or function \`${op}\``);
        const args = a as Json[];
        if (!Array.isArray(args)) throw new Unsupported(`${op} without an argument list`);
        // All arguments are evaluated before any is checked, as in Cedar; a call with
        // the wrong number of arguments parses but is an evaluation error.
        const list = args.map((x) => this.expr(x)).join(', ');
        if (args.length !== fn.arity) return `wrongArity(${JSON.stringify(op)}, ${fn.arity}, [${list}])`;
        // Extension functions are pure: a call on constants (datetime("2024-01-01"),
        // duration("1h"), ip("10.0.0.0/8")) is computed once here. One that errors is
        // left to error at evaluation, as Cedar does.
        const folded = this.constant(e);
        return folded ? this.konst(folded.v) : `${fn.name}(${list})`;
      }
    }
  }
  scope(s: ScopeConstraint, v: 'P' | 'R'): string | null {
    switch (s.op) {
      case 'All':
        return null;
      case '==':
        return `eqUid(${v}, ${this.konst(s.entity)})`;
      case 'in':
        return `isIn(S, ${v}, ${this.konst(s.entity)})`;
      case 'is': {
        const t = `${v}.type === ${JSON.stringify(s.type)}`;
        return s.in ? `(${t} && isIn(S, ${v}, ${this.konst(s.in)}))` : t;
      }
    }
  }
}

const RT_NAMES = Object.keys(rt).filter((k) => typeof (rt as Record<string, unknown>)[k] === 'function' && k !== 'Store');

/** `requiredContext(actions, actionIn)`: context attributes required for every action the scope admits. */
export function compilePolicy(
  p: NamedPolicy,
  requiredContext: (actions: EUid[] | null, actionIn: boolean) => ReadonlySet<string> = () => new Set(),
): CompiledPolicy {
  const { json, bigs } = exactEst(p);
  const principal = scopeOf(json.principal, 'principal');
  const resource = scopeOf(json.resource, 'resource');
  let actions: EUid[] | null = null;
  let actionIn = false;
  switch (json.action.op) {
    case 'All':
      break;
    case '==':
      actions = [uidOf(json.action.entity)];
      break;
    case 'in':
      actionIn = true;
      actions = json.action.entities ? json.action.entities.map(uidOf) : [uidOf(json.action.entity)];
      break;
    default:
      throw new Unsupported(`action scope ${JSON.stringify(json.action)}`);
  }
  const gen = new Gen(bigs, requiredContext(actions, actionIn));
  const parts: string[] = [];
  const ps = gen.scope(principal, 'P');
  if (ps) parts.push(ps);
  const rs = gen.scope(resource, 'R');
  if (rs) parts.push(rs);
  for (const c of json.conditions ?? []) {
    const body = gen.cond(c.body);
    if (c.kind === 'when') parts.push(body);
    else if (c.kind === 'unless') parts.push(`!${body}`);
    else throw new Unsupported(`condition kind ${c.kind}`);
  }
  const source = `return ${parts.length ? parts.join(' && ') : 'true'};`;
  const factory = new Function('K', 'rt', `const { ${RT_NAMES.join(', ')} } = rt;\nreturn function policy(P, A, R, C, S) { ${source} };`);
  return {
    id: p.id,
    forbid: json.effect === 'forbid',
    principal,
    resource,
    actions,
    actionIn,
    fn: factory(gen.K, rt) as PolicyFn,
    source,
  };
}
