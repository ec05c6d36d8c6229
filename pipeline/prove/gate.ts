// The proof gate: for every request environment of the head schema, prove
// non-escalation (head ⇒ base) and the invariants, and collect hygiene
// warnings. Compiles everything first (so entity sorts are declared once),
// then runs all queries in one incremental cvc5 process, one push/pop scope
// per environment.
import { splitPolicies, toStaticPolicies, type NamedPolicy } from '../../cedar/policy-set.js';
import type { PolicySource } from '../policy-source.js';
import { approvalAction, findApproval, findChangeApproval, type Approval } from './approvals.js';
import { capsuleChanges } from './capsule-diff.js';
import { checkConfig } from '../../capsule/config-check.js';
import type { LilithConfig } from '../../capsule/config.js';
import { admitted, compileSet, fromCompiled, nameTerms, type CompiledSet } from './symbolic-authorizer.js';
import { Compiler, ctxConst, Decls, PRINCIPAL, RESOURCE, type CompiledPolicy } from './compiler.js';
import { decide, describeCounterexample, extract, readContext, safeLongBounds, type Counterexample } from './counterexample.js';
import { decodeBool } from './decoder.js';
import { exactPolicy } from './exact-policy.js';
import { longOutOfRange, parseJsonLong, stringifyJsonLong } from '../../cedar/json-long.js';
import { withExactLongs } from '../../cedar/wasm-exact.js';
import { assertAll, declareScope, declareSorts, Definitions } from './encoder.js';
import {
  contextAssumptions,
  describeTaintAssumption,
  hasTaintContext,
  hierarchyAssumptions,
  type TaintAssumption,
} from './dataplane-model.js';
import { contextView, type ContextView } from './context-view.js';
import { enumAssumptions } from './enum-domain.js';
import { DeployedStore, defineStore, registeredPrincipal, StoreError, type StoreEntity } from './deployed-store.js';
import * as cedar from '../../cedar/wasm-loader.js';
import { envKey, loadSchema, tyEq, type ProverSchema, type RequestEnv } from './env.js';
import {
  digestFiles,
  reportDigest,
  verdictOf,
  REPORT_FORMAT,
  type EntityStores,
  type EscalationFinding,
  type InvariantResult,
  type ProofReport,
  type Warning,
} from './report.js';
import { and, UnsupportedError, FALSE, sym } from './smt.js';
import { Cvc5, cvc5Version, SolverError } from './solver.js';
import * as verifier from './verifier.js';

export interface GateSide {
  label: string;
  commit?: string;
  source: PolicySource;
}

export interface GateOptions {
  approvals?: Approval[];
  timeoutMs?: number;
  hygiene?: boolean;
  transcript?: (text: string) => void;
  /** cvc5 processes run in parallel (default 2); the report does not depend on it. */
  workers?: number;
}

/** A finding that is not a proof outcome: bad input, unsupported Cedar, solver unknown, encoder bug. Exit 2. */
export type GateErrorCode =
  /** lilith.json cannot be read or its taint labels are out of range. */
  | 'bad_config'
  /** A policy or schema uses something the prover does not encode. */
  | 'unsupported'
  /** The solver failed or answered unknown. */
  | 'solver'
  /** The solver no longer has the model it reported. */
  | 'lost_model'
  /** A counterexample does not re-check with cedar-wasm: a prover bug. */
  | 'encoder_bug';

export class GateError extends Error {
  constructor(
    readonly code: GateErrorCode,
    message: string,
  ) {
    super(message);
  }
}

interface EnvProblem {
  env: RequestEnv;
  decls: Decls;
  defs: Definitions;
  assumptions: string[];
  head: CompiledSet;
  base: CompiledSet | undefined;
  /** How the base sees the head request's context (context-view.ts); undefined: no base environment. */
  view: ContextView | undefined;
  invariants: CompiledPolicy[];
  /** define-funs of the deployed stores' functions (deployed-store problems only). */
  storeDefs: string;
  /** Set for the deployed-store proof: both sides' stores. */
  deployed?: { head: DeployedStore; base: DeployedStore };
  /** Ask non-escalation here (a deployed-store problem may be there only for its invariants). */
  askEscalation: boolean;
}

