// The operator CLI for trust and state (issue 16): lilith trust init|add-key|remove-key|
// sign|show, lilith timestamp --capsule, lilith state sign-reset|show, each run as the
// real CLI on real files, and the results checked with the enforcer's own verifiers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CapsuleError,
  generateSigningKey,
  parseTrust,
  peekCapsule,
  signCapsule,
  trustFromKeys,
  verifyReset,
  verifyTimestamp,
  verifyTrustUpdate,
  writeKeyFiles,
  writeStateAtomic,
  type SigningKey,
} from '../../capsule/index.js';
import { tempDir } from '../../testkit/control-plane.js';
import { CLI, payload } from './fixtures.js';

function lilith(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }));
  });
}

describe('lilith trust / timestamp / state', () => {
  let dir: string;
  const k: Record<string, { key: SigningKey; secret: string; pub: string }> = {};
  before(async () => {
    dir = await tempDir('cli-trust');
    for (const name of ['r1', 'r2', 'r3', 'c1', 'c2', 't1']) {
      const key = generateSigningKey();
      const { secretPath, publicPath } = await writeKeyFiles(join(dir, 'keys'), key, name);
      k[name] = { key, secret: secretPath, pub: publicPath };
    }
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('--help for each command', async () => {
    for (const cmd of ['trust', 'state', 'timestamp']) {
      const r = await lilith([cmd, '--help']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, new RegExp(`usage: lilith ${cmd}`));
    }
    const r = await lilith(['trust', 'init', '--help']);
    assert.match(r.stdout, /lilith trust add-key/);
    assert.match((await lilith(['--help'])).stdout, /timestamp .*\n.*trust .*\n.*state /);
  });

  test('trust init builds a 2-of-3 root, 1-of-2 capsule and timestamp role; never overwrites', async () => {
    const out = join(dir, 'trust.json');
    const args = ['trust', 'init', '--out', out, '--root', k.r1.pub, '--root', k.r2.pub, '--root', k.r3.pub, '--root-threshold', '2'];
    args.push('--capsule', k.c1.pub, '--capsule', k.c2.secret, '--timestamp', k.t1.pub, '--stale-after', '30m', '--fail-after', '6h');
    args.push('--expires', '365d', '--max-validity', '30d');
    const r = await lilith(args);
    assert.equal(r.code, 0, r.stderr);
    const t = parseTrust(await readFile(out));
    assert.equal(t.version, 1);
    assert.equal(t.roles.root.threshold, 2);
    assert.deepEqual([...t.roles.root.keys.keys()], [k.r1.key.keyid, k.r2.key.keyid, k.r3.key.keyid]);
    assert.deepEqual([...t.roles.capsule.keys.keys()], [k.c1.key.keyid, k.c2.key.keyid], 'a secret key file gives its public half');
    assert.equal(t.roles.timestamp?.staleAfterMs, 30 * 60_000);
    assert.equal(t.roles.timestamp?.failAfterMs, 6 * 3600_000);
    assert.equal(t.maxValidityMs, 30 * 86_400_000);
    assert.ok(t.expiresAt && t.expiresAt.getTime() > Date.now() + 364 * 86_400_000);
    assert.doesNotMatch(await readFile(out, 'utf8'), /secret/);
    const again = await lilith(args);
    assert.notEqual(again.code, 0, 'init never overwrites a trust file');
    // Thresholds above the role size are refused as enforcers would refuse them.
    const bad = await lilith([
      'trust',
      'init',
      '--out',
      join(dir, 'bad.json'),
      '--root',
      k.r1.pub,
      '--root-threshold',
      '2',
      '--capsule',
      k.c1.pub,
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /bad_trust.*threshold/);
  });

  test('a low-order "public key" is refused', async () => {
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const pub = join(dir, 'identity.pub');
    await writeFile(pub, JSON.stringify({ public_key: Buffer.from(identity).toString('base64') }));
    const r = await lilith(['trust', 'init', '--out', join(dir, 'x.json'), '--root', pub, '--capsule', k.c1.pub]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /small-order|low-order|order/i);
  });

  test('add-key / remove-key write the next version; sign collects k-of-n root signatures from separate parties', async () => {
    const current = join(dir, 'trust.json');
    const v2 = join(dir, 'trust-v2.json');
    const v3 = join(dir, 'trust-v3.json');
    assert.equal((await lilith(['trust', 'remove-key', current, '--role', 'capsule', '--key', k.c1.pub, '--out', v2])).code, 0);
    const rm1 = parseTrust(await readFile(v2));
    assert.equal(rm1.version, 2);
    assert.deepEqual([...rm1.roles.capsule.keys.keys()], [k.c2.key.keyid]);
    assert.ok(!rm1.file.keys.some((e) => e.keyid === k.c1.key.keyid), 'a key no role uses leaves the file');
    const add = await lilith(['trust', 'add-key', v2, '--role', 'timestamp', '--key', k.c1.pub, '--threshold', '2', '--out', v3]);
    assert.equal(add.code, 0, add.stderr);
    const next = parseTrust(await readFile(v3));
    assert.equal(next.version, 3);
    assert.equal(next.roles.timestamp?.threshold, 2);
    const empty = await lilith(['trust', 'remove-key', v3, '--role', 'capsule', '--keyid', k.c2.key.keyid, '--out', join(dir, 'e.json')]);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /cannot be left without keys/);

    // Party 1 signs; 1 of the 2 root signatures required: not yet a valid rotation.
    const rotation = join(dir, 'rotation.json');
    const s1 = await lilith(['trust', 'sign', v3, '--key', k.r1.secret, '--out', rotation, '--current', current]);
    assert.equal(s1.code, 0, s1.stderr);
    assert.match(s1.stdout, /current root role \(version 1\): 1 of 2 required/);
    const currentTrust = parseTrust(await readFile(current));
    const rotationBytes = await readFile(rotation);
    assert.throws(
      () => verifyTrustUpdate(rotationBytes, currentTrust, new Date()),
      (e: unknown) => e instanceof CapsuleError && e.code === 'below_threshold',
    );
    // Party 2 adds theirs to the same file.
    const s2 = await lilith(['trust', 'sign', v3, '--key', k.r3.secret, '--out', rotation, '--current', current]);
    assert.match(s2.stdout, /\(2 signature\(s\)\).*current root role \(version 1\): 2 of 2 required/);
    const rotated = verifyTrustUpdate(await readFile(rotation), currentTrust, new Date());
    assert.equal(rotated.version, 3);
    // Signing different content into the same file is refused.
    const mixed = await lilith(['trust', 'sign', v2, '--key', k.r2.secret, '--out', rotation]);
    assert.equal(mixed.code, 2);
    const show = await lilith(['trust', 'show', rotation]);
    assert.match(show.stdout, /rotation envelope signed by .*\n.*version 3/);
    const json = JSON.parse((await lilith(['trust', 'show', rotation, '--json'])).stdout) as {
      signers: string[];
      trust: { version: number };
    };
    assert.deepEqual(json.signers, [k.r1.key.keyid, k.r3.key.keyid]);
    assert.equal(json.trust.version, 3);
  });

  test('a legacy trust file becomes format 2 on its first change', async () => {
    const legacy = join(dir, 'legacy.json');
    await writeFile(legacy, JSON.stringify(trustFromKeys([k.c1.key], 1)));
    const out = join(dir, 'legacy-v2.json');
    assert.equal((await lilith(['trust', 'add-key', legacy, '--role', 'capsule', '--key', k.c2.pub, '--out', out])).code, 0);
    const t = parseTrust(await readFile(out));
    assert.equal(t.legacy, false);
    assert.equal(t.version, 2);
    assert.deepEqual([...t.roles.root.keys.keys()], [k.c1.key.keyid]);
    // The legacy key holds root: it alone can sign the migration.
    const rot = join(dir, 'legacy-rotation.json');
    assert.equal((await lilith(['trust', 'sign', out, '--key', k.c1.secret, '--key', k.c1.secret, '--out', rot])).code, 0);
    assert.equal(verifyTrustUpdate(await readFile(rot), parseTrust(await readFile(legacy)), new Date()).version, 2);
  });

  test('lilith timestamp --capsule signs a timestamp the enforcer verifies; bounded by fail_after_s', async () => {
    const trustPath = join(dir, 'trust.json');
    const trust = parseTrust(await readFile(trustPath));
    const capsule = join(dir, 'capsule.json');
    const bytes = signCapsule(await payload(5, {}, new Date()), [k.c2.key]);
    await writeFile(capsule, bytes);
    const out = join(dir, 'timestamp.json');
    const r = await lilith([
      'timestamp',
      '--capsule',
      capsule,
      '--key',
      k.t1.secret,
      '--trust',
      trustPath,
      '--expires',
      '2h',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const ts = verifyTimestamp(await readFile(out), trust, new Date());
    assert.equal(ts.payload.capsule_digest, peekCapsule(bytes).digest);
    assert.equal(ts.payload.watermark, 5);
    const long = await lilith([
      'timestamp',
      '--capsule',
      capsule,
      '--key',
      k.t1.secret,
      '--trust',
      trustPath,
      '--expires',
      '7h',
      '--out',
      out,
    ]);
    assert.equal(long.code, 2);
    assert.match(long.stderr, /fail_after_s/);
    // A capsule the trust does not vouch for gets no timestamp.
    const foreign = join(dir, 'foreign.json');
    await writeFile(foreign, signCapsule(await payload(6, {}, new Date()), [k.r1.key]));
    const refused = await lilith([
      'timestamp',
      '--capsule',
      foreign,
      '--key',
      k.t1.secret,
      '--trust',
      trustPath,
      '--out',
      join(dir, 'f.json'),
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /unknown_key/);
    // A timestamp signed by a key outside the timestamp role.
    const wrong = join(dir, 'wrong-ts.json');
    assert.equal((await lilith(['timestamp', '--capsule', capsule, '--key', k.c2.secret, '--out', wrong])).code, 0);
    const wrongBytes = await readFile(wrong);
    assert.throws(
      () => verifyTimestamp(wrongBytes, trust, new Date()),
      (e: unknown) => e instanceof CapsuleError && e.code === 'unknown_key',
    );
  });

  test('lilith state sign-reset and state show --state-dir', async () => {
    const trust = parseTrust(await readFile(join(dir, 'trust.json')));
    const d1 = 'a'.repeat(64);
    const d0 = 'b'.repeat(64);
    const out = join(dir, 'reset.json');
    const args = ['state', 'sign-reset', '--undoes', d1, '--watermark', '3', '--digest', d0, '--trust-version', '1', '--out', out];
    assert.equal((await lilith([...args, '--key', k.r1.secret, '--key', k.r2.secret])).code, 0);
    const reset = verifyReset(await readFile(out), trust, new Date());
    assert.equal(reset.payload.watermark, 3);
    assert.deepEqual(reset.keyids, [k.r1.key.keyid, k.r2.key.keyid].sort());
    assert.equal((await lilith([...args, '--key', k.r1.secret])).code, 0);
    const oneOfTwo = await readFile(out);
    assert.throws(
      () => verifyReset(oneOfTwo, trust, new Date()),
      (e: unknown) => e instanceof CapsuleError && e.code === 'below_threshold',
    );
    const stateDir = join(dir, 'state');
    await mkdir(stateDir, { recursive: true });
    await writeStateAtomic(stateDir, {
      watermark: 9,
      digest: d1,
      accepted_at: new Date().toISOString(),
      not_before: new Date(0).toISOString(),
      reset: d0,
    });
    const shown = await lilith(['state', 'show', '--state-dir', stateDir]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /watermark {4}9\n.*digest {7}a{64}[\s\S]*not before {3}1970/);
    const json = JSON.parse((await lilith(['state', 'show', '--state-dir', stateDir, '--json'])).stdout) as {
      state: { watermark: number };
    };
    assert.equal(json.state.watermark, 9);
  });
});
