// Failures surface as BpfError with the errno the kernel or libbpf returned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfError, BpfObject, type BpfMap } from '../../bpf/loader.js';
import { errnoCode } from '../../bpf/errors.js';
import { activeLsms, lockdownMode, probeBpfLsm } from '../../bpf/features.js';
import { makePinDir, removePinDir, testObjects, u32 } from './helpers.js';

const objs = testObjects();

test('opening a missing object file is ENOENT', () => {
  assert.throws(
    () => BpfObject.open('/nonexistent/x.bpf.o'),
    (e: unknown) => {
      assert.ok(e instanceof BpfError);
      assert.equal(e.operation, 'object.open');
      assert.equal(e.errno, 2);
      assert.equal(e.code, 'ENOENT');
      assert.match(e.message, /\/nonexistent\/x\.bpf\.o/);
      assert.match(e.log ?? '', /failed to open/);
      return true;
    },
  );
});

test('a file that is not a BPF object is a libbpf format error', () => {
  assert.throws(() => BpfObject.open(import.meta.filename ?? new URL(import.meta.url).pathname), {
    name: 'BpfError',
    operation: 'object.open',
    errno: 4001,
    code: 'LIBBPF_FORMAT',
    message: /BPF object format invalid/,
  });
});

test('a program the verifier rejects fails load with the verifier log', () => {
  const obj = BpfObject.open(objs.reject, { pinRoot: '/nonexistent' });
  try {
    assert.throws(
      () => obj.load(),
      (e: unknown) => {
        assert.ok(e instanceof BpfError);
        assert.equal(e.operation, 'object.load');
        assert.equal(e.code, 'EACCES');
        assert.match(e.log ?? '', /test_reject/);
        assert.match(e.log ?? '', /invalid mem access 'map_value_or_null'/);
        return true;
      },
    );
  } finally {
    obj.close();
  }
});

test('unknown programs, maps and wrong key or value sizes are clear errors', () => {
  const pins = makePinDir();
  const obj = BpfObject.open(objs.connect, { pinRoot: pins });
  let cfgAfterClose!: BpfMap;
  try {
    assert.throws(() => obj.program('nope'), { name: 'BpfError', code: 'ENOENT', message: /nope: ENOENT \(no such program\)/ });
    assert.throws(() => obj.map('nope'), { name: 'BpfError', code: 'ENOENT', message: /no such map/ });
    assert.throws(() => obj.map('test_cfg').fd, { code: 'EBADF', message: /not loaded/ });
    obj.load();
    const cfg = obj.map('test_cfg');
    cfgAfterClose = cfg;
    assert.throws(() => cfg.lookup(Buffer.alloc(3)), { code: 'EINVAL', message: /key is 3 bytes, map expects 4/ });
    assert.throws(() => cfg.update(u32(0), Buffer.alloc(8)), { code: 'EINVAL', message: /value is 8 bytes, map expects 4/ });
    // An array index past max_entries: the kernel's own answer.
    assert.throws(() => cfg.update(u32(5), u32(1)), { operation: 'map.update', code: 'E2BIG' });
    assert.throws(() => obj.program('test_connect4').attachCgroup('/nonexistent-cgroup'), {
      operation: 'program.attachCgroup',
      code: 'ENOENT',
    });
    assert.throws(() => obj.program('test_connect4').setAutoload(false), { code: 'EBUSY' });
    cfg.update(u32(0), u32(7));
    assert.equal(cfg.lookup(u32(0))?.readUInt32LE(0), 7);
  } finally {
    obj.close();
    removePinDir(pins);
  }
  assert.throws(() => obj.load(), { code: 'EBADF', message: /closed/ });
  // A map taken from the object (its fd cached by the lookup above) is dead with it.
  assert.throws(() => cfgAfterClose.lookup(u32(0)), { code: 'EBADF', message: /object is closed/ });
  obj.close(); // idempotent
});

test('errno codes map to their symbolic names', () => {
  assert.equal(errnoCode(1), 'EPERM');
  assert.equal(errnoCode(-13), 'EACCES');
  assert.equal(errnoCode(99999), 'E99999');
  assert.equal(errnoCode(-4007), 'LIBBPF_VERIFY');
});

test('BPF-LSM probe reports what this kernel allows', () => {
  const probe = probeBpfLsm(objs.probe);
  if (lockdownMode() === 'integrity' || lockdownMode() === 'confidentiality') {
    // This host: lockdown refuses LSM programs at load.
    assert.deepEqual({ loadable: probe.loadable, fires: probe.fires, code: probe.code }, { loadable: false, fires: false, code: 'EPERM' });
    assert.match(probe.error ?? '', /lockdown/);
  } else {
    // A kernel that loads LSM programs: the hook fires exactly when bpf is an active LSM.
    assert.equal(probe.loadable, true, probe.error);
    assert.equal(probe.fires, activeLsms().includes('bpf'), probe.error);
  }
});