function taintOf(configText: string): TaintAssumption | undefined {
  try {
    const cfg = JSON.parse(configText) as { taint_labels?: Record<string, number> };
    if (!cfg.taint_labels) return undefined;
    for (const [l, b] of Object.entries(cfg.taint_labels)) {
      if (!Number.isInteger(b) || b < 0 || b > 63)
        throw new GateError('bad_config', `lilith.json: taint label ${l} has bit ${b} (must be 0..63)`);
    }
    return { labels: cfg.taint_labels };
  } catch (err) {
    if (err instanceof GateError) throw err;
    throw new GateError('bad_config', `lilith.json: ${(err as Error).message}`);
  }
}

/** The base's environment for the same principal type, action and resource type; undefined: the base schema has none (denied by the base). */
/** The base's environment for the same request shape: an action is its id *and* its type (namespaces may share ids). */
function baseEnvFor(base: ProverSchema, env: RequestEnv): RequestEnv | undefined {
  return base.envs.find(
    (e) =>
      e.principalType === env.principalType &&
      e.actionType === env.actionType &&
      e.action === env.action &&
      e.resourceType === env.resourceType,
  );
}

/** lilith.json and entities.json of one side, for capsule-diff.ts. */
function capsuleOf(src: PolicySource): { config: LilithConfig; entities: Parameters<typeof capsuleChanges>[0]['entities'] } {
  const parse = (file: string, text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new GateError('bad_config', `${file}: ${(err as Error).message}`);
    }
  };
  const config = parse('lilith.json', src.configText);
  const issues = checkConfig(config);
  if (issues.length) throw new GateError('bad_config', `lilith.json: ${issues.map((i) => `${i.path || '/'}: ${i.message}`).join('; ')}`);
  // Longs exact (BigInt beyond 2^53), as the enforcer reads entities.json; outside the 64-bit range refused by path.
  let entities: unknown;
  try {
    entities = parseJsonLong(src.entitiesText);
  } catch (err) {
    throw new GateError('bad_config', `entities.json: ${(err as Error).message}`);
  }
  if (!Array.isArray(entities)) throw new GateError('bad_config', 'entities.json: expected an array of entities');
  const outside = longOutOfRange(entities);
  if (outside !== null) throw new GateError('bad_config', `entities.json: ${outside} is an integer outside the 64-bit Long range`);
  return { config: config as LilithConfig, entities };
}

/** The deployed store of one side, checked against that side's schema as the enforcer checks entities. */
function storeOf(side: string, src: PolicySource, capsule: ReturnType<typeof capsuleOf>): DeployedStore {
  let store: DeployedStore;
  try {
    store = new DeployedStore(capsule.entities as StoreEntity[], capsule.config.registrations);
  } catch (err) {
    if (err instanceof StoreError) throw new GateError('bad_config', `${side}: ${err.message}`);
    throw err;
  }
  const all = [...store.entities.values()];
  const check = withExactLongs(cedar.checkParseEntities, { entities: all as never, schema: src.schema });
  if (check.type === 'failure')
    throw new GateError(
      'bad_config',
      `${side}: the deployed store (entities.json and the registrations' agents) does not conform to the schema: ${check.errors.map((e) => e.message).join('; ')}`,
    );
  return store;
}

function sameHierarchy(a: Map<string, Set<string>>, b: Map<string, Set<string>>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y || y.size !== x.size || [...x].some((v) => !y.has(v))) return false;
  }
  return true;
}

function labelKey(t: TaintAssumption | undefined): string {
  return t ? JSON.stringify(Object.entries(t.labels).sort(([a], [b]) => (a < b ? -1 : 1))) : '';
}

/**
 * The context domain of both sides over one session mask: the head's labels on the
 * request's taint set; the base's (when its table differs) on the taint set the base
 * sees; data_touched the mask itself (the enforcer sends it exactly).
 */
function taintAssumptions(
  env: RequestEnv,
  baseEnv: RequestEnv | undefined,
  view: ContextView | undefined,
  head: TaintAssumption | undefined,
  base: TaintAssumption | undefined,
): string[] {
  if (!hasTaintContext(env.context)) return [];
  const out = contextAssumptions(env, head, { taint: ctxConst(['taint']), mask: ctxConst(['data_touched']) });
  if (base && baseEnv && view && hasTaintContext(baseEnv.context)) {
    const leaf = (name: string) => view.leaves.find((l) => l.path.length === 1 && l.path[0] === name)?.value;
    const baseTaintSet = leaf('taint');
    const baseMask = leaf('data_touched');
    if (baseTaintSet && baseMask) out.push(...contextAssumptions(baseEnv, base, { taint: baseTaintSet, mask: baseMask }));
  }
  return out;
}

