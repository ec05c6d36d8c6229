// Host tests, cgroup-only mode (this host's lockdown refuses BPF-LSM): Lilith's
// cgroup programs attached to a fresh agent cgroup; real lilith-probe processes
// connect, send and create sockets; outcomes are observed on their sockets and
// on a stand-in proxy that asks the kernel for each connection's original
// destination.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { attach, cgroupId, type Kernel, type KernelEvent } from '../../bpf/index.js';
import {
  directListener,
  fakeProxy,
  makeCgroup,
  makePinRoot,
  probe,
  probeBinary,
  repoRoot,
  runProbe,
  sleep,
  type FakeProxy,
  type TestCgroup,
} from '../../testkit/kernel.js';

const EPERM = 1;
const IDENTITY = 7;

let kernel: Kernel | undefined;
let proxy: FakeProxy;
let direct: { port: number; close(): Promise<void> };
let agent: TestCgroup;
let pinRoot: string;
const events: KernelEvent[] = [];
let offEvents: () => void = () => {};

const inAgent = (...args: string[]): string[] => ['cg', agent.procs, ...args];

before(async () => {
  execFileSync('make', ['-s', '-C', join(repoRoot, 'bpf')], { stdio: 'inherit' });
  probeBinary(true);
  proxy = await fakeProxy(() => kernel);
  direct = await directListener();
  agent = makeCgroup();
  pinRoot = makePinRoot();
  kernel = await attach({
    cgroupPath: agent.dir,
    pinRoot,
    mode: 'cgroup-only',
    proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
  });
  kernel.registerIdentity({ cgroup: agent.dir }, IDENTITY);
  kernel.startHeartbeat();
  offEvents = kernel.onEvent((e) => events.push(e));
});

after(async () => {
  offEvents();
  kernel?.detachAll();
  agent?.remove();
  await proxy?.close();
  await direct?.close();
});

test('attach reports cgroup-only mode with the cgroup hooks active and the LSM hooks missing', () => {
  assert.equal(kernel!.mode, 'cgroup-only');
  for (const h of [
    'cgroup/connect4',
    'cgroup/connect6',
    'cgroup/sendmsg4',
    'cgroup/recvmsg4',
    'cgroup/getpeername4',
    'cgroup/sock_create',
    'sockops',
  ]) {
    assert.ok(kernel!.hooks.active.includes(h), `${h} active`);
  }
  assert.ok(!kernel!.hooks.active.includes('socket_connect'));
});

test('managed connect to any IPv4 address lands on the proxy; getpeername returns the original', async () => {
  const r = await probe(inAgent('connect', '203.0.113.9', '8443'));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.reply, 'proxy 203.0.113.9:8443');
  assert.equal(r.peer, '203.0.113.9:8443');
});

test('the proxy recovers the original destination, pid, uid and cgroup of the connecting process', async () => {
  const r = await probe(inAgent('connect', '198.51.100.20', '443'));
  assert.equal(r.ok, true, JSON.stringify(r));
  const acc = proxy.accepted.find((a) => a.firstLine === String(r.pid));
  assert.ok(acc, 'proxy saw the connection');
  assert.ok(acc.original, 'originalDestination() found it');
  assert.equal(acc.original.address, '198.51.100.20');
  assert.equal(acc.original.port, 443);
  assert.equal(acc.original.family, 4);
  assert.equal(acc.original.tgid, r.pid);
  assert.equal(acc.original.uid, process.getuid!());
  assert.equal(acc.original.identity, IDENTITY);
  assert.equal(acc.original.cgroupId, cgroupId(agent.dir));
});

test('managed connect to a local listener also goes through the proxy', async () => {
  const r = await probe(inAgent('connect', '127.0.0.1', String(direct.port)));
  assert.equal(r.reply, `proxy 127.0.0.1:${direct.port}`);
});

test('managed IPv6 connect lands on the proxy and getpeername returns the IPv6 original', async () => {
  const r = await probe(inAgent('connect', '2001:db8::1', '443'));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.reply, 'proxy 2001:db8::1:443');
  assert.equal(r.peer, '[2001:db8::1]:443');
  const acc = proxy.accepted.find((a) => a.firstLine === String(r.pid));
  assert.equal(acc?.original?.family, 6);
  assert.equal(acc?.original?.socketFamily, 10);
});

test('managed v4-mapped IPv6 connect lands on the proxy with the IPv4 original', async () => {
  const r = await probe(inAgent('connect', '::ffff:198.51.100.7', '80'));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.reply, 'proxy 198.51.100.7:80');
  assert.equal(r.peer, '[::ffff:198.51.100.7]:80');
});

