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
import { loadSchema, type ProverSchema } from '../../pipeline/prove/env.js';
import { Cvc5 } from '../../pipeline/prove/solver.js';

export interface DiffCase {
  policies: NamedPolicy[];
  principal: Uid;
  action: string;
  resource: Uid;
  context: Record<string, unknown>;
  entities: { uid: Uid; attrs: Record<string, unknown>; parents: Uid[] }[];
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
  ) {
    this.schema = loadSchema(schemaText);
    this.solver = new Cvc5({ timeoutMs: 20000 });
    this.solver.send(declareSorts([...this.schema.entityTypes.keys(), 'Action']));
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
      action: { type: 'Action', id: c.action },
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
    const assumptions = [...hierarchyAssumptions(decls, this.schema), ...contextAssumptions(env, this.taint)];
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
