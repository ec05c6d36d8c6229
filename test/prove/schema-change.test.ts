// Schema changes the gate must decide (real cvc5, real cedar-wasm), never abort on:
// tightening or loosening an attribute's optionality, unused extension-typed
// attributes, tool arguments deleted together with the forbid that inspected them
// (the dataplane drops undeclared arguments, so the base-only argument is
// unconstrained), and `like` patterns with several wildcards.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { runGate } from '../../pipeline/prove/gate.js';
import { BUNDLED, decideIn, PolicyDirs, replaceIn } from './fixtures.js';

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

test('tightening an optional context attribute to required is proven; loosening a required one is an escalation the base rejects', async () => {
  const tight = dirs.make((d) => replaceIn(d, 'schema.cedarschema', '  sni?: String,', '  sni: String,'));
  assert.equal((await gate(BUNDLED, tight)).report.verdict, 'proven');
  const { report } = await gate(tight, BUNDLED);
  assert.equal(report.verdict, 'escalation');
  for (const e of report.escalations) {
    assert.equal(e.counterexample.context.sni, undefined, 'the widening is exactly the requests without sni');
    assert.equal(decideIn(BUNDLED, e.counterexample, FILES), 'allow');
    assert.equal(decideIn(tight, e.counterexample, FILES), 'deny', 'the base schema does not admit the request');
    assert.ok(
      e.recheck.baseErrors.some((x) => x.includes('sni')),
      JSON.stringify(e.recheck),
    );
  }
});

test('an unused extension-typed context attribute (optional or required) is proven; a widening next to it re-checks with an extension value', async () => {
  for (const attr of ['src?: ipaddr', 'src: ipaddr', 'limit: decimal']) {
    const head = dirs.make((d) => replaceIn(d, 'schema.cedarschema', '  qtype: String,', `  qtype: String,\n  ${attr},`));
    assert.equal((await gate(BUNDLED, head)).report.verdict, 'proven', attr);
  }
  const head = dirs.make((d) => {
    replaceIn(d, 'schema.cedarschema', '  qtype: String,', '  qtype: String,\n  src: ipaddr,');
    replaceIn(
      d,
      'egress.cedar',
      '["A", "AAAA", "CNAME", "HTTPS"].contains(context.qtype)',
      '["A", "AAAA", "CNAME", "HTTPS", "TXT"].contains(context.qtype)',
    );
  });
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'escalation');
  const [e] = report.escalations;
  assert.equal(e.counterexample.context.qtype, 'TXT');
  assert.deepEqual(e.counterexample.context.src, { __extn: { fn: 'ip', arg: '0.0.0.0' } });
  assert.equal(decideIn(head, e.counterexample, FILES), 'allow');
  assert.equal(decideIn(BUNDLED, { ...e.counterexample, context: e.baseContext! }, FILES), 'deny');
});

test('a tool argument deleted from the schema with the forbid that inspected it is an escalation (the dataplane drops it); an unused one is proven', async () => {
  const head = dirs.make((d) => {
    replaceIn(d, 'schema.cedarschema', '  command?: String,\n', '');
    replaceIn(d, 'mcp.cedar', 'when { context.arguments has command && !(context.arguments.command like "*curl*") }', '');
  });
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(
    report.escalations.map((x) => x.env),
    ['Agent, Action::"run_command", MCPServer'],
  );
  const [e] = report.escalations;
  assert.equal(e.counterexample.context.arguments && (e.counterexample.context.arguments as Record<string, unknown>).command, undefined);
  const baseArgs = e.baseContext!.arguments as Record<string, string> | undefined;
  assert.ok(baseArgs === undefined || baseArgs.command === undefined || baseArgs.command.includes('curl'), JSON.stringify(e.baseContext));
  assert.equal(decideIn(head, e.counterexample, FILES), 'allow');
  assert.equal(decideIn(BUNDLED, { ...e.counterexample, context: e.baseContext! }, FILES), 'deny');

  const unused = dirs.make((d) => replaceIn(d, 'schema.cedarschema', '  report?: String,\n', ''));
  assert.equal((await gate(BUNDLED, unused)).report.verdict, 'proven');
  assert.equal((await gate(unused, BUNDLED)).report.verdict, 'proven');
});

test('`like` with several wildcards decides both ways', async () => {
  const strict = dirs.make((d) =>
    replaceIn(
      d,
      'mcp.cedar',
      '!(context.arguments.command like "*curl*")',
      '!(context.arguments.command like "*curl*") && !(context.arguments.command like "*rm*-rf*") && !(context.arguments.command like "*rm*-r*-f*")',
    ),
  );
  assert.equal((await gate(BUNDLED, strict)).report.verdict, 'proven');
  assert.equal((await gate(strict, strict)).report.verdict, 'proven');
  const { report } = await gate(strict, BUNDLED);
  assert.equal(report.verdict, 'escalation');
  const [e] = report.escalations;
  const command = (e.counterexample.context.arguments as { command: string }).command;
  assert.ok(/rm.*-r/.test(command) && !command.includes('curl'), command);
  assert.equal(decideIn(BUNDLED, e.counterexample, FILES), 'allow');
  assert.equal(decideIn(strict, e.counterexample, FILES), 'deny');
  // Weaker patterns in the head: "*rm*-r*-f*" is not implied by "*rm*-rf*".
  const weaker = dirs.make((d) =>
    replaceIn(
      d,
      'mcp.cedar',
      '!(context.arguments.command like "*curl*")',
      '!(context.arguments.command like "*curl*") && !(context.arguments.command like "*rm*-rf*")',
    ),
  );
  const w = await gate(strict, weaker);
  assert.equal(w.report.verdict, 'escalation');
  const c2 = (w.report.escalations[0].counterexample.context.arguments as { command: string }).command;
  assert.ok(/rm.*-r.*-f/.test(c2) && !/rm.*-rf/.test(c2), c2);
});
