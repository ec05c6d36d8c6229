// A signature says who built a capsule, not that Cedar evaluates it as written. A
// forbid with a misspelt context attribute raises an error at evaluation, Cedar
// skips it, and the capsule fails open; entities of undeclared types are read by
// policies the validator never checked against them. A real `lilith enforcer`
// following a real git branch refuses both (invalid_policies / invalid_entities)
// and keeps the active capsule; `lilith verify` refuses the same bytes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { signCapsule, type CapsulePayload, type SigningKey } from '../../capsule/index.js';
import { createAuthorizer } from '../../cedar/index.js';
import { validateCapsule } from '../../enforcer/control/validate-capsule.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import {
  CLI,
  EnforcerProcess,
  generateSigningKey,
  makeCapsule,
  makePayload,
  Publisher,
  readAudit,
  sleep,
  tempDir,
  writeTrust,
} from '../../testkit/control-plane.js';

const run = promisify(execFile);

const FAST_POLL = [
  '--poll-min-ms',
  '100',
  '--poll-max-ms',
  '300',
  '--backoff-max-ms',
  '800',
  '--timeout-ms',
  '3000',
  '--no-kernel',
  '--no-dataplane',
];

/** The bundled set with `untrusted-no-writes` testing `context.taints` (a typo) instead of `context.taint`. */
async function misspeltForbid(watermark: number): Promise<CapsulePayload> {
  const p = await makePayload(watermark);
  const file = Object.keys(p.policies).find((f) => p.policies[f].includes('@id("untrusted-no-writes")'))!;
  const text = p.policies[file].replace('when { context.taint.contains("UNTRUSTED") }', 'when { context.taints.contains("UNTRUSTED") }');
  assert.notEqual(text, p.policies[file], 'fixture: the forbid was found and changed');
  return { ...p, policies: { ...p.policies, [file]: text } };
}

async function undeclaredEntity(watermark: number): Promise<CapsulePayload> {
  const p = await makePayload(watermark);
  return { ...p, entities: [...p.entities, { uid: { type: 'Bucket', id: 'exports' }, attrs: {}, parents: [] }] };
}

const CODER = { type: 'Agent', id: 'spiffe://corp.example/agents/coder' };
// A write in the workspace after an untrusted read: only `untrusted-no-writes` stops it.
const untrustedWrite = {
  principal: CODER,
  action: { type: 'Action', id: 'write_file' },
  resource: { type: 'MCPServer', id: 'files' },
  context: { taint: ['UNTRUSTED'], data_touched: 4, tool: 'write_file', arguments: { path: '/workspace/notes.txt' } },
  entities: [{ uid: CODER, attrs: {}, parents: [{ type: 'AgentGroup', id: 'coding' }] }],
};

it('the misspelt forbid really fails open when activated without strict validation', async () => {
  const good = createAuthorizer(await makePayload(1), 'wasm');
  const typo = createAuthorizer(await misspeltForbid(1), 'wasm');
  try {
    assert.equal(good.isAuthorized(untrustedWrite).decision, 'deny');
    const d = typo.isAuthorized(untrustedWrite);
    assert.equal(d.decision, 'allow', 'Cedar skips the erroring forbid');
    assert.ok(
      d.errors.some((e) => e.startsWith('untrusted-no-writes')),
      JSON.stringify(d),
    );
  } finally {
    good.dispose();
    typo.dispose();
  }
  const typoPayload = await misspeltForbid(1);
  assert.throws(
    () => validateCapsule(typoPayload),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'invalid_policies');
      assert.match(e.message, /untrusted-no-writes/);
      assert.match(e.message, /taints/);
      return true;
    },
  );
});

describe('lilith enforcer refuses signed capsules whose content is invalid', () => {
  let srv: GitServer;
  let pub: Publisher;
  let key: SigningKey;
  let dir: string;
  let trust: string;
  let stateDir: string;
  let enf: EnforcerProcess;

  before(async () => {
    srv = await startGitServer();
    await srv.createBareRepo('policies.git');
    const url = srv.repoUrl('policies.git');
    pub = await Publisher.create(url);
    key = generateSigningKey();
    dir = await tempDir('cp-content');
    trust = await writeTrust(dir, [key]);
    stateDir = join(dir, 'state');
    await pub.publish(await makeCapsule(key, 1));
    enf = new EnforcerProcess(['--git', url, '--trust', trust, '--state-dir', stateDir, ...FAST_POLL], join(dir, 'admin.sock'));
    await enf.waitFor((s) => s.active?.watermark === 1, 'watermark 1 active');
  });

  after(async () => {
    await enf?.kill('SIGKILL');
    await pub?.dispose();
    await srv?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, 'invalid_policies' | 'invalid_entities', (wm: number) => Promise<CapsulePayload>, RegExp]> = [
    ['a misspelt context attribute inside a forbid', 'invalid_policies', misspeltForbid, /untrusted-no-writes.*taints/],
    ['an entity of a type the schema does not declare', 'invalid_entities', undeclaredEntity, /Bucket/],
  ];
  let wm = 1;
  for (const [what, code, make, reason] of cases) {
    it(`refuses ${what} (${code}); the active capsule stays and keeps deciding; lilith verify refuses it too`, async () => {
      const before = (await enf.status())!.refusals;
      const bytes = signCapsule(await make(++wm), [key]);
      await pub.publish(bytes);
      const st = await enf.waitFor((s) => s.refusals === before + 1, `refusal ${code}`);
      assert.equal(st.last_refusal!.code, code);
      assert.match(st.last_refusal!.reason, reason);
      assert.equal(st.active!.watermark, 1);
      const d = await enf.probe();
      assert.equal(d.watermark, 1);
      assert.equal(d.decision, 'allow');
      await sleep(100); // the audit line follows the status update
      const refused = (await readAudit(join(stateDir, 'audit.jsonl'))).filter((e) => e.result === 'refused');
      assert.ok(String(refused.at(-1)?.reason).startsWith(`${code}:`), JSON.stringify(refused.at(-1)));

      const file = join(dir, `capsule-${wm}.json`);
      await writeFile(file, bytes);
      const v = await run(process.execPath, [CLI, 'verify', file, '--trust', trust]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(v.code, 1, v.stderr);
      assert.match(v.stderr, new RegExp(`refused \\(${code}\\)`));
      assert.match(v.stderr, reason);
    });
  }

  it('a valid capsule after the refusals activates, and lilith verify accepts it', async () => {
    const bytes = await makeCapsule(key, ++wm);
    await pub.publish(bytes);
    await enf.waitFor((s) => s.active?.watermark === wm, `watermark ${wm} active`);
    const file = join(dir, 'capsule-ok.json');
    await writeFile(file, bytes);
    const r = await run(process.execPath, [CLI, 'verify', file, '--trust', trust]);
    assert.match(r.stdout, /^valid: /);
  });
});
