// Persistence through bpffs: a pinned link keeps enforcing after the loader
// closes everything; another process re-adopts the pinned map and link, reads
// what the kernel wrote, and detach() ends enforcement.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, BpfMap, BpfObject } from '../../bpf/loader.js';
import {
  connectFrom,
  distModule,
  listen,
  makeCgroup,
  makePinDir,
  removeCgroup,
  removePinDir,
  runNode,
  testObjects,
  u32,
  type Listener,
} from './helpers.js';

let objPath: string;
let cgroup: string;
let pins: string;
let proxy: Listener;
let other: Listener;

before(async () => {
  objPath = testObjects().connect;
  proxy = await listen();
  other = await listen();
  cgroup = makeCgroup();
  pins = makePinDir();
});

after(async () => {
  // If a step failed before detaching, the pinned link would keep enforcing.
  if (existsSync(join(pins, 'link'))) {
    const l = BpfLink.openPinned(join(pins, 'link'));
    l.detach();
    l.unpin();
    l.destroy();
  }
  removePinDir(pins);
  removeCgroup(cgroup);
  await proxy.close();
  await other.close();
});

test('pinned link and maps outlive the object; another process re-adopts them and detach ends enforcement', async () => {
  // 1. Load, configure, attach, pin; then drop every fd this process holds.
  const obj = BpfObject.open(objPath, { pinRoot: pins });
  obj.load();
  assert.ok(existsSync(join(pins, 'test_counts')), 'LIBBPF_PIN_BY_NAME map pinned under pinRoot');
  const cfg = obj.map('test_cfg');
  cfg.update(u32(0), u32(proxy.port));
  cfg.pin(join(pins, 'test_cfg'));
  const link = obj.program('test_connect4').attachCgroup(cgroup);
  link.pin(join(pins, 'link'));
  assert.equal(link.pinPath, join(pins, 'link'));
  const countsId = obj.map('test_counts').info().id;
  link.destroy();
  obj.close();

  // 2. Still enforcing with nothing open in this process.
  const first = await connectFrom(cgroup, '127.0.0.1', other.port);
  assert.equal(first.reply, `ok ${proxy.port}`);

  // 3. Re-opening the object with the same pinRoot reuses the pinned map (same kernel map, kernel-written entry).
  const again = BpfObject.open(objPath, { pinRoot: pins });
  try {
    again.load();
    const counts = again.map('test_counts');
    assert.equal(counts.info().id, countsId);
    assert.equal(counts.lookup(u32(first.pid))?.readBigUInt64LE(0), 1n);
  } finally {
    again.close();
  }

  // 4. A separate process (a restarted daemon) adopts map and link, reads, detaches, unpins.
  const loader = distModule('bpf/loader.js');
  const script = `
    import { BpfMap, BpfLink } from ${JSON.stringify(loader)};
    const counts = BpfMap.openPinned(${JSON.stringify(join(pins, 'test_counts'))});
    const entries = counts.entries().map(([k, v]) => [k.readUInt32LE(0), Number(v.readBigUInt64LE(0))]);
    const link = BpfLink.openPinned(${JSON.stringify(join(pins, 'link'))});
    const info = link.info();
    link.detach();
    link.unpin();
    link.destroy();
    console.log(JSON.stringify({ name: counts.name, keySize: counts.keySize, valueSize: counts.valueSize, type: counts.type, entries, linkType: info.type }));
    counts.close();
  `;
  const r = await runNode(script);
  assert.equal(r.code, 0, r.stderr);
  const seen = JSON.parse(r.stdout) as {
    name: string;
    keySize: number;
    valueSize: number;
    type: number;
    entries: [number, number][];
    linkType: number;
  };
  assert.deepEqual(
    { name: seen.name, keySize: seen.keySize, valueSize: seen.valueSize, type: seen.type, linkType: seen.linkType },
    { name: 'test_counts', keySize: 4, valueSize: 8, type: 1 /* HASH */, linkType: 3 /* cgroup */ },
  );
  assert.deepEqual(seen.entries, [[first.pid, 1]]);
  assert.ok(!existsSync(join(pins, 'link')));

  // 5. Enforcement is gone.
  const after = await connectFrom(cgroup, '127.0.0.1', other.port);
  assert.equal(after.reply, `ok ${other.port}`);

  // 6. The pinned config map is still usable on its own.
  const cfgAgain = BpfMap.openPinned(join(pins, 'test_cfg'));
  try {
    assert.equal(cfgAgain.lookup(u32(0))?.readUInt32LE(0), proxy.port);
    cfgAgain.unpin(join(pins, 'test_cfg'));
    assert.ok(!existsSync(join(pins, 'test_cfg')));
  } finally {
    cfgAgain.close();
  }
});

test('detach() stops a pinned link even while the pin exists', async () => {
  const obj = BpfObject.open(objPath, { pinRoot: pins });
  try {
    obj.load();
    obj.map('test_cfg').update(u32(0), u32(proxy.port));
    const link = obj.program('test_connect4').attachCgroup(cgroup);
    link.pin(join(pins, 'link'));
    assert.equal((await connectFrom(cgroup, '127.0.0.1', other.port)).reply, `ok ${proxy.port}`);
    link.detach();
    assert.ok(existsSync(join(pins, 'link')), 'pin still present');
    assert.equal((await connectFrom(cgroup, '127.0.0.1', other.port)).reply, `ok ${other.port}`);
    link.unpin();
    link.destroy();
  } finally {
    obj.close();
  }
});

test('opening pins that are missing or of the wrong kind fails with a typed error', () => {
  assert.throws(() => BpfMap.openPinned(join(pins, 'nope')), { name: 'BpfError', operation: 'map.openPinned', code: 'ENOENT', errno: 2 });
  assert.throws(() => BpfLink.openPinned(join(pins, 'nope')), { name: 'BpfError', operation: 'link.openPinned', code: 'ENOENT' });
  const obj = BpfObject.open(objPath, { pinRoot: pins });
  try {
    obj.load();
    const link = obj.program('test_connect4').attachCgroup(cgroup);
    link.pin(join(pins, 'a-link'));
    try {
      assert.throws(() => BpfMap.openPinned(join(pins, 'a-link')), {
        operation: 'map.openPinned',
        code: 'EINVAL',
        message: /not a BPF map \(bpf-link\)/,
      });
    } finally {
      link.unpin();
      link.destroy();
    }
  } finally {
    obj.close();
  }
});
