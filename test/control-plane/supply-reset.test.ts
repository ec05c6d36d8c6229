// Issue 16, recovery from a fast-forward: the CI capsule key (compromised, or fed a junk
// tip) signed watermark 2^53−2 and both enforcers accepted it, so no honest capsule can
// ever be above it. The root role signs a reset (lilith state sign-reset); one enforcer
// gets it over its admin socket (lilith state reset --from), the other from the branch
// (lilith publish). The floor is lowered as an audited root action without deleting any
// state, the pipeline counts from the reset (sign --watermark auto), the next capsule is
// accepted by both, and the fast-forwarded capsule replayed later is refused for good.
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { peekCapsule, writeKeyFiles, type SigningKey } from '../../capsule/index.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import {
  EnforcerProcess,
  generateSigningKey,
  makeCapsule,
  readAudit,
  REPO_ROOT,
  tempDir,
  pollFlags,
  runCli,
} from '../../testkit/control-plane.js';

const FAST_POLL = pollFlags({ minMs: 150, maxMs: 400, backoffMaxMs: 1000, timeoutMs: 10_000 });
const FAST_FORWARD = 2 ** 53 - 2;

const lilith = runCli;

describe('recovery from a fast-forward with a root-signed reset', () => {
  let srv: GitServer;
  let dir: string;
  let url: string;
  const enf: EnforcerProcess[] = [];
  let root: { key: SigningKey; secret: string; pub: string };
  let ci: { key: SigningKey; secret: string; pub: string };
  let trustPath: string;

  before(async () => {
    srv = await startGitServer();
    await srv.createBareRepo('ff.git');
    url = srv.repoUrl('ff.git');
    dir = await tempDir('reset');
    const mk = async (name: string) => {
      const key = generateSigningKey();
      const { secretPath, publicPath } = await writeKeyFiles(join(dir, 'keys'), key, name);
      return { key, secret: secretPath, pub: publicPath };
    };
    root = await mk('root');
    ci = await mk('ci');
    trustPath = join(dir, 'trust.json');
    assert.equal((await lilith(['trust', 'init', '--out', trustPath, '--root', root.pub, '--capsule', ci.pub])).code, 0);
    await writeFile(join(dir, 'c1.json'), await makeCapsule(ci.key, 1));
    assert.equal((await lilith(['publish', join(dir, 'c1.json'), '--repo', url, '--trust', trustPath])).code, 0);
    for (const i of [0, 1])
      enf.push(
        new EnforcerProcess(
          ['--git', url, '--trust', trustPath, '--state-dir', join(dir, `state${i}`), '--no-kernel', '--no-dataplane', ...FAST_POLL],
          join(dir, `admin${i}.sock`),
        ),
      );
    await Promise.all(enf.map((e) => e.waitFor((s) => s.active?.watermark === 1, 'watermark 1')));
  });
  after(async () => {
    for (const e of enf) await e.kill('SIGKILL');
    await srv?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lowers the floor as an audited root action, then the next capsule is accepted and the fast-forward stays refused', async () => {
    const good = peekCapsule(await readFile(join(dir, 'c1.json')));
    const ffBytes = await makeCapsule(ci.key, FAST_FORWARD);
    const ff = peekCapsule(ffBytes);
    await writeFile(join(dir, 'ff.json'), ffBytes);
    assert.equal((await lilith(['publish', join(dir, 'ff.json'), '--repo', url, '--trust', trustPath])).code, 0);
    await Promise.all(enf.map((e) => e.waitFor((s) => s.state?.watermark === FAST_FORWARD, 'fast-forwarded')));

    const resetFile = join(dir, 'reset.json');
    const signed = await lilith([
      'state',
      'sign-reset',
      '--key',
      root.secret,
      '--undoes',
      ff.digest,
      '--watermark',
      '1',
      '--digest',
      good.digest,
      '--trust-version',
      '1',
      '--reason',
      'CI key signed a junk tip',
      '--out',
      resetFile,
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    // A reset signed by the capsule key alone is not a root action.
    const forged = join(dir, 'forged-reset.json');
    await lilith([
      'state',
      'sign-reset',
      '--key',
      ci.secret,
      '--undoes',
      ff.digest,
      '--watermark',
      '1',
      '--digest',
      good.digest,
      '--trust-version',
      '1',
      '--out',
      forged,
    ]);
    const refusedForged = await lilith(['state', 'reset', '--from', forged, '--socket', enf[0].socket]);
    assert.equal(refusedForged.code, 1);
    assert.match(refusedForged.stderr, /unknown_key|below_threshold/);

    // Enforcer 0: over the admin socket.
    const applied = await lilith(['state', 'reset', '--from', resetFile, '--socket', enf[0].socket]);
    assert.equal(applied.code, 0, applied.stderr);
    const s0 = await enf[0].waitFor((s) => s.state?.watermark === 1, 'floor lowered on enforcer 0');
    assert.ok(s0.state?.not_before);
    assert.equal(s0.ready, false, 'the undone capsule is no longer served');
    const again = await lilith(['state', 'reset', '--from', resetFile, '--socket', enf[0].socket]);
    assert.equal(again.code, 1, 'a reset applies once');
    const shown = await lilith(['state', 'show', '--socket', enf[0].socket]);
    assert.match(shown.stdout, /watermark {4}1\n[\s\S]*not before/);

    // Enforcer 1: from the branch.
    const pubReset = await lilith(['publish', resetFile, '--repo', url, '--trust', trustPath]);
    assert.equal(pubReset.code, 0, pubReset.stderr);
    assert.match(pubReset.stdout, /published reset as reset\.json/);
    await enf[1].waitFor((s) => s.state?.watermark === 1 && !!s.state.not_before, 'floor lowered on enforcer 1');

    // The pipeline counts from the reset: sign --watermark auto gives 2, not 2^53−1.
    const next = join(dir, 'c2.json');
    const sign = await lilith([
      'sign',
      join(REPO_ROOT, 'policies'),
      '--key',
      ci.secret,
      '--watermark',
      'auto',
      '--repo',
      url,
      '--trust',
      trustPath,
      '--out',
      next,
    ]);
    assert.equal(sign.code, 0, sign.stderr);
    assert.match(sign.stdout, /watermark 2,/);
    assert.equal((await lilith(['publish', next, '--repo', url, '--trust', trustPath])).code, 0);
    const recovered = await Promise.all(enf.map((e) => e.waitFor((s) => s.active?.watermark === 2 && s.ready, 'watermark 2 active')));
    for (const s of recovered) {
      assert.equal(s.state?.watermark, 2);
      assert.ok(s.state?.not_before, 'not_before outlives the next capsule');
    }

    // The fast-forwarded capsule replayed onto the branch: its watermark is higher, its creation is before the reset.
    assert.equal((await lilith(['publish', join(dir, 'ff.json'), '--repo', url])).code, 0);
    const replay = await Promise.all(enf.map((e) => e.waitFor((s) => s.last_refusal?.watermark === FAST_FORWARD, 'replay refused')));
    for (const s of replay) {
      assert.equal(s.last_refusal?.code, 'before_reset');
      assert.equal(s.active?.watermark, 2);
    }
    for (const i of [0, 1]) {
      const audit = await readAudit(join(dir, `state${i}`, 'audit.jsonl'));
      const reset = audit.find((e) => e.result === 'state_reset');
      assert.ok(reset, `enforcer ${i} audited the reset`);
      assert.match(String(reset.reason), new RegExp(`lowered from ${FAST_FORWARD} to 1`));
    }
  });
});