function side<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof UnsupportedError) throw new GateError('unsupported', `${err.message} (${what})`);
    throw err;
  }
}

export interface GateResult {
  report: ProofReport;
  digest: string;
  timings: { compileMs: number; solveMs: number };
  /** Solver queries asked (depends on --jobs, so it is not part of the report). */
  queries: number;
}

export async function runGate(base: GateSide, head: GateSide, opts: GateOptions = {}): Promise<GateResult> {
  const t0 = performance.now();
  const version = await cvc5Version();
  const headSchema = side('head schema', () => loadSchema(head.source.schema));
  const baseSchema = side('base schema', () => loadSchema(base.source.schema));
  // Long literals exact (BigInt beyond 2^53): policyToJson's numbers round them.
  const headPolicies = splitPolicies(head.source.policies).map(exactPolicy);
  const basePolicies = splitPolicies(base.source.policies).map(exactPolicy);
  const invariants = splitPolicies(head.source.invariants).map(exactPolicy);
  const baseCapsule = capsuleOf(base.source);
  const headCapsule = capsuleOf(head.source);
  const taint = taintOf(head.source.configText);
  const baseTaint = taintOf(base.source.configText);
  // A label renamed (or moved) between the two: each side names the session mask's bits by its own table.
  const sameLabels = labelKey(taint) === labelKey(baseTaint);
  const headKeys = headPolicies.map((p) => stringifyJsonLong(p.json));
  const baseKeys = basePolicies.map((p) => stringifyJsonLong(p.json));
  const sameActions = sameHierarchy(headSchema.actionAncestors, baseSchema.actionAncestors);

  const build = (
    env: RequestEnv,
    deployed?: EnvProblem['deployed'],
    opts: { askEscalation?: boolean; invariants?: Set<string> } = {},
  ): EnvProblem => {
    const decls = new Decls();
    const hc = new Compiler({
      schema: headSchema,
      actionAncestors: headSchema.actionAncestors,
      env,
      decls,
      store: deployed ? 'h' : undefined,
    });
    const baseEnv = baseEnvFor(baseSchema, env);
    // The base sees the context as its own schema types it (context-view.ts).
    const view = baseEnv ? contextView(env.context, baseEnv.context, decls, sameLabels ? [] : ['taint']) : undefined;
    const bc = new Compiler({
      schema: headSchema,
      actionAncestors: baseSchema.actionAncestors,
      env: baseEnv ? { ...env, context: baseEnv.context } : env,
      decls,
      context: view?.rec,
      store: deployed ? 'b' : undefined,
    });
    const defs = new Definitions();
    const headCompiled = side('head', () => compileSet(hc, headPolicies));
    const headSet = nameTerms(headCompiled, 'head', defs.define);
    // The base compiles a policy exactly as the head does when both see the same
    // environment (same context type and labels, same action hierarchy, every
    // store): such a policy's terms are the head's, not compiled again.
    const sameEnv = !deployed && !!baseEnv && sameLabels && sameActions && tyEq(env.context, baseEnv.context);
    const headByJson = new Map(sameEnv ? headKeys.map((k, i) => [k, headCompiled.policies[i]]) : []);
    const compileBase = () =>
      fromCompiled(
        basePolicies.map((p, i) => {
          const same = headByJson.get(baseKeys[i]);
          return same ? { ...same, id: p.id } : bc.compilePolicy(p.id, p.json);
        }),
      );
    // Over the deployed stores the base also refuses agents it did not register.
    const baseAdmit = deployed && view ? and(view.admit, registeredPrincipal(deployed.base, env)) : view?.admit;
    const baseSet = view ? admitted(nameTerms(side('base', compileBase), 'base', defs.define), baseAdmit!, defs.define) : undefined;
    // Over the deployed store only the invariants that failed for some store are asked again.
    const invs = side('invariants', () =>
      invariants.flatMap((p, i) => (!opts.invariants || opts.invariants.has(p.id) ? [{ c: hc.compilePolicy(p.id, p.json), i }] : [])),
    ).map(({ c, i }) => ({ ...c, sat: defs.define(`inv.sat.${i}`, c.sat), err: c.err }));
    const assumptions = [
      // A concrete store needs no hierarchy assumption: its ancestor sets are its transitive closure.
      ...(deployed ? [registeredPrincipal(deployed.head, env)] : hierarchyAssumptions(decls, headSchema)),
      // After the hierarchy: it may use more ancestor functions, whose values are bounded too.
      ...enumAssumptions(decls, headSchema),
      ...taintAssumptions(env, baseEnv, view, taint, sameLabels ? undefined : baseTaint),
    ];
    let storeDefs = '';
    if (deployed) {
      try {
        storeDefs = defineStore(decls, 'h', deployed.head) + defineStore(decls, 'b', deployed.base);
      } catch (err) {
        if (err instanceof StoreError) throw new GateError('bad_config', err.message);
        if (err instanceof UnsupportedError) throw new GateError('unsupported', `${err.message} (deployed store)`);
        throw err;
      }
    }
    return {
      env,
      decls,
      defs,
      assumptions,
      head: headSet,
      base: baseSet,
      view,
      invariants: invs,
      storeDefs,
      deployed,
      askEscalation: opts.askEscalation ?? true,
    };
  };
  const problems = headSchema.envs.map((env) => build(env));
  const compileMs = performance.now() - t0;

  // Environments are split round-robin over a few cvc5 processes. Each worker
  // keeps its own skip state, so what it asks (and every model) depends only on
  // its own environments: for a given number of workers the report is the same
  // on every run (verdicts and findings never depend on it; counterexample
  // values may, so the report records it).
  const workers = Math.max(1, Math.min(opts.workers ?? 2, problems.length));
  const t1 = performance.now();
  const ctx: SolveContext = { headSchema, headPolicies, basePolicies, invariants, head, base, opts };
  const solveAll = (ps: EnvProblem[]) => {
    const sorts = new Set(ps.flatMap((p) => [...p.decls.sorts]));
    const n = Math.max(1, Math.min(workers, ps.length));
    return Promise.all(
      Array.from({ length: n }, (_, w) =>
        solveEnvs(
          ps.map((p, i) => ({ p, i })).filter(({ i }) => i % n === w),
          sorts,
          ctx,
          w === 0 ? opts.transcript : undefined,
        ),
      ),
    );
  };
  const parts = await solveAll(problems);
  const escalations = parts
    .flatMap((x) => x.escalations)
    .sort((a, b) => a.index - b.index)
    .map((x) => x.finding);
  const invResults = new Map<string, InvariantResult>(
    invariants.map((p) => [p.id, { id: p.id, file: p.file, effect: p.json.effect as 'permit' | 'forbid', result: 'holds' as const }]),
  );
  for (const v of parts.flatMap((x) => x.violations).sort((a, b) => a.index - b.index)) {
    if (invResults.get(v.result.id)!.result === 'holds') invResults.set(v.result.id, v.result);
  }
  const hygiene = new Map<string, { matched: boolean; effective: boolean; errorEnv?: string; permit: boolean }>(
    headPolicies.map((p) => [p.id, { matched: false, effective: false, permit: p.json.effect === 'permit' }]),
  );
  for (const part of parts) {
    for (const [id, h] of part.hygiene) {
      const m = hygiene.get(id)!;
      m.matched ||= h.matched;
      m.effective ||= h.effective;
      if (
        h.errorIndex !== undefined &&
        (m.errorEnv === undefined || h.errorIndex < problems.findIndex((x) => envKey(x.env) === m.errorEnv))
      )
        m.errorEnv = envKey(problems[h.errorIndex].env);
    }
  }

  // The deployed store (entities.json + registrations). When it is the same on both
  // sides it is one of "every store", so only environments that escalated over every
  // store are asked again (does the escalation happen on what is deployed?); when it
  // changed, every environment is (an entities-only PR is proved or refuted here).
  // An invariant that fails for some store is asked again in every environment over
  // the head's deployed store: it holds there only, or it is violated there.
  const headStore = storeOf('head', head.source, headCapsule);
  const baseStore = storeOf('base', base.source, baseCapsule);
  const storeChanged = headStore.key !== baseStore.key;
  const escalatedEnvs = new Set(escalations.map((e) => e.env));
  const failedEvery = new Set([...invResults.values()].filter((i) => i.result !== 'holds').map((i) => i.id));
  const askStore = (env: RequestEnv) => storeChanged || escalatedEnvs.has(envKey(env));
  const storeEnvs = headSchema.envs.filter((env) => askStore(env) || failedEvery.size);
  const deployed = { head: headStore, base: baseStore };
  const storeParts = storeEnvs.length
    ? await solveAll(storeEnvs.map((env) => build(env, deployed, { askEscalation: askStore(env), invariants: failedEvery })))
    : [];
  // Per invariant: holds for every store; fails for some store but holds for the
  // deployed one (its every-store counterexample kept); or violated on the deployed store.
  const storeViolations = new Map<string, InvariantResult>();
  for (const v of storeParts.flatMap((x) => x.violations).sort((a, b) => a.index - b.index))
    if (!storeViolations.has(v.result.id)) storeViolations.set(v.result.id, v.result);
  for (const id of failedEvery) {
    const every = invResults.get(id)!;
    const onDeployed = storeViolations.get(id);
    invResults.set(
      id,
      onDeployed ?? {
        id,
        file: every.file,
        effect: every.effect,
        result: 'holds-deployed-only',
        everyStore: { env: every.env!, counterexample: every.counterexample! },
      },
    );
  }
  const storeFindings = storeParts
    .flatMap((x) => x.escalations)
    .sort((a, b) => a.index - b.index)
    .map((x) => x.finding);
  const queries = [...parts, ...storeParts].reduce((n, x) => n + x.queries, 0);
  const solveMs = performance.now() - t1;

  const warnings: Warning[] = [];
  if (opts.hygiene !== false) {
    for (const p of headPolicies) {
      const h = hygiene.get(p.id)!;
      if (!h.matched) warnings.push({ kind: 'dead', policy: p.id, file: p.file, detail: 'matches no request in any environment' });
      else if (h.permit && !h.effective)
        warnings.push({ kind: 'shadowed', policy: p.id, file: p.file, detail: 'every request it permits is forbidden by a forbid policy' });
      if (h.errorEnv)
        warnings.push({
          kind: 'may-error',
          policy: p.id,
          file: p.file,
          detail: `evaluation can raise an error (e.g. in ${h.errorEnv}); an erroring policy is skipped`,
        });
    }
  }
  const assumptions = [
    'entity hierarchy: any store whose ancestor relation is acyclic and transitive (proved for all entity stores, not only entities.json)',
    'requests: every (principal, action, resource) environment of the head schema, with a context of the declared type; the base set denies requests its schema does not describe',
  ];
  if (taint) assumptions.push(describeTaintAssumption(taint));
  if (baseTaint && !sameLabels)
    assumptions.push(
      `base taint labels differ from the head's (base: ${Object.entries(baseTaint.labels)
        .map(([l, b]) => `${l}=bit ${b}`)
        .join(', ')}): each side names the same session mask's bits by its own table`,
    );
  assumptions.push(
    'deployed entity store: entities.json plus one Agent per registration with its groups as parents (what the enforcer sends); principals are the registered agents (the base refuses agents it did not register); any other entity (a Host entities.json does not name) has no ancestors and no attributes',
  );
  const allChanges = capsuleChanges(baseCapsule, headCapsule).map((c) => {
    const a = findChangeApproval(opts.approvals ?? [], c.key);
    return a ? { ...c, approved: { reason: a.reason, source: a.source } } : c;
  });
  // Hierarchy changes (an entity or agent with a new ancestor) the deployed-store proof
  // shows to widen nothing are proven, not escalations; otherwise each needs its approval.
  const provenStoreChanges = storeFindings.length ? [] : allChanges.filter((c) => c.store).map((c) => c.key);
  const capsule = storeFindings.length ? allChanges : allChanges.filter((c) => !c.store);
  // A deployed-store escalation is accepted by what its sources need: the approval of
  // the same environment's every-store escalation (when the policies widen there too)
  // and, when the store changed, every change to the store's data — each by its own
  // key, so approving one entity's attribute approves no other entity's. Matching
  // keys only: no solver query.
  const entityChanges = storeChanged ? allChanges.filter((c) => c.entity !== undefined) : [];
  const storeEscalations = storeFindings.map((f): EscalationFinding => {
    const every = escalations.find((e) => e.env === f.env);
    const seen = new Set(
      [...f.counterexample.entities, ...(f.baseEntities ?? [])].map((e) => `${e.uid.type}::${JSON.stringify(e.uid.id)}`),
    );
    const approval = {
      ...(every ? { action: every.approval.action } : {}),
      ...(storeChanged
        ? { changes: entityChanges.map((c) => c.key), witness: entityChanges.filter((c) => seen.has(c.entity!)).map((c) => c.key) }
        : {}),
    };
    const parts = [...(every ? [every.approved] : []), ...entityChanges.map((c) => c.approved)];
    // Fail closed: a store that changed in a way no key names is approved by nothing.
    const ok = (!storeChanged || entityChanges.length > 0) && parts.length > 0 && parts.every((a) => a !== undefined);
    const approved = ok
      ? {
          reason: [...new Set(parts.map((a) => a!.reason))].join('; '),
          source: [...new Set(parts.map((a) => a!.source))].join(', '),
        }
      : undefined;
    return { ...f, approval, ...(approved ? { approved } : {}) };
  });
  const entityStores: EntityStores = {
    every: escalations.length ? 'escalation' : 'holds',
    deployed: storeFindings.length ? 'escalation' : 'holds',
    changed: storeChanged,
    ...(provenStoreChanges.length ? { provenChanges: provenStoreChanges } : {}),
  };
  const invList = [...invResults.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  const report: ProofReport = {
    format: REPORT_FORMAT,
    verdict: verdictOf([...escalations, ...storeEscalations], invList, capsule),
    base: { label: base.label, ...(base.commit ? { commit: base.commit } : {}), digest: digestFiles(sourceFiles(base.source)) },
    head: { label: head.label, ...(head.commit ? { commit: head.commit } : {}), digest: digestFiles(sourceFiles(head.source)) },
    solver: { name: 'cvc5', version, jobs: workers },
    assumptions,
    environments: problems.map((p) => envKey(p.env)),
    escalations,
    entityStores,
    storeEscalations,
    capsule,
    invariants: invList,
    warnings: warnings.sort((a, b) => (a.policy === b.policy ? (a.kind < b.kind ? -1 : 1) : a.policy < b.policy ? -1 : 1)),
  };
  return { report, digest: reportDigest(report), timings: { compileMs, solveMs }, queries };
}

interface SolveContext {
  headSchema: ProverSchema;
  headPolicies: NamedPolicy[];
  basePolicies: NamedPolicy[];
  invariants: NamedPolicy[];
  head: GateSide;
  base: GateSide;
  opts: GateOptions;
}

interface WorkerResult {
  escalations: { index: number; finding: EscalationFinding }[];
  violations: { index: number; result: InvariantResult }[];
  hygiene: Map<string, { matched: boolean; effective: boolean; errorIndex?: number }>;
  queries: number;
}

async function solveEnvs(
  items: { p: EnvProblem; i: number }[],
  sorts: Set<string>,
  c: SolveContext,
  transcript?: (t: string) => void,
): Promise<WorkerResult> {
  const { headSchema, headPolicies, basePolicies, invariants, head, base, opts } = c;
  const out: WorkerResult = {
    escalations: [],
    violations: [],
    hygiene: new Map(headPolicies.map((p) => [p.id, { matched: false, effective: false }])),
    queries: 0,
  };
  const violated = new Set<string>();
  const solver = new Cvc5({ timeoutMs: opts.timeoutMs, transcript });
  try {
    solver.send(declareSorts(sorts));
    for (const { p: pr, i: index } of items) {
      const key = envKey(pr.env);
      solver.send('(push 1)\n' + declareScope(pr.decls) + pr.storeDefs + pr.defs.text() + assertAll(pr.assumptions));
      const query = async (formula: string): Promise<boolean> => {
        if (formula === FALSE) return false;
        out.queries++;
        solver.send(`(push 1)\n(assert ${formula})\n`);
        const r = await solver.checkSat();
        if (r === 'unsat') solver.send('(pop 1)\n');
        return r === 'sat';
      };
      const model = async (): Promise<Counterexample & { baseContext?: Counterexample['context'] }> => {
        // Prefer readable ids and small Longs; fall back to any model (a Long beyond 2^53 is written exactly).
        let scopes = 0;
        for (const extra of [
          [...safeLongBounds(pr.env, pr.decls, headSchema), ...readableIds(pr.env)],
          safeLongBounds(pr.env, pr.decls, headSchema),
          readableIds(pr.env),
        ]) {
          solver.send(`(push 1)\n${assertAll(extra)}`);
          // Preferences only: unsat or unknown just means "take the next one".
          if ((await solver.checkSatMaybe()) === 'sat') {
            scopes = 1;
            break;
          }
          solver.send('(pop 1)\n');
        }
        if (scopes === 0 && (await solver.checkSat()) !== 'sat') throw new GateError('lost_model', `solver lost the model for ${key}`);
        try {
          const cx = await extract(solver, pr.env, pr.decls, headSchema);
          return pr.view ? { ...cx, baseContext: await readContext(solver, pr.view.leaves, cx.action.id) } : cx;
        } finally {
          if (scopes) solver.send('(pop 1)\n');
        }
      };
      const done = () => solver.send('(pop 1)\n');

      // Non-escalation.
      if (pr.askEscalation && (await query(verifier.escalation(pr.head, pr.base)))) {
        const { baseContext, ...found } = await model();
        done();
        // Over the deployed stores the witness carries each side's store (the part the request can observe).
        const cx = pr.deployed ? { ...found, entities: storeWitness(pr.deployed.head, found, found.context) } : found;
        const baseCx = {
          ...cx,
          // The base decides the request as its own enforcer would have sent it (context-view.ts).
          context: baseContext ?? cx.context,
          entities: pr.deployed ? storeWitness(pr.deployed.base, found, baseContext ?? found.context) : cx.entities,
        };
        const h = decide(cx, toStaticPolicies(headPolicies), head.source.schema);
        const b = decide(baseCx, toStaticPolicies(basePolicies), base.source.schema);
        if (h.decision !== 'allow' || b.decision !== 'deny') {
          throw new GateError(
            'encoder_bug',
            `encoder bug: ${pr.deployed ? 'deployed-store ' : ''}counterexample for ${key} does not re-check with cedar-wasm (head ${h.decision}, base ${b.decision}; ` +
              `head errors: ${h.errors.join('; ') || 'none'})\n${describeCounterexample(cx)}`,
          );
        }
        // Deployed-store findings are approved in runGate, from what their sources need.
        const approval = pr.deployed ? undefined : findApproval(opts.approvals ?? [], pr.env);
        out.escalations.push({
          index,
          finding: {
            env: key,
            ...(approval ? { approved: { reason: approval.reason, source: approval.source } } : {}),
            approval: pr.deployed
              ? {}
              : {
                  action: { action: approvalAction(pr.env), principal_type: pr.env.principalType, resource_type: pr.env.resourceType },
                },
            counterexample: cx,
            ...(baseContext && stringifyJsonLong(baseContext) !== stringifyJsonLong(cx.context) ? { baseContext } : {}),
            ...(pr.deployed && stringifyJsonLong(baseCx.entities) !== stringifyJsonLong(cx.entities)
              ? { baseEntities: baseCx.entities }
              : {}),
            recheck: { head: 'allow', base: 'deny', headReasons: h.reasons.sort(), baseErrors: b.errors.sort() },
          },
        });
      }
      // Invariants (over the deployed store: the witness is the head store's part the request observes).
      for (const inv of pr.invariants) {
        if (violated.has(inv.id)) continue;
        if (!(await query(verifier.invariantBreach(pr.head, inv)))) continue;
        const { baseContext: _, ...found } = await model();
        done();
        const cx = pr.deployed ? { ...found, entities: storeWitness(pr.deployed.head, found, found.context) } : found;
        const original = invariants.find((p) => p.id === inv.id)!;
        recheckInvariant(cx, original, headPolicies, head.source.schema, key);
        violated.add(inv.id);
        out.violations.push({
          index,
          result: {
            id: inv.id,
            file: original.file,
            effect: inv.effect,
            result: 'violated',
            ...(pr.deployed ? { store: 'deployed' as const } : {}),
            env: key,
            counterexample: cx,
          },
        });
      }
      if (pr.deployed) {
        solver.send('(pop 1)\n');
        continue;
      }

      // Hygiene (head only). One query covers every property still undecided (a
      // policy matches / a permit is effective / a policy may error): their
      // disjunction; each model marks all it satisfies, and unsat settles the rest
      // for this environment. Same answers as one query per property (one is marked
      // only by a model that satisfies it), far fewer queries.
      if (opts.hygiene !== false) {
        const hy = (p: CompiledPolicy) => out.hygiene.get(p.id)!;
        let rest: { t: string; mark: () => void }[] = [];
        for (const p of pr.head.policies) {
          const h = hy(p);
          if (p.effect === 'permit' && !h.effective)
            rest.push({
              t: verifier.effective(p, pr.head),
              mark: () => {
                h.effective = true;
                h.matched = true;
              },
            });
          if (!h.matched) rest.push({ t: verifier.matches(p), mark: () => (h.matched = true) });
          if (h.errorIndex === undefined) rest.push({ t: verifier.mayError(p), mark: () => (h.errorIndex ??= index) });
        }
        rest = rest.filter((x) => x.t !== FALSE);
        const pending = new Set(rest);
        // A conjunction of undecided properties: when sat, one model settles them all
        // (and marks whatever else it satisfies); when unsat, halve it. Unsat answers
        // are cheap here, models are not.
        const settle = async (items: typeof rest): Promise<void> => {
          items = items.filter((x) => pending.has(x));
          if (!items.length) return;
          if (await query(and(...items.map((x) => x.t)))) {
            const all = [...pending];
            const vals = await solver.getValues(all.map((x) => x.t));
            done();
            all.forEach((x, i) => {
              if (decodeBool(vals[i])) {
                x.mark();
                pending.delete(x);
              }
            });
            if (items.some((x) => pending.has(x))) throw new GateError('lost_model', `the solver's model misses a hygiene term in ${key}`);
            return;
          }
          if (items.length === 1) {
            pending.delete(items[0]);
            return;
          }
          const half = items.length >> 1;
          await settle(items.slice(0, half));
          await settle(items.slice(half));
        };
        await settle(rest);
      }
      solver.send('(pop 1)\n');
    }
  } catch (err) {
    if (err instanceof SolverError) throw new GateError('solver', err.message);
    throw err;
  } finally {
    await solver.close();
  }
  return out;
}

function storeWitness(store: DeployedStore, req: Counterexample, context: Counterexample['context']): Counterexample['entities'] {
  return store.witness([req.principal, req.resource], context) as Counterexample['entities'];
}

function sourceFiles(src: PolicySource): Record<string, string> {
  return {
    ...src.policies,
    ...src.invariants,
    'schema.cedarschema': src.schema,
    'entities.json': src.entitiesText,
    'lilith.json': src.configText,
  };
}

/** Non-empty principal and resource ids make counterexamples easier to read. */
function readableIds(env: RequestEnv): string[] {
  return [
    `(distinct (${sym(`E.${env.principalType}.eid`)} ${PRINCIPAL}) "")`,
    `(distinct (${sym(`E.${env.resourceType}.eid`)} ${RESOURCE}) "")`,
  ];
}

const PERMIT_ALL = 'permit (principal, action, resource);';

function recheckInvariant(cx: Counterexample, inv: NamedPolicy, head: NamedPolicy[], schema: string, key: string): void {
  const h = decide(cx, toStaticPolicies(head), schema);
  let matched: boolean;
  if (inv.json.effect === 'forbid') {
    const d = decide(cx, { [inv.id]: inv.text, __lilith_permit_all: PERMIT_ALL }, schema);
    matched = d.decision === 'deny' && d.reasons.includes(inv.id);
    if (h.decision === 'allow' && matched) return;
  } else {
    const d = decide(cx, { [inv.id]: inv.text }, schema);
    matched = d.decision === 'allow';
    if (h.decision === 'deny' && matched) return;
  }
  throw new GateError(
    'encoder_bug',
    `encoder bug: invariant ${inv.id} counterexample for ${key} does not re-check with cedar-wasm (head ${h.decision}, invariant ${matched ? 'matches' : 'does not match'})\n${describeCounterexample(cx)}`,
  );
}
