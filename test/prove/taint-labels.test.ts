// Taint labels in the proof (real cvc5, real cedar-wasm). The session mask is what
// persists across capsules; each side names its bits by its own lilith.json table,
// and data_touched is the mask itself, as the exact signed 64-bit Long the enforcer sends.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { BUNDLED, decideIn, PolicyDirs, read, replaceIn, write } from './fixtures.js';

const dirs = new PolicyDirs();
after(() => dirs.cleanup());
const FILES = ['egress.cedar', 'mcp.cedar'];

async function gate(baseDir: string, headDir: string) {
  return runGate(
    { label: 'base', source: await readPolicyDir(baseDir) },
    { label: 'head', source: await readPolicyDir(headDir) },
    { hygiene: false },
  );
}

/** CREDENTIALS renamed SECRETS everywhere it is named: labels, classifiers, policies, invariants. */
function renameCredentials(d: string): void {
  write(d, 'lilith.json', read(d, 'lilith.json').replaceAll('"CREDENTIALS"', '"SECRETS"'));
  for (const f of [...FILES, ...readdirSync(join(d, 'invariants')).map((x) => `invariants/${x}`)])
    write(d, f, read(d, f).replaceAll('"CREDENTIALS"', '"SECRETS"'));
}

test('a label renamed consistently (same bit) is proven; renamed with the forbid that used it dropped is an escalation', async () => {
  const renamed = dirs.make(renameCredentials);
  assert.equal((await gate(BUNDLED, renamed)).report.verdict, 'proven');

  // The rename hides the deletion if the base is read with the head's labels only:
  // "CREDENTIALS" would never be in the taint set, so the base forbid would never fire.
  const dropped = dirs.make((d) => {
    renameCredentials(d);
    replaceIn(d, 'mcp.cedar', 'when { !context.taint.contains("SECRETS") }', '');
  });
  const { report } = await gate(BUNDLED, dropped);
  assert.equal(report.verdict, 'escalation');
  const e = report.escalations.find((x) => x.env === 'Agent, Action::"read_file", MCPServer');
  assert.ok(e, JSON.stringify(report.escalations.map((x) => x.env)));
  assert.ok((e.counterexample.context.taint as string[]).includes('SECRETS'), JSON.stringify(e.counterexample.context));
  assert.ok((e.baseContext!.taint as string[]).includes('CREDENTIALS'), JSON.stringify(e.baseContext));
  assert.equal(e.baseContext!.data_touched, e.counterexample.context.data_touched, 'one session mask');
  assert.equal(decideIn(dropped, e.counterexample, FILES), 'allow');
  assert.equal(decideIn(BUNDLED, { ...e.counterexample, context: e.baseContext! }, FILES), 'deny');
  assert.ok(report.assumptions.some((a) => a.includes('base taint labels differ')));
});

test('a label at bit 60: data_touched is the exact mask, and the counterexample carries it exactly', async () => {
  const high = (d: string) => replaceIn(d, 'lilith.json', '"SOURCE_CODE": 4', '"SOURCE_CODE": 60');
  const base = dirs.make(high);
  assert.equal((await gate(base, base)).report.verdict, 'proven');
  // The head's egress forbid only looks at masks below 2^52: a SOURCE_CODE session escapes it.
  const head = dirs.make((d) => {
    high(d);
    replaceIn(
      d,
      'egress.cedar',
      'when { context.data_touched != 0 };',
      'when { context.data_touched > 0 && context.data_touched < 4503599627370496 };',
    );
  });
  const { report } = await gate(base, head);
  assert.equal(report.verdict, 'violation', 'PII egress in such a session also breaks the invariant');
  assert.ok(report.escalations.length > 0);
  for (const e of report.escalations) {
    const dt = e.counterexample.context.data_touched as number;
    const taint = e.counterexample.context.taint as string[];
    assert.ok(Number.isInteger(dt) && (dt >= 2 ** 52 || dt < 0), String(dt));
    assert.equal(BigInt(dt), BigInt(Number(BigInt(dt))), 'exact in JSON');
    if (dt >= 2 ** 60) assert.ok(taint.includes('SOURCE_CODE'), JSON.stringify(e.counterexample.context));
    assert.equal(decideIn(head, e.counterexample, FILES), 'allow');
    assert.equal(decideIn(base, e.counterexample, FILES), 'deny');
  }
});

test('data_touched is exact beyond 2^53: a forbid that tells 2^53 from 2^53 + 1 is proven (a rounded mask would escape it)', async () => {
  const high = (d: string) => replaceIn(d, 'lilith.json', '"SOURCE_CODE": 4', '"SOURCE_CODE": 53');
  const base = dirs.make(high);
  // (2^53 written as a product, as before literals beyond 2^53 were read exactly; exact-longs.test.ts covers literals.)
  // Exactly: data_touched == 2^53 only for a SOURCE_CODE-only session, which the second forbid
  // blocks. Rounded to a double, SOURCE_CODE + PII (2^53 + 1) would also read 2^53 and escape both.
  const head = dirs.make((d) => {
    high(d);
    replaceIn(
      d,
      'egress.cedar',
      'when { context.data_touched != 0 };',
      'when { context.data_touched != 0 && context.data_touched != 4503599627370496 * 2 };\n' +
        '@id("source-code-only")\nforbid (principal, action in Action::"egress", resource)\n' +
        'when { context.data_touched == 4503599627370496 * 2 && !context.taint.contains("PII") };',
    );
  });
  const { report } = await gate(base, head);
  assert.equal(report.verdict, 'proven', JSON.stringify(report.escalations.map((e) => e.counterexample.context)));
  assert.ok(report.assumptions.some((a) => a.includes('exact at every bit')));
});