test('sendmsg(MSG_FASTOPEN) from a managed process is redirected like connect (TFO hole closed)', async () => {
  const r = await probe(inAgent('tfo', '203.0.113.5', '80'));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.reply, 'proxy 203.0.113.5:80');
  assert.equal(r.peer, '203.0.113.5:80');
});

test('managed UDP other than DNS is denied with EPERM (sendto and connect)', async () => {
  const a = await probe(inAgent('udp', '198.51.100.1', '9999'));
  assert.equal(a.ok, false);
  assert.equal(a.errno, EPERM, JSON.stringify(a));
  const b = await probe(inAgent('udp-connect', '198.51.100.1', '9999'));
  assert.equal(b.errno, EPERM, JSON.stringify(b));
  const b6 = await probe(inAgent('udp', '2001:db8::53', '9999'));
  assert.equal(b6.errno, EPERM, JSON.stringify(b6));
});

test('managed DNS to any resolver reaches the proxy DNS port and the reply appears to come from the resolver', async () => {
  const before = proxy.dnsQueries.length;
  const r = await probe(inAgent('udp', '8.8.8.8', '53'));
  assert.equal(r.ok, true, JSON.stringify(r));
  assert.equal(r.reply, 'dns');
  assert.equal(r.from, '8.8.8.8:53');
  const c = await probe(inAgent('udp-connect', '9.9.9.9', '53'));
  assert.equal(c.reply, 'dns', JSON.stringify(c));
  assert.equal(c.from, '9.9.9.9:53');
  assert.equal(proxy.dnsQueries.length, before + 2);
});

test('managed raw socket is denied with EPERM; an unmanaged root process may create one', async () => {
  const m = await probe(inAgent('raw'));
  assert.equal(m.ok, false);
  assert.equal(m.errno, EPERM);
  const u = await probe(['raw']);
  assert.equal(u.ok, true, JSON.stringify(u));
});

test('an unmanaged process is untouched: it reaches the listener directly and may send UDP', async () => {
  const r = await probe(['connect', '127.0.0.1', String(direct.port)]);
  assert.equal(r.reply, 'direct');
  assert.equal(r.peer, `127.0.0.1:${direct.port}`);
  const u = await probe(['udp', '127.0.0.1', String(direct.port)]);
  assert.equal(u.sent, true, JSON.stringify(u));
});

test('children of a managed process stay managed: fork, double fork with setsid, exec', async () => {
  const bin = probeBinary(false);
  const f = await probe(inAgent('fork', 'connect', '203.0.113.1', '81'));
  assert.equal(f.reply, 'proxy 203.0.113.1:81');
  const d = await probe(inAgent('daemonize', 'connect', '203.0.113.2', '82'));
  assert.equal(d.reply, 'proxy 203.0.113.2:82');
  const e = await probe(inAgent('fork', 'setsid', 'exec', bin, 'udp', '198.51.100.3', '123'));
  assert.equal(e.errno, EPERM, JSON.stringify(e));
});

test('denials reach user space as events with hook, reason, pid and identity', async () => {
  const r = await probe(inAgent('udp', '198.51.100.9', '4444'));
  assert.equal(r.errno, EPERM);
  let ev: KernelEvent | undefined;
  for (let i = 0; i < 40 && !ev; i++) {
    ev = events.find((e) => e.kind === 'deny' && e.tgid === r.pid);
    if (!ev) await sleep(50);
  }
  assert.ok(ev && ev.kind === 'deny', 'deny event delivered');
  assert.equal(ev.hook, 'sendmsg4');
  assert.equal(ev.reason, 'udp');
  assert.equal(ev.identity, IDENTITY);
  assert.deepEqual(ev.destination, { address: '198.51.100.9', family: 4, port: 4444 });
});

test('events() iterates the same events and ends when returned', async () => {
  const it = kernel!.events();
  const r = await probe(inAgent('udp', '198.51.100.10', '5555'));
  assert.equal(r.errno, EPERM);
  let found: KernelEvent | undefined;
  for (let i = 0; i < 20 && !found; i++) {
    const next = await Promise.race([it.next(), sleep(2000).then(() => null)]);
    if (!next || next.done) break;
    if (next.value.tgid === r.pid) found = next.value;
  }
  assert.ok(found && found.kind === 'deny' && found.reason === 'udp', 'deny event from the iterator');
  assert.deepEqual(await it.return!(), { value: undefined, done: true });
  assert.equal((await it.next()).done, true);
});

