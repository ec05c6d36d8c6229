// The differential soundness harness: a policy set and a concrete request are
// encoded with the prover's own pipeline (compiler → authorizer → enforcer →
// encoder), pinned to the concrete values, and cvc5's answer for every
// policy (satisfied? error?) and the decision must equal cedar-wasm's.
import * as cedar from '../../cedar/wasm-loader.js';
import { splitPolicies, toStaticPolicies, type NamedPolicy } from '../../cedar/policy-set.js';
import { compileSet, nameTerms } from '../../pipeline/prove/symbolic-authorizer.js';
import { Compiler, Decls } from '../../pipeline/prove/compiler.js';
import { pinRequest, type Uid } from '../../pipeline/prove/concrete.js';
import { decodeBool } from '../../pipeline/prove/decoder.js';
import { assertAll, declareScope, declareSorts, Definitions } from '../../pipeline/prove/encoder.js';
import { contextAssumptions, hierarchyAssumptions, type TaintAssumption } from '../../pipeline/prove/dataplane-model.js';
import { envKey, loadSchema, tyEq, type ProverSchema, type Ty } from '../../pipeline/prove/env.js';
import { genValue, type Rng } from './gen.js';
import { Cvc5 } from '../../pipeline/prove/solver.js';
import { enumAssumptions } from '../../pipeline/prove/enum-domain.js';

export interface DiffCase {
  policies: NamedPolicy[];
  principal: Uid;
  action: string;
  resource: Uid;
  context: Record<string, unknown>;
  entities: { uid: Uid; attrs: Record<string, unknown>; parents: Uid[]; tags?: Record<string, unknown> }[];
}

export interface DiffOutcome {
  decision: 'allow' | 'deny';
  satisfied: string[];
  errors: string[];
}

export interface Disagreement {
  case: DiffCase;
  smt: DiffOutcome;
  wasm: DiffOutcome;
}

export class DiffHarness {
  readonly schema: ProverSchema;
  private readonly solver: Cvc5;
  stats = { cases: 0, allow: 0, deny: 0, withErrors: 0, policies: 0, satisfied: 0, erroring: 0 };

  constructor(
    readonly schemaText: string,
    private readonly universe: Uid[],
    private readonly taint?: TaintAssumption,
    /** `NS::Action` for a schema in a namespace. */
    private readonly actionType = 'Action',
  ) {
    this.schema = loadSchema(schemaText);
    this.solver = new Cvc5({ timeoutMs: 20000 });
    this.solver.send(declareSorts([...this.schema.entityTypes.keys(), actionType]));
    const parsed = cedar.preparseSchema(this.schemaId, schemaText);
    if (parsed.type === 'failure') throw new Error(parsed.errors.map((e) => e.message).join('; '));
  }
  private readonly schemaId = `diff-schema-${process.pid}-${Math.random()}`;
  private readonly psetId = `diff-pset-${process.pid}-${Math.random()}`;

  /** cedar-wasm's answer; per-policy satisfaction from reasons (allow: permits, deny: forbids). */
  wasm(c: DiffCase): DiffOutcome {
    const pset = cedar.preparsePolicySet(this.psetId, { staticPolicies: toStaticPolicies(c.policies) });
    if (pset.type === 'failure') throw new Error(pset.errors.map((e) => e.message).join('; '));
    const answer = cedar.statefulIsAuthorized({
      principal: c.principal,
      action: { type: this.actionType, id: c.action },
      resource: c.resource,
      context: c.context as cedar.Context,
      preparsedPolicySetId: this.psetId,
      preparsedSchemaName: this.schemaId,
      entities: c.entities as unknown as cedar.EntityJson[],
      validateRequest: true,
    });
    if (answer.type === 'failure')
      throw new Error(`cedar-wasm rejected the generated request: ${answer.errors.map((e) => e.message).join('; ')}`);
    const { decision, diagnostics } = answer.response;
    return { decision, satisfied: [...diagnostics.reason].sort(), errors: [...new Set(diagnostics.errors.map((e) => e.policyId))].sort() };
  }

