// Cedar coverage beyond the empty namespace: schema namespaces (qualified names
// are just names), enumerated entity types (an entity's id is one of the declared
// ids) and entity tags (hasTag/getTag: an uninterpreted per-entity map from key to
// a value of the declared tag type, with a presence predicate). Through the real
// gate (cvc5), every witness re-checked independently with cedar-wasm.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as cedar from '../../cedar/wasm-loader.js';
import type { PolicySource } from '../../pipeline/policy-source.js';
import type { Counterexample } from '../../pipeline/prove/counterexample.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { neutralConfig } from './fixtures.js';

export const COVERAGE_SCHEMA = `
namespace App {
  entity Role enum ["admin", "viewer", "guest"];
  entity Team in [Team];
  entity User in [Role, Team] { level: Long } tags String;
  entity Doc in [Team] { owner: User } tags Set<String>;
  type Ctx = { k: String, role: Role, roles: Set<Role> };
  action all;
  action read in [all] appliesTo { principal: [User], resource: [Doc], context: Ctx };
  action write in [all] appliesTo { principal: [User], resource: [Doc], context: Ctx };
}
`;

function source(policies: string, entities: unknown[] = []): PolicySource {
  return {
    policies: { 'p.cedar': policies },
    invariants: {},
    schema: COVERAGE_SCHEMA,
    entitiesText: JSON.stringify(entities),
    configText: neutralConfig(),
  };
}

async function gate(base: PolicySource, head: PolicySource) {
  return (await runGate({ label: 'base', source: base }, { label: 'head', source: head }, { hygiene: false })).report;
}

/** Strict validation first: every policy here is one the Cedar validator accepts. */
function valid(policies: string): string {
  const parts = cedar.policySetTextToParts(policies);
  assert.equal(parts.type, 'success');
  const staticPolicies = Object.fromEntries((parts.type === 'success' ? parts.policies : []).map((p, i) => [`p${i}`, p]));
  const answer = cedar.validate({ validationSettings: { mode: 'strict' }, schema: COVERAGE_SCHEMA, policies: { staticPolicies } });
  assert.ok(answer.type === 'success' && answer.validationErrors.length === 0, JSON.stringify(answer));
  return policies;
}

function decide(cx: Counterexample, policies: string): 'allow' | 'deny' {
  const parts = cedar.policySetTextToParts(policies);
  const staticPolicies = Object.fromEntries((parts.type === 'success' ? parts.policies : []).map((p, i) => [`p${i}`, p]));
  const answer = cedar.isAuthorized({
    principal: cx.principal,
    action: cx.action,
    resource: cx.resource,
    context: cx.context as cedar.Context,
    policies: { staticPolicies },
    entities: cx.entities as unknown as cedar.EntityJson[],
    schema: COVERAGE_SCHEMA,
    validateRequest: true,
  });
  assert.equal(answer.type, 'success', JSON.stringify(answer));
  return answer.type === 'success' ? answer.response.decision : 'deny';
}

async function widens(basePolicies: string, headPolicies: string) {
  const report = await gate(source(valid(basePolicies)), source(valid(headPolicies)));
  assert.equal(report.verdict, 'escalation', JSON.stringify(report, null, 1));
  for (const e of report.escalations) {
    assert.equal(decide(e.counterexample, headPolicies), 'allow', JSON.stringify(e.counterexample));
    assert.equal(decide(e.counterexample, basePolicies), 'deny', JSON.stringify(e.counterexample));
  }
  return report;
}

test('a PR that widens through an entity tag is flagged with a witness carrying the tag', async () => {
  const base =
    '@id("tagged")\npermit (principal, action == App::Action::"read", resource) when { resource.hasTag("public") && resource.getTag("public").contains("yes") };\n';
  const head = '@id("tagged")\npermit (principal, action == App::Action::"read", resource) when { resource.hasTag("public") };\n';
  const report = await widens(base, head);
  const cx = report.escalations[0].counterexample;
  const doc = cx.entities.find((e) => e.uid.type === 'App::Doc')!;
  assert.ok(doc.tags && Array.isArray(doc.tags.public) && !(doc.tags.public as string[]).includes('yes'), JSON.stringify(cx));
  assert.equal(report.escalations[0].env, 'App::User, App::Action::"read", App::Doc');
});

test('a PR that widens through a tag keyed by the request is flagged (principal tags, symbolic key)', async () => {
  const base =
    '@id("t")\npermit (principal, action == App::Action::"write", resource) when { principal.hasTag(context.k) && principal.getTag(context.k) == "rw" && context.k == "docs" };\n';
  const head =
    '@id("t")\npermit (principal, action == App::Action::"write", resource) when { principal.hasTag(context.k) && principal.getTag(context.k) like "r*" };\n';
  const report = await widens(base, head);
  const cx = report.escalations[0].counterexample;
  const user = cx.entities.find((e) => e.uid.type === 'App::User')!;
  assert.match(String(user.tags?.[cx.context.k as string]), /^r/, JSON.stringify(cx));
});

