// lilith.json must fit the policies and entities it ships with. A forbid testing a
// taint label lilith.json does not define can never fire (context.taint only ever
// holds defined labels), and an agent registered in a group entities.json does not
// define escapes every policy scoped to the group it was meant to be in. Both pass
// strict Cedar validation and carry a valid signature; CI's `lilith validate` refuses
// them, and so must a real `lilith enforcer` (invalid_config, the active capsule
// stays) and `lilith verify`.
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

/** `untrusted-no-writes` tests "UNTRUSTD" (a typo): valid Cedar, but no request ever carries that label. */
async function undefinedTaintLabel(watermark: number): Promise<CapsulePayload> {
  const p = await makePayload(watermark);
  const file = Object.keys(p.policies).find((f) => p.policies[f].includes('@id("untrusted-no-writes")'))!;
  const text = p.policies[file].replace('when { context.taint.contains("UNTRUSTED") }', 'when { context.taint.contains("UNTRUSTD") }');
  assert.notEqual(text, p.policies[file], 'fixture: the forbid was found and changed');
  return { ...p, policies: { ...p.policies, [file]: text } };
}

/** The reader registered in group "reader" (entities.json defines "readers"): the readers' forbids miss it. */
async function undefinedGroup(watermark: number): Promise<CapsulePayload> {
  const p = await makePayload(watermark);
  const registrations = p.config.registrations.map((r) => (r.spiffe_id.endsWith('/agents/reader') ? { ...r, groups: ['reader'] } : r));
  assert.ok(
    registrations.some((r) => r.groups?.includes('reader')),
    'fixture: the reader was found',
  );
  return { ...p, config: { ...p.config, registrations } };
}

const cases: Array<[string, (wm: number) => Promise<CapsulePayload>, RegExp]> = [
  ['a forbid testing a taint label lilith.json does not define', undefinedTaintLabel, /untrusted-no-writes.*"UNTRUSTD"/],
  ['a registration in a group entities.json does not define', undefinedGroup, /registrations\/1\/groups\/0.*AgentGroup "reader"/],
];

const CODER = { type: 'Agent', id: 'spiffe://corp.example/agents/coder' };
// A workspace write after an untrusted read: only `untrusted-no-writes` stops it.
const untrustedWrite = {
  principal: CODER,
  action: { type: 'Action', id: 'write_file' },
  resource: { type: 'MCPServer', id: 'files' },
  context: { taint: ['UNTRUSTED'], data_touched: 4, tool: 'write_file', arguments: { path: '/workspace/notes.txt' } },
  entities: [{ uid: CODER, attrs: {}, parents: [{ type: 'AgentGroup', id: 'coding' }] }],
};

it('the forbid on an undefined label really fails open when activated without the config checks', async () => {
  const good = createAuthorizer(await makePayload(1), 'wasm');
  const typo = createAuthorizer(await undefinedTaintLabel(1), 'wasm');
  try {
    assert.equal(good.isAuthorized(untrustedWrite).decision, 'deny');
    assert.equal(typo.isAuthorized(untrustedWrite).decision, 'allow');
  } finally {
    good.dispose();
    typo.dispose();
  }
});

it('both capsules pass strict Cedar validation and are refused only by the config checks', async () => {
  for (const [, make, reason] of cases) {
    const p = await make(1);
    assert.throws(
      () => validateCapsule(p),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'invalid_config', e.message);
        assert.match(e.message, reason);
        return true;
      },
    );
  }
  validateCapsule(await makePayload(1)); // the unchanged capsule passes
});

describe('lilith enforcer refuses signed capsules whose lilith.json does not fit (invalid_config)', () => {
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
    dir = await tempDir('cp-config');
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

  let wm = 1;
  for (const [what, make, reason] of cases) {
    it(`refuses ${what}; the active capsule stays and keeps deciding; lilith verify refuses it too`, async () => {
      const before = (await enf.status())!.refusals;
      const bytes = signCapsule(await make(++wm), [key]);
      await pub.publish(bytes);
      const st = await enf.waitFor((s) => s.refusals === before + 1, 'refusal invalid_config');
      assert.equal(st.last_refusal!.code, 'invalid_config');
      assert.match(st.last_refusal!.reason, reason);
      assert.equal(st.active!.watermark, 1);
      const d = await enf.probe();
      assert.equal(d.watermark, 1);
      assert.equal(d.decision, 'allow');
      await sleep(100); // the audit line follows the status update
      const refused = (await readAudit(join(stateDir, 'audit.jsonl'))).filter((e) => e.result === 'refused');
      assert.ok(String(refused.at(-1)?.reason).startsWith('invalid_config:'), JSON.stringify(refused.at(-1)));

      const file = join(dir, `capsule-${wm}.json`);
      await writeFile(file, bytes);
      const v = await run(process.execPath, [CLI, 'verify', file, '--trust', trust]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      assert.equal(v.code, 1, v.stderr);
      assert.match(v.stderr, /refused \(invalid_config\)/);
      assert.match(v.stderr, reason);
    });
  }

  it('a valid capsule after the refusals activates', async () => {
    await pub.publish(await makeCapsule(key, ++wm));
    await enf.waitFor((s) => s.active?.watermark === wm, `watermark ${wm} active`);
  });
});
