// No valid input aborts the gate. Random policy pairs over a schema that also
// declares attributes of unmodelled types (extension values, actions, sets of
// records), kept only when strict validation accepts them, and mixed with the
// constructs the prover refuses: every run ends in an answer (exit 0/1) or a
// documented refusal naming a policy and its construct (exit 2), never an
// internal error such as "encoder bug".
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as cedar from '../../cedar/wasm-loader.js';
import type { PolicySource } from '../../pipeline/policy-source.js';
import { GateError, runGate } from '../../pipeline/prove/gate.js';
import { neutralConfig } from './fixtures.js';
import { DIFF_SCHEMA, PolicyGen, Rng } from './gen.js';
import { REFUSALS } from './refusals.js';

const RUNS = Number(process.env.LILITH_SMOKE_RUNS ?? 30);

const EXTRA =
  'addr: ipaddr, amount: decimal, at: datetime, dur: duration, recs: Set<{a: Long}>, sets: Set<Set<Long>>, act: Action, acts: Set<Action>,';
const SCHEMA = DIFF_SCHEMA.replace('owner?: User, groups: Set<Group>,', `owner?: User, groups: Set<Group>, ${EXTRA}`);
// The refusals that read only context attributes this schema declares.
const INJECTABLE = REFUSALS.filter((r) => !r.schema && !/principal\.addr|context\.(meta|b)\b/.test(r.when));

function strictValid(policy: string): boolean {
  const a = cedar.validate({ validationSettings: { mode: 'strict' }, schema: SCHEMA, policies: { staticPolicies: { p: policy } } });
  return a.type === 'success' && a.validationErrors.length === 0;
}

function source(policies: string[]): PolicySource {
  return { policies: { 'p.cedar': policies.join('\n') }, invariants: {}, schema: SCHEMA, entitiesText: '[]', configText: neutralConfig() };
}

test(`random valid policy sets: an answer or a named refusal, never an internal error (${RUNS} runs)`, async (t) => {
  assert.notEqual(SCHEMA, DIFF_SCHEMA, 'fixture: the extra attributes were added');
  assert.ok(INJECTABLE.length >= 10, `${INJECTABLE.length} injectable refusals`);
  const rng = new Rng(1515);
  const gen = new PolicyGen(rng);
  const valid = (id: string): string => {
    for (;;) {
      const p = gen.policy(id);
      if (strictValid(p)) return p;
    }
  };
  const outcomes = new Map<string, number>();
  const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  for (let i = 0; i < RUNS; i++) {
    const base = Array.from({ length: 1 + rng.int(3) }, (_, k) => valid(`b${i}-${k}`));
    const head = rng.chance(0.5) ? [...base, valid(`h${i}-new`)] : Array.from({ length: 1 + rng.int(3) }, (_, k) => valid(`h${i}-${k}`));
    let injected: string | null = null;
    if (rng.chance(0.4)) {
      const r = rng.pick(INJECTABLE);
      injected = `x${i}-${r.id}`;
      const effect = rng.chance(0.5) ? 'permit' : 'forbid';
      const policy = `@id("${injected}")\n${effect} (principal, action, resource) when { ${r.when} };\n`;
      assert.ok(strictValid(policy), `fixture: ${policy}`);
      head.push(policy);
    }
    try {
      const { report } = await runGate({ label: `base${i}`, source: source(base) }, { label: `head${i}`, source: source(head) }, {});
      assert.equal(injected, null, `${injected} must be refused, not answered`);
      count(report.verdict);
      for (const e of report.escalations) assert.deepEqual([e.recheck.head, e.recheck.base], ['allow', 'deny']);
    } catch (err) {
      if (!(err instanceof GateError)) throw err;
      assert.equal(err.code, 'unsupported', `run ${i}: ${err.message}\n--- head\n${head.join('\n')}`);
      assert.ok(injected, `run ${i}: a generated policy was refused: ${err.message}`);
      assert.match(err.message, new RegExp(`unsupported: .+ in policy ${injected}\\b`));
      count('refused');
    }
  }
  t.diagnostic(JSON.stringify(Object.fromEntries(outcomes)));
  assert.ok((outcomes.get('refused') ?? 0) > 0 && (outcomes.get('escalation') ?? 0) > 0, JSON.stringify(Object.fromEntries(outcomes)));
});
