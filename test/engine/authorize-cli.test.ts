// `lilith authorize` as users run it: real process, real files, both engines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CLI = join(process.cwd(), 'dist/cli/main.js');

async function lilith(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, 'authorize', ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('lilith authorize: policy file + schema + entities, both engines, exit status by decision', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lilith-authz-'));
  try {
    await writeFile(
      join(dir, 'schema.cedarschema'),
      'entity Team; entity User in [Team] { level: Long }; entity Doc; action "view" appliesTo { principal: User, resource: Doc, context: { n: Long } };',
    );
    await writeFile(
      join(dir, 'p.cedar'),
      '@id("team-view") permit (principal in Team::"eng", action == Action::"view", resource) when { principal.level + context.n > 2 };\n@id("overflow") forbid (principal, action, resource) when { context.n * 4611686018427387904 < 0 };',
    );
    await writeFile(
      join(dir, 'entities.json'),
      JSON.stringify([{ uid: { type: 'User', id: 'ann' }, attrs: { level: 2 }, parents: [{ type: 'Team', id: 'eng' }] }]),
    );
    const common = [
      '--policies',
      join(dir, 'p.cedar'),
      '--schema',
      join(dir, 'schema.cedarschema'),
      '--entities',
      join(dir, 'entities.json'),
    ];
    const req = (n: number) =>
      JSON.stringify({ principal: 'User::"ann"', action: 'view', resource: { type: 'Doc', id: 'd' }, context: { n } });
    for (const engine of ['fast', 'wasm']) {
      // n = 1: allowed; the forbid is not satisfied (2^62 fits and is positive).
      const ok = await lilith([...common, '--engine', engine, '--request', req(1)]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(JSON.parse(ok.stdout), { decision: 'allow', reasons: ['team-view'], errors: [] });
      // n = 2: 2^63 overflows, so "overflow" errors (is reported) and does not forbid.
      const ovf = await lilith([...common, '--engine', engine, '--request', req(2)]);
      const d = JSON.parse(ovf.stdout);
      assert.equal(d.decision, 'allow');
      assert.deepEqual(d.reasons, ['team-view']);
      assert.equal(d.errors.length, 1);
      assert.match(d.errors[0], /^overflow: /);
      // A context of the wrong shape is a deny with a request error, exit 1.
      await writeFile(
        join(dir, 'bad.json'),
        JSON.stringify({ principal: 'User::"ann"', action: 'view', resource: 'Doc::"d"', context: { n: 'x' } }),
      );
      const bad = await lilith([...common, '--engine', engine, '--request', `@${join(dir, 'bad.json')}`]);
      assert.equal(bad.code, 1);
      assert.match(JSON.parse(bad.stdout).errors[0], /^request: /);
    }
    const usage = await lilith(['--request', 'not json']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--request is not JSON/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('lilith authorize: defaults to the bundled policy directory', async () => {
  const r = await lilith([
    '--request',
    JSON.stringify({
      principal: 'Agent::"spiffe://corp.example/agents/coder"',
      action: 'http_post',
      resource: 'MCPServer::"files"',
      context: { taint: ['PII'], data_touched: 1, tool: 'http_post', arguments: {} },
    }),
  ]);
  assert.equal(r.code, 1);
  assert.deepEqual(JSON.parse(r.stdout), {
    decision: 'deny',
    reasons: ['taint-blocks-egress', 'inv-no-pii-egress'].filter((id) => r.stdout.includes(id)),
    errors: [],
  });
  assert.ok(r.stdout.includes('taint-blocks-egress'));
});