test('a PR that widens through an enumerated entity type is flagged; the witness names a declared id', async () => {
  const base = '@id("e")\npermit (principal in App::Role::"admin", action == App::Action::"write", resource);\n';
  const head =
    '@id("e")\npermit (principal, action == App::Action::"write", resource) when { context.role != App::Role::"guest" && principal in context.role };\n';
  const report = await widens(base, head);
  const cx = report.escalations[0].counterexample;
  assert.deepEqual(cx.context.role, { __entity: { type: 'App::Role', id: 'viewer' } });
});

test('refactorings over namespaced types, enums and tags are proven', async () => {
  const pairs: [string, string][] = [
    // Finite domain: only the enum's three ids exist, so "not guest" is "admin or viewer".
    [
      'permit (principal, action == App::Action::"read", resource) when { context.role == App::Role::"admin" || context.role == App::Role::"viewer" };',
      'permit (principal, action == App::Action::"read", resource) unless { context.role == App::Role::"guest" };',
    ],
    [
      'permit (principal, action == App::Action::"read", resource) when { context.roles.containsAny([App::Role::"admin", App::Role::"viewer", App::Role::"guest"]) };',
      'permit (principal, action == App::Action::"read", resource) when { !context.roles.isEmpty() };',
    ],
    // Action groups in a namespace: `in all` is read or write.
    [
      'permit (principal in App::Team::"eng", action in App::Action::"all", resource in App::Team::"eng") when { resource.owner == principal };',
      'permit (principal in App::Team::"eng", action == App::Action::"write", resource in App::Team::"eng") when { principal == resource.owner };\n' +
        'permit (principal in App::Team::"eng", action in [App::Action::"read"], resource in App::Team::"eng") when { resource.owner == principal };',
    ],
    // Tags: the same condition written two ways.
    [
      'permit (principal, action == App::Action::"read", resource) when { resource.hasTag(context.k) && resource.getTag(context.k).contains("x") };',
      'permit (principal, action == App::Action::"read", resource) when { resource.hasTag(context.k) && resource.getTag(context.k).containsAll(["x"]) };',
    ],
  ];
  for (const [a, b] of pairs) {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ]) {
      const report = await gate(source(valid(x)), source(valid(y)));
      assert.equal(report.verdict, 'proven', `${x}\n→ ${y}\n${JSON.stringify(report.escalations, null, 1)}`);
    }
  }
});

test('an entities-only PR that adds a tag is flagged over the deployed store, with the store witness', async () => {
  const policies = valid('permit (principal, action == App::Action::"read", resource) when { resource.hasTag("public") };\n');
  const doc = (tags: object) => ({
    uid: { type: 'App::Doc', id: 'd1' },
    attrs: { owner: { __entity: { type: 'App::User', id: 'u1' } } },
    parents: [],
    tags,
  });
  const user = { uid: { type: 'App::User', id: 'u1' }, attrs: { level: 1 }, parents: [], tags: {} };
  const report = await gate(source(policies, [user, doc({})]), source(policies, [user, doc({ public: ['yes'] })]));
  assert.equal(report.entityStores.every, 'holds');
  assert.equal(report.entityStores.deployed, 'escalation');
  assert.equal(report.verdict, 'escalation');
  const f = report.storeEscalations[0];
  assert.equal(f.counterexample.resource.id, 'd1');
  assert.equal(decide(f.counterexample, policies), 'allow');
  assert.equal(decide({ ...f.counterexample, entities: f.baseEntities ?? f.counterexample.entities }, policies), 'deny');
});

// Two namespaces declare an action with the same id over the same (common) entity types but
// with different contexts. The base's environment for Other::Action::"read" must be its own,
// not App::Action::"read"'s: paired by id alone, an unchanged policy set was reported as an
// escalation (the base read `context.tier` in a context that has only `level`).
test('actions with the same id in two namespaces are paired by namespace: an unchanged set is proven', async () => {
  const schema = `entity User; entity Doc;
namespace App { action read appliesTo { principal: User, resource: Doc, context: { level: Long } }; }
namespace Other { action read appliesTo { principal: User, resource: Doc, context: { tier: String } }; }
`;
  const policies =
    '@id("other-read")\npermit (principal, action == Other::Action::"read", resource) when { context.tier == "x" };\n' +
    '@id("app-read")\npermit (principal, action == App::Action::"read", resource) when { context.level > 3 };\n';
  const src = (text: string): PolicySource => ({
    policies: { 'p.cedar': text },
    invariants: {},
    schema,
    entitiesText: '[]',
    configText: neutralConfig(),
  });
  const same = await runGate({ label: 'base', source: src(policies) }, { label: 'head', source: src(policies) }, { hygiene: false });
  assert.equal(same.report.verdict, 'proven', JSON.stringify(same.report.escalations));
  // And a real widening of the Other action is still flagged, in its own environment.
  const wider = policies.replace('context.tier == "x"', 'context.tier like "x*"');
  const r = await runGate({ label: 'base', source: src(policies) }, { label: 'head', source: src(wider) }, { hygiene: false });
  assert.equal(r.report.verdict, 'escalation');
  assert.deepEqual(
    r.report.escalations.map((e) => e.env),
    ['User, Other::Action::"read", Doc'],
  );
});
