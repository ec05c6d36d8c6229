// LSM attach through the loader: attachLsm, pin, enforcement-side effect seen
// from the kernel-written counter, detach. Needs a kernel that loads BPF-LSM
// programs with bpf in the LSM list: skipped (with the probe's reason) on this
// host, where lockdown refuses them; runs in the VM tests (test/bpf-addon/vm).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, BpfMap, BpfObject } from '../../bpf/loader.js';
import { probeBpfLsm } from '../../bpf/features.js';
import { makePinDir, removePinDir, testObjects, u32, u64 } from './helpers.js';

const objs = testObjects();
const probe = probeBpfLsm(objs.probe);
const skip = probe.loadable && probe.fires ? false : `BPF-LSM not usable here: ${probe.error ?? 'probe did not fire'}`;

const openFile = (): void => closeSync(openSync('/proc/self/stat', 'r'));

test('an LSM program attached with attachLsm runs, survives as a pinned link, and stops on detach (or unpin + close)', { skip }, () => {
  const pins = makePinDir();
  try {
    const obj = BpfObject.open(objs.probe);
    obj.load();
    const state = obj.map('probe_state');
    state.update(u32(0), u64(BigInt(process.pid)));
    state.pin(join(pins, 'state'));
    const link = obj.program('lsm_probe_open').attachLsm();
    link.pin(join(pins, 'link'));
    link.destroy();
    obj.close();

    const pinned = BpfMap.openPinned(join(pins, 'state'));
    const hits = (): bigint => pinned.lookup(u32(1))!.readBigUInt64LE(0);
    const h0 = hits();
    openFile();
    const h1 = hits();
    assert.ok(h1 > h0, `file_open hook counted this process (${h0} → ${h1}) with only the pin holding it`);

    const adopted = BpfLink.openPinned(join(pins, 'link'));
    try {
      adopted.detach();
    } catch (e) {
      // 6.1 has no BPF_LINK_DETACH for tracing/LSM links: unpin + close ends it instead.
      assert.equal((e as { code?: string }).code, 'EOPNOTSUPP', String(e));
    }
    adopted.unpin();
    adopted.destroy();
    const h2 = hits();
    openFile();
    assert.equal(hits(), h2, 'no count after detach');
    pinned.close();
  } finally {
    removePinDir(pins);
  }
});

test('auto-attach from the SEC name attaches the LSM program too', { skip }, () => {
  const obj = BpfObject.open(objs.probe);
  try {
    obj.load();
    const state = obj.map('probe_state');
    state.update(u32(0), u64(BigInt(process.pid)));
    const link = obj.program('lsm_probe_open').attach();
    try {
      openFile();
      assert.ok(state.lookup(u32(1))!.readBigUInt64LE(0) > 0n);
    } finally {
      link.destroy();
    }
  } finally {
    obj.close();
  }
});
