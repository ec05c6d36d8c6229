// Issue 16, in-band trust rotation across a running fleet: two enforcers on one git
// server. The operator builds the rotation with the real CLI (lilith trust add-key /
// remove-key / sign), publishes it on the capsule branch (lilith publish), and both
// enforcers pick it up on sync, verify it against the old root, persist it and use it:
// capsules signed by the retired key are refused afterwards, capsules by the new key are
// accepted by both, and a restart keeps the rotated trust (version never decreases).
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeKeyFiles, type SigningKey } from '../../capsule/index.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import { EnforcerProcess, generateSigningKey, makeCapsule, readAudit, tempDir, pollFlags, runCli } from '../../testkit/control-plane.js';

const FAST_POLL = pollFlags({ minMs: 150, maxMs: 400, backoffMaxMs: 1000, timeoutMs: 10_000 });

const lilith = runCli;

async function ok(args: string[]): Promise<string> {
  const r = await lilith(args);
  assert.equal(r.code, 0, `lilith ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('key rotation across a fleet of two enforcers on one git server', () => {
  let srv: GitServer;
  let dir: string;
  let url: string;
  const enf: EnforcerProcess[] = [];
  const k: Record<'root' | 'a' | 'b', { key: SigningKey; secret: string; pub: string }> = {} as never;
  let trustPath: string;
  const args = (i: number) => [
    '--git',
    url,
    '--trust',
    trustPath,
    '--state-dir',
    join(dir, `state${i}`),
    '--no-kernel',
    '--no-dataplane',
    ...FAST_POLL,
  ];
  const publishCapsule = async (keys: SigningKey[], watermark: number, trust: string | null) => {
    const file = join(dir, `capsule-${watermark}.json`);
    await writeFile(file, await makeCapsule(keys, watermark));
    return lilith(['publish', file, '--repo', url, ...(trust ? ['--trust', trust] : [])]);
  };
  const both = (pred: Parameters<EnforcerProcess['waitFor']>[0], what: string) =>
    Promise.all(enf.map((e, i) => e.waitFor(pred, `enforcer ${i}: ${what}`)));

  before(async () => {
    srv = await startGitServer();
    await srv.createBareRepo('fleet.git');
    url = srv.repoUrl('fleet.git');
    dir = await tempDir('rotation');
    for (const name of ['root', 'a', 'b'] as const) {
      const key = generateSigningKey();
      const { secretPath, publicPath } = await writeKeyFiles(join(dir, 'keys'), key, name);
      k[name] = { key, secret: secretPath, pub: publicPath };
    }
    trustPath = join(dir, 'trust.json');
    await ok(['trust', 'init', '--out', trustPath, '--root', k.root.pub, '--capsule', k.a.pub]);
    const first = await publishCapsule([k.a.key], 1, trustPath);
    assert.equal(first.code, 0, first.stderr);
    for (const i of [0, 1]) enf.push(new EnforcerProcess(args(i), join(dir, `admin${i}.sock`)));
    await both((s) => s.active?.watermark === 1, 'watermark 1');
  });
  after(async () => {
    for (const e of enf) await e.kill('SIGKILL');
    await srv?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('rotates the capsule key: old-key capsules refused afterwards, new-key capsules accepted by both', async () => {
    // Transition capsule signed by both keys: valid before (a) and after (b) the rotation.
    assert.equal((await publishCapsule([k.a.key, k.b.key], 2, trustPath)).code, 0);
    await both((s) => s.active?.watermark === 2, 'watermark 2');

    const t2 = join(dir, 'trust-2.json');
    const t3 = join(dir, 'trust-3.json');
    const rotation = join(dir, 'rotation.json');
    await ok(['trust', 'add-key', trustPath, '--role', 'capsule', '--key', k.b.pub, '--out', t2]);
    await ok(['trust', 'remove-key', t2, '--role', 'capsule', '--key', k.a.pub, '--out', t3]);
    const signed = await ok(['trust', 'sign', t3, '--key', k.root.secret, '--out', rotation, '--current', trustPath]);
    assert.match(signed, /new root role: 1 of 1 required; current root role \(version 1\): 1 of 1 required/);
    const published = await ok(['publish', rotation, '--repo', url, '--trust', trustPath]);
    assert.match(published, /published trust as trust\/3\.json/);

    const rotated = await both((s) => s.trust?.version === 3, 'trust version 3');
    for (const s of rotated) {
      assert.equal(s.trust.source, 'rotated');
      assert.deepEqual(s.trust.roles.capsule.keyids, [k.b.key.keyid]);
      assert.equal(s.ready, true, 'the transition capsule is signed by the new key too');
      assert.equal(s.active?.watermark, 2);
    }

    // The retired key: refused by both (the transport is the attacker here: pushed without --trust).
    assert.equal((await publishCapsule([k.a.key], 3, null)).code, 0);
    const refused = await both((s) => s.last_refusal?.watermark === 3, 'old-key capsule refused');
    for (const s of refused) {
      assert.equal(s.last_refusal?.code, 'unknown_key');
      assert.equal(s.active?.watermark, 2);
    }

    // The new key: accepted by both.
    assert.equal((await publishCapsule([k.b.key], 4, t3)).code, 0);
    const accepted = await both((s) => s.active?.watermark === 4, 'new-key capsule active');
    for (const s of accepted) assert.deepEqual(s.active?.keyids, [k.b.key.keyid]);

    // Persisted atomically; a restart with the old configured trust file keeps version 3.
    const persisted = JSON.parse(await readFile(join(dir, 'state0', 'trust-rotated.json'), 'utf8')) as { version: number };
    assert.equal(persisted.version, 3);
    await enf[0].kill('SIGTERM');
    enf[0] = new EnforcerProcess(args(0), join(dir, 'admin0.sock'));
    const restarted = await enf[0].waitFor((s) => s.active?.watermark === 4, 'restarted on watermark 4');
    assert.equal(restarted.trust.version, 3);
    assert.equal(restarted.trust.source, 'rotated');
    const audit = await readAudit(join(dir, 'state1', 'audit.jsonl'));
    assert.ok(
      audit.some((e) => e.result === 'trust_rotated'),
      'rotation audited',
    );
  });
});
