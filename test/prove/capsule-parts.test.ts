// The gate's subject is the capsule: widening changes to lilith.json and
// entities.json that the Cedar proof does not encode are reported as escalations
// needing an approval, named by a key an approval file accepts; changes that only
// narrow (or reorder) are proven. Through the real gate (cvc5) on fixture copies.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { formatMarkdown, formatText } from '../../pipeline/prove/format.js';
import type { LilithConfig } from '../../capsule/config.js';
import { BUNDLED, decideIn, PolicyDirs, read, write, gateDirs } from './fixtures.js';
import type { EscalationFinding, ProofReport } from '../../pipeline/prove/report.js';

const dirs = new PolicyDirs();
after(() => dirs.cleanup());

const gate = (baseDir: string, headDir: string) => gateDirs(baseDir, headDir, { hygiene: false });

function editConfig(d: string, f: (c: LilithConfig) => void): void {
  const c = JSON.parse(read(d, 'lilith.json')) as LilithConfig;
  f(c);
  write(d, 'lilith.json', JSON.stringify(c, null, 2));
}

type Entity = { uid: { type: string; id: string }; attrs: object; parents: { type: string; id: string }[] };
function editEntities(d: string, f: (e: Entity[]) => void): void {
  const e = JSON.parse(read(d, 'entities.json')) as Entity[];
  f(e);
  write(d, 'entities.json', JSON.stringify(e, null, 2));
}

const READER = 'spiffe://corp.example/agents/reader';
const POLICY_FILES = ['egress.cedar', 'mcp.cedar'];

/** Re-checks a deployed-store witness independently: head allows over the head store's entities, base denies over the base's. */
function recheckStoreWitness(base: string, head: string, f: EscalationFinding, extraHead: string[] = []): void {
  const cx = f.counterexample;
  assert.equal(decideIn(head, cx, [...POLICY_FILES, ...extraHead]), 'allow', `head allows ${JSON.stringify(cx)}`);
  const baseCx = { ...cx, context: f.baseContext ?? cx.context, entities: f.baseEntities ?? cx.entities };
  assert.equal(decideIn(base, baseCx, POLICY_FILES), 'deny', `base denies ${JSON.stringify(baseCx)}`);
}

function storeEnvs(r: ProofReport): string[] {
  return r.storeEscalations.map((e) => e.env);
}
const reg = (c: LilithConfig, id: string) => c.registrations.find((r) => r.spiffe_id === id)!;

const widening: Array<[string, (d: string) => void, string | string[]]> = [
  [
    'an agent moved readers → coding',
    (d) => editConfig(d, (c) => (reg(c, READER).groups = ['coding'])),
    // Leaving a group is a change too: a forbid on the group no longer applies.
    [`registrations/Agent::"${READER}" in AgentGroup::"coding"`, `registrations/Agent::"${READER}" not in AgentGroup::"readers"`],
  ],
  [
    'a host added to the allowlisted zone (entities only)',
    (d) =>
      editEntities(d, (e) =>
        e.push({ uid: { type: 'Host', id: 'exfil.example' }, attrs: {}, parents: [{ type: 'Zone', id: 'allowlisted' }] }),
      ),
    // allowlisted is not inside trusted (a tainted session may not reach it), so one new ancestor.
    ['entities/Host::"exfil.example" in Zone::"allowlisted"'],
  ],
  [
    'a binary added to the exec allowlist',
    (d) => editConfig(d, (c) => c.kernel.exec_allowlist!.push('/usr/bin/python3')),
    'kernel.exec_allowlist//usr/bin/python3',
  ],
  [
    'a denied socket family removed',
    (d) => editConfig(d, (c) => (c.kernel.deny_socket_families = [])),
    'kernel.deny_socket_families/AF_PACKET',
  ],
  [
    'a unix socket allowlisted',
    (d) => editConfig(d, (c) => (c.kernel.unix_allowlist = ['/run/docker.sock'])),
    'kernel.unix_allowlist//run/docker.sock',
  ],
  ['a longer heartbeat TTL', (d) => editConfig(d, (c) => (c.kernel.heartbeat_ttl_ms = 60_000)), 'kernel.heartbeat_ttl_ms'],
  ['a new upstream', (d) => editConfig(d, (c) => (c.upstreams.paste = { address: '10.0.9.9:80', kind: 'http' })), 'upstreams/paste'],
  [
    'a classifier removed',
    (d) => editConfig(d, (c) => (c.classifiers = c.classifiers.filter((x) => x.id !== 'ssh-keys'))),
    'classifiers/ssh-keys',
  ],
  [
    'a looser filesystem rule',
    (d) => editConfig(d, (c) => reg(c, READER).filesystem!.read_write!.push('/home')),
    `registrations/${READER}/filesystem.read_write//home`,
  ],
  ['a looser seccomp profile', (d) => editConfig(d, (c) => (reg(c, READER).profile = 'jit')), `registrations/${READER}/profile`],
];

