// Feature detection reads the real kernel state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { activeLsms, bpfLsmActive, hasBtf, kernelRelease } from '../../bpf/features.js';
import { ensureBpffs, ensureCgroup2, mountPointsOf } from '../../bpf/mounts.js';

test('kernel release and BTF presence match the system', () => {
  assert.equal(kernelRelease(), execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim());
  assert.equal(hasBtf(), existsSync('/sys/kernel/btf/vmlinux'));
});

test('active LSM list comes from securityfs', () => {
  const lsms = activeLsms();
  assert.ok(mountPointsOf('securityfs').length > 0, 'securityfs mounted');
  assert.deepEqual(lsms, readFileSync('/sys/kernel/security/lsm', 'utf8').trim().split(','));
  assert.ok(lsms.includes('capability'));
  assert.equal(bpfLsmActive(), lsms.includes('bpf'));
});

test('cgroup2 and bpffs are mounted where ensure* says', () => {
  const cg = ensureCgroup2();
  assert.ok(mountPointsOf('cgroup2').includes(cg));
  assert.ok(existsSync(`${cg}/cgroup.procs`));
  const fs = ensureBpffs();
  assert.ok(mountPointsOf('bpf').includes(fs));
  assert.equal(ensureBpffs(), fs, 'idempotent');
});