  async smt(c: DiffCase): Promise<DiffOutcome> {
    const env = this.schema.envs.find(
      (e) => e.principalType === c.principal.type && e.action === c.action && e.resourceType === c.resource.type,
    );
    if (!env) throw new Error(`no environment for ${c.principal.type}/${c.action}/${c.resource.type}`);
    const policies = c.policies;
    const decls = new Decls();
    const compiler = new Compiler({ schema: this.schema, actionAncestors: this.schema.actionAncestors, env, decls });
    const defs = new Definitions();
    const set = nameTerms(compileSet(compiler, policies), 'p', defs.define);
    // The prover's assumptions must hold of every real request: asserting them
    // next to a concrete one must stay satisfiable.
    const assumptions = [
      ...hierarchyAssumptions(decls, this.schema),
      ...enumAssumptions(decls, this.schema),
      ...contextAssumptions(env, this.taint),
    ];
    const pins = pinRequest(
      env,
      decls,
      this.schema,
      { principal: c.principal, resource: c.resource, context: c.context, entities: c.entities },
      this.universe,
    );
    this.solver.send('(push 1)\n' + declareScope(decls) + defs.text() + assertAll(assumptions) + assertAll(pins));
    try {
      const r = await this.solver.checkSat();
      if (r !== 'sat') throw new Error('the encoding of a concrete request is unsatisfiable (assumptions contradict a real request)');
      const terms = set.policies.flatMap((p) => [p.sat, p.err]);
      const vals = await this.solver.getValues(terms);
      const satisfied: string[] = [];
      const errors: string[] = [];
      set.policies.forEach((p, i) => {
        if (decodeBool(vals[2 * i])) satisfied.push(p.id);
        if (decodeBool(vals[2 * i + 1])) errors.push(p.id);
      });
      const permits = satisfied.filter((id) => set.policies.find((p) => p.id === id)!.effect === 'permit');
      const forbids = satisfied.filter((id) => set.policies.find((p) => p.id === id)!.effect === 'forbid');
      const decision = permits.length > 0 && forbids.length === 0 ? 'allow' : 'deny';
      return { decision, satisfied: (decision === 'allow' ? permits : forbids).sort(), errors: errors.sort() };
    } finally {
      this.solver.send('(pop 1)\n');
    }
  }

  async check(c: DiffCase): Promise<Disagreement | undefined> {
    const wasm = this.wasm(c);
    const smt = await this.smt(c);
    this.stats.cases++;
    this.stats[wasm.decision]++;
    if (wasm.errors.length) this.stats.withErrors++;
    this.stats.policies += c.policies.length;
    this.stats.satisfied += wasm.satisfied.length;
    this.stats.erroring += wasm.errors.length;
    const same =
      smt.decision === wasm.decision && smt.satisfied.join() === wasm.satisfied.join() && smt.errors.join() === wasm.errors.join();
    return same ? undefined : { case: c, smt, wasm };
  }

  async close(): Promise<void> {
    await this.solver.close();
  }
}

export function namedPolicies(texts: string[]): NamedPolicy[] {
  const files: Record<string, string> = {};
  texts.forEach((t, i) => {
    files[`p${String(i).padStart(3, '0')}.cedar`] = t;
  });
  return splitPolicies(files);
}

// ---- capsule pairs: brute force over generated requests ----------------------

export interface CapsuleSide {
  schema: string;
  policies: string[];
  store: { uid: Uid; attrs: Record<string, unknown>; parents: Uid[]; tags?: Record<string, unknown> }[];
}

export interface BruteRequest {
  principal: Uid;
  action: string;
  resource: Uid;
  context: Record<string, unknown>;
}

type RecordTy = Ty & { k: 'record' };

function sameKind(h: Ty, b: Ty): boolean {
  return b.k === 'record' ? h.k === 'record' : tyEq(h, b);
}

/**
 * The context the base enforcer would have sent for the same event, concretely
 * (what context-view.ts encodes): attributes both declare alike are the head's,
 * head-only ones dropped, base-only (or retyped) ones any value — drawn at random.
 */
