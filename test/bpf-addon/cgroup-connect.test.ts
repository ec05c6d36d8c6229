// The loader against the real kernel: a cgroup/connect4 program loaded,
// configured through a map, attached to a fresh cgroup; real child processes
// connect and the outcome is observed on real sockets and in kernel-written maps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfObject, RingBuffer, monotonicNs, type BpfLink } from '../../bpf/loader.js';
import {
  connectFrom,
  listen,
  makeCgroup,
  makePinDir,
  removeCgroup,
  removePinDir,
  testObjects,
  u32,
  u64,
  type Listener,
} from './helpers.js';

let objPath: string;
let obj: BpfObject;
let link: BpfLink;
let cgroup: string;
let pins: string; // test_counts is LIBBPF_PIN_BY_NAME: keep it out of /sys/fs/bpf
let proxy: Listener; // where the program sends managed connects
let other: Listener; // a destination unmanaged processes should reach directly

before(async () => {
  objPath = testObjects().connect;
  proxy = await listen();
  other = await listen();
  cgroup = makeCgroup();
  pins = makePinDir();
  obj = BpfObject.open(objPath, { pinRoot: pins });
  obj.setGlobal('count_step', u64(1n));
  obj.load();
  obj.map('test_cfg').update(u32(0), u32(proxy.port));
  link = obj.program('test_connect4').attachCgroup(cgroup);
});

after(async () => {
  link?.destroy();
  obj?.close();
  if (cgroup) removeCgroup(cgroup);
  if (pins) removePinDir(pins);
  await proxy?.close();
  await other?.close();
});

test('object exposes its programs and maps with their kernel shapes', () => {
  const progs = obj.programs();
  assert.deepEqual(
    progs.map((p) => [p.name, p.section]),
    [['test_connect4', 'cgroup/connect4']],
  );
  assert.ok(progs[0]!.fd > 0);
  const counts = obj.map('test_counts');
  assert.equal(counts.keySize, 4);
  assert.equal(counts.valueSize, 8);
  assert.equal(counts.maxEntries, 1024);
  assert.ok(counts.fd > 0);
  const info = link.info();
  assert.equal(info.type, 3 /* BPF_LINK_TYPE_CGROUP */);
  assert.ok(typeof info.cgroupId === 'bigint' && info.cgroupId > 0n);
});

test('connect from a process in the cgroup lands on the redirect listener', async () => {
  const before = proxy.received.length;
  const r = await connectFrom(cgroup, '10.255.1.2', 80);
  assert.equal(r.error, undefined);
  assert.equal(r.reply, `ok ${proxy.port}`);
  assert.deepEqual(proxy.received.slice(before), [String(r.pid)]);
});

test('connect from a process outside the cgroup is untouched', async () => {
  const beforeProxy = proxy.received.length;
  const r = await connectFrom(null, '127.0.0.1', other.port);
  assert.equal(r.reply, `ok ${other.port}`);
  assert.ok(other.received.includes(String(r.pid)));
  assert.equal(proxy.received.length, beforeProxy, 'nothing reached the redirect listener');
  assert.equal(obj.map('test_counts').lookup(u32(r.pid)), null, 'the program never saw the unmanaged process');
});

test('map values written by the kernel program round-trip through lookup, keys, update and delete', async () => {
  const counts = obj.map('test_counts');
  const r = await connectFrom(cgroup, '10.255.1.3', 443);
  assert.equal(r.reply, `ok ${proxy.port}`);
  const key = u32(r.pid);
  // The kernel program inserted this entry on the child's connect.
  assert.equal(counts.lookup(key)?.readBigUInt64LE(0), 1n);
  assert.ok(counts.keys().some((k) => k.readUInt32LE(0) === r.pid));
  // A value we write is what the kernel program then increments.
  counts.update(key, u64(100n), 'exist');
  assert.throws(() => counts.update(key, u64(5n), 'noexist'), { name: 'BpfError', code: 'EEXIST', operation: 'map.update' });
  assert.equal(counts.lookup(key)?.readBigUInt64LE(0), 100n);
  assert.equal(counts.delete(key), true);
  assert.equal(counts.delete(key), false);
  assert.equal(counts.lookup(key), null);
  assert.ok(!counts.keys().some((k) => k.readUInt32LE(0) === r.pid));
});

test('a value written from user space is seen by the kernel program', async () => {
  // Redirect to the other listener through the config map, observe it, restore.
  const cfg = obj.map('test_cfg');
  cfg.update(u32(0), u32(other.port));
  try {
    const r = await connectFrom(cgroup, '10.255.1.4', 80);
    assert.equal(r.reply, `ok ${other.port}`);
  } finally {
    cfg.update(u32(0), u32(proxy.port));
  }
  assert.equal(cfg.lookup(u32(0))?.readUInt32LE(0), proxy.port);
});

