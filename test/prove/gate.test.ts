// Known answers for the proof gate (real cvc5, real cedar-wasm): the bundled
// policies are proven and satisfy every invariant; each kind of escalation is
// found with a counterexample that independently re-checks; a harmless
// refactor is proven equivalent (both directions).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { GateError, runGate } from '../../pipeline/prove/gate.js';
import { Cvc5, SolverError } from '../../pipeline/prove/solver.js';
import { decideIn, PolicyDirs, read, remove, replaceIn, write, BUNDLED, gateDirs } from './fixtures.js';

const dirs = new PolicyDirs();
after(() => dirs.cleanup());

const POLICY_FILES = ['egress.cedar', 'mcp.cedar'];

const gate = gateDirs;

function assertRechecks(
  baseDir: string,
  headDir: string,
  cx: Parameters<typeof decideIn>[1],
  headFiles = POLICY_FILES,
  baseFiles = POLICY_FILES,
) {
  assert.equal(decideIn(headDir, cx, headFiles), 'allow', 'head must allow the counterexample');
  assert.equal(decideIn(baseDir, cx, baseFiles), 'deny', 'base must deny the counterexample');
}

test('bundled policies: proven against themselves, every invariant holds, no warnings', async () => {
  const { report, digest } = await gate(BUNDLED, BUNDLED);
  assert.equal(report.verdict, 'proven');
  assert.equal(report.escalations.length, 0);
  assert.deepEqual(
    report.invariants.map((i) => [i.id, i.result]),
    [
      ['inv-no-credential-egress', 'holds'],
      ['inv-no-host-mismatch', 'holds'],
      ['inv-no-pii-egress', 'holds'],
      ['inv-readers-read-only', 'holds'],
      ['inv-sensitive-stays-trusted', 'holds'],
    ],
  );
  assert.deepEqual(report.warnings, []);
  assert.equal(report.environments.length, 26);
  assert.ok(
    report.assumptions.some((a) => a.includes('context.taint') && a.includes('data_touched')),
    'the taint assumption is stated',
  );
  // Stable report: the same inputs give the same digest.
  const again = await gate(BUNDLED, BUNDLED);
  assert.equal(again.digest, digest);
});

test('without lilith.json taint_labels there is no taint model to prove with: the gate refuses the capsule (bad_config)', async () => {
  // The taint/data_touched assumption comes from the capsule's labels; a capsule without
  // them is invalid, so the gate refuses rather than proving over an unrelated mask.
  const head = dirs.make((d) => replaceIn(d, 'lilith.json', /"taint_labels": \{[^}]*\},/, ''));
  await assert.rejects(
    gate(head, head, { hygiene: false }),
    (e: unknown) => (e as { code?: string }).code === 'bad_config' && /taint_labels/.test(String(e)),
  );
});

test('widened permit (TLS on any port) → escalation with a re-checked counterexample', async () => {
  const head = dirs.make((d) =>
    replaceIn(d, 'egress.cedar', 'context.protocol == "tls" && context.port == 443', 'context.protocol == "tls"'),
  );
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(report.escalations.map((e) => e.env).sort(), ['Agent, Action::"connect", Endpoint', 'Agent, Action::"connect", Host']);
  for (const e of report.escalations) {
    assert.notEqual(e.counterexample.context.port, 443);
    assert.equal(e.counterexample.context.protocol, 'tls');
    assert.deepEqual(e.recheck.headReasons, ['tls-allowlisted']);
    assertRechecks(BUNDLED, head, e.counterexample);
  }
  assert.ok(report.invariants.every((i) => i.result === 'holds'));
});

test('deleted forbid → escalations and an invariant violation, all re-checked', async () => {
  const head = dirs.make((d) =>
    replaceIn(
      d,
      'egress.cedar',
      /@id\("taint-blocks-egress"\)\nforbid \(principal, action in Action::"egress", resource\)\nwhen \{ context.data_touched != 0 \};/,
      '',
    ),
  );
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'violation');
  assert.ok(report.escalations.length > 0);
  for (const e of report.escalations) {
    assert.notEqual(e.counterexample.context.data_touched, 0);
    assertRechecks(BUNDLED, head, e.counterexample);
  }
  const broken = report.invariants
    .filter((i) => i.result === 'violated')
    .map((i) => i.id)
    .sort();
  assert.deepEqual(broken, ['inv-no-credential-egress', 'inv-no-pii-egress']);
  for (const i of report.invariants.filter((x) => x.counterexample)) {
    assert.equal(decideIn(head, i.counterexample!, POLICY_FILES), 'allow');
    assert.equal(decideIn(head, i.counterexample!, [i.file]), 'deny', 'the invariant forbid matches the counterexample');
  }
});

