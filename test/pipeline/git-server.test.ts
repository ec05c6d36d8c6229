// The test git server is itself tested: real `git` pushes to it, isomorphic-git
// clones from it, and it survives a stop/start on the same port.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { promisify } from 'node:util';
import git from 'isomorphic-git';
import http from 'isomorphic-git/http/node';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';

const run = promisify(execFile);
let server: GitServer;
let work: string;

before(async () => {
  server = await startGitServer();
  work = await mkdtemp(join(tmpdir(), 'lilith-git-server-test-'));
});

after(async () => {
  await server.dispose();
  await rm(work, { recursive: true, force: true });
});

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
};

test('git CLI pushes over smart HTTP and isomorphic-git clones the same bytes', async () => {
  await server.createBareRepo('policies.git');
  const src = join(work, 'src');
  await run('git', ['init', '-q', '-b', 'main', src]);
  await writeFile(join(src, 'hello.txt'), 'hello over http\n');
  await run('git', ['-C', src, 'add', 'hello.txt'], { env: gitEnv });
  await run('git', ['-C', src, 'commit', '-q', '-m', 'first'], { env: gitEnv });
  const before = server.requestCount();
  await run('git', ['-C', src, 'push', '-q', server.repoUrl('policies.git'), 'main'], { env: gitEnv });
  assert.ok(server.requestCount() > before, 'the push went through the HTTP server');

  const dst = join(work, 'dst');
  await git.clone({ fs, http, dir: dst, url: server.repoUrl('policies.git'), ref: 'main', singleBranch: true, depth: 1 });
  assert.equal(await readFile(join(dst, 'hello.txt'), 'utf8'), 'hello over http\n');
});

test('stop refuses connections and start serves again on the same port', async () => {
  await server.createBareRepo('updown.git');
  const url = server.repoUrl('updown.git');
  await server.stop();
  await assert.rejects(git.getRemoteInfo({ http, url }), /ECONNREFUSED|socket hang up|ECONNRESET/);
  await server.start();
  assert.equal(server.repoUrl('updown.git'), url);
  const count = server.requestCount();
  const info = await git.getRemoteInfo({ http, url });
  assert.ok(info.capabilities, 'the restarted server answers the ref advertisement');
  assert.equal(server.requestCount(), count + 1);
});

test('a missing repository is a 404, not a hang', async () => {
  await assert.rejects(git.getRemoteInfo({ http, url: server.repoUrl('nope.git') }), /404|Not Found/i);
});

test('a malformed request path gets a 400 and the server keeps serving', async () => {
  const res = await fetch(`${server.baseUrl}/%E0%A4%A/info/refs?service=git-upload-pack`);
  assert.equal(res.status, 400);
  await res.text();
  await server.createBareRepo('after-bad.git');
  assert.ok((await git.getRemoteInfo({ http, url: server.repoUrl('after-bad.git') })).capabilities);
});
