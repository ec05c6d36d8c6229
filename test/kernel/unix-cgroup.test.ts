// Host tests, cgroup-only mode: the AF_UNIX allowlist enforced by the cgroup
// connect_unix/sendmsg_unix programs (Linux >= 6.7; this host runs 6.18).
// Real lilith-probe processes in a managed cgroup connect and send to real
// unix listeners the test created; an unmanaged process is the control.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attach, KernelConfigError, type Kernel, type KernelEvent } from '../../bpf/index.js';
import { attachRecording, unixListener, unixPeers, waitForEvent, type RecordingKernel } from '../../testkit/kernel-fixtures.js';
import { makeCgroup, makePinRoot, probe, probeBinary, repoRoot, type TestCgroup } from '../../testkit/kernel.js';

const EPERM = 1;
const IDENTITY = 9;

let kernel: Kernel | undefined;
let agent: TestCgroup;
let pinRoot: string;
let dir: string;
let allowed: string;
let denied: string;
let dgram: string;
const abstractName = `lilith-kt-abs-${process.pid}`;
const servers: Server[] = [];
const events: KernelEvent[] = [];
let recording: RecordingKernel | undefined;
let peers: { close(): void } | undefined;

const inAgent = (...args: string[]): string[] => ['cg', agent.procs, ...args];

before(async () => {
  execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'inherit' });
  probeBinary(true);
  dir = mkdtempSync(join(tmpdir(), 'lilith-unix-'));
  allowed = join(dir, 'allowed.sock');
  denied = join(dir, 'admin.sock');
  dgram = join(dir, 'log.sock');
  servers.push(await unixListener(allowed), await unixListener(denied));
  peers = await unixPeers(dgram, abstractName);
  agent = makeCgroup();
  pinRoot = makePinRoot();
  recording = await attachRecording(
    { cgroupPath: agent.dir, pinRoot, mode: 'cgroup-only', proxy: { address: '127.0.0.1', port: 9, dnsPort: 9 }, unixAllowlist: [allowed] },
    [[{ cgroup: agent.dir }, IDENTITY]],
    events,
  );
  kernel = recording.kernel;
});

