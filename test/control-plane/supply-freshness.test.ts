// Issue 16, freeze: a mirror that keeps serving the previous tip. CI keeps signing
// timestamps (`lilith timestamp --repo`, the real CLI) onto the origin; the enforcer
// syncs from a mirror. Once the mirror freezes, the enforcer must show STALE (status
// field, lilith_capsule_stale, audit event) within stale_after_s of the last timestamp it
// saw, fail closed past fail_after_s (not ready, every decision denied), refuse a
// timestamp for another capsule (mix-and-match), and recover when the mirror thaws.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { signTimestamp, trustFileV2, writeKeyFiles, type SigningKey } from '../../capsule/index.js';
import { peekCapsule } from '../../capsule/index.js';
import { adminGet } from '../../enforcer/client/index.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import {
  CLI,
  cliStatus,
  EnforcerProcess,
  generateSigningKey,
  makeCapsule,
  Publisher,
  readAudit,
  sleep,
  tempDir,
  pollFlags,
} from '../../testkit/control-plane.js';

const run = promisify(execFile);
const STALE_AFTER_S = 6;
const FAIL_AFTER_S = 12;
const FAST_POLL = pollFlags({ minMs: 200, maxMs: 400, backoffMaxMs: 1000, timeoutMs: 10_000 });

