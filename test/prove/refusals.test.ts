// What the prover refuses: each construct strict Cedar validation accepts but the
// encoder does not model makes `lilith prove` exit 2 naming the policy and the
// construct — never a proof, never an internal error. An unread attribute of an
// unmodelled type refuses nothing (it cannot change a decision).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as cedar from '../../cedar/wasm-loader.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { neutralConfig } from './fixtures.js';
import { REFUSAL_SCHEMA, REFUSALS, refusalPolicy } from './refusals.js';

const exec = promisify(execFile);
const LILITH = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'bin/lilith.js');
const root = mkdtempSync(join(tmpdir(), 'lilith-refusals-'));
after(() => rmSync(root, { recursive: true, force: true }));

function policyDir(name: string, schema: string, policies: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'schema.cedarschema'), schema);
  writeFileSync(join(dir, 'lilith.json'), neutralConfig());
  writeFileSync(join(dir, 'entities.json'), '[]');
  writeFileSync(join(dir, 'p.cedar'), policies);
  return dir;
}

async function prove(base: string, head: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [LILITH, 'prove', '--base-dir', base, '--head-dir', head], { maxBuffer: 16 << 20 });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('every refused construct is valid Cedar (strict validation accepts it)', () => {
  for (const r of REFUSALS) {
    const answer = cedar.validate({
      validationSettings: { mode: 'strict' },
      schema: r.schema ?? REFUSAL_SCHEMA,
      policies: { staticPolicies: { [r.id]: refusalPolicy(r) } },
    });
    assert.equal(answer.type, 'success', r.id);
    if (answer.type === 'success') assert.deepEqual(answer.validationErrors, [], `${r.id}: ${JSON.stringify(answer.validationErrors)}`);
  }
});

test('lilith prove exits 2 naming the policy and the construct for each', async () => {
  for (const r of REFUSALS) {
    const schema = r.schema ?? REFUSAL_SCHEMA;
    const base = policyDir(`${r.id}-base`, schema, '');
    const head = policyDir(`${r.id}-head`, schema, refusalPolicy(r));
    const out = await prove(base, head);
    assert.equal(out.code, 2, `${r.id}: ${out.stdout}${out.stderr}`);
    assert.match(out.stderr, /unsupported: /, r.id);
    assert.match(out.stderr, r.construct, `${r.id}: ${out.stderr}`);
    assert.match(out.stderr, new RegExp(`in policy ${r.id}\\b`), `${r.id}: ${out.stderr}`);
    assert.doesNotMatch(out.stderr, /encoder bug/, r.id);
  }
});

test('attributes of unmodelled types no policy reads refuse nothing; counterexamples fill them with valid values', async () => {
  const src = (policies: string) => ({
    policies: { 'p.cedar': policies },
    invariants: {},
    schema: REFUSAL_SCHEMA,
    entitiesText: '[]',
    configText: neutralConfig(),
  });
  const widened = '@id("w")\npermit (principal, action == Action::"read", resource) when { context.n > 1 && principal.level > 0 };\n';
  const { report } = await runGate({ label: 'base', source: src('') }, { label: 'head', source: src(widened) }, {});
  assert.equal(report.verdict, 'escalation');
  for (const e of report.escalations) assert.deepEqual([e.recheck.head, e.recheck.base], ['allow', 'deny']);
  const cx = report.escalations[0].counterexample as { context: Record<string, unknown> };
  assert.deepEqual(cx.context.act, { __entity: { type: 'Action', id: 'read' } });
  assert.deepEqual(cx.context.recs, []);
  const same = await runGate({ label: 'base', source: src(widened) }, { label: 'head', source: src(widened) }, {});
  assert.equal(same.report.verdict, 'proven');
});
