// Invariants over the entity stores: each is proved for every store and, when that
// fails, for the deployed store (entities.json + registrations, head side); the
// report says which holds — holds / holds-deployed-only / violated (on the deployed
// store). Real gate (cvc5) on copies of the bundled policies; every counterexample
// re-checked independently with cedar-wasm.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { formatMarkdown, formatText } from '../../pipeline/prove/format.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { exitCodeOf } from '../../pipeline/prove/report.js';
import { decideIn, PolicyDirs, read, write } from './fixtures.js';

const dirs = new PolicyDirs();
after(() => dirs.cleanup());
const POLICY_FILES = ['egress.cedar', 'mcp.cedar'];
const INV_FILE = 'invariants/mail-closed.cedar';
// Nothing may open a connection to the mail relay. The policies allow connects by
// zone, so this holds exactly while entities.json keeps the relay out of every zone.
const MAIL_CLOSED = '@id("inv-mail-closed")\nforbid (principal, action == Action::"connect", resource == Host::"mail.corp.example");\n';

async function gate(baseDir: string, headDir: string) {
  return runGate(
    { label: 'base', source: await readPolicyDir(baseDir) },
    { label: 'head', source: await readPolicyDir(headDir) },
    { hygiene: false },
  );
}

function addHost(d: string, zone: string): void {
  const e = JSON.parse(read(d, 'entities.json')) as unknown[];
  e.push({ uid: { type: 'Host', id: 'mail.corp.example' }, attrs: {}, parents: [{ type: 'Zone', id: zone }] });
  write(d, 'entities.json', JSON.stringify(e, null, 2));
}

test('an invariant that holds for the deployed store only is reported as such (with a store where it fails), and passes', async () => {
  const dir = dirs.make((d) => write(d, INV_FILE, MAIL_CLOSED));
  const { report } = await gate(dir, dir);
  const inv = report.invariants.find((i) => i.id === 'inv-mail-closed')!;
  assert.equal(inv.result, 'holds-deployed-only', JSON.stringify(inv));
  assert.equal(report.verdict, 'proven');
  assert.equal(exitCodeOf(report.verdict), 0);
  // The every-store counterexample: the relay placed in a zone the policies open; cedar-wasm agrees.
  const cx = inv.everyStore!.counterexample;
  assert.equal(cx.resource.id, 'mail.corp.example');
  assert.ok(
    cx.entities.some((e) => e.uid.id === 'mail.corp.example' && e.parents.length),
    JSON.stringify(cx),
  );
  assert.equal(decideIn(dir, cx, POLICY_FILES), 'allow');
  assert.equal(decideIn(dir, cx, [INV_FILE]), 'deny', 'the invariant forbid matches');
  // Every other bundled invariant holds for every store.
  for (const i of report.invariants.filter((x) => x.id !== 'inv-mail-closed')) assert.equal(i.result, 'holds', i.id);
  assert.match(formatText(report), /invariant inv-mail-closed \(invariants\/mail-closed\.cedar\): holds for the deployed store only/);
  assert.match(formatText(report), /invariant inv-readers-read-only: holds for every entity store/);
  assert.match(formatMarkdown(report), /\| `inv-mail-closed` \| `invariants\/mail-closed\.cedar` \| ⚠️ holds for the deployed store only/);
});

test('an entities-only PR that breaks an invariant on the deployed store is flagged, witnessed by the head store', async () => {
  const base = dirs.make((d) => write(d, INV_FILE, MAIL_CLOSED));
  const head = dirs.make((d) => {
    write(d, INV_FILE, MAIL_CLOSED);
    addHost(d, 'internal');
  });
  const { report } = await gate(base, head);
  const inv = report.invariants.find((i) => i.id === 'inv-mail-closed')!;
  assert.equal(inv.result, 'violated', JSON.stringify(inv));
  assert.equal(inv.store, 'deployed');
  assert.equal(report.verdict, 'violation');
  assert.equal(exitCodeOf(report.verdict), 1);
  const cx = inv.counterexample!;
  // The witness is the head's deployed store: the relay under Zone::"internal", exactly as entities.json says.
  const mail = cx.entities.find((e) => e.uid.id === 'mail.corp.example')!;
  assert.deepEqual(mail.parents, [{ type: 'Zone', id: 'internal' }]);
  assert.equal(decideIn(head, cx, POLICY_FILES), 'allow');
  assert.equal(decideIn(head, cx, [INV_FILE]), 'deny');
  assert.match(
    formatText(report),
    /invariant inv-mail-closed \(invariants\/mail-closed\.cedar\) VIOLATED on the deployed store in Agent, Action::"connect", Host/,
  );
  assert.match(formatMarkdown(report), /❌ violated on the deployed store/);
  // The same edit is also a deployed-store escalation of the policies (the relay is reachable now).
  assert.equal(report.entityStores.deployed, 'escalation');
});