test('weakened `when` (.git/hooks exclusion dropped) → escalation on write_file with such a path', async () => {
  const head = dirs.make((d) => replaceIn(d, 'mcp.cedar', ' &&\n  !(context.arguments.path like "*/.git/hooks/*")', ''));
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(
    report.escalations.map((e) => e.env),
    ['Agent, Action::"write_file", MCPServer'],
  );
  const cx = report.escalations[0].counterexample;
  const path = (cx.context.arguments as { path: string }).path;
  assert.ok(path.startsWith('/workspace/') && path.includes('/.git/hooks/'), path);
  assertRechecks(BUNDLED, head, cx);
});

test('an action added to a group a permit names → escalation (each side uses its own action hierarchy)', async () => {
  const groupPermit =
    '\n@id("read-group")\npermit (principal, action in Action::"read", resource is MCPServer in Zone::"approved-mcp")\nwhen { context.data_touched == 0 };\n';
  const base = dirs.make((d) => write(d, 'mcp.cedar', read(d, 'mcp.cedar') + groupPermit));
  const head = dirs.make((d) => {
    write(d, 'mcp.cedar', read(d, 'mcp.cedar') + groupPermit);
    replaceIn(
      d,
      'schema.cedarschema',
      'action "run_command" in ["tools/call", "egress"]',
      'action "run_command" in ["tools/call", "egress", "read"]',
    );
  });
  const { report } = await gate(base, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(
    report.escalations.map((e) => e.env),
    ['Agent, Action::"run_command", MCPServer'],
  );
  assert.deepEqual(report.escalations[0].recheck.headReasons, ['read-group']);
  assertRechecks(base, head, report.escalations[0].counterexample);
});

test('a new action in an existing group → escalation (the base never saw the action)', async () => {
  const head = dirs.make((d) => {
    write(
      d,
      'schema.cedarschema',
      read(d, 'schema.cedarschema') +
        '\naction "upload" in ["egress"] appliesTo { principal: Agent, resource: MCPServer, context: ToolContext };\n',
    );
    write(
      d,
      'mcp.cedar',
      read(d, 'mcp.cedar') + '\n@id("uploads")\npermit (principal, action == Action::"upload", resource in Zone::"approved-mcp");\n',
    );
  });
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(
    report.escalations.map((e) => e.env),
    ['Agent, Action::"upload", MCPServer'],
  );
  assert.equal(report.escalations[0].counterexample.context.data_touched, 0, 'the egress forbid still applies to the new action');
  assert.equal(decideIn(head, report.escalations[0].counterexample, POLICY_FILES), 'allow');
});

/** The bundled policies as they were before `sni_dns` joined ConnectContext (and its forbid). */
function withoutSniDns(d: string): void {
  replaceIn(d, 'schema.cedarschema', /\n  \/\/ With an SNI: "match"[\s\S]*?sni_dns\?: String,/, '');
  replaceIn(d, 'egress.cedar', /\/\/ Domain fronting:[\s\S]*?context\.sni_dns == "mismatch" \};\n\n/, '');
}

