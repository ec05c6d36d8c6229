// Issue 16, the pipeline side: an attacker who can push to the capsule branch (no key)
// puts an unsigned capsule claiming a huge watermark at the tip. `lilith sign --watermark
// auto` and `lilith publish --trust` verify what they read: the junk is reported and
// skipped, CI signs the next real watermark, and publishing is not blocked.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { CAPSULE_PAYLOAD_TYPE, encodePayload, parseTrust, peekCapsule, writeKeyFiles, type SigningKey } from '../../capsule/index.js';
import { latestPublished, publishCapsule, PublishRefusedError } from '../../pipeline/publish.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import {
  CLI,
  generateSigningKey,
  makeCapsule,
  makePayload,
  Publisher,
  REPO_ROOT,
  tempDir,
  writeTrust,
} from '../../testkit/control-plane.js';

const exec = promisify(execFile);

/** An unsigned "capsule": a well-formed envelope whose signature is junk. */
async function junk(watermark: number, key: SigningKey): Promise<string> {
  return JSON.stringify({
    payloadType: CAPSULE_PAYLOAD_TYPE,
    payload: Buffer.from(encodePayload(await makePayload(watermark))).toString('base64'),
    signatures: [{ keyid: key.keyid, sig: Buffer.alloc(64, 1).toString('base64') }],
  });
}

describe('pipeline reads of the branch tip are verified', () => {
  let srv: GitServer;
  let url: string;
  let pub: Publisher;
  let key: SigningKey;
  let dir: string;
  let trustPath: string;

  before(async () => {
    srv = await startGitServer();
    await srv.createBareRepo('p.git');
    url = srv.repoUrl('p.git');
    pub = await Publisher.create(url);
    key = generateSigningKey();
    dir = await tempDir('supply-pipeline');
    trustPath = await writeTrust(dir, [key]);
    await writeKeyFiles(dir, key, 'ci');
    await publishCapsule(await makeCapsule(key, 1), { repo: url });
  });
  after(async () => {
    await pub?.dispose();
    await srv?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('an unsigned tip at 2^53−1 neither freezes publishing nor fast-forwards CI', async () => {
    const trust = parseTrust(await readFile(trustPath));
    // Rebuild the branch: real capsule 1, then the attacker's junk tip.
    await pub.forcePush(await makeCapsule(key, 1));
    const junkTip = await pub.publish(await junk(Number.MAX_SAFE_INTEGER, key), 'attacker');

    // Unverified read (what used to happen): the junk watermark blocks.
    assert.equal((await latestPublished({ repo: url }))?.watermark, Number.MAX_SAFE_INTEGER);
    await assert.rejects(publishCapsule(await makeCapsule(key, 2), { repo: url }), PublishRefusedError);

    // Verified read: the junk is skipped and reported.
    const latest = await latestPublished({ repo: url }, trust);
    assert.equal(latest?.watermark, 1);
    assert.equal(latest?.skipped[0].commit, junkTip);
    assert.match(latest!.skipped[0].reason, /bad_signature/);

    // `lilith sign --watermark auto` picks 2 (verified against the signing key) and warns.
    const out = join(dir, 'c2.json');
    const signed = await exec(process.execPath, [
      CLI,
      'sign',
      join(REPO_ROOT, 'policies'),
      '--key',
      join(dir, 'ci.key'),
      '--watermark',
      'auto',
      '--repo',
      url,
      '--out',
      out,
    ]);
    assert.match(signed.stderr, new RegExp(`commit ${junkTip.slice(0, 12)} does not verify`));
    assert.equal(peekCapsule(await readFile(out)).payload.watermark, 2);

    // `lilith publish --trust` publishes it on top of the junk.
    const published = await exec(process.execPath, [CLI, 'publish', out, '--repo', url, '--trust', trustPath]);
    assert.match(published.stdout, /published watermark 2/);
    assert.match(published.stderr, /does not verify and was skipped/);
    assert.equal((await latestPublished({ repo: url }, trust))?.watermark, 2);
  });

  it('a junk tip at 2^53−2 does not make CI sign 2^53−1', async () => {
    // The attacker's clone catches up with the branch, then pushes junk on top.
    await exec('git', ['-C', pub.work, 'fetch', '-q', 'origin', 'capsules']);
    await exec('git', ['-C', pub.work, 'reset', '-q', '--hard', 'FETCH_HEAD']);
    await pub.publish(await junk(Number.MAX_SAFE_INTEGER - 1, key), 'attacker again');
    const trust = parseTrust(await readFile(trustPath));
    assert.equal((await latestPublished({ repo: url }, trust))?.watermark, 2);
  });
});
