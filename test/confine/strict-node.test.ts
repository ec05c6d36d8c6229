// A non-JIT Node agent under the strict seccomp profile (confine/native/profiles.h):
// `lilith run --profile strict -- node --jitless …` starts and does real work
// (files, timers, the libuv threadpool through zlib and crypto, promises), and the
// strict profile still refuses what it exists to refuse: child processes, inet
// sockets, and executable anonymous memory (so Node with its JIT cannot start).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroup2Root } from '../../confine/cgroup.js';

const CLI = join(process.cwd(), 'dist/cli/main.js');
const cgroupBase = `lilith-strict-node-${process.pid}/agents`;
let work: string;
let policies: string;

/** `lilith run --profile strict` as the agent `runner` (itself registered standard: the flag tightens it). */
function strictNode(nodeArgs: string[], script: string) {
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      'run',
      '--standalone',
      '--policies',
      policies,
      '--agent',
      'runner',
      '--profile',
      'strict',
      '--',
      process.execPath,
      ...nodeArgs,
      '-e',
      script,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'lilith-strict-node-'));
  mkdirSync(join(work, 'workspace'));
  policies = join(work, 'policies');
  cpSync('policies', policies, { recursive: true });
  const config = JSON.parse(readFileSync(join(policies, 'lilith.json'), 'utf8'));
  config.kernel.cgroup_root = cgroupBase;
  const filesystem = { read_only: ['/usr', '/lib', '/etc', '/proc', process.cwd()], read_write: [join(work, 'workspace')] };
  config.registrations = [
    { spiffe_id: 'spiffe://corp.example/agents/runner', selectors: [`cgroup:/${cgroupBase}/runner`], profile: 'standard', filesystem },
  ];
  writeFileSync(join(policies, 'lilith.json'), JSON.stringify(config, null, 2));
});

after(() => {
  rmSync(work, { recursive: true, force: true });
  const root = join(cgroup2Root(), `lilith-strict-node-${process.pid}`);
  for (const dir of [join(root, 'agents', 'runner'), join(root, 'agents'), root]) {
    try {
      rmdirSync(dir);
    } catch {
      // already gone or never created
    }
  }
});

test('node --jitless runs under the strict profile: files, timers, threadpool, promises', () => {
  const file = join(work, 'workspace', 'data.txt');
  const script = `
    const fs = require('fs'), zlib = require('zlib'), crypto = require('crypto');
    fs.writeFileSync(${JSON.stringify(file)}, 'x'.repeat(4096));
    fs.promises.readFile(${JSON.stringify(file)}).then((b) =>
      zlib.gzip(b, (e, z) => crypto.randomBytes(16, (e2, r) =>
        setTimeout(() => console.log(JSON.stringify({ read: b.length, gz: z.length > 0, rnd: r.length, err: !!(e || e2) })), 10))));`;
  const r = strictNode(['--jitless'], script);
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal ?? ''}: ${r.stderr}`);
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}'), { read: 4096, gz: true, rnd: 16, err: false });
});

test('the strict profile still refuses child processes, inet sockets and (hence) the JIT', () => {
  const child = strictNode(
    ['--jitless'],
    `const r = require('child_process').spawnSync('/bin/true', { stdio: 'ignore' }); console.log(r.error ? r.error.code : 'spawned ' + r.status)`,
  );
  assert.equal(child.code, 0, child.stderr);
  assert.equal(
    child.stdout.trim(),
    'EPERM',
    'spawning a process is refused (clone without CLONE_THREAD; no socketpair involved with stdio ignored)',
  );

  const inet = strictNode(
    ['--jitless'],
    `const s = require('net').connect(9, '127.0.0.1'); s.on('connect', () => console.log('CONNECTED')); s.on('error', (e) => console.log(e.code));`,
  );
  assert.equal(inet.code, 0, inet.stderr);
  assert.equal(inet.stdout.trim(), 'EPERM', 'an AF_INET socket is refused');

  // With its JIT, V8 needs executable anonymous memory: strict refuses it, so Node cannot start.
  const jit = strictNode([], 'console.log("JIT RAN")');
  assert.notEqual(jit.code, 0);
  assert.doesNotMatch(jit.stdout, /JIT RAN/);
});