export function baseView(r: Rng, v: Record<string, unknown>, head: RecordTy | undefined, base: RecordTy): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, bf] of Object.entries(base.fields)) {
    const hf = head?.fields[name];
    if (hf && sameKind(hf.ty, bf.ty)) {
      if (!(name in v)) continue;
      out[name] = bf.ty.k === 'record' ? baseView(r, v[name] as Record<string, unknown>, hf.ty as RecordTy, bf.ty) : v[name];
    } else if (bf.required || r.chance(0.5)) out[name] = genValue(r, bf.ty);
  }
  return out;
}

/** cedar-wasm over two whole capsule sides (schema, policies, store): the reference the prover must agree with. */
export class CapsuleBruteForce {
  private readonly ids = { base: `bf-${process.pid}-${Math.random()}`, head: `bf-${process.pid}-${Math.random()}` };
  readonly headSchema: ProverSchema;
  readonly baseSchema: ProverSchema;
  evaluations = 0;

  constructor(
    private readonly base: CapsuleSide,
    private readonly head: CapsuleSide,
  ) {
    this.headSchema = loadSchema(head.schema);
    this.baseSchema = loadSchema(base.schema);
    for (const side of ['base', 'head'] as const) {
      const s = cedar.preparseSchema(this.ids[side], this[side].schema);
      if (s.type === 'failure') throw new Error(s.errors.map((e) => e.message).join('; '));
      const p = cedar.preparsePolicySet(this.ids[side], {
        staticPolicies: toStaticPolicies(namedPolicies(this[side].policies)),
      });
      if (p.type === 'failure') throw new Error(p.errors.map((e) => e.message).join('; '));
    }
  }

  /** One side's decision over its whole store; a request its schema rejects is denied (its enforcer would not send it). */
  decide(side: 'base' | 'head', q: BruteRequest, store = this[side].store): 'allow' | 'deny' {
    this.evaluations++;
    const answer = cedar.statefulIsAuthorized({
      principal: q.principal,
      action: { type: 'Action', id: q.action },
      resource: q.resource,
      context: q.context as cedar.Context,
      preparsedPolicySetId: this.ids[side],
      preparsedSchemaName: this.ids[side],
      entities: store as unknown as cedar.EntityJson[],
      validateRequest: true,
    });
    return answer.type === 'failure' ? 'deny' : answer.response.decision;
  }

  /**
   * Every environment of the head schema × principals and resources of the pool
   * (plus an id no store holds) × `contexts` random contexts; for each request the
   * head allows, `views` draws of the base's view. Returns the environments where
   * some request is allowed by the head and denied by the base, with one example.
   */
  escalations(
    r: Rng,
    pool: Record<string, string[]>,
    contexts: number,
    views: number,
  ): Map<string, BruteRequest & { baseContext: unknown }> {
    const found = new Map<string, BruteRequest & { baseContext: unknown }>();
    for (const env of this.headSchema.envs) {
      const key = envKey(env);
      const baseEnv = this.baseSchema.envs.find(
        (e) => e.principalType === env.principalType && e.action === env.action && e.resourceType === env.resourceType,
      );
      const ctxs = Array.from({ length: contexts }, () => genValue(r, env.context) as Record<string, unknown>);
      search: for (const p of [...pool[env.principalType], 'zz'])
        for (const res of [...pool[env.resourceType], 'zz'])
          for (const context of ctxs) {
            const q = {
              principal: { type: env.principalType, id: p },
              action: env.action,
              resource: { type: env.resourceType, id: res },
              context,
            };
            if (this.decide('head', q) !== 'allow') continue;
            for (let v = 0; v < (baseEnv ? views : 1); v++) {
              const baseContext = baseEnv ? baseView(r, context, env.context, baseEnv.context) : context;
              if (!baseEnv || this.decide('base', { ...q, context: baseContext }) === 'deny') {
                found.set(key, { ...q, baseContext });
                break search;
              }
            }
          }
    }
    return found;
  }
}
