// The pure half of the kernel API: a KernelConfig becomes lil_config settings, live updates
// merge into them, and each mode picks its programs. No kernel needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KernelConfigError, settingsOf, updatedSettings } from '../../bpf/config.js';
import { CFG_EXEC_ALLOWLIST, CFG_INTERCEPT, CFG_WX } from '../../bpf/layout.js';
import { lsmHooksMissing, programsFor } from '../../bpf/mode.js';

const where = { id: 42n, level: 3 };
const base = { cgroupPath: '/sys/fs/cgroup/x', proxy: { address: '127.0.0.1', port: 7890, dnsPort: 7853 } };

test('settingsOf fills the defaults: 1 s TTL, v4-mapped IPv6 proxy, exec allowlist and W^X on', () => {
  const s = settingsOf(base, true, where);
  assert.equal(s.heartbeatTtlNs, 1_000_000_000n);
  assert.equal(s.proxyV6, '::ffff:127.0.0.1');
  assert.equal(s.minAddr, 65536);
  assert.equal(s.flags, CFG_INTERCEPT | CFG_EXEC_ALLOWLIST | CFG_WX);
  assert.equal(s.interceptCgroupId, 42n);
});

test('settingsOf refuses bad fields by name, and never lets AF_INET/AF_INET6 be denied', () => {
  const bad: [object, string][] = [
    [{ proxy: { ...base.proxy, address: 'localhost' } }, 'proxy.address'],
    [{ proxy: { ...base.proxy, port: 0 } }, 'proxy.port'],
    [{ heartbeatTtlMs: 10 }, 'heartbeatTtlMs'],
    [{ deniedFamilies: [10] }, 'deniedFamilies'],
    [{ deniedFamilies: [64] }, 'deniedFamilies'],
    [{ minAddr: -1 }, 'minAddr'],
  ];
  for (const [patch, field] of bad) {
    assert.throws(
      () => settingsOf({ ...base, ...patch }, true, where),
      (e: unknown) => e instanceof KernelConfigError && e.field === field,
      field,
    );
  }
});

test('a live update changes only what it names and keeps the interception cgroup', () => {
  const s = settingsOf({ ...base, wx: false }, false, where);
  const u = updatedSettings(s, base.cgroupPath, { heartbeatTtlMs: 500 });
  assert.equal(u.heartbeatTtlNs, 500_000_000n);
  assert.equal(u.flags, CFG_EXEC_ALLOWLIST);
  assert.equal(u.interceptCgroupId, 42n);
  assert.equal(u.proxyPort, 7890);
});

test('cgroup-only mode runs no LSM program; BPF-LSM mode without interception drops the redirect path', () => {
  assert.ok(programsFor('cgroup-only', true).every((p) => p.kind !== 'lsm'));
  assert.ok(programsFor('bpf-lsm', true).some((p) => p.kind === 'lsm'));
  assert.ok(programsFor('bpf-lsm', false).every((p) => !p.intercept));
  assert.ok(programsFor('bpf-lsm', true).some((p) => p.intercept));
  assert.ok(lsmHooksMissing('lockdown').every((h) => h.reason === 'lockdown'));
});
