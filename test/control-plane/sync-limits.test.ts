// Size caps and deadlines on everything the sources read, against real sockets: a git
// "server" that never answers, one that streams without end, one that declares a huge
// body, a real git server holding an oversized capsule, and an oversized drop file.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { DirSource } from '../../enforcer/control/sync/dir-source.js';
import { GitSource } from '../../enforcer/control/sync/git-source.js';
import type { CapsuleCandidate } from '../../enforcer/control/sync/types.js';
import { startGitServer } from '../../pipeline/git-http-server.js';
import { Publisher, tempDir } from '../../testkit/control-plane.js';

const dirs: string[] = [];
const servers: Server[] = [];
after(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function hostile(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/policies.git`;
}

async function source(url: string, extra: Partial<ConstructorParameters<typeof GitSource>[0]> = {}) {
  const dir = await tempDir('cp-limits');
  dirs.push(dir);
  const offered: CapsuleCandidate[] = [];
  const src = new GitSource({
    url,
    branch: 'capsules',
    file: 'capsule.json',
    cloneDir: join(dir, 'git'),
    pollMinMs: 60_000,
    pollMaxMs: 60_000,
    backoffMaxMs: 60_000,
    timeoutMs: 500,
    maxCapsuleBytes: 4096,
    ...extra,
  });
  await mkdir(join(dir, 'git'), { recursive: true });
  // Rounds are driven by the test (syncNow) unless it calls start().
  return { src, offered };
}

it('a git server that accepts and never answers: the round fails on the deadline', async () => {
  const url = await hostile(() => {
    /* never respond */
  });
  const { src } = await source(url);
  const t0 = Date.now();
  const out = await src.syncNow();
  assert.equal(out.result, 'error');
  assert.match((out as { error: string }).error, /no complete response within 500 ms/);
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(src.status().consecutive_failures, 1);
});

it('a git server that streams without end: cut off at the byte cap', async () => {
  const url = await hostile((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement' });
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    const pump = () => {
      while (res.write(chunk)) {
        /* fill */
      }
    };
    res.on('drain', pump);
    pump();
  });
  const { src } = await source(url, { timeoutMs: 10_000 });
  const out = await src.syncNow();
  assert.equal(out.result, 'error');
  assert.match((out as { error: string }).error, /exceeds the \d+-byte cap/);
});

it('a declared content-length over the cap is refused before reading the body', async () => {
  const url = await hostile((_req, res) => {
    res.writeHead(200, { 'content-length': String(1024 * 1024 * 1024) });
    res.write('x');
  });
  const { src } = await source(url, { timeoutMs: 10_000 });
  const out = await src.syncNow();
  assert.equal(out.result, 'error');
  assert.match((out as { error: string }).error, /response of 1073741824 bytes exceeds/);
});

it('an oversized capsule on a real git server is refused, never offered', async () => {
  const srv = await startGitServer();
  try {
    await srv.createBareRepo('p.git');
    const pub = await Publisher.create(srv.repoUrl('p.git'));
    await pub.publish(randomBytes(20_000).toString('base64'));
    const { src, offered } = await source(srv.repoUrl('p.git'), { timeoutMs: 10_000 });
    await src.start(async (c) => {
      offered.push(c);
    });
    const deadline = Date.now() + 20_000;
    while (src.status().last_result === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await src.stop();
    assert.equal(src.status().last_result, 'error');
    assert.match(src.status().last_error!, /over the 4096-byte cap/);
    assert.equal(offered.length, 0);
    await pub.dispose();
  } finally {
    await srv.dispose();
  }
});

it('an oversized drop file is reported and not read', async () => {
  const dir = await tempDir('cp-limits-dir');
  dirs.push(dir);
  await writeFile(join(dir, 'big.json'), Buffer.alloc(10_000, 0x7b));
  const offered: CapsuleCandidate[] = [];
  const src = new DirSource({ dir, maxCapsuleBytes: 4096 });
  await src.start(async (c) => {
    offered.push(c);
  });
  await src.stop();
  assert.equal(offered.length, 0);
  assert.equal(src.status().last_result, 'error');
  assert.match(src.status().last_error!, /"big.json": 10000 bytes, over the 4096-byte cap/);
});