after(async () => {
  recording?.detach();
  agent?.remove();
  peers?.close();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function denyEvent(pid: number): Promise<KernelEvent | undefined> {
  return waitForEvent(events, (e) => e.kind === 'deny' && e.tgid === pid, { timeoutMs: 2000, stepMs: 50 });
}

test('connect_unix and sendmsg_unix are active on this kernel', () => {
  assert.equal(kernel!.mode, 'cgroup-only');
  assert.ok(kernel!.hooks.active.includes('cgroup/connect_unix'), JSON.stringify(kernel!.hooks));
  assert.ok(kernel!.hooks.active.includes('cgroup/sendmsg_unix'), JSON.stringify(kernel!.hooks));
  assert.ok(!kernel!.hooks.missing.some((m) => m.hook.includes('unix') && m.hook.startsWith('cgroup/')));
  assert.ok(
    kernel!.hooks.missing.some((m) => m.hook === 'unix_stream_connect'),
    'the LSM unix hook is reported missing',
  );
  assert.deepEqual(kernel!.unixAllowlist(), [allowed]);
});

test('a managed process may not connect to a unix socket outside the allowlist (EPERM, event)', async () => {
  const r = await probe(inAgent('unix', 'stream', denied));
  assert.equal(r.errno, EPERM, JSON.stringify(r));
  const ev = await denyEvent(r.pid);
  assert.ok(ev && ev.kind === 'deny', 'deny event delivered');
  assert.equal(ev.hook, 'connect_unix');
  assert.equal(ev.reason, 'unix_path');
  assert.equal(ev.identity, IDENTITY);
  assert.equal(ev.path, denied);
});

test('a managed process may connect to an allowlisted path', async () => {
  const r = await probe(inAgent('unix', 'stream', allowed));
  assert.equal(r.ok, true, JSON.stringify(r));
});

test('a relative path or a symlink to an allowlisted socket does not match (checked as passed: fail closed)', async () => {
  const link = join(dir, 'link.sock');
  execFileSync('ln', ['-sf', allowed, link]);
  const s = await probe(inAgent('unix', 'stream', link));
  assert.equal(s.errno, EPERM, JSON.stringify(s));
  const rel = await probe(inAgent('exec', '/bin/sh', '-c', `cd ${dir} && exec ${probeBinary(false)} unix stream allowed.sock`));
  assert.equal(rel.errno, EPERM, JSON.stringify(rel));
});

test('abstract sockets are denied unless allowlisted', async () => {
  const r = await probe(inAgent('unix', 'stream', `@${abstractName}`));
  assert.equal(r.errno, EPERM, JSON.stringify(r));
  const ev = await denyEvent(r.pid);
  assert.ok(ev && ev.kind === 'deny');
  assert.equal(ev.path, `@${abstractName}`);
  kernel!.allowUnixPath(`\0${abstractName}`);
  try {
    const ok = await probe(inAgent('unix', 'stream', `@${abstractName}`));
    assert.equal(ok.ok, true, JSON.stringify(ok));
  } finally {
    assert.equal(kernel!.revokeUnixPath(`\0${abstractName}`), true);
  }
});

test('datagram sendto and connect to a non-allowlisted unix socket are denied; allowUnixPath/revokeUnixPath take effect at once', async () => {
  const s = await probe(inAgent('unix', 'dgram', dgram));
  assert.equal(s.errno, EPERM, JSON.stringify(s));
  const ev = await denyEvent(s.pid);
  assert.ok(ev && ev.kind === 'deny');
  assert.equal(ev.hook, 'sendmsg_unix');
  const c = await probe(inAgent('unix', 'dgram-connect', dgram));
  assert.equal(c.errno, EPERM, JSON.stringify(c));
  kernel!.allowUnixPath(dgram);
  assert.equal((await probe(inAgent('unix', 'dgram', dgram))).ok, true);
  assert.equal((await probe(inAgent('unix', 'dgram-connect', dgram))).ok, true);
  assert.equal(kernel!.revokeUnixPath(dgram), true);
  assert.equal((await probe(inAgent('unix', 'dgram', dgram))).errno, EPERM);
  assert.equal(kernel!.revokeUnixPath(dgram), false);
});

test('a managed node process gets EPERM from net.connect to a non-allowlisted socket', async () => {
  const script = `require('net').connect(${JSON.stringify(denied)}).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(0)})`;
  const out = execFileSync(probeBinary(false), inAgent('exec', process.execPath, '-e', script))
    .toString()
    .trim();
  assert.equal(out, 'EPERM');
});

test('an unmanaged process is untouched', async () => {
  for (const args of [
    ['unix', 'stream', denied],
    ['unix', 'stream', `@${abstractName}`],
    ['unix', 'dgram', dgram],
  ]) {
    const r = await probe(args);
    assert.equal(r.ok, true, JSON.stringify([args, r]));
  }
});

test('fail closed: with a stale heartbeat even an allowlisted path is denied', async () => {
  kernel!.stopHeartbeat();
  kernel!.setHeartbeat(1n);
  try {
    const r = await probe(inAgent('unix', 'stream', allowed));
    assert.equal(r.errno, EPERM, JSON.stringify(r));
  } finally {
    kernel!.startHeartbeat();
  }
  assert.equal((await probe(inAgent('unix', 'stream', allowed))).ok, true);
});

test('a second attach re-adopts connect_unix/sendmsg_unix from the pins and makes the allowlist exactly its config', async () => {
  kernel!.allowUnixPath('/run/stale-entry.sock');
  const k2 = await attach({
    cgroupPath: agent.dir,
    pinRoot,
    mode: 'cgroup-only',
    proxy: { address: '127.0.0.1', port: 9, dnsPort: 9 },
    unixAllowlist: [allowed, dgram],
  });
  try {
    assert.equal(k2.adopted, true);
    assert.ok(k2.hooks.active.includes('cgroup/connect_unix'));
    assert.deepEqual(k2.unixAllowlist().sort(), [allowed, dgram].sort());
    assert.equal((await probe(inAgent('unix', 'dgram', dgram))).ok, true);
  } finally {
    k2.revokeUnixPath(dgram);
    k2.close();
  }
  assert.equal((await probe(inAgent('unix', 'dgram', dgram))).errno, EPERM, 'enforcement continues after the second handle closes');
});

test('bad unix paths are refused with an error naming what is wrong, and change nothing', async () => {
  assert.throws(() => kernel!.allowUnixPath(''), KernelConfigError);
  assert.throws(() => kernel!.allowUnixPath('/a\0b'), /NUL/);
  assert.throws(() => kernel!.allowUnixPath('/' + 'x'.repeat(200)), /at most 108/);
  await assert.rejects(
    attach({
      cgroupPath: agent.dir,
      pinRoot,
      mode: 'cgroup-only',
      proxy: { address: '127.0.0.1', port: 9, dnsPort: 9 },
      unixAllowlist: ['ok', 42 as unknown as string],
    }),
    (e: unknown) => e instanceof KernelConfigError && e.field === 'unixAllowlist[1]',
  );
  assert.deepEqual(kernel!.unixAllowlist(), [allowed]);
});
