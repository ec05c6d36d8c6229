// Publishing to a real git smart-HTTP server (git http-backend) and to a local
// repository, then reading the capsule back with the git CLI and isomorphic-git.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import git from 'isomorphic-git';
import http from 'isomorphic-git/http/node';
import { generateSigningKey, signCapsule, verifyCapsule, parseTrust, trustFromKeys } from '../../capsule/index.js';
import { latestPublished, publishCapsule, PublishRefusedError } from '../../pipeline/publish.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import { NOW, payload } from '../capsule/fixtures.js';

const run = promisify(execFile);
const key = generateSigningKey();
const trust = parseTrust(JSON.stringify(trustFromKeys([key])));
let server: GitServer;
let work: string;

before(async () => {
  server = await startGitServer();
  work = await mkdtemp(join(tmpdir(), 'lilith-publish-test-'));
});
after(async () => {
  await server.dispose();
  await rm(work, { recursive: true, force: true });
});

async function cliClone(url: string, branch: string): Promise<string> {
  const dir = await mkdtemp(join(work, 'clone-'));
  await run('git', ['clone', '-q', '--branch', branch, '--single-branch', url, dir]);
  return dir;
}

test('publish over smart HTTP to an empty repository, read back byte-identical with the git CLI', async () => {
  await server.createBareRepo('empty.git');
  const url = server.repoUrl('empty.git');
  const bytes = signCapsule(await payload(1), [key]);
  const res = await publishCapsule(bytes, { repo: url });
  assert.equal(res.unchanged, false);
  assert.equal(res.watermark, 1);

  const clone = await cliClone(url, 'capsules');
  assert.deepEqual(await readFile(join(clone, 'capsule.json')), Buffer.from(bytes));
  const { stdout } = await run('git', ['-C', clone, 'rev-parse', 'HEAD']);
  assert.equal(stdout.trim(), res.commit);
  assert.equal(verifyCapsule(await readFile(join(clone, 'capsule.json')), trust, null, NOW).payload.watermark, 1);
  assert.match(await readFile(join(clone, 'CAPSULE.md'), 'utf8'), /watermark: 1/);

  // The repository's HEAD still names an unborn main: the next publish must fetch anyway.
  const next = await publishCapsule(signCapsule(await payload(2), [key]), { repo: url });
  assert.equal((await latestPublished({ repo: url }))?.commit, next.commit);
});

test('successive publishes stack on the branch, keep main untouched, and auto-watermark reads the tip', async () => {
  await server.createBareRepo('policies.git');
  const url = server.repoUrl('policies.git');
  // A policy repository with a main branch, as users have.
  const src = join(work, 'src');
  await run('git', ['init', '-q', '-b', 'main', src]);
  await fs.promises.writeFile(join(src, 'README'), 'policies\n');
  const env = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e' };
  await run('git', ['-C', src, 'add', '.'], { env });
  await run('git', ['-C', src, 'commit', '-q', '-m', 'init'], { env });
  await run('git', ['-C', src, 'push', '-q', url, 'main'], { env });
  const mainBefore = (await run('git', ['ls-remote', url, 'refs/heads/main'])).stdout;

  assert.equal(await latestPublished({ repo: url }), null);
  const first = await publishCapsule(signCapsule(await payload(5), [key]), { repo: url });
  assert.equal((await latestPublished({ repo: url }))?.watermark, 5);
  const second = await publishCapsule(signCapsule(await payload(6), [key]), { repo: url });
  const latest = await latestPublished({ repo: url });
  assert.deepEqual({ watermark: latest?.watermark, commit: latest?.commit }, { watermark: 6, commit: second.commit });

  const clone = await cliClone(url, 'capsules');
  const log = (await run('git', ['-C', clone, 'log', '--format=%H %P %s'])).stdout.trim().split('\n');
  assert.equal(log.length, 2);
  assert.equal(log[0], `${second.commit} ${first.commit} capsule 6 from abc1234`);
  assert.equal((await run('git', ['ls-remote', url, 'refs/heads/main'])).stdout, mainBefore);

  // isomorphic-git, as the enforcer reads it: capsule.json at the tip of capsules.
  const iso = join(work, 'iso');
  await git.clone({ fs, http, dir: iso, url, ref: 'capsules', singleBranch: true, depth: 1 });
  const tip = await git.resolveRef({ fs, dir: iso, ref: 'HEAD' });
  const { blob } = await git.readBlob({ fs, dir: iso, oid: tip, filepath: 'capsule.json' });
  assert.equal(verifyCapsule(blob, trust, null, NOW).payload.watermark, 6);
});

test('publishing a lower or equal-but-different watermark is refused; the same capsule again is a no-op', async () => {
  await server.createBareRepo('order.git');
  const url = server.repoUrl('order.git');
  const bytes = signCapsule(await payload(10), [key]);
  const first = await publishCapsule(bytes, { repo: url });
  const again = await publishCapsule(bytes, { repo: url });
  assert.deepEqual({ unchanged: again.unchanged, commit: again.commit }, { unchanged: true, commit: first.commit });
  await assert.rejects(
    publishCapsule(signCapsule(await payload(9), [key]), { repo: url }),
    (e: unknown) => e instanceof PublishRefusedError && /9 is not above the published watermark 10/.test(e.message),
  );
  await assert.rejects(
    publishCapsule(signCapsule(await payload(10, { source_commit: 'def5678' }), [key]), { repo: url }),
    PublishRefusedError,
  );
  assert.equal((await latestPublished({ repo: url }))?.commit, first.commit);
});

test('publish to a local bare repository path and to a custom branch', async () => {
  const bare = join(work, 'local.git');
  await run('git', ['init', '-q', '--bare', bare]);
  const bytes = signCapsule(await payload(2), [key]);
  const res = await publishCapsule(bytes, { repo: bare, branch: 'release-capsules' });
  const { stdout } = await run('git', ['-C', bare, 'show', 'release-capsules:capsule.json'], { encoding: 'buffer' });
  assert.deepEqual(stdout, Buffer.from(bytes));
  assert.equal((await run('git', ['-C', bare, 'rev-parse', 'release-capsules'])).stdout.trim(), res.commit);
  // git's own integrity check accepts what isomorphic-git wrote.
  await run('git', ['-C', bare, 'fsck', '--strict']);
});

test('publishing to a server that is down fails with a network error and leaves nothing behind', async () => {
  await server.createBareRepo('down.git');
  const url = server.repoUrl('down.git');
  await server.stop();
  try {
    await assert.rejects(publishCapsule(signCapsule(await payload(1), [key]), { repo: url }), /ECONNREFUSED|socket hang up|ECONNRESET/);
  } finally {
    await server.start();
  }
  assert.equal(await latestPublished({ repo: url }), null);
});
