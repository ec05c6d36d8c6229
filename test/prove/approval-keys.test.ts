// Every escalation names the approval that accepts it, and that approval accepts
// only it: an entities.json-only widening through an attribute or a tag is keyed by
// the entity and the attribute/tag name (approving another entity's key does not
// pass the gate), and action approvals carry the namespace (approving
// App::Action::"read" does not accept Other::Action::"read"; a bare id names the
// un-namespaced Action only). Through the real gate (cvc5).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { PolicySource } from '../../pipeline/policy-source.js';
import { ApprovalError, findApproval, parseApprovalFile, parseApproveFlag } from '../../pipeline/prove/approvals.js';
import { formatMarkdown, formatText } from '../../pipeline/prove/format.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { reportJson, type EscalationFinding } from '../../pipeline/prove/report.js';
import { decideIn, neutralConfig, PolicyDirs, read, replaceIn, write, gateDirs } from './fixtures.js';

const dirs = new PolicyDirs();
after(() => dirs.cleanup());

const gate = (baseDir: string, headDir: string) => gateDirs(baseDir, headDir, { hygiene: false });

// Hosts carry an `allowlisted` attribute and string tags; two policies read them.
const ATTR_POLICIES = `@id("attr-allowlisted")
permit (principal, action == Action::"connect", resource is Host)
when { resource has allowlisted && resource.allowlisted && context.protocol == "tls" && context.port == 443 };

@id("tag-public")
permit (principal, action == Action::"GET", resource is Host)
when { resource.hasTag("tier") && resource.getTag("tier") == "public" && !context.host_mismatch };
`;
const POLICY_FILES = ['egress.cedar', 'mcp.cedar', 'attrs.cedar'];

type Entity = { uid: { type: string; id: string }; attrs: Record<string, unknown>; parents: unknown[]; tags?: Record<string, unknown> };
function withHosts(edit: (hosts: Entity[]) => void = () => {}): string {
  return dirs.make((d) => {
    replaceIn(d, 'schema.cedarschema', 'entity Host in [Zone];', 'entity Host in [Zone] { allowlisted?: Bool } tags String;');
    write(d, 'attrs.cedar', ATTR_POLICIES);
    const entities = JSON.parse(read(d, 'entities.json')) as Entity[];
    const hosts: Entity[] = [
      { uid: { type: 'Host', id: 'a.example' }, attrs: { allowlisted: false }, parents: [], tags: { tier: 'private' } },
      { uid: { type: 'Host', id: 'b.example' }, attrs: { allowlisted: false }, parents: [], tags: { tier: 'private' } },
    ];
    edit(hosts);
    write(d, 'entities.json', JSON.stringify([...entities, ...hosts], null, 2));
  });
}
const host = (hosts: Entity[], id: string) => hosts.find((h) => h.uid.id === id)!;

function recheck(base: string, head: string, f: EscalationFinding): void {
  const cx = f.counterexample;
  assert.equal(decideIn(head, cx, POLICY_FILES), 'allow', `head allows ${JSON.stringify(cx)}`);
  const baseCx = { ...cx, context: f.baseContext ?? cx.context, entities: f.baseEntities ?? cx.entities };
  assert.equal(decideIn(base, baseCx, POLICY_FILES), 'deny', `base denies ${JSON.stringify(baseCx)}`);
}

const cases: Array<[string, (h: Entity[]) => void, string, string, string]> = [
  [
    'an attribute',
    (h) => (host(h, 'a.example').attrs.allowlisted = true),
    'entities/Host::"a.example"/attrs/allowlisted',
    'entities/Host::"b.example"/attrs/allowlisted',
    'Agent, Action::"connect", Host',
  ],
  [
    'a tag',
    (h) => (host(h, 'a.example').tags!.tier = 'public'),
    'entities/Host::"a.example"/tags/tier',
    'entities/Host::"b.example"/tags/tier',
    'Agent, Action::"GET", Host',
  ],
];