test('setGlobal before load sets a const volatile the program uses', async () => {
  // A private pin root: the pinned test_counts of the shared object must not be reused.
  const pinRoot = makePinDir();
  const o = BpfObject.open(objPath, { pinRoot });
  const cg = makeCgroup();
  let l: BpfLink | undefined;
  try {
    o.setGlobal('count_step', u64(7n));
    assert.throws(() => o.setGlobal('count_step', Buffer.alloc(4)), { code: 'EMSGSIZE' });
    assert.throws(() => o.setGlobal('no_such_var', u64(1n)), { code: 'ENOENT' });
    o.load();
    assert.throws(() => o.setGlobal('count_step', u64(1n)), { code: 'EBUSY' });
    o.map('test_cfg').update(u32(0), u32(proxy.port));
    l = o.program('test_connect4').attachCgroup(cg);
    const r = await connectFrom(cg, '10.255.1.5', 80);
    assert.equal(r.reply, `ok ${proxy.port}`);
    assert.equal(o.map('test_counts').lookup(u32(r.pid))?.readBigUInt64LE(0), 7n);
  } finally {
    l?.destroy();
    o.close();
    removeCgroup(cg);
    removePinDir(pinRoot);
  }
});

test('ring buffer delivers one event per connect with the pid, original address and a CLOCK_MONOTONIC stamp', async () => {
  const events: Buffer[] = [];
  const rb = new RingBuffer(obj.map('test_events'), (d) => events.push(d));
  try {
    const t0 = monotonicNs();
    const r = await connectFrom(cgroup, '10.9.8.7', 8443);
    assert.equal(r.reply, `ok ${proxy.port}`);
    // Samples arrive asynchronously from the poll thread; wait for ours.
    for (let i = 0; i < 200 && !events.some((e) => e.readUInt32LE(0) === r.pid); i++) await new Promise((res) => setTimeout(res, 10));
    const t1 = monotonicNs();
    const mine = events.filter((e) => e.readUInt32LE(0) === r.pid);
    assert.equal(mine.length, 1);
    const e = mine[0]!;
    assert.equal(e.length, 24);
    assert.equal([...e.subarray(4, 8)].join('.'), '10.9.8.7');
    assert.equal(e.readUInt16BE(8), 8443);
    const ts = e.readBigUInt64LE(16);
    assert.ok(ts >= t0 && ts <= t1, `kernel stamp ${ts} within [${t0}, ${t1}]: same clock as monotonicNs()`);
  } finally {
    rb.close();
  }
  assert.equal(rb.closed, true);
  rb.close(); // idempotent
});

test('ring buffer delivers nothing after close()', async () => {
  const events: Buffer[] = [];
  const rb = new RingBuffer(obj.map('test_events'), (d) => events.push(d));
  rb.close();
  const r = await connectFrom(cgroup, '10.9.8.6', 80);
  assert.equal(r.reply, `ok ${proxy.port}`);
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(events.length, 0);
  // The event is still in the ring: a new consumer gets it.
  const later: Buffer[] = [];
  const rb2 = new RingBuffer(obj.map('test_events'), (d) => later.push(d));
  try {
    for (let i = 0; i < 200 && !later.some((e) => e.readUInt32LE(0) === r.pid); i++) await new Promise((res) => setTimeout(res, 10));
    assert.ok(later.some((e) => e.readUInt32LE(0) === r.pid));
  } finally {
    rb2.close();
  }
});

test('a throwing sample handler is reported to onError and delivery continues', async () => {
  const errors: unknown[] = [];
  const seen: number[] = [];
  const rb = new RingBuffer(
    obj.map('test_events'),
    (d) => {
      seen.push(d.readUInt32LE(0));
      throw new Error('handler bug');
    },
    { onError: (e) => errors.push(e) },
  );
  try {
    const a = await connectFrom(cgroup, '10.9.8.5', 80);
    const b = await connectFrom(cgroup, '10.9.8.4', 80);
    for (let i = 0; i < 200 && !(seen.includes(a.pid) && seen.includes(b.pid)); i++) await new Promise((res) => setTimeout(res, 10));
    assert.ok(seen.includes(a.pid) && seen.includes(b.pid));
    assert.equal(errors.length, seen.length);
    assert.match(String(errors[0]), /handler bug/);
  } finally {
    rb.close();
  }
});

test('destroying an unpinned link detaches the program', async () => {
  const o = BpfObject.open(objPath, { pinRoot: pins });
  const cg = makeCgroup();
  try {
    o.load();
    o.map('test_cfg').update(u32(0), u32(proxy.port));
    const l = o.program('test_connect4').attachCgroup(cg);
    assert.equal((await connectFrom(cg, '127.0.0.1', other.port)).reply, `ok ${proxy.port}`);
    l.destroy();
    assert.equal((await connectFrom(cg, '127.0.0.1', other.port)).reply, `ok ${other.port}`);
  } finally {
    o.close();
    removeCgroup(cg);
  }
});

test('monotonicNs reads the same clock as process.hrtime.bigint', () => {
  const a = process.hrtime.bigint();
  const m = monotonicNs();
  const b = process.hrtime.bigint();
  assert.ok(a <= m && m <= b);
});