for (const [what, edit, key] of widening) {
  test(`capsule escalation: ${what}`, async () => {
    const head = dirs.make(edit);
    const { report } = await gate(BUNDLED, head);
    assert.equal(report.verdict, 'escalation', JSON.stringify(report.capsule));
    const keys = Array.isArray(key) ? key : [key];
    assert.deepEqual(
      report.capsule.map((c) => c.key),
      keys,
    );
    assert.deepEqual(report.escalations, [], 'the Cedar proof itself holds over every entity store');
    for (const k of keys) assert.ok(formatText(report).includes(k) && formatMarkdown(report).includes(k), k);
    if (!keys.some((k) => k.includes(' in '))) {
      assert.deepEqual(report.entityStores, { every: 'holds', deployed: 'holds', changed: false });
      assert.deepEqual(report.storeEscalations, []);
    }
  });
}

test('deployed store: an agent moved readers → coding writes and runs commands (witness over both stores, re-checked)', async () => {
  const head = dirs.make((d) => editConfig(d, (c) => (reg(c, READER).groups = ['coding'])));
  const { report } = await gate(BUNDLED, head);
  assert.deepEqual(report.entityStores, { every: 'holds', deployed: 'escalation', changed: true });
  assert.deepEqual(storeEnvs(report), [
    'Agent, Action::"PATCH", Host',
    'Agent, Action::"POST", Host',
    'Agent, Action::"PUT", Host',
    'Agent, Action::"grpc", Host',
    'Agent, Action::"run_command", MCPServer',
    'Agent, Action::"write_file", MCPServer',
  ]);
  for (const f of report.storeEscalations) {
    assert.deepEqual(f.counterexample.principal, { type: 'Agent', id: READER });
    const agent = f.counterexample.entities.find((e) => e.uid.id === READER)!;
    assert.deepEqual(agent.parents, [{ type: 'AgentGroup', id: 'coding' }]);
    assert.deepEqual(f.baseEntities!.find((e) => e.uid.id === READER)!.parents, [{ type: 'AgentGroup', id: 'readers' }]);
    recheckStoreWitness(BUNDLED, head, f);
  }
  assert.match(formatText(report), /does NOT hold for the deployed store/);
  assert.match(formatMarkdown(report), /Escalations over the deployed store/);
});

test('deployed store: a host added to the allowlisted zone is reachable (entities-only PR, witness re-checked)', async () => {
  const head = dirs.make((d) =>
    editEntities(d, (e) =>
      e.push({ uid: { type: 'Host', id: 'exfil.example' }, attrs: {}, parents: [{ type: 'Zone', id: 'allowlisted' }] }),
    ),
  );
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(report.entityStores, { every: 'holds', deployed: 'escalation', changed: true });
  assert.deepEqual(storeEnvs(report), [
    'Agent, Action::"GET", Host',
    'Agent, Action::"HEAD", Host',
    'Agent, Action::"OPTIONS", Host',
    'Agent, Action::"connect", Host',
    'Agent, Action::"dns_resolve", Host',
    'Agent, Action::"intercept", Host',
  ]);
  for (const f of report.storeEscalations) {
    assert.deepEqual(f.counterexample.resource, { type: 'Host', id: 'exfil.example' });
    recheckStoreWitness(BUNDLED, head, f);
  }
  // Approving the hierarchy change approves what it widens.
  write(head, 'approvals/exfil.json', JSON.stringify({ change: 'entities/Host::"exfil.example" in *', reason: 'SEC-9' }));
  const again = await gate(BUNDLED, head);
  assert.equal(again.report.verdict, 'approved');
  assert.ok(again.report.storeEscalations.every((f) => f.approved?.reason === 'SEC-9'));
});

