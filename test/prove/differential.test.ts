// Differential soundness: thousands of random policies × concrete requests;
// the SMT encoding (real cvc5) must give exactly cedar-wasm's per-policy
// satisfaction, errors and decision. Zero disagreements allowed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapsuleBruteForce, DiffHarness, namedPolicies, type CapsuleSide, type Disagreement } from './differential.js';
import { GateError, runGate } from '../../pipeline/prove/gate.js';
import type { EscalationFinding } from '../../pipeline/prove/report.js';
import { neutralConfig } from './fixtures.js';
import { splitPolicies } from '../../cedar/policy-set.js';
import { parseEntities, readPolicyDir } from '../../pipeline/policy-source.js';
import { BUNDLED } from './fixtures.js';
import {
  DIFF_CTX,
  DIFF_SCHEMA,
  genBundledRequest,
  genRequest,
  genStore,
  LABEL_BITS,
  mutateShape,
  mutateStore,
  PolicyGen,
  POOL,
  qualifyPolicy,
  qualifySchema,
  qualifyValue,
  Rng,
  schemaOf,
  universe,
} from './gen.js';

const CASES = Number(process.env.LILITH_DIFF_CASES ?? 2000);
const SEED = Number(process.env.LILITH_DIFF_SEED ?? 20261122);

function show(d: Disagreement): string {
  return JSON.stringify(d, null, 1).slice(0, 4000);
}

const WORKERS = 2;

test(`random policies and requests: SMT encoding == cedar-wasm (${CASES} cases, seed ${SEED})`, async (t) => {
  const bad: Disagreement[] = [];
  // Two harnesses (two cvc5 processes) interleave: one solves while the other generates.
  // The second runs the same generator inside a namespace (every name qualified).
  const NS = 'Corp::App';
  const harnesses = [
    new DiffHarness(DIFF_SCHEMA, universe()),
    new DiffHarness(qualifySchema(DIFF_SCHEMA, NS), qualifyValue(universe(), NS), undefined, `${NS}::Action`),
  ];
  try {
    await Promise.all(
      harnesses.map(async (h, w) => {
        const rng = new Rng(SEED + w);
        const gen = new PolicyGen(rng);
        for (let i = w; i < CASES && bad.length < 5; i += WORKERS) {
          const n = 1 + rng.int(4);
          const texts = Array.from({ length: n }, (_, k) => gen.policy(`c${i}p${k}`));
          const req = genRequest(rng);
          const d =
            w === 0
              ? await h.check({ policies: namedPolicies(texts), ...req })
              : await h.check({
                  policies: namedPolicies(texts.map((x) => qualifyPolicy(x, NS))),
                  ...req,
                  principal: qualifyValue(req.principal, NS),
                  resource: qualifyValue(req.resource, NS),
                  context: qualifyValue(req.context, NS),
                  entities: qualifyValue(req.entities, NS),
                });
          if (d) bad.push(d);
        }
      }),
    );
  } finally {
    await Promise.all(harnesses.map((h) => h.close()));
  }
  const stats = harnesses
    .map((h) => h.stats)
    .reduce((a, b) => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v + b[k as keyof typeof b]])) as typeof a);
  t.diagnostic(`stats ${JSON.stringify(stats)}`);
  assert.equal(bad.length, 0, `disagreements:\n${bad.map(show).join('\n')}`);
  assert.equal(stats.cases, CASES);
  // The generator must actually reach both decisions and errors.
  assert.ok(stats.allow > CASES / 20 && stats.deny > CASES / 20, `decisions too one-sided: ${JSON.stringify(stats)}`);
  assert.ok(stats.withErrors > CASES / 20, `too few erroring cases: ${JSON.stringify(stats)}`);
});

const BUNDLED_CASES = Number(process.env.LILITH_DIFF_BUNDLED_CASES ?? 300);

