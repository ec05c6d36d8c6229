// Longs in the proof are exact over the whole signed 64-bit range (real cvc5, real
// cedar-wasm): policy literals beyond 2^53 (which policyToJson rounds), entities.json
// attributes up to 2^63 − 1 in the deployed store, and witnesses whose Longs are
// BigInts, written with their digits and re-checked by cedar-wasm exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withExactLongs } from '../../cedar/wasm-exact.js';
import * as cedar from '../../cedar/wasm-loader.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { reportJson } from '../../pipeline/prove/report.js';
import { neutralConfig } from './fixtures.js';

const SCHEMA = `
entity User { level: Long };
entity Doc { limit: Long };
action "read" appliesTo { principal: [User], resource: [Doc], context: { n: Long } };
`;
const permit = (id: string, when: string) => `@id("${id}")\npermit (principal, action == Action::"read", resource) when { ${when} };\n`;
const src = (policies: string, entitiesText = '[]') => ({
  policies: { 'p.cedar': policies },
  invariants: {},
  schema: SCHEMA,
  entitiesText,
  configText: neutralConfig(),
});
const gate = (base: string, head: string, entitiesText?: string) =>
  runGate({ label: 'base', source: src(base, entitiesText) }, { label: 'head', source: src(head, entitiesText) }, { hygiene: false });

type Cx = {
  principal: { type: string; id: string };
  action: { type: string; id: string };
  resource: { type: string; id: string };
  context: Record<string, unknown>;
  entities: unknown[];
};
/** cedar-wasm's decision on `cx` under `policies`, Longs exact. */
function decideExact(policies: string, cx: Cx): string {
  const answer = withExactLongs(cedar.isAuthorized, {
    principal: cx.principal,
    action: cx.action,
    resource: cx.resource,
    context: cx.context as cedar.Context,
    policies: { staticPolicies: policies },
    entities: cx.entities as cedar.EntityJson[],
    schema: SCHEMA,
    validateRequest: true,
  });
  assert.equal(answer.type, 'success', JSON.stringify(answer));
  return answer.type === 'success' ? answer.response.decision : 'deny';
}

test('a Long literal beyond 2^53: the witness carries it exactly, re-checked by cedar-wasm, and the JSON report has its digits', async () => {
  const head = permit('exact', 'context.n == 9007199254740993');
  const { report } = await gate('', head);
  assert.equal(report.verdict, 'escalation');
  const e = report.escalations[0];
  assert.equal(e.counterexample.context.n, 9007199254740993n, 'exact: not 9007199254740992');
  assert.deepEqual([e.recheck.head, e.recheck.base], ['allow', 'deny']);
  assert.equal(decideExact(head, e.counterexample as Cx), 'allow');
  assert.equal(decideExact(head, { ...(e.counterexample as Cx), context: { n: 9007199254740992n } }), 'deny', 'the rounded neighbour');
  assert.match(reportJson(report), /"n": 9007199254740993\b/);
});

test('literals that round to the same double are different policies: > 2^53 + 1 widened to > 2^53 is flagged with n = 2^53 + 1', async () => {
  const base = permit('p', 'context.n > 9007199254740993');
  const widened = await gate(base, permit('p', 'context.n > 9007199254740992'));
  assert.equal(widened.report.verdict, 'escalation', 'policyToJson rounds both literals to 9007199254740992');
  const cx = widened.report.escalations[0].counterexample;
  assert.equal(cx.context.n, 9007199254740993n);
  assert.deepEqual([widened.report.escalations[0].recheck.head, widened.report.escalations[0].recheck.base], ['allow', 'deny']);
  // A refactoring that admits the same requests is proven.
  assert.equal((await gate(base, permit('p', 'context.n >= 9007199254740994'))).report.verdict, 'proven');
  assert.equal((await gate(base, permit('p', '9007199254740993 < context.n'))).report.verdict, 'proven');
});

test('near -2^63: the literal -9223372036854775808 and a bound one above it, witnessed exactly', async () => {
  const min = await gate('', permit('min', 'context.n == -9223372036854775808'));
  assert.equal(min.report.verdict, 'escalation');
  assert.equal(min.report.escalations[0].counterexample.context.n, -(2n ** 63n));
  assert.equal(min.report.escalations[0].recheck.head, 'allow');

  const below = await gate(permit('b', 'context.n < -9223372036854775806'), permit('b', 'context.n < -9223372036854775805'));
  assert.equal(below.report.verdict, 'escalation');
  assert.equal(below.report.escalations[0].counterexample.context.n, -9223372036854775806n);
  assert.deepEqual([below.report.escalations[0].recheck.head, below.report.escalations[0].recheck.base], ['allow', 'deny']);
  // Only n = 2^63 would satisfy it, which no Long is (and -(-2^63) overflows, an error): the permit never applies.
  assert.equal((await gate('', permit('neg', '-context.n == -9223372036854775808'))).report.verdict, 'proven');
});

test('entities.json: an attribute 9223372036854775807 is exact in the deployed store', async () => {
  const entities = '[{"uid":{"type":"Doc","id":"d"},"attrs":{"limit":9223372036854775807},"parents":[]}]';
  const atMax = `@id("max")\npermit (principal, action == Action::"read", resource == Doc::"d") when { resource.limit == 9223372036854775807 };\n`;
  const { report } = await gate('', atMax, entities);
  assert.equal(report.verdict, 'escalation');
  assert.ok(report.storeEscalations.length > 0, 'widens over the deployed store');
  const cx = report.storeEscalations[0].counterexample;
  const d = cx.entities.find((x) => x.uid.id === 'd');
  assert.equal(
    d?.attrs.limit,
    9223372036854775807n,
    JSON.stringify(cx.entities, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)),
  );
  assert.equal(report.storeEscalations[0].recheck.head, 'allow');
  // One below the stored value: widens some store, not the deployed one (read rounded, the two would meet at 2^63).
  const belowMax = atMax.replace('9223372036854775807 }', '9223372036854775806 }');
  const other = await gate('', belowMax, entities);
  assert.equal(other.report.storeEscalations.length, 0, JSON.stringify(other.report.entityStores));

  const outside = '[{"uid":{"type":"Doc","id":"d"},"attrs":{"limit":9223372036854775808},"parents":[]}]';
  await assert.rejects(gate('', atMax, outside), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'bad_config');
    assert.match(err.message, /\[0\]\.attrs\.limit is an integer outside the 64-bit Long range/);
    return true;
  });
});