for (const [what, edit, key, otherKey, env] of cases) {
  test(`an entities-only PR widening through ${what} is flagged with its own approval key, accepted by it and by no other`, async () => {
    const base = withHosts();
    const head = withHosts(edit);
    const { report } = await gate(base, head);
    assert.equal(report.verdict, 'escalation');
    assert.deepEqual(report.escalations, [], 'the policies are the same: nothing widens over every store');
    assert.deepEqual(report.entityStores, { every: 'holds', deployed: 'escalation', changed: true });
    assert.deepEqual(
      report.capsule.map((c) => [c.key, c.part, !!c.approved]),
      [[key, 'entities.json', false]],
    );
    const findings = report.storeEscalations;
    assert.ok(
      findings.some((f) => f.env === env),
      JSON.stringify(findings.map((f) => f.env)),
    );
    for (const f of findings) {
      assert.equal(f.approved, undefined);
      assert.deepEqual(f.approval, { changes: [key], witness: [key] });
      assert.deepEqual(f.counterexample.resource, { type: 'Host', id: 'a.example' });
      recheck(base, head, f);
    }
    for (const out of [formatText(report), formatMarkdown(report), reportJson(report)])
      assert.ok(out.includes(JSON.stringify(key).slice(1, -1)) || out.includes(key), key);
    assert.match(formatText(report), /approval, in approvals\/\*\.json:\n {4}\{"change":/);

    // Another entity's key does not accept it.
    write(head, 'approvals/other.json', JSON.stringify({ change: otherKey, reason: 'SEC-1: b only' }));
    const other = await gate(base, head);
    assert.equal(other.report.verdict, 'escalation');
    assert.ok(other.report.storeEscalations.every((f) => !f.approved));

    // Its own key does.
    write(head, 'approvals/own.json', JSON.stringify({ change: key, reason: 'SEC-2: a is vetted' }));
    const own = await gate(base, head);
    assert.equal(own.report.verdict, 'approved');
    assert.ok(own.report.storeEscalations.length > 0);
    assert.ok(own.report.storeEscalations.every((f) => f.approved?.reason === 'SEC-2: a is vetted'));
    assert.deepEqual(
      own.report.capsule.map((c) => [c.key, c.approved?.reason]),
      [[key, 'SEC-2: a is vetted']],
    );
  });
}

test('two entities widened in one PR need both keys: approving one leaves the other flagged', async () => {
  const base = withHosts();
  const head = withHosts((h) => {
    host(h, 'a.example').attrs.allowlisted = true;
    host(h, 'b.example').attrs.allowlisted = true;
  });
  write(head, 'approvals/a.json', JSON.stringify({ change: 'entities/Host::"a.example"/attrs/allowlisted', reason: 'SEC-3' }));
  const { report } = await gate(base, head);
  assert.equal(report.verdict, 'escalation');
  const f = report.storeEscalations.find((x) => x.env === 'Agent, Action::"connect", Host')!;
  assert.equal(f.approved, undefined);
  assert.deepEqual(f.approval.changes, ['entities/Host::"a.example"/attrs/allowlisted', 'entities/Host::"b.example"/attrs/allowlisted']);
  recheck(base, head, f);
  write(head, 'approvals/b.json', JSON.stringify({ change: 'entities/Host::"b.example"/attrs/allowlisted', reason: 'SEC-4' }));
  assert.equal((await gate(base, head)).report.verdict, 'approved');
});

test('an attribute change that widens nothing is proven, listed as a proven store change', async () => {
  // b.example's tag goes from one value no policy admits to another.
  const { report } = await gate(
    withHosts(),
    withHosts((h) => (host(h, 'b.example').tags!.tier = 'internal')),
  );
  assert.equal(report.verdict, 'proven', JSON.stringify(report.capsule));
  assert.deepEqual(report.entityStores.provenChanges, ['entities/Host::"b.example"/tags/tier']);
});

// Two namespaces, each with an action "read": the head permits both.
const NS_SCHEMA = `namespace App { entity User; entity Doc; action read appliesTo { principal: User, resource: Doc }; }
namespace Other { entity User; entity Doc; action read appliesTo { principal: User, resource: Doc }; }
`;
function nsSource(policies: string): PolicySource {
  return { policies: { 'p.cedar': policies }, invariants: {}, schema: NS_SCHEMA, entitiesText: '[]', configText: neutralConfig() };
}

test('approving App::Action::"read" does not accept Other::Action::"read"; a bare "read" accepts neither', async () => {
  const base = nsSource('@id("none")\nforbid (principal, action, resource);\n');
  const head = nsSource(
    '@id("app-read")\npermit (principal, action == App::Action::"read", resource);\n@id("other-read")\npermit (principal, action == Other::Action::"read", resource);\n',
  );
  const run = (approvals: ReturnType<typeof parseApproveFlag>) =>
    runGate({ label: 'base', source: base }, { label: 'head', source: head }, { hygiene: false, approvals });

  const plain = (await run([])).report;
  assert.equal(plain.verdict, 'escalation');
  assert.deepEqual(
    plain.escalations.map((e) => [e.env, e.approval.action?.action]),
    [
      ['App::User, App::Action::"read", App::Doc', 'App::Action::"read"'],
      ['Other::User, Other::Action::"read", Other::Doc', 'Other::Action::"read"'],
    ],
  );
  assert.match(formatText(plain), /\{"action":"App::Action::\\"read\\"","principal_type":"App::User","resource_type":"App::Doc"/);
  assert.match(formatText(plain), /--approve 'App::Action::"read"'/);

  const app = (await run(parseApproveFlag(['App::Action::"read":SEC-5']))).report;
  assert.equal(app.verdict, 'escalation');
  assert.deepEqual(
    app.escalations.map((e) => [e.env, e.approved?.reason ?? null]),
    [
      ['App::User, App::Action::"read", App::Doc', 'SEC-5'],
      ['Other::User, Other::Action::"read", Other::Doc', null],
    ],
  );
  assert.equal((await run(parseApproveFlag(['read']))).report.escalations.filter((e) => e.approved).length, 0);
  assert.equal((await run(parseApproveFlag(['App::Action::"read",Other::Action::"read"']))).report.verdict, 'approved');
});

test('approval parsing: qualified and bare actions, malformed qualified ones refused', () => {
  const envOf = (actionType: string, action: string) => ({ principalType: 'User', action, actionType, resourceType: 'Doc' });
  const file = parseApprovalFile(
    'approvals/x.json',
    JSON.stringify([
      { action: 'read', reason: 'bare' },
      { action: 'App::Action::"write"', reason: 'qualified' },
      { action: 'Action::"a,b:c"', reason: 'odd id' },
    ]),
  );
  assert.equal(findApproval(file, envOf('Action', 'read'))?.reason, 'bare');
  assert.equal(findApproval(file, envOf('App::Action', 'read')), undefined, 'a bare id names the un-namespaced Action only');
  assert.equal(findApproval(file, envOf('App::Action', 'write'))?.reason, 'qualified');
  assert.equal(findApproval(file, envOf('Other::Action', 'write')), undefined);
  assert.equal(findApproval(file, envOf('Action', 'write')), undefined);
  assert.equal(findApproval(file, envOf('Action', 'a,b:c'))?.reason, 'odd id');
  assert.equal(findApproval(parseApprovalFile('a.json', '{"action":"*","reason":"all"}'), envOf('X::Action', 'y'))?.reason, 'all');
  // Capsule-change approvals never approve actions.
  assert.equal(findApproval(parseApprovalFile('a.json', '{"change":"*","reason":"x"}'), envOf('Action', 'read')), undefined);

  assert.deepEqual(
    parseApproveFlag(['connect:SEC-42 any TLS port', 'App::Action::"read":SEC-5: why', 'Action::"a,b:c",GET']).map((a) => [
      a.action,
      a.reason,
    ]),
    [
      ['connect', 'SEC-42 any TLS port'],
      ['App::Action::"read"', 'SEC-5: why'],
      ['Action::"a,b:c"', 'approved with --approve'],
      ['GET', 'approved with --approve'],
    ],
  );
  assert.throws(
    () => parseApprovalFile('b.json', '{"action":"App::read","reason":"x"}'),
    (e: unknown) => e instanceof ApprovalError && e.code === 'invalid',
  );
  assert.throws(
    () => parseApproveFlag(['App::Action::read']),
    (e: unknown) => e instanceof ApprovalError && e.code === 'invalid',
  );
});