test(`bundled policies, random enforcer-shaped requests (taint assumption on): SMT == cedar-wasm (${BUNDLED_CASES} cases)`, async (t) => {
  const src = await readPolicyDir(BUNDLED);
  const entities = parseEntities(src.entitiesText) as Parameters<typeof genBundledRequest>[2];
  // entities.json names every group and zone the bundled policies mention.
  const h = new DiffHarness(
    src.schema,
    entities.map((e) => e.uid),
    { labels: LABEL_BITS },
  );
  const policies = splitPolicies(src.policies);
  const rng = new Rng(SEED);
  const bad: Disagreement[] = [];
  try {
    for (let i = 0; i < BUNDLED_CASES && bad.length < 5; i++) {
      const d = await h.check({ policies, ...genBundledRequest(rng, h.schema.envs, entities) });
      if (d) bad.push(d);
    }
  } finally {
    await h.close();
  }
  t.diagnostic(`stats ${JSON.stringify(h.stats)}`);
  assert.equal(bad.length, 0, `disagreements:\n${bad.map(show).join('\n')}`);
  assert.ok(h.stats.allow > BUNDLED_CASES / 20 && h.stats.deny > BUNDLED_CASES / 20, JSON.stringify(h.stats));
});

// ---- capsule pairs: entity stores and schemas -------------------------------
//
// Whole gate runs on random base/head pairs that differ in the entity store or the
// schema, against brute force: cedar-wasm over every environment × pool principals
// and resources (plus an id no store holds) × random contexts (× random draws of
// what the base sees of attributes only it declares). Soundness: every environment
// where brute force finds head-allow ∧ base-deny must be an escalation of the
// prover. Completeness over the generated requests and the witnesses: every
// escalation the prover reports comes with a witness that brute force confirms
// over the whole stores (not only the part the report shows).

const STORE_PAIRS = Number(process.env.LILITH_DIFF_STORE_PAIRS ?? 24);
const SCHEMA_PAIRS = Number(process.env.LILITH_DIFF_SCHEMA_PAIRS ?? 24);

function capsuleSource(side: CapsuleSide) {
  return {
    policies: { 'p.cedar': side.policies.join('\n') },
    invariants: {},
    schema: side.schema,
    entitiesText: JSON.stringify(side.store),
    configText: neutralConfig(),
  };
}

/** The witness, decided by cedar-wasm over each side's whole store. */
function confirm(bf: CapsuleBruteForce, f: EscalationFinding, base: CapsuleSide, head: CapsuleSide): boolean {
  const cx = f.counterexample;
  const q = { principal: cx.principal, action: cx.action.id, resource: cx.resource, context: cx.context };
  return (
    bf.decide('head', q, head.store) === 'allow' &&
    bf.decide('base', { ...q, context: (f.baseContext ?? cx.context) as Record<string, unknown> }, base.store) === 'deny'
  );
}

async function capsulePair(base: CapsuleSide, head: CapsuleSide, rng: Rng) {
  const { report } = await runGate(
    { label: 'base', source: capsuleSource(base) },
    { label: 'head', source: capsuleSource(head) },
    { hygiene: false },
  );
  const bf = new CapsuleBruteForce(base, head);
  const brute = bf.escalations(rng, POOL, 6, 3);
  return { report, bf, brute };
}

