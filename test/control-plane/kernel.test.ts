// The daemon with kernel enforcement on (cgroup-only on this host): the capsule's
// kernel section drives attach, registrations and the heartbeat; status reports the
// mode, the active hooks and the heartbeat age; refusing to serve (expiry under
// fail_closed) stops the heartbeat.
import assert from 'node:assert/strict';
import { existsSync, rmSync, readdirSync, rmdirSync } from 'node:fs';
import { rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { createServer, type AddressInfo } from 'node:net';
import {
  EnforcerProcess,
  generateSigningKey,
  makeCapsule,
  REPO_ROOT,
  sleep,
  tempDir,
  writeTrust,
  readAudit,
} from '../../testkit/control-plane.js';

const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : !existsSync(join(REPO_ROOT, 'bpf/build')) || !existsSync(join(REPO_ROOT, 'bpf/addon/build'))
      ? 'BPF objects or addon not built'
      : false;

let dir: string | undefined;
let enf: EnforcerProcess | null = null;
const tag = `lilith-cp-test-${process.pid}`;
const pinRoot = `/sys/fs/bpf/${tag}`;
let cgroupMount: string | null = null;

after(async () => {
  await enf?.kill('SIGKILL');
  if (!skip) {
    const { detachPinned } = await import('../../bpf/index.js');
    try {
      detachPinned(pinRoot);
    } catch {
      /* nothing pinned */
    }
    rmSync(pinRoot, { recursive: true, force: true });
    if (cgroupMount) {
      const root = join(cgroupMount, tag);
      // cgroup directories go with rmdir, deepest first.
      const walk = (d: string) => {
        if (!existsSync(d)) return;
        for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
        rmdirSync(d);
      };
      walk(root);
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

it('kernel and dataplane on: attaches from the capsule, reports mode, hooks and a fresh heartbeat; expiry under fail_closed stops the heartbeat', {
  skip,
}, async () => {
  const { ensureCgroup2 } = await import('../../bpf/mounts.js');
  const proxyPort = await freePort();
  const dnsPort = await freePort();
  cgroupMount = ensureCgroup2();
  dir = await tempDir('cp-kernel');
  const key = generateSigningKey();
  const trust = await writeTrust(dir, [key]);
  const drops = join(dir, 'drops');
  await mkdir(drops);
  await writeFile(
    join(drops, 'c.json'),
    await makeCapsule(key, 1, {
      expiresAt: new Date(Date.now() + 6000),
      kernel: { cgroup_root: `${tag}/agents`, heartbeat_interval_ms: 100, heartbeat_ttl_ms: 1000 },
      proxy: { listen: `127.0.0.1:${proxyPort}`, dns_listen: `127.0.0.1:${dnsPort}`, listen6: undefined },
      registrations: [{ spiffe_id: 'spiffe://corp.example/agents/coder', selectors: [`cgroup:/${tag}/agents/coder`], groups: ['coding'] }],
    }),
  );
  enf = new EnforcerProcess(['--capsule-dir', drops, '--trust', trust, '--state-dir', join(dir, 'state')], join(dir, 'admin.sock'), {
    LILITH_PIN_ROOT: pinRoot,
  });
  // The dataplane starts after the first activation (it opens the node CA first): wait for both.
  const st = await enf.waitFor(
    (s) => s.kernel.mode !== 'off' && s.kernel.heartbeat_age_ms !== null && (s.dataplane as { enabled: boolean }).enabled,
    'kernel attached and dataplane listening',
    60_000,
  );
  assert.equal(st.kernel.mode, 'cgroup-only'); // host lockdown blocks BPF-LSM
  assert.ok(st.kernel.hooks.length > 0, JSON.stringify(st.kernel));
  assert.ok(st.kernel.heartbeat_age_ms! < 1000, `heartbeat age ${st.kernel.heartbeat_age_ms}`);
  assert.ok(existsSync(join(cgroupMount, tag, 'agents', 'coder')), 'registration cgroup created');
  // The dataplane listens where the capsule says.
  const dp = st.dataplane as { enabled: boolean; listen?: string[] };
  assert.equal(dp.enabled, true, JSON.stringify(dp));
  assert.deepEqual(dp.listen, [`127.0.0.1:${proxyPort}`]);
  // Once the capsule expires (fail_closed), the heartbeat stops and ages past the TTL.
  const expired = await enf.waitFor((s) => s.active?.expired === true, 'expired', 30_000);
  await sleep(1500);
  const later = (await enf.status())!;
  assert.equal(expired.ready, false);
  assert.ok(later.kernel.heartbeat_age_ms! > 1000, `heartbeat still fresh: ${later.kernel.heartbeat_age_ms} ms`);
  await sleep(100);
  assert.ok((await readAudit(join(dir, 'state', 'audit.jsonl'))).some((e) => e.kind === 'kernel' && e.event === 'mode'));
  assert.equal(await enf.kill('SIGTERM'), 0);
});

it("the capsule's kernel.unix_allowlist reaches the kernel: a managed agent reaches a listed unix socket and is refused any other", {
  skip,
}, async () => {
  const { ensureCgroup2 } = await import('../../bpf/mounts.js');
  const { execFile } = await import('node:child_process');
  const [proxyPort, dnsPort] = [await freePort(), await freePort()];
  cgroupMount = ensureCgroup2();
  const d = await tempDir('cp-unix');
  const allowed = join(d, 'allowed.sock');
  const other = join(d, 'other.sock');
  const servers = [allowed, other].map((p) => createServer((c) => c.end('hi')).listen(p));
  const key = generateSigningKey();
  const trust = await writeTrust(d, [key]);
  const drops = join(d, 'drops');
  await mkdir(drops);
  await writeFile(
    join(drops, 'c.json'),
    await makeCapsule(key, 1, {
      kernel: { cgroup_root: `${tag}/unix`, heartbeat_interval_ms: 100, heartbeat_ttl_ms: 5000, unix_allowlist: [allowed] },
      proxy: { listen: `127.0.0.1:${proxyPort}`, dns_listen: `127.0.0.1:${dnsPort}`, listen6: undefined },
      registrations: [{ spiffe_id: 'spiffe://corp.example/agents/coder', selectors: [`cgroup:/${tag}/unix/coder`], groups: ['coding'] }],
    }),
  );
  const e = new EnforcerProcess(
    ['--capsule-dir', drops, '--trust', trust, '--state-dir', join(d, 'state'), '--no-dataplane'],
    join(d, 'admin.sock'),
    { LILITH_PIN_ROOT: `${pinRoot}-unix` },
  );
  try {
    await e.waitFor((s) => s.kernel.mode !== 'off' && s.kernel.heartbeat_age_ms !== null, 'kernel attached', 60_000);
    const procs = join(cgroupMount, tag, 'unix', 'coder', 'cgroup.procs');
    const agent = (path: string) =>
      new Promise<string>((resolve) => {
        const js = `const s=require('net').connect(${JSON.stringify(path)});s.on('data',()=>{console.log('CONNECTED');s.destroy()});s.on('error',(x)=>console.log(x.code))`;
        execFile('/bin/sh', ['-c', `echo $$ > ${procs} && exec ${process.execPath} -e "$0"`, js], (_err, stdout) => resolve(stdout.trim()));
      });
    assert.equal(await agent(allowed), 'CONNECTED');
    assert.equal(await agent(other), 'EPERM');
  } finally {
    await e.kill('SIGKILL');
    const { detachPinned } = await import('../../bpf/index.js');
    try {
      detachPinned(`${pinRoot}-unix`);
    } catch {
      /* nothing pinned */
    }
    rmSync(`${pinRoot}-unix`, { recursive: true, force: true });
    for (const s of servers) s.close();
    await rm(d, { recursive: true, force: true });
  }
});