test('a context that only gains an optional attribute is compared on what the base knows: adding sni_dns and its forbid is proven', async () => {
  const base = dirs.make(withoutSniDns);
  assert.ok(
    !read(base, 'schema.cedarschema').includes('sni_dns') && !read(base, 'egress.cedar').includes('sni_dns'),
    'fixture removed the attribute',
  );
  const { report } = await gate(base, BUNDLED);
  assert.equal(report.verdict, 'proven', JSON.stringify(report.escalations.map((e) => e.env)));
  // The other way round drops the attribute and its forbid: the head enforcer no longer
  // sends sni_dns, but the connects it described still happen, and the base forbade
  // those whose sni_dns was "mismatch". Base-only attributes are unconstrained.
  const back = await gate(BUNDLED, base);
  assert.equal(back.report.verdict, 'escalation');
  for (const e of back.report.escalations) {
    assert.equal(e.baseContext?.sni_dns, 'mismatch', JSON.stringify(e.baseContext));
    assert.equal(decideIn(base, e.counterexample, POLICY_FILES), 'allow');
    assert.equal(decideIn(BUNDLED, { ...e.counterexample, context: e.baseContext! }, POLICY_FILES), 'deny');
  }
});

test('the base cannot observe an attribute its schema lacks: a base forbid keyed on its absence still binds', async () => {
  const forbidWithout =
    '\n@id("no-connect-without-sni-dns")\nforbid (principal, action == Action::"connect", resource) unless { context has sni_dns };\n';
  // Base: the old schema, where `context has sni_dns` is always false, so every connect is forbidden.
  const base = dirs.make((d) => {
    withoutSniDns(d);
    write(d, 'egress.cedar', read(d, 'egress.cedar') + forbidWithout);
  });
  const head = dirs.make((d) => write(d, 'egress.cedar', read(d, 'egress.cedar') + forbidWithout));
  const { report } = await gate(base, head);
  assert.equal(report.verdict, 'escalation');
  assert.deepEqual(report.escalations.map((e) => e.env).sort(), ['Agent, Action::"connect", Endpoint', 'Agent, Action::"connect", Host']);
  for (const e of report.escalations) {
    assert.equal(typeof e.counterexample.context.sni_dns, 'string', 'the escalation needs the new attribute present');
    assert.equal(decideIn(head, e.counterexample, POLICY_FILES), 'allow');
    const { sni_dns: _dropped, ...projected } = e.counterexample.context;
    assert.equal(
      decideIn(base, { ...e.counterexample, context: projected }, POLICY_FILES),
      'deny',
      'the base, on the request its enforcer would send, denies',
    );
  }
});

test('a new required context attribute is dropped for the base like an optional one: the same event, seen by the old schema', async () => {
  const base = dirs.make(withoutSniDns);
  const head = dirs.make((d) => replaceIn(d, 'schema.cedarschema', 'sni_dns?: String,', 'sni_dns: String,'));
  const { report } = await gate(base, head);
  assert.equal(report.verdict, 'proven', JSON.stringify(report.escalations.map((e) => e.env)));
});

test('harmless refactor (reordered, reformatted, split, moved between files) is proven equivalent', async () => {
  const head = dirs.make((d) => {
    const mcp = read(d, 'mcp.cedar');
    const egress = read(d, 'egress.cedar');
    remove(d, 'mcp.cedar');
    remove(d, 'egress.cedar');
    // Split read-tools into one permit per action, and mcp-read-resources into two.
    const split = mcp
      .replace(
        /@id\("read-tools"\)\npermit \(\n  principal,\n  action in \[Action::"list_directory", Action::"search_docs", Action::"fetch_report"\],\n  resource in Zone::"approved-mcp"\n\);/,
        ['list_directory', 'search_docs', 'fetch_report']
          .map((a) => `@id("read-tools-${a}")\npermit(principal,action==Action::"${a}",resource in Zone::"approved-mcp");`)
          .join('\n'),
      )
      .replace(
        /@id\("mcp-read-resources"\)\npermit \(principal, action in \[Action::"resources\/read", Action::"prompts\/get"\], resource in Zone::"approved-mcp"\);/,
        '@id("mcp-resources")\npermit (principal, action == Action::"resources/read", resource in Zone::"approved-mcp");\n@id("mcp-prompts")\npermit (principal, action in [Action::"prompts/get"], resource in Zone::"approved-mcp") when { true };',
      );
    assert.notEqual(split, mcp);
    // Reordered: policies reversed across files; reformatted: `unless` for a negated `when`.
    const reordered = (split + '\n' + egress)
      .split(/\n(?=@id)/)
      .reverse()
      .join('\n');
    const reformatted = reordered.replace(
      'when { context.taint.contains("UNTRUSTED") };',
      'unless { !context.taint.contains("UNTRUSTED") };',
    );
    assert.notEqual(reformatted, reordered);
    write(d, 'all.cedar', reformatted);
  });
  const forward = await gate(BUNDLED, head, { hygiene: false });
  assert.equal(forward.report.verdict, 'proven');
  const backward = await gate(head, BUNDLED, { hygiene: false });
  assert.equal(backward.report.verdict, 'proven');
});