describe('freeze: a mirror serving the previous tip', () => {
  let srv: GitServer;
  let pub: Publisher;
  let dir: string;
  let enf: EnforcerProcess;
  let capsuleKey: SigningKey;
  let tsKey: SigningKey;
  let trustPath: string;
  let tsKeyPath: string;
  let frozen = false;
  let ci: Promise<void> | null = null;
  let stopCi = false;
  let lastMirrored: string | null = null;

  /** The mirror copies the origin's branch, unless frozen. */
  async function mirror(): Promise<void> {
    const git = (...a: string[]) => run('git', a, { cwd: pub.work });
    await git('fetch', '-q', 'origin', 'capsules');
    await git('push', '-q', '--force', srv.repoUrl('mirror.git'), 'FETCH_HEAD:refs/heads/capsules');
  }

  /** CI on a schedule: a timestamp onto the origin every ~second; the mirror follows unless frozen. */
  async function ciLoop(): Promise<void> {
    while (!stopCi) {
      const r = await run(process.execPath, [
        CLI,
        'timestamp',
        '--repo',
        srv.repoUrl('origin.git'),
        '--key',
        tsKeyPath,
        '--trust',
        trustPath,
        '--expires',
        `${FAIL_AFTER_S - 2}s`,
      ]);
      if (!frozen) {
        await mirror();
        lastMirrored = new Date().toISOString();
        void r;
      }
      await sleep(500);
    }
  }

  before(async () => {
    srv = await startGitServer();
    await srv.createBareRepo('origin.git');
    await srv.createBareRepo('mirror.git');
    pub = await Publisher.create(srv.repoUrl('origin.git'));
    dir = await tempDir('freshness');
    const root = generateSigningKey();
    capsuleKey = generateSigningKey();
    tsKey = generateSigningKey();
    ({ secretPath: tsKeyPath } = await writeKeyFiles(join(dir, 'keys'), tsKey, 'timestamp'));
    trustPath = join(dir, 'trust.json');
    await writeFile(
      trustPath,
      JSON.stringify(
        trustFileV2({
          version: 1,
          root: { keys: [root], threshold: 1 },
          capsule: { keys: [capsuleKey], threshold: 1 },
          timestamp: { keys: [tsKey], threshold: 1, staleAfterS: STALE_AFTER_S, failAfterS: FAIL_AFTER_S },
        }),
      ),
    );
    await pub.publish(await makeCapsule(capsuleKey, 1));
    await mirror();
    enf = new EnforcerProcess(
      [
        '--git',
        srv.repoUrl('mirror.git'),
        '--trust',
        trustPath,
        '--state-dir',
        join(dir, 'state'),
        '--no-kernel',
        '--no-dataplane',
        ...FAST_POLL,
      ],
      join(dir, 'admin.sock'),
    );
    await enf.waitFor((s) => s.active?.watermark === 1, 'watermark 1 active');
    ci = ciLoop();
  });
  after(async () => {
    stopCi = true;
    await ci?.catch(() => undefined);
    await enf?.kill('SIGKILL');
    await pub?.dispose();
    await srv?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is fresh while timestamps flow, STALE within stale_after_s of a freeze, fails closed past fail_after_s, recovers after', async () => {
    const fresh = await enf.waitFor((s) => !!s.active?.freshness?.timestamp && !s.active.freshness.stale, 'a fresh timestamp');
    assert.equal(fresh.ready, true);
    assert.equal(fresh.active?.freshness?.stale_after_s, STALE_AFTER_S);

    frozen = true;
    await sleep(300); // let a CI round in flight land on the mirror or not
    const frozenAt = Date.now();
    const stale = await enf.waitFor((s) => s.active?.freshness?.stale === true, 'STALE', 30_000, 100);
    const staleAt = Date.now();
    const lastTs = Date.parse(stale.active!.freshness!.fresh_at);
    const lag = (staleAt - lastTs) / 1000;
    process.stderr.write(
      `freeze: STALE ${lag.toFixed(1)} s after the last timestamp the mirror served (bound ${STALE_AFTER_S} s), ${((staleAt - frozenAt) / 1000).toFixed(1)} s after the freeze\n`,
    );
    assert.ok(lag <= STALE_AFTER_S + 2, `STALE only ${lag} s after the last timestamp`);
    assert.equal(stale.ready, true, 'STALE alone still enforces the capsule');
    assert.equal((await enf.probe()).decision, 'allow');
    const metrics = (await adminGet(enf.socket, '/metrics')).body;
    assert.match(metrics, /^lilith_capsule_stale 1$/m);
    const text = await run(process.execPath, [CLI, 'status', '--socket', enf.socket]);
    assert.match(text.stdout, /\*\*\* STALE \*\*\*/);
    const audit = await readAudit(join(dir, 'state', 'audit.jsonl'));
    assert.ok(
      audit.some((e) => e.kind === 'capsule' && e.result === 'stale'),
      'a stale audit event',
    );

    // Mix-and-match: whoever holds the mirror pushes a timestamp for another capsule. It vouches for nothing.
    const other = peekCapsule(await makeCapsule(capsuleKey, 7));
    const foreign = signTimestamp({ digest: other.digest, watermark: 7, now: new Date(), validityMs: 5000 }, [tsKey]);
    const attacker = await Publisher.create(srv.repoUrl('mirror.git'));
    await run('git', ['fetch', '-q', 'origin', 'capsules'], { cwd: attacker.work });
    await run('git', ['checkout', '-q', 'FETCH_HEAD'], { cwd: attacker.work });
    await writeFile(join(attacker.work, 'timestamp.json'), foreign);
    await run('git', ['add', 'timestamp.json'], { cwd: attacker.work });
    await run('git', ['commit', '-q', '-m', 'foreign timestamp'], { cwd: attacker.work });
    await run('git', ['push', '-q', 'origin', 'HEAD:refs/heads/capsules'], { cwd: attacker.work });
    await attacker.dispose();
    const mixed = await enf.waitFor((s) => s.last_refusal?.code === 'mismatch', 'foreign timestamp refused', 15_000);
    assert.equal(mixed.active?.freshness?.stale, true);

    const failed = await enf.waitFor((s) => s.ready === false, 'fail closed past fail_after_s', 30_000, 100);
    const failLag = (Date.now() - lastTs) / 1000;
    process.stderr.write(`freeze: failed closed ${failLag.toFixed(1)} s after the last timestamp (bound ${FAIL_AFTER_S} s)\n`);
    assert.ok(failLag >= FAIL_AFTER_S - 0.5 && failLag <= FAIL_AFTER_S + 3);
    assert.match(failed.not_ready_reason ?? '', /STALE past fail_after_s/);
    assert.equal(failed.active?.enforcing, false);
    assert.equal((await enf.probe()).decision, 'deny');
    assert.match((await adminGet(enf.socket, '/metrics')).body, /^lilith_capsule_freshness_failed 1$/m);
    assert.equal((await cliStatus(enf.socket)).code, 1);

    frozen = false;
    const back = await enf.waitFor((s) => s.ready && s.active?.freshness?.stale === false, 'fresh again after the thaw', 30_000);
    assert.equal(back.active?.watermark, 1);
    assert.equal((await enf.probe()).decision, 'allow');
    assert.ok(lastMirrored);
  });
});
