// Differential soundness: thousands of random policies × concrete requests;
// the SMT encoding (real cvc5) must give exactly cedar-wasm's per-policy
// satisfaction, errors and decision. Zero disagreements allowed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DiffHarness, namedPolicies, type Disagreement } from './differential.js';
import { splitPolicies } from '../../cedar/policy-set.js';
import { parseEntities, readPolicyDir } from '../../pipeline/policy-source.js';
import { BUNDLED } from './fixtures.js';
import { DIFF_SCHEMA, genBundledRequest, genRequest, LABEL_BITS, PolicyGen, Rng, universe } from './gen.js';

const CASES = Number(process.env.LILITH_DIFF_CASES ?? 2000);
const SEED = Number(process.env.LILITH_DIFF_SEED ?? 20261122);

function show(d: Disagreement): string {
  return JSON.stringify(d, null, 1).slice(0, 4000);
}

const WORKERS = 2;

test(`random policies and requests: SMT encoding == cedar-wasm (${CASES} cases, seed ${SEED})`, async (t) => {
  const bad: Disagreement[] = [];
  // Two harnesses (two cvc5 processes) interleave: one solves while the other generates.
  const harnesses = Array.from({ length: WORKERS }, () => new DiffHarness(DIFF_SCHEMA, universe()));
  try {
    await Promise.all(
      harnesses.map(async (h, w) => {
        const rng = new Rng(SEED + w);
        const gen = new PolicyGen(rng);
        for (let i = w; i < CASES && bad.length < 5; i += WORKERS) {
          const n = 1 + rng.int(4);
          const texts = Array.from({ length: n }, (_, k) => gen.policy(`c${i}p${k}`));
          const d = await h.check({ policies: namedPolicies(texts), ...genRequest(rng) });
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