test('an approval file turns an escalation into a reported, passing change', async () => {
  const head = dirs.make((d) => {
    replaceIn(d, 'egress.cedar', 'context.protocol == "tls" && context.port == 443', 'context.protocol == "tls"');
    write(d, 'approvals/tls-any-port.json', JSON.stringify({ action: 'connect', reason: 'TLS to allowlisted hosts on any port (SEC-42)' }));
  });
  const { report } = await gate(BUNDLED, head);
  assert.equal(report.verdict, 'approved');
  assert.equal(report.escalations.length, 2);
  assert.ok(report.escalations.every((e) => e.approved?.reason.includes('SEC-42')));
});

test('hygiene: dead, shadowed and may-error policies are reported', async () => {
  const head = dirs.make((d) =>
    write(
      d,
      'extra.cedar',
      `@id("dead-one")
permit (principal, action == Action::"GET", resource) when { context.port > 10 && context.port < 5 };
@id("shadowed-one")
permit (principal in AgentGroup::"readers", action == Action::"write_file", resource);
@id("may-error-one")
permit (principal, action == Action::"read_file", resource) when { context.arguments.path like "/tmp/*" };
`,
    ),
  );
  const { report } = await gate(head, head);
  const w = report.warnings.map((x) => `${x.kind}:${x.policy}`);
  assert.ok(w.includes('dead:dead-one'), w.join());
  assert.ok(w.includes('shadowed:shadowed-one'), w.join());
  assert.ok(w.includes('may-error:may-error-one'), w.join());
  assert.ok(!w.some((x) => x.endsWith(':read-file-clean')), 'a healthy policy is not flagged');
});

test('unsupported Cedar is an error naming the construct and the policy, never an answer', async () => {
  const head = dirs.make((d) =>
    write(
      d,
      'extra.cedar',
      '@id("uses-ip")\npermit (principal, action == Action::"connect", resource) when { ip(context.ip).isLoopback() };\n',
    ),
  );
  await assert.rejects(
    gate(BUNDLED, head),
    (err: Error) => err instanceof GateError && /unsupported: .* in policy uses-ip/.test(err.message),
  );
});

test('solver unknown/timeout is a failure, never a pass', async () => {
  const s = new Cvc5({ timeoutMs: 1 });
  try {
    s.send('(declare-const x Int)\n(declare-const y Int)\n(assert (= (+ (* x x x) (* y y y)) 2305843009213693951))\n');
    await assert.rejects(s.checkSat(), (err: Error) => err instanceof SolverError && /unknown|timeout|not proven/.test(err.message));
  } finally {
    await s.close();
  }
});

test('findings do not depend on the number of cvc5 processes; the report is stable for a given number', async () => {
  const head = dirs.make((d) =>
    replaceIn(
      d,
      'egress.cedar',
      /@id\("taint-blocks-egress"\)\nforbid \(principal, action in Action::"egress", resource\)\nwhen \{ context.data_touched != 0 \};/,
      '',
    ),
  );
  const src = async (dir: string) => ({ label: 'x', source: await readPolicyDir(dir) });
  const one = await runGate(await src(BUNDLED), await src(head), { workers: 1 });
  const three = await runGate(await src(BUNDLED), await src(head), { workers: 3 });
  const threeAgain = await runGate(await src(BUNDLED), await src(head), { workers: 3 });
  assert.equal(one.report.verdict, 'violation');
  const findings = (r: typeof one.report) => ({
    verdict: r.verdict,
    escalations: r.escalations.map((e) => [e.env, e.recheck.headReasons]),
    invariants: r.invariants.map((i) => [i.id, i.result, i.env]),
    warnings: r.warnings,
  });
  assert.deepEqual(findings(three.report), findings(one.report));
  assert.equal(threeAgain.digest, three.digest);
});
