// `lilith validate` on the bundled policies and on broken copies: every finding
// names the right file, line and column.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { validatePolicySource, type Diagnostic } from '../../pipeline/validate.js';
import { copyPolicies, lineColOf, POLICIES_DIR, type PolicyCopy } from './policy-copy.js';

async function validateDir(dir: string) {
  return validatePolicySource(await readPolicyDir(dir));
}

function only(diags: Diagnostic[], file: string): Diagnostic {
  const hits = diags.filter((d) => d.file === file && d.severity === 'error');
  assert.equal(hits.length, 1, `expected one error in ${file}, got: ${JSON.stringify(diags, null, 1)}`);
  return hits[0];
}

test('the bundled policies validate cleanly', async () => {
  const r = await validateDir(POLICIES_DIR);
  assert.deepEqual(
    r.diagnostics.filter((d) => d.severity === 'error'),
    [],
  );
  assert.ok(r.policyIds.includes('read-file-clean'));
  assert.ok(r.invariantIds.includes('inv-no-credential-egress'));
});

describe('broken policy repositories', () => {
  let copy: PolicyCopy;
  before(async () => {
    copy = await copyPolicies();
  });
  after(() => copy.remove());

  // Each test edits one file of a fresh copy and restores it afterwards.
  async function withEdit(file: string, change: (t: string) => string, check: (diags: Diagnostic[], text: string) => void | Promise<void>) {
    const original = await copy.read(file);
    await copy.edit(file, change);
    try {
      const r = await validateDir(copy.dir);
      await check(r.diagnostics, await copy.read(file));
    } finally {
      await copy.write(file, original);
    }
  }

  test('a syntax error points at the offending token', () =>
    withEdit(
      'mcp.cedar',
      (t) => t + '\n@id("broken")\npermit (principal, action, resource) when { context.taint.contains( };\n',
      (diags, text) => {
        const d = only(diags, 'mcp.cedar');
        // The offending token is the `}` right after `contains( `.
        const at = lineColOf(text, 'contains( };');
        assert.deepEqual({ line: d.line, col: d.col }, { line: at.line, col: at.col + 'contains( '.length });
        assert.match(d.message, /unexpected token `}`/);
      },
    ));

  test('a type error (unknown context attribute) points at the expression and names the policy by @id', () =>
    withEdit(
      'mcp.cedar',
      (t) =>
        t +
        '\n// added\n@id("bad-attr")\npermit (principal, action == Action::"read_file", resource)\nwhen { context.no_such_attr == 1 };\n',
      (diags, text) => {
        const d = only(diags, 'mcp.cedar');
        assert.deepEqual({ line: d.line, col: d.col }, lineColOf(text, 'context.no_such_attr'));
        assert.match(d.message, /`bad-attr`/);
        assert.match(d.message, /no_such_attr/);
      },
    ));

  test('an unknown action in strict mode is an error at the right line', () =>
    withEdit(
      'egress.cedar',
      (t) => t + '\n@id("ghost")\nforbid (principal, action == Action::"teleport", resource);\n',
      (diags, text) => {
        const d = only(diags, 'egress.cedar');
        assert.equal(d.line, lineColOf(text, 'Action::"teleport"').line);
        assert.match(d.message, /teleport/);
      },
    ));

  test('a type error in an invariant is reported in invariants/', () =>
    withEdit(
      'invariants/no-pii-egress.cedar',
      (t) => t.replace('context.taint.contains("PII")', 'context.taint.contains(42)'),
      (diags, text) => {
        const d = only(diags, 'invariants/no-pii-egress.cedar');
        assert.equal(d.line, lineColOf(text, 'contains(42)').line);
      },
    ));

  test('a duplicate @id across files points at the second annotation', () =>
    withEdit(
      'egress.cedar',
      (t) => t + '\n\n@id("read-file-clean")\nforbid (principal, action == Action::"http_post", resource);\n',
      (diags, text) => {
        // egress.cedar is read first, so the original in mcp.cedar is reported as the duplicate.
        const d = only(diags, 'mcp.cedar');
        assert.match(d.message, /duplicate policy id "read-file-clean" \(also in egress.cedar\)/);
        void text;
      },
    ));

  test('a duplicate @id within one file points at the second annotation', () =>
    withEdit(
      'mcp.cedar',
      (t) => t + '\n\n@id("read-tools")\nforbid (principal, action == Action::"http_post", resource);\n',
      (diags, text) => {
        const d = only(diags, 'mcp.cedar');
        const second = text.lastIndexOf('@id("read-tools")');
        assert.deepEqual({ line: d.line, col: d.col }, { line: text.slice(0, second).split('\n').length, col: 1 });
        assert.match(d.message, /duplicate policy id "read-tools" \(also in mcp.cedar\)/);
      },
    ));

  test('a policy without @id is an error at the policy', () =>
    withEdit(
      'egress.cedar',
      (t) => t + '\n\nforbid (principal, action == Action::"http_post", resource);\n',
      (diags, text) => {
        const d = only(diags, 'egress.cedar');
        assert.deepEqual({ line: d.line, col: d.col }, { line: text.trimEnd().split('\n').length, col: 1 });
        assert.match(d.message, /no @id/);
      },
    ));

  test('a schema error points into schema.cedarschema', () =>
    withEdit(
      'schema.cedarschema',
      (t) => t + '\nentity Broken in [NoSuchType];\n',
      (diags, text) => {
        const d = only(diags, 'schema.cedarschema');
        assert.deepEqual({ line: d.line, col: d.col }, lineColOf(text, 'NoSuchType'));
      },
    ));

  test('an entity of an undeclared type is located in entities.json', () =>
    withEdit(
      'entities.json',
      (t) => t.replace('{ "type": "Zone", "id": "internal" }', '{ "type": "Zonk", "id": "internal" }'),
      (diags, text) => {
        const d = only(diags, 'entities.json');
        assert.equal(d.line, lineColOf(text, '"Zonk"').line);
        assert.match(d.message, /Zonk/);
      },
    ));

  test('invalid JSON in entities.json gives the parse position', () =>
    withEdit(
      'entities.json',
      (t) => t.replace('"id": "readers" }', '"id": "readers" ]'),
      (diags, text) => {
        const d = only(diags, 'entities.json');
        assert.equal(d.line, lineColOf(text, '"id": "readers" ]').line);
        assert.match(d.message, /invalid JSON/);
      },
    ));

  test('lilith.json: classifier sets an unknown label → error at that label', () =>
    withEdit(
      'lilith.json',
      (t) => t.replace('"glob": "*customers*" }, "set": ["PII"]', '"glob": "*customers*" }, "set": ["PIIX"]'),
      (diags, text) => {
        const d = only(diags, 'lilith.json');
        assert.deepEqual({ line: d.line, col: d.col }, lineColOf(text, '"PIIX"'));
        assert.match(d.message, /\/classifiers\/2\/set\/0: .*unknown taint label "PIIX"/);
      },
    ));

  test('lilith.json: two labels on one bit', () =>
    withEdit(
      'lilith.json',
      (t) => t.replace('"SOURCE_CODE": 4', '"SOURCE_CODE": 3'),
      (diags, text) => {
        const d = only(diags, 'lilith.json');
        assert.deepEqual({ line: d.line, col: d.col }, lineColOf(text, '3 }'));
        assert.match(d.message, /bit 3, already used by CREDENTIALS/);
      },
    ));

  test('lilith.json: bit out of range (schema)', () =>
    withEdit(
      'lilith.json',
      (t) => t.replace('"SOURCE_CODE": 4', '"SOURCE_CODE": 64'),
      (diags) => {
        assert.match(only(diags, 'lilith.json').message, /\/taint_labels\/SOURCE_CODE: must be <= 63/);
      },
    ));

  test('lilith.json: a classifier with two triggers', () =>
    withEdit(
      'lilith.json',
      (t) => t.replace('{ "tool": "fetch_report" }', '{ "tool": "fetch_report", "response_detector": "email" }'),
      (diags, text) => {
        const d = only(diags, 'lilith.json');
        assert.equal(d.line, lineColOf(text, '"fetch_report", "response_detector"').line);
        assert.match(d.message, /exactly one trigger/);
      },
    ));

  test('lilith.json: SPIFFE ID outside the trust domain, and a malformed one', () =>
    withEdit(
      'lilith.json',
      (t) =>
        t
          .replace('"spiffe://corp.example/agents/reader"', '"spiffe://evil.example/agents/reader"')
          .replace('"spiffe://corp.example/agents/coder"', '"spiffe://corp.example/agents//coder"'),
      (diags, text) => {
        const errs = diags.filter((d) => d.file === 'lilith.json');
        assert.equal(errs.length, 2, JSON.stringify(errs));
        assert.deepEqual({ line: errs[0].line, col: errs[0].col }, lineColOf(text, '"spiffe://corp.example/agents//coder"'));
        assert.match(errs[0].message, /empty segment/);
        assert.deepEqual({ line: errs[1].line, col: errs[1].col }, lineColOf(text, '"spiffe://evil.example'));
        assert.match(errs[1].message, /outside the trust domain "corp.example"/);
      },
    ));

  test('lilith.json: a malformed selector is an error at that selector', () =>
    withEdit(
      'lilith.json',
      (t) => t.replace('"cgroup:/lilith/agents/reader"', '"cgroup:lilith/agents/reader"'),
      (diags, text) => {
        const d = only(diags, 'lilith.json');
        assert.deepEqual({ line: d.line, col: d.col }, lineColOf(text, '"cgroup:lilith/agents/reader"'));
        assert.match(d.message, /must match pattern|must start with/);
      },
    ));

  test('lilith.json: registrations one process could match both of are an ambiguity error', () =>
    withEdit(
      'lilith.json',
      (t) => t.replace('"selectors": ["cgroup:/lilith/agents/reader"]', '"selectors": ["unix:uid:1000"]'),
      (diags) => {
        const errs = diags.filter((d) => d.file === 'lilith.json' && d.severity === 'error');
        assert.ok(errs.length >= 1 && errs.every((d) => /ambiguous identity/.test(d.message)), JSON.stringify(errs));
        assert.match(
          errs[0].message,
          /ambiguous identity: registrations spiffe:\/\/corp.example\/agents\/coder .* and spiffe:\/\/corp.example\/agents\/reader \[unix:uid:1000\]/,
        );
      },
    ));

  test('lilith.json: unknown property and a group missing from entities.json', async () => {
    await withEdit(
      'lilith.json',
      (t) => t.replace('"on_expiry": "fail_closed"', '"on_expiry": "fail_closed", "onexpiry": 1'),
      (diags) => {
        assert.match(only(diags, 'lilith.json').message, /unknown property "onexpiry"/);
      },
    );
    await withEdit(
      'lilith.json',
      (t) => t.replace('"groups": ["readers"]', '"groups": ["reeders"]'),
      (diags, text) => {
        const d = only(diags, 'lilith.json');
        assert.deepEqual({ line: d.line, col: d.col }, lineColOf(text, '"reeders"'));
        assert.match(d.message, /AgentGroup "reeders" is not defined/);
      },
    );
  });
});

test('a taint label a policy tests but lilith.json does not define is an error at the literal', async () => {
  const copy = await copyPolicies();
  try {
    await copy.edit('invariants/no-credential-egress.cedar', (t) =>
      t.replace('context.taint.contains("CREDENTIALS")', 'context.taint.contains("CREDENTIAL")'),
    );
    const r = await validateDir(copy.dir);
    const text = await copy.read('invariants/no-credential-egress.cedar');
    const d = only(r.diagnostics, 'invariants/no-credential-egress.cedar');
    assert.deepEqual({ line: d.line, col: d.col }, lineColOf(text, '"CREDENTIAL"'));
    assert.match(d.message, /"CREDENTIAL", which is not a taint label in lilith.json/);
  } finally {
    await copy.remove();
  }
});