test('deployed store: a hierarchy refactoring that widens nothing is proven over the deployed store', async () => {
  // A new zone above allowlisted, and the hosts regrouped through a sub-zone of allowlisted:
  // new ancestors everywhere, but no policy names them, so nothing is reachable that was not.
  const head = dirs.make((d) =>
    editEntities(d, (e) => {
      e.push({ uid: { type: 'Zone', id: 'public' }, attrs: {}, parents: [] });
      e.push({ uid: { type: 'Zone', id: 'package-registries' }, attrs: {}, parents: [{ type: 'Zone', id: 'allowlisted' }] });
      e.find((x) => x.uid.id === 'allowlisted')!.parents.push({ type: 'Zone', id: 'public' });
      e.find((x) => x.uid.id === 'registry.npmjs.org')!.parents = [{ type: 'Zone', id: 'package-registries' }];
    }),
  );
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'proven', JSON.stringify(report.capsule));
  assert.deepEqual(report.capsule, []);
  assert.deepEqual(report.storeEscalations, []);
  assert.deepEqual(report.entityStores.every, 'holds');
  assert.deepEqual(report.entityStores.deployed, 'holds');
  assert.equal(report.entityStores.changed, true);
  assert.deepEqual(report.entityStores.provenChanges, [
    'entities/Host::"api.github.com" in Zone::"public"',
    'entities/Host::"registry.npmjs.org" in Zone::"package-registries"',
    'entities/Host::"registry.npmjs.org" in Zone::"public"',
    'entities/Zone::"allowlisted" in Zone::"public"',
    'entities/Zone::"package-registries" in Zone::"allowlisted"',
    'entities/Zone::"package-registries" in Zone::"public"',
  ]);
});

test('a policy escalation no deployed agent can reach holds for the deployed store, not for every store', async () => {
  const head = dirs.make((d) =>
    write(
      d,
      'ops.cedar',
      '@id("ops-write")\npermit (principal in AgentGroup::"ops", action == Action::"write_file", resource in Zone::"approved-mcp");\n',
    ),
  );
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(
    report.escalations.map((e) => e.env),
    ['Agent, Action::"write_file", MCPServer'],
  );
  assert.deepEqual(report.entityStores, { every: 'escalation', deployed: 'holds', changed: false });
  assert.deepEqual(report.storeEscalations, []);
  assert.match(formatText(report), /does not hold for every entity store; it holds for the deployed store/);
});

test('an approval file naming the change key accepts it (and only it)', async () => {
  const head = dirs.make((d) => {
    editConfig(d, (c) => {
      reg(c, READER).groups = ['coding'];
      c.kernel.exec_allowlist!.push('/usr/bin/python3');
    });
    write(
      d,
      'approvals/reader.json',
      // One prefix for every membership change of the agent: joining coding, leaving readers.
      JSON.stringify({ change: `registrations/Agent::"${READER}" *`, reason: 'SEC-7: reader joins coding' }),
    );
  });
  const first = await gate(BUNDLED, head);
  assert.equal(first.report.verdict, 'escalation');
  assert.deepEqual(
    first.report.capsule.map((c) => [c.key, c.approved?.reason ?? null]),
    [
      ['kernel.exec_allowlist//usr/bin/python3', null],
      [`registrations/Agent::"${READER}" in AgentGroup::"coding"`, 'SEC-7: reader joins coding'],
      [`registrations/Agent::"${READER}" not in AgentGroup::"readers"`, 'SEC-7: reader joins coding'],
    ],
  );
  write(head, 'approvals/python.json', JSON.stringify({ change: 'kernel.exec_allowlist//usr/bin/python3', reason: 'SEC-8' }));
  assert.equal((await gate(BUNDLED, head)).report.verdict, 'approved');
});

test('changes that only narrow or reorder are proven', async () => {
  const head = dirs.make((d) => {
    editConfig(d, (c) => {
      c.registrations.reverse();
      reg(c, READER).selectors.push('unix:uid:1000');
      c.kernel.exec_allowlist = c.kernel.exec_allowlist!.filter((x) => x !== '/usr/bin/git');
      c.kernel.deny_socket_families!.push('AF_NETLINK');
      c.kernel.heartbeat_ttl_ms = 500;
      c.classifiers.push({ id: 'extra', when: { tool: 'search_docs' }, set: ['UNTRUSTED'] });
    });
    editEntities(d, (e) => e.reverse());
  });
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'proven', JSON.stringify(report.capsule));
  assert.deepEqual(report.capsule, []);
});