test(`entity-store pairs: the deployed-store verdict agrees with brute-force cedar-wasm (${STORE_PAIRS} pairs)`, async (t) => {
  const rng = new Rng(SEED + 7);
  const gen = new PolicyGen(rng);
  const stats = { pairs: 0, envs: 0, bruteEscalations: 0, proverEscalations: 0, exact: 0, evaluations: 0 };
  for (let i = 0; i < STORE_PAIRS; i++) {
    const policies = Array.from({ length: 2 + rng.int(3) }, (_, k) => gen.policy(`s${i}p${k}`));
    const store = genStore(rng);
    const base = { schema: DIFF_SCHEMA, policies, store };
    const head = { schema: DIFF_SCHEMA, policies, store: mutateStore(rng, store) };
    const { report, bf, brute } = await capsulePair(base, head, rng);
    const prover = new Set(report.storeEscalations.map((e) => e.env));
    const where = `pair ${i}: base store ${JSON.stringify(base.store)}\nhead store ${JSON.stringify(head.store)}\npolicies ${policies.join('\n')}`;
    // The same policies on both sides: every store is the same store, so it holds there.
    assert.equal(report.entityStores.every, 'holds', where);
    assert.equal(report.entityStores.deployed, prover.size ? 'escalation' : 'holds');
    for (const [env, q] of brute)
      assert.ok(prover.has(env), `brute force escalates in ${env} (${JSON.stringify(q)}), the prover does not\n${where}`);
    for (const f of report.storeEscalations)
      assert.ok(confirm(bf, f, base, head), `witness does not hold over the whole stores: ${JSON.stringify(f)}\n${where}`);
    stats.pairs++;
    stats.envs += bf.headSchema.envs.length;
    stats.bruteEscalations += brute.size;
    stats.proverEscalations += prover.size;
    if (brute.size === prover.size) stats.exact++;
    stats.evaluations += bf.evaluations;
  }
  t.diagnostic(`stats ${JSON.stringify(stats)}`);
  assert.ok(
    stats.proverEscalations > 0 && stats.proverEscalations < stats.envs,
    `the generator must reach both answers: ${JSON.stringify(stats)}`,
  );
});

test(`schema pairs: the prover's verdict agrees with brute-force cedar-wasm (${SCHEMA_PAIRS} pairs)`, async (t) => {
  const rng = new Rng(SEED + 11);
  const gen = new PolicyGen(rng);
  const stats = { pairs: 0, refused: 0, envs: 0, bruteEscalations: 0, proverEscalations: 0, exact: 0, evaluations: 0 };
  for (let i = 0; i < SCHEMA_PAIRS; i++) {
    const policies = Array.from({ length: 2 + rng.int(3) }, (_, k) => gen.policy(`c${i}p${k}`));
    const store = genStore(rng);
    const { shape, edits } = mutateShape(rng, DIFF_CTX);
    // Either direction: the head narrows or widens the base's context type.
    const [baseShape, headShape] = rng.chance(0.5) ? [DIFF_CTX, shape] : [shape, DIFF_CTX];
    const base = { schema: schemaOf(baseShape), policies, store };
    const head = { schema: schemaOf(headShape), policies, store };
    let pair: Awaited<ReturnType<typeof capsulePair>>;
    try {
      pair = await capsulePair(base, head, rng);
    } catch (err) {
      // A retyped attribute can leave an `if` with branches of two types: refused (exit 2), never answered.
      if (err instanceof GateError && err.code === 'unsupported') {
        stats.refused++;
        continue;
      }
      throw err;
    }
    const { report, bf, brute } = pair;
    const every = new Set(report.escalations.map((e) => e.env));
    const deployed = new Set(report.storeEscalations.map((e) => e.env));
    const where = `pair ${i}: ${baseShape === DIFF_CTX ? 'head' : 'base'} edited: ${edits.join(', ')}\npolicies ${policies.join('\n')}\nstore ${JSON.stringify(store)}`;
    for (const [env, q] of brute) {
      assert.ok(every.has(env), `brute force escalates in ${env} (${JSON.stringify(q)}), the every-store proof does not\n${where}`);
      assert.ok(deployed.has(env), `brute force escalates in ${env} (${JSON.stringify(q)}), the deployed-store proof does not\n${where}`);
    }
    for (const f of report.storeEscalations)
      assert.ok(confirm(bf, f, base, head), `witness does not hold over the whole store: ${JSON.stringify(f)}\n${where}`);
    stats.pairs++;
    stats.envs += bf.headSchema.envs.length;
    stats.bruteEscalations += brute.size;
    stats.proverEscalations += deployed.size;
    if (brute.size === deployed.size) stats.exact++;
    stats.evaluations += bf.evaluations;
  }
  t.diagnostic(`stats ${JSON.stringify(stats)}`);
  assert.ok(stats.refused < SCHEMA_PAIRS / 4, `too many refused pairs: ${JSON.stringify(stats)}`);
  assert.ok(
    stats.proverEscalations > 0 && stats.proverEscalations < stats.envs,
    `the generator must reach both answers: ${JSON.stringify(stats)}`,
  );
});
