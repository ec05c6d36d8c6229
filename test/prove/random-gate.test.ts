// Counterexample extraction under fire: random base/head policy pairs over the
// differential test schema (optional and nested records, entity-valued and
// entity-set context, self-nesting hierarchies, overflow, like). The gate
// re-checks every counterexample with cedar-wasm and throws on any that does
// not hold, so a pass means every model was decoded into a request and entity
// store that really is allowed by head and denied by base.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PolicySource } from '../../pipeline/policy-source.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { DIFF_SCHEMA, PolicyGen, Rng } from './gen.js';
import { neutralConfig } from './fixtures.js';

const PAIRS = Number(process.env.LILITH_RANDOM_GATE_PAIRS ?? 40);

function source(policies: string[]): PolicySource {
  return {
    policies: { 'p.cedar': policies.join('\n') },
    invariants: {},
    schema: DIFF_SCHEMA,
    entitiesText: '[]',
    configText: neutralConfig(),
  };
}

test(`random policy changes: every counterexample re-checks with cedar-wasm (${PAIRS} pairs)`, async (t) => {
  const rng = new Rng(4242);
  const gen = new PolicyGen(rng);
  let escalations = 0;
  let proven = 0;
  for (let i = 0; i < PAIRS; i++) {
    const base = Array.from({ length: 1 + rng.int(4) }, (_, k) => gen.policy(`b${i}-${k}`));
    const mutation = rng.int(3);
    let head: string[];
    if (mutation === 0) head = [...base, gen.policy(`h${i}-new`)];
    else if (mutation === 1) head = base.filter((_, k) => k !== rng.int(base.length));
    else head = Array.from({ length: 1 + rng.int(4) }, (_, k) => gen.policy(`h${i}-${k}`));
    if (head.length === 0) head = [gen.policy(`h${i}-only`)];
    const { report } = await runGate(
      { label: `base${i}`, source: source(base) },
      { label: `head${i}`, source: source(head) },
      { hygiene: false },
    );
    escalations += report.escalations.length;
    if (report.verdict === 'proven') proven++;
    for (const e of report.escalations) assert.deepEqual([e.recheck.head, e.recheck.base], ['allow', 'deny']);
    // The same set against itself is always proven.
    if (i % 8 === 0) {
      const self = await runGate({ label: 'x', source: source(head) }, { label: 'x', source: source(head) }, { hygiene: false });
      assert.equal(self.report.verdict, 'proven');
    }
  }
  t.diagnostic(`${PAIRS} pairs: ${escalations} re-checked counterexamples, ${proven} proven`);
  assert.ok(escalations >= PAIRS / 4, `the generator should produce escalations (${escalations})`);
});