test('a managed cgroup not yet classified is denied network until the daemon names its identity', async () => {
  const pending = makeCgroup(agent.dir);
  try {
    kernel!.manageCgroup(pending.dir);
    // The nearest managed ancestor decides: the pending child cgroup, unclassified.
    const r = await probe(['cg', pending.procs, 'connect', '203.0.113.3', '80']);
    assert.equal(r.errno, EPERM, JSON.stringify(r));
    kernel!.registerIdentity({ cgroup: pending.dir }, 9);
    const ok = await probe(['cg', pending.procs, 'connect', '203.0.113.3', '80']);
    assert.equal(ok.reply, 'proxy 203.0.113.3:80');
    const acc = proxy.accepted.find((a) => a.firstLine === String(ok.pid));
    assert.equal(acc?.original?.identity, 9);
  } finally {
    kernel!.unregisterIdentity({ cgroup: pending.dir });
    pending.remove();
  }
});

test('fail closed: without heartbeats a managed connect gets EPERM; heartbeats restore traffic', async () => {
  kernel!.stopHeartbeat();
  kernel!.setHeartbeat();
  const stoppedAt = Date.now();
  let denied: number | null = null;
  while (Date.now() - stoppedAt < 3000) {
    const r = await probe(inAgent('connect', '203.0.113.4', '80'));
    if (r.errno === EPERM) {
      denied = Date.now() - stoppedAt;
      break;
    }
    await sleep(50);
  }
  kernel!.startHeartbeat();
  assert.ok(denied !== null, 'managed connect was denied after the heartbeat went stale');
  const u = await probe(['connect', '127.0.0.1', String(direct.port)]);
  assert.equal(u.reply, 'direct', 'unmanaged process unaffected by the heartbeat');
  const r = await probe(inAgent('connect', '203.0.113.4', '80'));
  assert.equal(r.reply, 'proxy 203.0.113.4:80');
});

test('a second attach on the same pin root re-adopts the pinned programs; closing a handle keeps enforcement', async () => {
  const again = await attach({
    cgroupPath: agent.dir,
    pinRoot,
    mode: 'cgroup-only',
    proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
  });
  try {
    assert.equal(again.adopted, true);
    assert.deepEqual([...again.hooks.active].sort(), [...kernel!.hooks.active].sort());
  } finally {
    again.close();
  }
  const r = await probe(inAgent('connect', '203.0.113.6', '80'));
  assert.equal(r.reply, 'proxy 203.0.113.6:80');
});

test('bad configuration is refused with an error naming the field', async () => {
  await assert.rejects(
    attach({ cgroupPath: agent.dir, pinRoot, mode: 'cgroup-only', proxy: { address: 'localhost', port: 1, dnsPort: 2 } }),
    /proxy\.address/,
  );
  await assert.rejects(attach({ cgroupPath: '/nonexistent', pinRoot, proxy: { address: '127.0.0.1', port: 1, dnsPort: 2 } }), /cgroupPath/);
  assert.throws(() => kernel!.configure({ heartbeatTtlMs: 0 }), /heartbeatTtlMs/);
  assert.throws(() => kernel!.registerIdentity({ cgroup: agent.dir }, 0), /identity/);
  // Still enforcing with the old settings.
  const r = await probe(inAgent('udp', '198.51.100.1', '9999'));
  assert.equal(r.errno, EPERM);
});

test('maps pinned by an incompatible build are refused with a clear error, and left in place', async () => {
  const { mkdirSync, existsSync, rmSync } = await import('node:fs');
  const root = makePinRoot();
  mkdirSync(root);
  try {
    execFileSync('bpftool', [
      'map',
      'create',
      join(root, 'lil_config'),
      'type',
      'array',
      'key',
      '4',
      'value',
      '48',
      'entries',
      '1',
      'name',
      'lil_config',
    ]);
    await assert.rejects(
      attach({
        cgroupPath: agent.dir,
        pinRoot: root,
        mode: 'cgroup-only',
        proxy: { address: '127.0.0.1', port: proxy.port, dnsPort: proxy.dnsPort },
      }),
      /incompatible Lilith build \(config is 48 bytes/,
    );
    assert.ok(existsSync(join(root, 'lil_config')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('detachAll ends enforcement and removes the pins', async () => {
  const lines = await runProbe(inAgent('connect', '127.0.0.1', String(direct.port)));
  assert.equal(lines.at(-1)?.reply, `proxy 127.0.0.1:${direct.port}`);
  offEvents();
  kernel!.detachAll();
  kernel = undefined;
  const r = await probe(inAgent('connect', '127.0.0.1', String(direct.port)));
  assert.equal(r.reply, 'direct');
  const { existsSync } = await import('node:fs');
  assert.equal(existsSync(pinRoot), false);
});
